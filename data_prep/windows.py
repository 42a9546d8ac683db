"""From a parsed recording to windows: segments, runs, gap filling, sliding windows.

A *segment* is a stretch of rows with no gap in the timestamps; a *run* is a stretch of a
segment with one label. Windows are cut from runs only, so a window never crosses a change of
label or a gap in time. Rate changes are in :mod:`data_prep.resample`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, List, Sequence, Tuple

import numpy as np

#: A step longer than this many nominal sample periods is a gap in the recording.
GAP_FACTOR = 1.5


@dataclass
class Run:
    """Rows ``[start, stop)`` of a recording holding one label, contiguous in time."""

    start: int
    stop: int
    label: int

    @property
    def rows(self) -> int:
        return self.stop - self.start


def gaps(step_s: np.ndarray, rate_hz: float) -> np.ndarray:
    """Bool per step between consecutive rows: a gap (over 1.5 nominal periods, or not
    forward in time)."""
    return (step_s > GAP_FACTOR / rate_hz) | (step_s <= 0)


def segments(timestamp_s: np.ndarray, rate_hz: float) -> List[Tuple[int, int]]:
    """``[(start, stop), ...]`` of rows without timestamp gaps (step > 1.5 / rate_hz or ≤ 0)."""
    n = timestamp_s.shape[0]
    if n == 0:
        return []
    step = np.diff(timestamp_s)
    breaks = np.flatnonzero(gaps(step, rate_hz)) + 1
    bounds = np.concatenate(([0], breaks, [n]))
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def runs(labels: np.ndarray, seg: Tuple[int, int], keep: Sequence[int]) -> Iterator[Run]:
    """Runs of one label inside segment ``seg``, for label codes in ``keep`` only."""
    start, stop = seg
    act = labels[start:stop]
    if act.size == 0:
        return
    change = np.flatnonzero(act[1:] != act[:-1]) + 1
    bounds = np.concatenate(([0], change, [act.size]))
    keep = set(int(k) for k in keep)
    for a, b in zip(bounds[:-1], bounds[1:]):
        label = int(act[a])
        if label in keep:
            yield Run(start + int(a), start + int(b), label)


def run_bounds(labels: np.ndarray, timestamp_s: np.ndarray, rate_hz: float
               ) -> Tuple[np.ndarray, np.ndarray]:
    """``(starts, stops)`` int64: every run of a recording (rows of one label inside one
    gap-free segment, see :func:`segments`), in order, covering all its rows."""
    n = labels.shape[0]
    if n == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    new = labels[1:] != labels[:-1]
    new |= gaps(np.diff(timestamp_s), rate_hz)
    bounds = np.flatnonzero(new) + 1
    return np.concatenate(([0], bounds)), np.concatenate((bounds, [n]))


def fill_linear(column: np.ndarray) -> None:
    """Linearly interpolate the NaNs of one equally spaced ``column [n]`` in place.

    Rows are equally spaced (one segment), so interpolation by index is interpolation in time.
    Leading and trailing NaNs stay NaN: nothing is extrapolated.
    """
    missing = np.isnan(column)
    if not missing.any():
        return
    known = np.flatnonzero(~missing)
    if known.size == 0:
        return
    inner = np.flatnonzero(missing[known[0]:known[-1] + 1]) + known[0]
    column[inner] = np.interp(inner, known, column[known])


def fill_hold(column: np.ndarray) -> None:
    """Hold the last reading of ``column [n]`` forward (the first one backward), in place.

    For channels read more slowly than the rows (PAMAP2's heart rate: ~9 Hz, NaN between
    readings) holding is the honest fill.
    """
    known = ~np.isnan(column)
    if known.all() or not known.any():
        return
    idx = np.where(known, np.arange(column.size), 0)
    np.maximum.accumulate(idx, out=idx)
    idx[:int(np.argmax(known))] = int(np.argmax(known))
    column[:] = column[idx]


def _sums(values: np.ndarray) -> np.ndarray:
    """One summing pass over ``values [n, c]``, no temporary: a NaN makes a sum NaN, an inf
    makes it inf or NaN (flat for row-major values, else per column)."""
    with np.errstate(invalid="ignore", over="ignore"):
        return values.reshape(-1).sum() if values.flags.c_contiguous else values.sum(axis=0)


def has_nan(values: np.ndarray) -> bool:
    """Whether ``values [n, c]`` holds a NaN (inf - inf makes a false alarm, never a miss)."""
    return bool(np.isnan(_sums(values)).any())


def fill_gaps(timestamp_s: np.ndarray, signals: np.ndarray, hold_columns: Sequence[int],
              rate_hz: float) -> None:
    """Fill missing values of ``signals [n, c]`` in place, segment by segment: linear
    interpolation along time, except ``hold_columns`` (e.g. heart rate), whose readings are held.
    Nothing crosses a timestamp gap, and nothing is extrapolated past a segment's edges except
    held readings. Callers skip it when :func:`has_nan` says nothing is missing, the usual
    case."""
    hold = set(hold_columns)
    for a, b in segments(timestamp_s, rate_hz):
        # One summing pass finds the columns holding a NaN (their sum is NaN); only those are
        # scanned and filled.
        with np.errstate(invalid="ignore", over="ignore"):
            sums = np.add.reduce(signals[a:b], axis=0, dtype=np.float64)
        for j in np.flatnonzero(np.isnan(sums)):
            (fill_hold if j in hold else fill_linear)(signals[a:b, j])


def window_starts(length: int, window: int, stride: int) -> np.ndarray:
    """Start indices of the windows ``[s, s + window)`` that fit in ``length`` rows."""
    if length < window:
        return np.empty(0, dtype=np.int64)
    return np.arange(0, length - window + 1, stride, dtype=np.int64)


def coverage(starts: np.ndarray, window: int, length: int, dtype=np.int64) -> np.ndarray:
    """``[length]`` of ``dtype``: how many of the windows ``[s, s + window)`` (``starts [N]``,
    in any order; a window may begin before row 0 or end after the last row) hold each row.

    The count only changes where a window begins or ends, so it is built from those few
    points (one small sort, then one ``np.repeat``), not by a cumulative sum over every row."""
    at = np.concatenate(([0], np.clip(starts, 0, length), np.clip(starts + window, 0, length)))
    step = np.concatenate(([0], np.ones(starts.size, np.int64), np.full(starts.size, -1)))
    order = np.argsort(at, kind="stable")
    at = at[order]
    return np.repeat(np.cumsum(step[order]).astype(dtype), np.diff(at, append=length))


def all_finite(values: np.ndarray) -> bool:
    """Whether ``values [n, c]`` holds no NaN and no ±inf (a sum of huge finite values may
    overflow: a false alarm, never a miss)."""
    return bool(np.isfinite(_sums(values)).all())


def complete_starts(values: np.ndarray, starts: np.ndarray, window: int) -> np.ndarray:
    """Bool ``[N]``: the windows ``values[s:s + window]`` (``values [n, c]``) holding no NaN
    and no ±inf (a value no model and no normalization can take: such windows are dropped
    like those with a dropout).

    Checked on the rows (a cumulative count of rows with such a value), not on the windows
    themselves: with overlapping windows that is several times less work and no window-sized
    temporary. A finite stretch (the usual case: one sum tells) costs one pass and no
    temporary."""
    if all_finite(values):
        return np.ones(starts.shape, bool)
    bad_rows = ~np.isfinite(values).all(axis=1)
    count = np.concatenate(([0], np.cumsum(bad_rows)))
    return count[starts + window] == count[starts]


def gather(values: np.ndarray, starts: np.ndarray, window: int) -> np.ndarray:
    """``values [n, c]`` and window starts ``[N]`` → windows ``[N, window, c]`` (C-contiguous,
    one copy)."""
    values = np.ascontiguousarray(values)
    view = np.lib.stride_tricks.sliding_window_view(values, window, axis=0)  # [n-w+1, c, w]
    return view.transpose(0, 2, 1)[starts]
