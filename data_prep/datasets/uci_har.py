"""``uci_har``: Human Activity Recognition Using Smartphones (Anguita et al. 2013, UCI #240).

``UCI HAR Dataset/``: a waist-worn smartphone at 50 Hz, 30 subjects, 6 activities
(``activity_labels.txt``: 1 WALKING ... 6 LAYING). The archive ships pre-cut windows of 128
steps (2.56 s, 50 % overlap) in the official subject split, ``train/`` (21 subjects) and
``test/`` (9). harkit reads the raw inertial signals, not the 561 engineered features:

* ``{train,test}/Inertial Signals/<signal>_<axis>_<split>.txt``: one window per line, 128
  values in scientific notation separated by runs of spaces; the signals are ``total_acc``
  (g), ``body_acc`` (g: total minus gravity, the readme's 0.3 Hz low-pass) and ``body_gyro``
  (rad/s), each x, y, z: 9 channels;
* ``{train,test}/y_<split>.txt``: the activity (1-6) of each window;
* ``{train,test}/subject_<split>.txt``: its subject (1-30).

The test split is the official test subjects; validation is subjects taken out of the 21
training subjects (``--val-subjects``, default the last three).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from data_prep.datasets.base import (
    Archive,
    Channel,
    ClassSpec,
    Dataset,
    PrepareOptions,
    Windows,
    WindowSet,
    option,
)
from data_prep.sources import sha256_hex, visible_files
from data_prep.splits import assign_subjects
from harkit.errors import HarError

RATE_HZ = 50.0
WINDOW = 128
DATASET_DIR = "UCI HAR Dataset"
SIGNALS: Tuple[str, ...] = ("total_acc", "body_acc", "body_gyro")
UNITS = {"total_acc": "g", "body_acc": "g", "body_gyro": "rad/s"}
CHANNELS: Tuple[str, ...] = tuple(f"{s}_{a}" for s in SIGNALS for a in "xyz")
#: The official split, as the readme gives it.
TRAIN_SUBJECTS: Tuple[int, ...] = (1, 3, 5, 6, 7, 8, 11, 14, 15, 16, 17, 19, 21, 22, 23, 25, 26,
                                   27, 28, 29, 30)
TEST_SUBJECTS: Tuple[int, ...] = (2, 4, 9, 10, 12, 13, 18, 20, 24)
ACTIVITIES: Tuple[str, ...] = ("WALKING", "WALKING_UPSTAIRS", "WALKING_DOWNSTAIRS", "SITTING",
                               "STANDING", "LAYING")


@dataclass(frozen=True)
class UciHarOptions(PrepareOptions):
    signals: List[str] = option("Comma-separated subset of total_acc,body_acc,body_gyro.")
    val_subjects: List[int] = option("Training subjects held out for validation, or 'none'.")


class UciHar(Dataset):
    name = "uci_har"
    title = ("UCI HAR (smartphones, UCI #240): 30 subjects, waist phone acc + gyro, official "
             "pre-cut windows")
    kind = "windows"
    layout = (f"'{DATASET_DIR}/' with train/ and test/ (Inertial Signals, y_*.txt, "
              "subject_*.txt), or a folder above it")
    rate_hz = RATE_HZ
    subjects_from = "subject_train.txt / subject_test.txt (1-30; official train/test split)"
    options = UciHarOptions
    archive = Archive("https://archive.ics.uci.edu/static/public/240/"
                      "human+activity+recognition+using+smartphones.zip", DATASET_DIR,
                      "y_train.txt", "uci_har.zip", "train/y_train.txt", ("train",))

    def detect(self, path: Path) -> bool:
        return Path(path).is_dir() and _root(Path(path)) is not None

    def all_channels(self) -> List[Channel]:
        return [Channel(c, "waist (smartphone)", c.rsplit("_", 1)[0],
                        UNITS[c.rsplit("_", 1)[0]]) for c in CHANNELS]

    def channels(self, opts: UciHarOptions) -> List[Channel]:
        return [c for c in self.all_channels() if c.modality in opts.signals]

    def classes(self, opts) -> List[ClassSpec]:
        return [ClassSpec(name, i + 1) for i, name in enumerate(ACTIVITIES)]

    def validate(self, opts: UciHarOptions) -> None:
        bad = [s for s in opts.signals if s not in SIGNALS]
        if bad or not opts.signals or len(set(opts.signals)) != len(opts.signals):
            raise HarError(f"--signals {','.join(opts.signals) or 'none'}: choose one or more of "
                           f"{','.join(SIGNALS)}, each once")
        wrong = [s for s in opts.val_subjects if s not in TRAIN_SUBJECTS]
        if wrong:
            raise HarError(f"--val-subjects {wrong}: validation subjects come from the training "
                           f"subjects ({','.join(map(str, TRAIN_SUBJECTS))}); the test subjects "
                           "are the official ones")

    def windows(self, path: Path, opts: UciHarOptions, progress: bool = False) -> Windows:
        root = _root(Path(path))
        if root is None:
            raise HarError(f"no '{DATASET_DIR}' under {path} (train/Inertial Signals/..., "
                           "y_train.txt, subject_train.txt); pass that folder (get it with 'har "
                           "download uci_har DEST' or 'har synth uci_har DEST')")
        labels = _activity_labels(root / "activity_labels.txt")
        chosen = [c for c in CHANNELS if c.rsplit("_", 1)[0] in opts.signals]
        sources: List[Dict[str, object]] = []
        parts = {}
        for split in ("train", "test"):
            x, y, subject = _read_split(root / split, split, chosen, labels, sources)
            parts[split] = (x, y, subject)
        x, y, subject = parts["train"]
        assign_subjects(subject.tolist(), opts.val_subjects, [])   # HarError: not in the data
        val = np.isin(subject, opts.val_subjects)
        splits = {"train": WindowSet(x[~val], y[~val], subject[~val])}
        if opts.val_subjects:
            splits["val"] = WindowSet(x[val], y[val], subject[val])
        splits["test"] = WindowSet(*parts["test"])
        channels = [c for c in self.all_channels() if c.name in chosen]
        return Windows(splits, self.classes(opts), channels, RATE_HZ, "subjects", sources,
                       {"windows_with_missing_values": 0},
                       {"official_split": {"train": list(TRAIN_SUBJECTS),
                                           "test": list(TEST_SUBJECTS)},
                        "stride_s": WINDOW / 2 / RATE_HZ})


DATASET = UciHar()


def _root(path: Path) -> Optional[Path]:
    """The folder holding train/ and test/ with inertial signals: PATH or one below it."""
    def ok(folder: Path) -> bool:
        return (folder / "train" / "Inertial Signals").is_dir() and (
            folder / "train" / "y_train.txt").is_file()

    if ok(path):
        return path
    for f in visible_files(path, "y_train.txt"):
        if ok(f.parent.parent) and len(f.relative_to(path).parts) <= 4:
            return f.parent.parent
    return None


def _activity_labels(path: Path) -> Dict[int, str]:
    """``activity_labels.txt`` (``1 WALKING`` per line); the readme's when the file is absent."""
    if not path.is_file():
        return {i + 1: name for i, name in enumerate(ACTIVITIES)}
    out = {}
    text = path.read_bytes().decode("utf-8", "replace")
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2 or not fields[0].isdigit():
            raise HarError(f"{path} line {number}: expected '<id> <NAME>', got {line!r}")
        out[int(fields[0])] = fields[1]
    if sorted(out) != list(range(1, 7)):
        raise HarError(f"{path}: expected activities 1-6, found {sorted(out)}; is this the UCI "
                       "HAR dataset?")
    return out


