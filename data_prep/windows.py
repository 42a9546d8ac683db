"""From a parsed recording to windows: contiguous runs, gap filling, downsampling, sliding.

A *segment* is a stretch of rows with no gap in the timestamps; a *run* is a stretch of a
segment with one activity. Windows are cut from runs only, so a window never crosses a change of
activity or a gap in time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, List, Sequence, Tuple

import numpy as np

#: A step longer than this many nominal sample periods is a gap in the recording.
GAP_FACTOR = 1.5


@dataclass
class Run:
    """Rows ``[start, stop)`` of a recording holding one activity, contiguous in time."""

    start: int
    stop: int
    activity: int

    @property
    def rows(self) -> int:
        return self.stop - self.start


def segments(timestamp_s: np.ndarray, rate_hz: float) -> List[Tuple[int, int]]:
    """``[(start, stop), ...]`` of rows without timestamp gaps (step > 1.5 / rate_hz or ≤ 0)."""
    n = timestamp_s.shape[0]
    if n == 0:
        return []
    step = np.diff(timestamp_s)
    breaks = np.flatnonzero((step > GAP_FACTOR / rate_hz) | (step <= 0)) + 1
    bounds = np.concatenate(([0], breaks, [n]))
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def runs(activity: np.ndarray, seg: Tuple[int, int], keep_ids: Sequence[int]) -> Iterator[Run]:
    """Runs of one activity inside segment ``seg``, for activity IDs in ``keep_ids`` only."""
    start, stop = seg
    act = activity[start:stop]
    if act.size == 0:
        return
    change = np.flatnonzero(act[1:] != act[:-1]) + 1
    bounds = np.concatenate(([0], change, [act.size]))
    keep = set(int(k) for k in keep_ids)
    for a, b in zip(bounds[:-1], bounds[1:]):
        label = int(act[a])
        if label in keep:
            yield Run(start + int(a), start + int(b), label)


def fill_linear(values: np.ndarray) -> None:
    """Linearly interpolate NaNs along axis 0 of ``values [n, c]`` in place.

    Rows are equally spaced (one segment), so interpolation by index is interpolation in time.
    Leading and trailing NaNs stay NaN: nothing is extrapolated.
    """
    nan = np.isnan(values)
    if not nan.any():
        return
    index = np.arange(values.shape[0])
    for j in np.flatnonzero(nan.any(axis=0)):
        missing = nan[:, j]
        known = ~missing
        if not known.any():
            continue
        first, last = np.flatnonzero(known)[[0, -1]]
        inner = missing.copy()
        inner[:first] = False
        inner[last + 1:] = False
        values[inner, j] = np.interp(index[inner], index[known], values[known, j])


def fill_hold(values: np.ndarray) -> None:
    """Hold the last reading forward (and the first reading backward) along axis 0, in place.

    Heart rate is sampled at ~9 Hz and written NaN between readings; holding is the honest fill.
    """
    for j in range(values.shape[1]):
        col = values[:, j]
        known = ~np.isnan(col)
        if known.all() or not known.any():
            continue
        idx = np.where(known, np.arange(col.size), 0)
        np.maximum.accumulate(idx, out=idx)
        first = int(np.flatnonzero(known)[0])
        idx[:first] = first
        values[:, j] = col[idx]


def fill_gaps(timestamp_s: np.ndarray, signals: np.ndarray, hold_columns: Sequence[int],
              rate_hz: float) -> None:
    """Fill missing values of ``signals [n, c]`` in place, segment by segment: linear
    interpolation along time, except ``hold_columns`` (heart rate), whose readings are held.
    Nothing crosses a timestamp gap, and nothing is extrapolated past a segment's edges except
    held readings."""
    hold = list(hold_columns)
    linear = [j for j in range(signals.shape[1]) if j not in hold]
    for a, b in segments(timestamp_s, rate_hz):
        part = signals[a:b]
        if hold:
            block = part[:, hold]
            fill_hold(block)
            part[:, hold] = block
        block = part[:, linear]
        fill_linear(block)
        part[:, linear] = block


def downsample(values: np.ndarray, factor: int, antialias: bool) -> np.ndarray:
    """Keep every ``factor``-th row of ``values [n, c]`` (from row 0), or decimate with a
    low-pass filter first (``scipy.signal.decimate``, zero-phase FIR) when ``antialias``."""
    if factor == 1:
        return values
    if antialias and values.shape[0] > 27 * factor:
        from scipy.signal import decimate

        return decimate(values, factor, ftype="fir", axis=0, zero_phase=True).astype(
            np.float32)
    return values[::factor]


def window_starts(length: int, window: int, stride: int) -> np.ndarray:
    """Start indices of the windows ``[s, s + window)`` that fit in ``length`` rows."""
    if length < window:
        return np.empty(0, dtype=np.int64)
    return np.arange(0, length - window + 1, stride, dtype=np.int64)


def gather(values: np.ndarray, starts: np.ndarray, window: int) -> np.ndarray:
    """``values [n, c]`` and window starts ``[N]`` → windows ``[N, window, c]`` (a copy)."""
    view = np.lib.stride_tricks.sliding_window_view(values, window, axis=0)  # [n-w+1, c, w]
    return np.ascontiguousarray(view[starts].transpose(0, 2, 1))
