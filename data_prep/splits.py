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
    ``[N, T, C]``, a list of them (the pieces of one split), or a window source with
    ``weighted_rows()`` (:class:`data_prep.transform.StreamedWindows`: each stretch's rows and
    how many windows hold each row, so overlapping windows are summed from their rows, without
    cutting them).

    Two passes over blocks of ``chunk_rows`` rows, accumulated in float64: the same figures as
    ``x.reshape(-1, C).std(0, dtype=float64)`` without its float64 copy of the whole split. A
    constant channel gets std 1 so that normalizing it cannot divide by zero.
    """
    if hasattr(x_train, "weighted_rows"):
        sources = [(rows, w.astype(np.float64)) for rows, w in x_train.weighted_rows()]
    else:
        parts = [x_train] if isinstance(x_train, np.ndarray) else list(x_train)
        sources = [(p.reshape(-1, p.shape[-1]), None) for p in parts]
    channels = sources[0][0].shape[-1]
    blocks = [(rows[i:i + chunk_rows], None if w is None else w[i:i + chunk_rows])
              for rows, w in sources for i in range(0, rows.shape[0], chunk_rows)]
    count = sum(b.shape[0] if w is None else w.sum() for b, w in blocks)
    # Two threads, each summing one half of the blocks (numpy releases the GIL in each call):
    # one task per thread, not per block, as a split holds thousands of short runs.
    sizes = np.cumsum([b.shape[0] for b, _ in blocks])
    half = int(np.searchsorted(sizes, sizes[-1] / 2)) + 1 if len(blocks) else 0
    halves = [blocks[:half], blocks[half:]]

    # Each thread works in one float64 scratch block, reused: a fresh temporary per block
    # costs page faults that take longer than the arithmetic.
    def sums(group):
        total = np.zeros(channels)
        scratch = np.empty((chunk_rows, channels))
        for b, w in group:
            if w is None:
                total += b.sum(axis=0, dtype=np.float64)
            else:
                d = scratch[:b.shape[0]]
                np.copyto(d, b)
                total += w @ d
        return total

    def squares(group):
        total = np.zeros(channels)
        scratch = np.empty((chunk_rows, channels))
        for b, w in group:
            d = np.subtract(b, mean, out=scratch[:b.shape[0]])
            if w is None:
                total += np.einsum("ij,ij->j", d, d)
            else:
                d *= d
                total += w @ d
        return total

    with ThreadPoolExecutor(2) as pool:
        mean = sum(pool.map(sums, halves)) / count
        std = np.sqrt(sum(pool.map(squares, halves)) / count)
    std[~(std > 1e-8)] = 1.0
    return mean, std


def apply_normalization(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> None:
    """``x [..., C]`` ← ``(x - mean) * (1 / std)`` in place, in float32.

    A C-contiguous window array is seen as ``[N, T * C]`` against ``T``-times tiled
    vectors: the same float32 operations on every value, in loops ``T`` times longer than
    broadcasting ``[C]`` over the last axis (about 2x faster for a few channels)."""
    shift = mean.astype(np.float32)
    scale = (1.0 / std).astype(np.float32)
    if x.ndim == 3 and x.flags.c_contiguous:
        steps = x.shape[1]
        x = x.reshape(x.shape[0], steps * x.shape[2])
        shift, scale = np.tile(shift, steps), np.tile(scale, steps)
    x -= shift
    x *= scale
