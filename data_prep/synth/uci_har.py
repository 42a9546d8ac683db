"""``har synth uci_har``: ``UCI HAR Dataset/`` in the exact layout of the UCI HAR archive
(:mod:`data_prep.datasets.uci_har`): ``{train,test}/Inertial Signals/<signal>_<axis>_<split>.txt``
with one 128-step window per line in the archive's number format (``1.0168033e+000``, fields
right-aligned in runs of spaces), ``y_<split>.txt``, ``subject_<split>.txt``,
``activity_labels.txt``.

The body model's chest IMU stands in for the waist-worn phone at 50 Hz: ``total_acc`` is its
accelerometer in g, ``body_acc`` that minus gravity (a third-order Butterworth low-pass at
0.3 Hz, zero phase, as the readme describes), ``body_gyro`` its gyroscope in rad/s. Each subject
performs the 6 activities in the protocol's order; windows of 128 steps with 50 % overlap are cut
from each activity, and subjects go to train and test by the official split.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import numpy as np

from data_prep.datasets import uci_har
from data_prep.synth.body import FS, G, Traits, plan, sensor_columns, simulate
from data_prep.synth.mhealth import _check_out
from harkit.errors import HarError
from harkit.files import atomic_dir
from harkit.progress import progress_bar

#: UCI HAR activity (1-6) -> the body model's activity.
MOTION_OF = {1: 4, 2: 12, 3: 13, 4: 2, 5: 3, 6: 1}
STEP = int(FS / uci_har.RATE_HZ)
HOP = uci_har.WINDOW // 2


def synth_uci_har(out: Path, *, seed: int = 0, seconds_per_activity: float = 30.0,
                  subjects: Optional[List[int]] = None, force: bool = False,
                  progress: bool = False) -> dict:
    """Write ``out/UCI HAR Dataset/`` for the subjects (1-30 by default); return ``{"files",
    "rows" (windows), "bytes", "path", "seconds"}``. Same seed, same bytes."""
    t0 = time.perf_counter()
    out = Path(out)
    chosen = sorted(set(subjects or range(1, 31)))
    if any(not 1 <= s <= 30 for s in chosen):
        raise HarError(f"--subjects must be UCI HAR subjects 1-30, got {chosen}")
    _check_out(out, force, uci_har.DATASET_DIR)
    per_split = {"train": [], "test": []}
    with progress_bar(length=len(chosen), label="synth uci_har", enabled=progress) as bar:
        for subject in chosen:
            split = "train" if subject in uci_har.TRAIN_SUBJECTS else "test"
            per_split[split].append(_subject_windows(seed, subject, seconds_per_activity))
            bar.update(1)
    files = size = windows = 0
    with atomic_dir(out, force) as tmp:
        root = tmp / uci_har.DATASET_DIR
        (root).mkdir()
        (root / "activity_labels.txt").write_text("".join(
            f"{i + 1} {name}\n" for i, name in enumerate(uci_har.ACTIVITIES)))
        for split, parts in per_split.items():
            folder = root / split / "Inertial Signals"
            folder.mkdir(parents=True)
            x = np.concatenate([p[0] for p in parts]) if parts else np.empty((0, 128, 9))
            y = np.concatenate([p[1] for p in parts]) if parts else np.empty(0, int)
            subj = np.concatenate([p[2] for p in parts]) if parts else np.empty(0, int)
            for j, name in enumerate(uci_har.CHANNELS):
                path = folder / f"{name}_{split}.txt"
                path.write_bytes(_format(x[:, :, j]))
                size += path.stat().st_size
                files += 1
            for name, values in (("y", y), ("subject", subj)):
                path = root / split / f"{name}_{split}.txt"
                path.write_text("".join(f"{v}\n" for v in values))
                files += 1
            windows += len(y)
    return {"files": files, "rows": windows, "bytes": size, "path": str(out),
            "seconds": round(time.perf_counter() - t0, 3)}


def _subject_windows(seed: int, subject: int, seconds_per_activity: float):
    """``(x [N, 128, 9], activity [N] 1-6, subject [N])`` of one subject."""
    from scipy.signal import butter, filtfilt

    rng = np.random.default_rng([seed, 3000, subject])
    labels = [1, 2, 3, 4, 5, 6]
    seconds = seconds_per_activity * rng.uniform(0.8, 1.2, len(labels))
    rec = simulate(plan([MOTION_OF[k] for k in labels], seconds, rng), Traits.draw(seed, 400 +
                   subject), rng, dropouts=False, gaps=False)
    motion = rec["activity"][::STEP]
    total = rec["imu"][::STEP, sensor_columns("chest", "acc16")] / G
    gyro = rec["imu"][::STEP, sensor_columns("chest", "gyro")]
    b, a = butter(3, 0.3 / (uci_har.RATE_HZ / 2))
    body = total - filtfilt(b, a, total, axis=0)
    signals = np.concatenate([total, body, gyro], axis=1).astype(np.float32)
    label_of = {m: k for k, m in MOTION_OF.items()}
    xs, ys = [], []
    change = np.flatnonzero(np.diff(motion)) + 1
    for start, stop in zip(np.concatenate(([0], change)), np.concatenate((change,
                                                                          [motion.size]))):
        k = label_of.get(int(motion[start]))
        if k is None:
            continue
        for s in range(start, stop - uci_har.WINDOW + 1, HOP):
            xs.append(signals[s:s + uci_har.WINDOW])
            ys.append(k)
    x = np.stack(xs)
    return x, np.array(ys), np.full(len(ys), subject)


def _format(values: np.ndarray) -> bytes:
    """Rows of numbers as the archive writes them: ``%15.7e`` with a 3-digit exponent, each
    field preceded by a space (runs of spaces between fields)."""
    lines = []
    for row in values:
        fields = []
        for v in row:
            text = f"{v:.7e}"
            mantissa, exponent = text.split("e")
            fields.append(f"{mantissa}e{exponent[0]}{int(exponent[1:]):03d}".rjust(15))
        lines.append(" " + " ".join(fields))
    return ("\n".join(lines) + "\n").encode()
