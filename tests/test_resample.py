"""data_prep.resample: the anti-aliasing FIR (designed with scipy, reach defined once), its
bit-exact evaluation on part of a stretch, and linear resampling onto an even grid."""

from __future__ import annotations

import numpy as np
import pytest

from data_prep import resample


def test_the_filter_passes_the_band_and_stops_aliases():
    """Downsampling 100 Hz by 3 (new Nyquist 16.7 Hz): 2 Hz keeps its amplitude, 40 Hz (which
    would fold onto 6.7 Hz) is removed."""
    t = np.arange(3000) / 100.0
    for freq, low, high in ((2.0, 0.99, 1.01), (40.0, 0.0, 0.01)):
        x = np.sin(2 * np.pi * freq * t)[:, None].astype(np.float32)
        y = resample.fir_decimate(x, 3)[30:-30, 0]                # away from the edges
        assert low <= np.abs(y).max() <= high, freq
    taps = resample.lowpass_taps(3)
    assert taps.size == 2 * resample.REACH_STEPS * 3 + 1
    assert taps.sum() == pytest.approx(1.0) and np.allclose(taps, taps[::-1])   # zero phase


@pytest.mark.parametrize("seed", range(4))
def test_any_part_of_a_stretch_gives_the_same_bits_as_the_whole(seed):
    """What streaming relies on: outputs computed from just the rows they read (plus the
    stretch's edges) equal the whole-stretch outputs bit for bit."""
    rng = np.random.default_rng(seed)
    q = int(rng.integers(2, 5))
    n = int(rng.integers(5, 400))
    x = rng.normal(size=(n, 3)).astype(np.float32)
    whole = resample.fir_decimate(x, q)
    assert whole.shape == (-(-n // q), 3)
    reach = resample.REACH_STEPS * q
    for _ in range(10):
        first = int(rng.integers(0, whole.shape[0]))
        count = int(rng.integers(1, whole.shape[0] - first + 1))
        lo = max(0, first * q - reach)
        hi = min(n, (first + count - 1) * q + reach + 1)
        part = resample.fir_decimate(x[lo:hi], q, first=first, count=count, row0=lo, end=n)
        np.testing.assert_array_equal(part, whole[first:first + count])


def test_short_stretches_are_filtered_too_and_nan_spreads_only_within_reach():
    x = np.ones((7, 1), np.float32)                 # shorter than the filter
    np.testing.assert_allclose(resample.fir_decimate(x, 3), 1.0, rtol=1e-6)   # edge repeated
    y = np.ones((200, 1), np.float32)
    y[100] = np.nan
    out = resample.fir_decimate(y, 2)
    bad = np.flatnonzero(np.isnan(out[:, 0]))
    assert bad.min() >= 50 - resample.REACH_STEPS and bad.max() <= 50 + resample.REACH_STEPS


def test_linear_resampling_onto_an_even_grid():
    t = np.array([0.0, 0.1, 0.25, 0.3, 0.5])
    v = np.array([[0.0], [1.0], [2.5], [3.0], [5.0]], np.float32)    # v = 10 t
    labels = np.array([0, 0, 1, 1, 2])
    grid, values, lab = resample.resample_linear(t, v, labels, 10.0)
    np.testing.assert_allclose(grid, [0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
    np.testing.assert_allclose(values[:, 0], 10 * grid, atol=1e-5)
    assert lab.tolist() == [0, 0, 0, 1, 1, 2]                       # the last sample before
