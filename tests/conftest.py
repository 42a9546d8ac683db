"""Shared fixtures: tiny PAMAP2-format files written by hand, and the CLI run in-process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from data_prep import pamap2


def write_dat(path: Path, timestamp_s, activity, signal=None, heart_rate_every: int = 11,
              seed: int = 0) -> np.ndarray:
    """Write a 54-column PAMAP2 file; return the ``[n, 54]`` float array written.

    ``signal`` (optional ``[n, 54]``) overrides the random values; NaN is written ``NaN``.
    """
    timestamp_s = np.asarray(timestamp_s, dtype=np.float64)
    n = timestamp_s.size
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(n, pamap2.NUM_COLUMNS)).round(5) if signal is None else signal
    rows = np.array(rows, dtype=np.float64)
    rows[:, 0] = timestamp_s
    rows[:, 1] = activity
    if signal is None:
        hr = np.full(n, np.nan)
        hr[::heart_rate_every] = 100 + np.arange(0, n, heart_rate_every) % 7
        rows[:, 2] = hr
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        for r in rows:
            fh.write(" ".join(_fmt(v) for v in r) + "\n")
    return rows


def _fmt(v: float) -> str:
    if np.isnan(v):
        return "NaN"
    return f"{v:.2f}" if abs(v - round(v, 2)) < 1e-9 else f"{v:.5f}"


def activity_blocks(spec, rate_hz: float = 100.0, t0: float = 5.0):
    """``[(activity_id, rows), ...]`` → (timestamps, activity) arrays, contiguous in time."""
    activity = np.concatenate([np.full(rows, a) for a, rows in spec])
    timestamp = t0 + np.arange(activity.size) / rate_hz
    return np.round(timestamp, 2), activity


@pytest.fixture
def run_cli(capsys):
    """Run ``har ARGS`` in-process; return (exit code, stdout, stderr)."""
    from cli import main

    def run(*args):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own parse cache, never the user's ~/.cache/harkit."""
    monkeypatch.setenv("HARKIT_CACHE", str(tmp_path / "cache"))
