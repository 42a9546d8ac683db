"""Subject-wise splits and train-only normalization."""

from __future__ import annotations

from typing import Dict, Iterable, List, Sequence, Set, Tuple

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
    others = held_out(val, test)
    train = [s for s in available if str(s) not in others]
    if not train:
        raise HarError("the train split is empty: --val-subjects and --test-subjects take every "
                       f"subject ({', '.join(map(str, available))}); leave some for training")
    return {"train": train, "val": chosen["--val-subjects"], "test": chosen["--test-subjects"]}


def _order(subject):
    """Numbers before text, numbers by value."""
    return (0, subject, "") if isinstance(subject, (int, np.integer)) else (1, 0, str(subject))


def held_out(val: List, test: List) -> Set[str]:
    """The texts of the val and test subjects: every other subject is a train subject (the one
    rule, shared by :func:`assign_subjects` and ``prepare``'s fit as it reads)."""
    return {str(s) for s in list(val) + list(test)}


def fit_normalization(x_train, chunk_rows: int = 1 << 14) -> Tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and (population) std, float64 ``[C]``, of the train windows: one array
    ``[N, T, C]``, a list of them (the pieces of one split), or a window source with
    ``weighted_rows()`` (:class:`data_prep.transform.StreamedWindows`: rows and how many
    windows hold each row, so overlapping windows are summed from their rows, without cutting
    them). A constant channel gets std 1 so that normalizing it cannot divide by zero.

    The figures are those of ``x.reshape(-1, C).std(0, dtype=float64)`` to ~1e-14, without its
    float64 copy of the whole split (:func:`window_moments`).
    """
    return normalization_of([window_moments(x_train, chunk_rows)])


def window_moments(x, chunk_rows: int = 1 << 14) -> Tuple[float, np.ndarray, np.ndarray]:
    """``(values per channel, mean [C], std [C])`` in float64 of windows given as for
    :func:`fit_normalization`, to be combined with other groups' by
    :func:`normalization_of`.

    One pass over blocks of up to ``chunk_rows`` rows (small enough to stay in a core's cache),
    accumulated in float64 about a shift (the first block's mean), so that the squares lose no
    precision to a large mean; when the data's mean lies far from that shift (more than
    :data:`FAR_SHIFT` stds: the first block is unlike the rest), a second pass about the mean
    found.
    """
    if hasattr(x, "weighted_rows"):
        count = float(x.shape[0] * x.shape[1])
        mean, std = _moments(x.weighted_rows, count, x.shape[2], chunk_rows)
        if not (np.isfinite(mean).all() and np.isfinite(std).all()):
            # A row that no window holds may be NaN or inf: sum the windows' own rows only.
            mean, std = _moments(lambda: x.weighted_rows(exact=True), count, x.shape[2],
                                 chunk_rows)
    else:
        parts = [x] if isinstance(x, np.ndarray) else list(x)
        flat = [p.reshape(-1, p.shape[-1]) for p in parts]
        count = float(sum(rows.shape[0] for rows in flat))
        mean, std = _moments(lambda: ((rows, None) for rows in flat), count,
                             parts[0].shape[-1], chunk_rows)
    return count, mean, std


def normalization_of(groups: Sequence[Tuple[float, np.ndarray, np.ndarray]]
                     ) -> Tuple[np.ndarray, np.ndarray]:
    """Mean and std ``[C]`` of the union of groups given as :func:`window_moments` gives them,
    combined exactly (each group's squared deviations plus its count times its mean's squared
    distance from the overall mean, in float64); a constant channel gets std 1."""
    if not groups:
        raise ValueError("no windows to fit the normalization on")
    if len(groups) == 1:
        mean, std = groups[0][1].copy(), groups[0][2].copy()
    else:
        total = sum(n for n, _, _ in groups)
        mean = sum(n * m for n, m, _ in groups) / max(total, 1.0)
        squares = sum(n * (s * s + (m - mean) ** 2) for n, m, s in groups)
        std = np.sqrt(squares / max(total, 1.0))
    std[~(std > 1e-8)] = 1.0
    return mean, std


#: Stds between the data's mean and the first block's beyond which :func:`fit_normalization`
#: makes a second pass (the shifted squares then lose ~2 * log10 of it digits). A constant
#: channel (std <= 1e-8, normalized with std 1) never asks for one.
FAR_SHIFT = 100.0


def _moments(weighted_rows, count: float, channels: int, chunk_rows: int):
    """``(mean, std)`` of the rows of the ``(rows [k, C], weight [k] or None)`` pairs that
    ``weighted_rows()`` gives, each row counted ``weight`` times (None: once) out of
    ``count``."""
    mean, std, shift = _shifted_moments(weighted_rows(), count, channels, chunk_rows)
    if shift is not None and (np.abs(mean - shift) > FAR_SHIFT * np.maximum(std, 1e-8)).any():
        mean, std, _ = _shifted_moments(weighted_rows(), count, channels, chunk_rows, mean)
    return mean, std


def _shifted_moments(weighted_rows, count: float, channels: int, chunk_rows: int, shift=None):
    """``(mean, std, shift)``: one pass summing the rows and their squares about ``shift``
    (None: the first block's weighted mean)."""
    ones = np.ones(chunk_rows)
    scratch = np.empty(chunk_rows * channels)     # reused: fresh memory costs page faults
    tiled = None if shift is None else np.tile(shift, chunk_rows)
    s1, s2 = np.zeros(channels), np.zeros(channels)
    with np.errstate(invalid="ignore", over="ignore"):     # non-finite sums: the caller's
        for rows, weight in weighted_rows:
            for i in range(0, rows.shape[0], chunk_rows):
                b = rows[i:i + chunk_rows]
                w = ones[:b.shape[0]] if weight is None else weight[i:i + chunk_rows]
                flat = scratch[:b.size]
                d = flat.reshape(b.shape)
                np.copyto(d, b)
                if shift is None:
                    shift = (d.T @ w) / max(float(w.sum()), 1.0)
                    tiled = np.tile(shift, chunk_rows)
                flat -= tiled[:b.size]   # whole blocks: numpy is slow along a short last axis
                s1 += d.T @ w
                flat *= flat
                s2 += d.T @ w
    if shift is None:
        return np.zeros(channels), np.ones(channels), None
    delta = s1 / count
    return shift + delta, np.sqrt(np.maximum(s2 / count - delta * delta, 0.0)), shift


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
