"""``har synth mhealth``: ``MHEALTHDATASET/mHealth_subject{1..10}.log`` in the exact MHEALTH
layout (:mod:`data_prep.datasets.mhealth`): 24 tab-separated columns at 50 Hz, no header, no
time, the label last (0 between activities).

The body model's chest, ankle and hand IMUs stand in for MHEALTH's chest, left-ankle and
right-lower-arm sensors (the gyroscopes in deg/s, the magnetometers in a local unit, the chest
without a gyroscope); two ECG leads are drawn from the simulated heart rate (a PQRST-like beat
per cardiac cycle, mV). Each subject performs the 12 activities once, about a minute each, in
the protocol's order, with null rows between them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import numpy as np

from data_prep.datasets import mhealth
from data_prep.synth.body import FS, Traits, plan, sensor_columns, simulate
from harkit.errors import HarError
from harkit.files import atomic_dir
from harkit.progress import progress_bar

#: MHEALTH label -> the body model's activity (PAMAP2 ID, or an extra movement).
MOTION_OF = {1: 3, 2: 2, 3: 1, 4: 4, 5: 12, 6: 101, 7: 102, 8: 103, 9: 6, 10: 105, 11: 5,
             12: 104}
STEP = int(FS / mhealth.RATE_HZ)          # body-model rows per MHEALTH row
MAG_SCALE = 0.02                          # μT -> MHEALTH's local magnetometer unit (about)


def synth_mhealth(out: Path, *, seed: int = 0, seconds_per_activity: float = 60.0,
                  subjects: Optional[List[int]] = None, force: bool = False,
                  progress: bool = False) -> dict:
    """Write ``out/MHEALTHDATASET/mHealth_subjectN.log`` for each subject (1-10 by default);
    return ``{"files", "rows", "bytes", "path", "seconds"}``. Same seed, same bytes."""
    t0 = time.perf_counter()
    out = Path(out)
    chosen = sorted(set(subjects or mhealth.SUBJECTS))
    if any(s not in mhealth.SUBJECTS for s in chosen):
        raise HarError(f"--subjects must be MHEALTH subjects 1-10, got {chosen}")
    _check_out(out, force, mhealth.DATASET_DIR)
    rows = size = 0
    with atomic_dir(out, force) as tmp, progress_bar(length=len(chosen), label="synth mhealth",
                                                     enabled=progress) as bar:
        folder = tmp / mhealth.DATASET_DIR
        folder.mkdir()
        for subject in chosen:
            table = subject_rows(seed, subject, seconds_per_activity)
            path = folder / f"mHealth_subject{subject}.log"
            path.write_text("\n".join("\t".join(r) for r in table) + "\n")
            rows += len(table)
            size += path.stat().st_size
            bar.update(1)
    return {"files": len(chosen), "rows": rows, "bytes": size, "path": str(out),
            "seconds": round(time.perf_counter() - t0, 3)}


def subject_rows(seed: int, subject: int, seconds_per_activity: float) -> List[List[str]]:
    """One subject's rows as text fields (23 values and the label)."""
    rng = np.random.default_rng([seed, 1000 + subject, 3])
    labels = list(range(1, 13))
    seconds = seconds_per_activity * rng.uniform(0.8, 1.2, len(labels))
    rec = simulate(plan([MOTION_OF[k] for k in labels], seconds, rng), Traits.draw(seed, 100 +
                   subject), rng, dropouts=False, gaps=False)
    imu, n = rec["imu"][::STEP], rec["imu"][::STEP].shape[0]
    motion_label = {m: k for k, m in MOTION_OF.items()}
    label = np.array([motion_label.get(int(a), 0) for a in rec["activity"][::STEP]])
    deg = 180.0 / np.pi
    parts = [imu[:, sensor_columns("chest", "acc16")],
             _ecg(rng, rec["heart_rate"], n)]
    for sensor in ("ankle", "hand"):
        parts += [imu[:, sensor_columns(sensor, "acc16")],
                  imu[:, sensor_columns(sensor, "gyro")] * deg,
                  imu[:, sensor_columns(sensor, "mag")] * MAG_SCALE]
    values = np.concatenate(parts, axis=1)
    return [[f"{v:.6g}" for v in row] + [str(k)] for row, k in zip(values, label)]


def _ecg(rng, heart_rate: np.ndarray, n: int) -> np.ndarray:
    """[n, 2] mV at 50 Hz: a beat (P, QRS, T waves as Gaussians) per cardiac cycle of the heart
    rate (held between its readings), lead 2 a scaled, shifted copy, plus noise and drift."""
    hr = heart_rate.copy()
    known = np.flatnonzero(~np.isnan(hr))
    hr = np.interp(np.arange(hr.size), known, hr[known]) if known.size else np.full(hr.size, 75.0)
    phase = np.cumsum(hr[::STEP] / 60.0 / mhealth.RATE_HZ) % 1.0        # cycles
    beat = (0.15 * np.exp(-((phase - 0.15) / 0.03) ** 2)                # P
            - 0.10 * np.exp(-((phase - 0.28) / 0.008) ** 2)             # Q
            + 1.10 * np.exp(-((phase - 0.30) / 0.012) ** 2)             # R
            - 0.25 * np.exp(-((phase - 0.32) / 0.010) ** 2)             # S
            + 0.30 * np.exp(-((phase - 0.55) / 0.06) ** 2))             # T
    drift = 0.1 * np.sin(2 * np.pi * 0.2 * np.arange(n) / mhealth.RATE_HZ + rng.uniform(0, 6))
    lead1 = beat + drift + rng.normal(0, 0.02, n)
    lead2 = 0.8 * beat - 0.05 + drift + rng.normal(0, 0.02, n)
    return np.stack([lead1, lead2], axis=1)


def _check_out(out: Path, force: bool, expected: str) -> None:
    if out.exists() and not out.is_dir():
        raise HarError(f"{out} is a file, not a folder; choose another OUT")
    if out.exists() and not force:
        raise HarError(f"{out} already exists; pass --force to replace it or choose another OUT")
    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir() if p.name != expected)
        if foreign:
            raise HarError(f"{out} holds more than synthetic data ({', '.join(foreign[:3])}); "
                           f"--force replaces only a folder holding {expected}/: choose another "
                           "OUT")