def _read_split(folder: Path, split: str, channels, labels: Dict[int, str],
                sources: List[Dict[str, object]]):
    """``(x [N, 128, C] float32, y [N] class index, subject [N])`` of one split."""
    y = _read_ints(folder / f"y_{split}.txt", sources)
    subject = _read_ints(folder / f"subject_{split}.txt", sources)
    if subject.size != y.size:
        raise HarError(f"{folder}: y_{split}.txt has {y.size} lines but subject_{split}.txt "
                       f"{subject.size}; the files belong together")
    bad = np.flatnonzero(~np.isin(y, list(labels)))
    if bad.size:
        raise HarError(f"{folder / f'y_{split}.txt'} line {bad[0] + 1}: activity {y[bad[0]]}, "
                       "not one of 1-6")
    x = np.empty((y.size, WINDOW, len(channels)), np.float32)
    for j, name in enumerate(channels):
        path = folder / "Inertial Signals" / f"{name}_{split}.txt"
        x[:, :, j] = _read_windows(path, y.size, sources)
    index = {code: ACTIVITIES.index(labels[code]) if labels[code] in ACTIVITIES else code - 1
             for code in labels}
    return x, np.array([index[v] for v in y.tolist()], np.int64), subject


def _read_ints(path: Path, sources) -> np.ndarray:
    """One whole number per line (labels 1-6, subjects 1-30); HarError naming a bad line."""
    data = _read(path, sources)
    lines = [(number, line.strip()) for number, line in enumerate(data.split(b"\n"), start=1)
             if line.strip()]
    for number, token in lines:
        if not token.isdigit() or len(token) > 6:
            raise HarError(f"{path} line {number}: {token[:20].decode('utf-8', 'replace')!r} is "
                           "not a label or subject number; re-download the dataset")
    return np.array([int(token) for _, token in lines], dtype=np.int64)


def _read_windows(path: Path, rows: int, sources) -> np.ndarray:
    """float32 ``[rows, 128]`` of an inertial-signal file; HarError naming the line of a row
    without 128 numbers."""
    data = _read(path, sources)
    lines = [ln for ln in data.split(b"\n") if ln.strip()]
    if len(lines) == rows:
        try:                              # ragged lines or a non-number: ValueError
            x = np.array([ln.split() for ln in lines], dtype=np.float32)
            if x.shape == (rows, WINDOW):
                return x
        except ValueError:
            pass
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != WINDOW:
            raise HarError(f"{path} line {number}: {len(fields)} values, expected {WINDOW} (one "
                           "window per line); re-download the dataset")
        for token in fields:
            try:
                float(token)
            except ValueError:
                raise HarError(f"{path} line {number}: {token[:20].decode('utf-8', 'replace')!r} "
                               "is not a number; re-download the dataset") from None
    raise HarError(f"{path} has {len(lines)} windows but the labels list {rows}; the files "
                   "of a split belong together")


def _read(path: Path, sources) -> bytes:
    if not path.is_file():
        raise HarError(f"{path} is missing; the UCI HAR folder is incomplete: re-download it")
    data = path.read_bytes()
    sources.append({"file": str(path), "size": len(data),
                    "sha256": sha256_hex(data)})
    return data
