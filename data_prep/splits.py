"""Subject-wise splits and train-only normalization."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Dict, Iterable, List, Tuple

import numpy as np

from harkit.errors import HarError

SPLITS: Tuple[str, ...] = ("train", "val", "test")


def assign_subjects(available: Iterable, val: List, test: List) -> Dict[str, List]:
    """``{"train": [...], "val": [...], "test": [...]}``: val/test as given, train the rest, each
    sorted. Subjects are matched by their text, so ``--val-subjects 105`` finds subject 105 and
    ``P01`` finds ``"P01"``; the result holds the data's own values.

    Raises HarError for a subject not present in the data, or an empty train split.
    """
    available = sorted(set(available), key=_order)
    by_text = {str(s): s for s in available}
    chosen = {}
    for option, wanted in (("--val-subjects", val), ("--test-subjects", test)):
        unknown = [str(s) for s in wanted if str(s) not in by_text]
        if unknown:
            raise HarError(f"{option}: subject(s) {', '.join(unknown)} not in the data "
                           f"(found {', '.join(map(str, available))}); choose among those "
                           "or 'none'")
        chosen[option] = sorted((by_text[str(s)] for s in wanted), key=_order)
    held_out = {str(s) for s in list(val) + list(test)}
    train = [s for s in available if str(s) not in held_out]
    if not train:
        raise HarError("the train split is empty: --val-subjects and --test-subjects take every "
                       f"subject ({', '.join(map(str, available))}); leave some for training")
    return {"train": train, "val": chosen["--val-subjects"], "test": chosen["--test-subjects"]}


def _order(subject):
    """Numbers before text, numbers by value."""
    return (0, subject, "") if isinstance(subject, (int, np.integer)) else (1, 0, str(subject))


def fit_normalization(x_train, chunk_rows: int = 1 << 16) -> Tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and (population) std, float64 ``[C]``, of the train windows: one array
    ``[N, T, C]`` or a list of them (the pieces of one split).

    Two passes over blocks of ``chunk_rows`` time steps, accumulated in float64: the same
    figures as ``x.reshape(-1, C).std(0, dtype=float64)`` without its float64 copy of the
    whole split. A constant channel gets std 1 so that normalizing it cannot divide by zero.
    """
    parts = [x_train] if isinstance(x_train, np.ndarray) else list(x_train)
    channels = parts[0].shape[-1]
    blocks = [flat[i:i + chunk_rows]
              for flat in (p.reshape(-1, channels) for p in parts)
              for i in range(0, flat.shape[0], chunk_rows)]
    rows = sum(b.shape[0] for b in blocks)

    def squares(b):
        d = b - mean
        return np.einsum("ij,ij->j", d, d)

    with ThreadPoolExecutor(2) as pool:      # numpy releases the GIL on each block
        mean = sum(pool.map(lambda b: b.sum(axis=0, dtype=np.float64), blocks),
                   np.zeros(channels)) / rows
        std = np.sqrt(sum(pool.map(squares, blocks), np.zeros(channels)) / rows)
    std[~(std > 1e-8)] = 1.0
    return mean, std


def apply_normalization(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> None:
    """``x [N, T, C]`` ← ``(x - mean) / std`` in place, float32."""
    x -= mean.astype(np.float32)
    x *= (1.0 / std).astype(np.float32)
