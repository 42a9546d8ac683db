"""Changing the sample rate: anti-aliased integer downsampling and linear resampling.

**Downsampling by an integer factor q** (``--downsample q``): every q-th row, or with
``--antialias`` a low-pass FIR first. The filter is designed here with scipy's ``firwin``: a
Hamming-windowed sinc with cutoff at the new Nyquist frequency and ``2 * REACH_STEPS * q + 1``
taps, applied zero-phase (centred on the kept row). Output step ``k`` reads exactly the rows
``k*q - REACH_STEPS*q .. k*q + REACH_STEPS*q``; beyond a stretch's first or last row the edge row
is repeated. So every stretch is filtered, however short, and an output depends on at most
:data:`REACH_STEPS` output steps of rows on either side -- the look-ahead streaming waits for
(:class:`data_prep.transform.Windower`). Each output is accumulated tap by tap in float64 in a
fixed order, so computing it from a whole stretch or from the rows around it gives the same bits.

**Linear resampling onto an even grid** (``--rate HZ`` for recordings with a time column): each
gap-free segment is sampled at ``t0 + k / rate`` from its first timestamp ``t0`` by linear
interpolation between the two neighbouring samples (NaN when one of them is missing); each grid
point takes the label of the last sample at or before it. No low-pass is applied: to lower the
rate of an evenly sampled recording without aliasing, use ``--downsample`` with ``--antialias``.
"""

from __future__ import annotations

import functools
from typing import Optional, Tuple

import numpy as np

#: Half the filter length in output steps: output step k reads rows (k ± REACH_STEPS) * q.
REACH_STEPS = 10


@functools.lru_cache(maxsize=None)
def lowpass_taps(q: int) -> np.ndarray:
    """float64 ``[2 * REACH_STEPS * q + 1]``: the anti-aliasing FIR for downsampling by ``q``
    (``scipy.signal.firwin``, Hamming window, cutoff at the new Nyquist frequency, unit DC
    gain)."""
    from scipy.signal import firwin

    taps = firwin(2 * REACH_STEPS * q + 1, 1.0 / q, window="hamming")
    taps.flags.writeable = False
    return taps


def fir_decimate(x: np.ndarray, q: int, first: int = 0, count: Optional[int] = None,
                 row0: int = 0, end: Optional[int] = None) -> np.ndarray:
    """Anti-aliased downsampling of the stretch rows held in ``x [m, c]``: float32
    ``[count, c]``, output steps ``first .. first + count - 1`` of the stretch.

    ``x[0]`` is stretch row ``row0`` (earlier rows may have been dropped by a streaming
    caller); ``end`` is the stretch's row count when its last row is known (default: this
    ``x`` ends the stretch), beyond which the last row repeats, as the first row repeats before
    row 0. Every row an output reads must be in ``x`` or clipped to an edge row that is.
    """
    q = int(q)
    end = row0 + x.shape[0] if end is None else int(end)
    if count is None:
        count = -(-end // q) - first
    if count <= 0:
        return np.empty((0, x.shape[1]), np.float32)
    taps = lowpass_taps(q)
    reach = REACH_STEPS * q
    rows = np.clip(np.arange(first * q - reach, (first + count - 1) * q + reach + 1), 0, end - 1)
    if rows[0] < row0 or rows[-1] >= row0 + x.shape[0]:
        raise ValueError(f"rows {rows[0]}..{rows[-1]} are not all in x (rows {row0}.."
                         f"{row0 + x.shape[0] - 1})")
    padded = x[rows - row0].astype(np.float64)
    acc = np.zeros((count, x.shape[1]))
    span = (count - 1) * q + 1
    for j, tap in enumerate(taps):
        acc += tap * padded[j:j + span:q]
    return acc.astype(np.float32)


def downsample(values: np.ndarray, q: int, antialias: bool) -> np.ndarray:
    """``values [n, c]`` of one stretch at 1/``q`` the rate: every q-th row from row 0, or
    :func:`fir_decimate` when ``antialias``."""
    if q == 1:
        return values
    if antialias:
        return fir_decimate(values, q)
    return values[::q]


def even_grid(t0: float, t_last: float, rate_hz: float) -> np.ndarray:
    """float64 times ``t0 + k / rate_hz`` for ``k = 0, 1, ...`` up to ``t_last`` (1e-9 s of
    slack for float rounding)."""
    steps = int(np.floor((t_last - t0) * rate_hz + 1e-9))
    return t0 + np.arange(steps + 1) / rate_hz


def resample_linear(timestamp_s: np.ndarray, values: np.ndarray, labels: np.ndarray,
                    rate_hz: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One gap-free segment (``timestamp_s [n]`` increasing, ``values [n, c]``, ``labels [n]``)
    on the even grid of :func:`even_grid` from its first timestamp: ``(times [m], values
    float32 [m, c], labels [m])``."""
    grid = even_grid(float(timestamp_s[0]), float(timestamp_s[-1]), rate_hz)
    out = np.empty((grid.size, values.shape[1]), np.float32)
    for j in range(values.shape[1]):
        out[:, j] = np.interp(grid, timestamp_s, values[:, j])
    previous = np.searchsorted(timestamp_s, grid + 1e-9, side="right") - 1
    return grid, out, labels[previous]
