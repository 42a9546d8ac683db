"""Shared fixtures: tiny PAMAP2-format files written by hand, the CLI run in-process, a trained
checkpoint (:func:`trained`) and checks of PNG files and one-line errors."""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from data_prep.datasets import pamap2


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


@pytest.fixture
def umask_002():
    """Run the test under umask 0o002 (not the usual 0o022, so that neither mkstemp's private
    0o600 nor a hard-coded 0o644 passes for "the mode the umask implies")."""
    old = os.umask(0o002)
    try:
        yield 0o002
    finally:
        os.umask(old)


def assert_umask_modes(*paths: Path, umask: int = 0o002) -> None:
    """Each path has the mode open()/mkdir() give under ``umask``: 0o666 or 0o777 less it."""
    for path in paths:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        expected = (0o777 if os.path.isdir(path) else 0o666) & ~umask
        assert mode == expected, f"{path}: mode {mode:o}, expected {expected:o}"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own parse cache, never the user's ~/.cache/harkit."""
    monkeypatch.setenv("HARKIT_CACHE", str(tmp_path / "cache"))


# --------------------------------------------------------------------------- a trained run
@dataclass
class Trained:
    raw: Path          # Protocol/subject{101,102,105,106}.dat
    prepared: Path
    run: Path
    checkpoint: Path   # run/best.pt

    @property
    def held_out(self) -> Path:
        """The test subject's raw recording."""
        return self.raw / "Protocol" / "subject106.dat"


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> Trained:
    """``har synth`` recordings of subjects 101, 102 (train), 105 (val) and 106 (test, held
    out), prepared with 32-step windows, a tiny ResNet trained for 3 epochs (~4 s, once per
    session; shared by the evaluate, predict and plot tests)."""
    from data_prep import load_prepare_config, prepare
    from data_prep.synth import synth_pamap2
    from har.train import fit

    root = tmp_path_factory.mktemp("har_trained")
    synth_pamap2(root / "raw", seed=0, seconds_per_activity=10, subjects=[101, 102, 105, 106])
    cfg = load_prepare_config(None, {"out": str(root / "prep"), "window": 32, "overlap": 0.5,
                                     "val_subjects": [105], "test_subjects": [106]})
    prepare(root / "raw", cfg, use_cache=False)
    fit(root / "prep", "resnet", out=root / "run", hparams={"blocks": [1, 1], "widths": [8, 8]},
        epochs=3, batch_size=32, lr=1e-2, threads=1, seed=0)
    return Trained(root / "raw", root / "prep", root / "run", root / "run" / "best.pt")


# --------------------------------------------------------------------------- checks
def png_size(path: Path):
    """(width, height) from a PNG's IHDR header; asserts the file is a PNG."""
    head = Path(path).read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def one_error_line(err: str) -> str:
    """The only stderr line, ``har: error: ...`` (``har CMD: error: ...`` for usage errors)."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and re.match(r"har( \w+)?: error: ", lines[0]), err
    return lines[0]
