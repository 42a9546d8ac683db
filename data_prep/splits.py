"""Subject-wise splits and train-only normalization."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Dict, Iterable, List, Tuple

import numpy as np

from harkit.errors import HarError

SPLITS: Tuple[str, ...] = ("train", "val", "test")


def assign_subjects(available: Iterable[int], val: List[int], test: List[int]
                    ) -> Dict[str, List[int]]:
    """``{"train": [...], "val": [...], "test": [...]}``: val/test as given, train the rest.

    Raises HarError for a subject not present in the data, or an empty train split.
    """
    available = sorted(set(available))
    for option, chosen in (("--val-subjects", val), ("--test-subjects", test)):
        unknown = sorted(set(chosen) - set(available))
        if unknown:
            raise HarError(f"{option}: subject(s) {', '.join(map(str, unknown))} not in the data "
                           f"(found {', '.join(map(str, available))}); choose among those "
                           "or 'none'")
    held_out = set(val) | set(test)
    train = [s for s in available if s not in held_out]
    if not train:
        raise HarError("the train split is empty: --val-subjects and --test-subjects take every "
                       f"subject ({', '.join(map(str, available))}); leave some for training")
    return {"train": train, "val": sorted(val), "test": sorted(test)}


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
