"""``uea``: the UEA/UCR time-series archive's ``.ts`` files (the format aeon, sktime and tsai read).

Input: a folder holding ``NAME_TRAIN.ts`` and ``NAME_TEST.ts`` (directly or one folder down), or
one of those files (its partner beside it is read too when it exists). The archive ships cases,
not recordings: each case becomes one window ``[T, C]``, its dimensions the channels
(``dim_1``, ``dim_2``, ...). Univariate and multivariate, equal and unequal length, missing
values (``?``/``NaN``: interpolated within the case, held at its ends) and string class labels
are read by :mod:`data_prep.ts_format`.

Unequal lengths are made equal by ``--length``: ``pad`` (the default: repeat each case's last
value up to the longest case), ``truncate`` (cut every case to the shortest) or ``resample``
(linear interpolation onto the longest length); ``--length-target N`` sets the length. The
chosen length is recorded in ``meta.json["length"]``.

Splits: test is ``_TEST``; validation is a stratified, seeded fraction of ``_TRAIN``
(``--val-fraction``, ``none`` for no validation). There are no subjects: ``subject_*.npy``
holds the case index (``_TRAIN`` cases 0..n-1, ``_TEST`` cases after them) and meta.json says
``"subjects_are": "cases"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from data_prep.datasets.base import (
    Channel,
    ClassSpec,
    Dataset,
    PrepareOptions,
    Windows,
    WindowSet,
    option,
)
from data_prep.sources import sha256_hex, visible_files
from harkit.errors import HarError

LENGTHS = ("pad", "truncate", "resample")
_SPLIT_FILE = re.compile(r"^(?P<name>.+)_(?P<split>TRAIN|TEST)\.ts$", re.IGNORECASE)


@dataclass(frozen=True)
class UeaOptions(PrepareOptions):
    length: str = option("How unequal-length cases become one length.", choices=LENGTHS)
    length_target: int = option("The common length in steps; 0 = the longest case (pad, "
                                "resample) or the shortest (truncate).", minimum=0)
    val_fraction: float = option("Share of _TRAIN held out for validation, stratified by class; "
                                 "'none' or 0 for no validation split.", allow_none=True)
    seed: int = option("Seed of the validation split.", minimum=0)

    def validate(self) -> "UeaOptions":
        super().validate()
        if not 0.0 <= self.val_fraction < 1.0:
            raise HarError(f"--val-fraction must be in [0, 1) or 'none', got "
                           f"{self.val_fraction!r}; e.g. --val-fraction 0.2")
        if self.length_target == 1:
            raise HarError("--length-target 1 is too short; give --length-target 2 or more (or "
                           "0 for the default)")
        return self


class Uea(Dataset):
    name = "uea"
    title = "UEA/UCR time-series archive .ts files (pre-cut cases, train/test split)"
    kind = "windows"
    layout = "NAME_TRAIN.ts and NAME_TEST.ts (a folder holding them, or one of the files)"
    subjects_from = "none: subject_*.npy holds the case index"
    options = UeaOptions

    def detect(self, path: Path) -> bool:
        path = Path(path)
        if path.is_file():
            return path.suffix.lower() == ".ts"
        return bool(_pairs(path))

    def all_channels(self) -> List[Channel]:
        return []

    def channels(self, opts) -> Optional[List[Channel]]:
        return None

    def classes(self, opts) -> Optional[List[ClassSpec]]:
        return None

    def windows(self, path: Path, opts: UeaOptions, progress: bool = False) -> Windows:
        from data_prep.ts_format import read_ts

        train_path, test_path = _files(Path(path))
        train = read_ts(train_path)
        test = read_ts(test_path) if test_path is not None else None
        if test is not None and test.dimensions != train.dimensions:
            raise HarError(f"{test_path} has {test.dimensions} dimensions but {train_path} has "
                           f"{train.dimensions}; pass the two files of one problem")
        classes = _classes(train, test, train_path)
        label_of = {c: i for i, c in enumerate(classes)}
        lengths = np.concatenate([train.lengths] + ([test.lengths] if test else []))
        target = _target(opts, lengths)
        x_train, y_train, dropped_train = _cases(train, opts.length, target, label_of)
        sources = [_source(train_path, train)]
        splits: Dict[str, WindowSet] = {}
        case = np.arange(len(train.series), dtype=np.int64)
        keep = np.ones(len(case), bool)
        keep[dropped_train] = False
        case = case[keep]
        val_note = None
        if opts.val_fraction > 0:
            fit, held, val_note = _stratified(y_train, opts.val_fraction, opts.seed, train_path)
            splits["train"] = WindowSet(x_train[fit], y_train[fit], case[fit])
            splits["val"] = WindowSet(x_train[held], y_train[held], case[held])
        else:
            splits["train"] = WindowSet(x_train, y_train, case)
        dropped = {"cases_with_missing_dimension": {"train": len(dropped_train)}}
        if test is not None:
            x_test, y_test, dropped_test = _cases(test, opts.length, target, label_of)
            offset = len(train.series)
            test_case = np.delete(np.arange(len(test.series), dtype=np.int64) + offset,
                                  dropped_test)
            splits["test"] = WindowSet(x_test, y_test, test_case)
            dropped["cases_with_missing_dimension"]["test"] = len(dropped_test)
            sources.append(_source(test_path, test))
        dims = [Channel(f"dim_{i + 1}") for i in range(train.dimensions)]
        extra = {"problem": train.problem,
                 "length": {"how": opts.length, "target": int(target),
                            "shortest": int(lengths.min()), "longest": int(lengths.max()),
                            "equal_length": bool(lengths.min() == lengths.max())},
                 "validation": {"fraction": opts.val_fraction, "seed": opts.seed,
                                "stratified": val_note is None, "note": val_note}}
        return Windows(splits, [ClassSpec(c, c) for c in classes], dims, None, "cases",
                       sources, {"windows_with_missing_values": sum(
                           dropped["cases_with_missing_dimension"].values()), **dropped}, extra)


DATASET = Uea()


def _pairs(folder: Path) -> Dict[Tuple[str, str], Path]:
    """``{(problem, "TRAIN"/"TEST"): path}`` of the .ts files in ``folder`` and one level down."""
    found = {}
    for f in visible_files(folder, "*.ts"):
        if len(f.relative_to(folder).parts) > 2:
            continue
        m = _SPLIT_FILE.match(f.name)
        if m:
            found[(m["name"], m["split"].upper())] = f
    return found


def _files(path: Path) -> Tuple[Path, Optional[Path]]:
    """The ``_TRAIN`` file and the ``_TEST`` file (None when absent) to read."""
    if not path.exists():
        raise HarError(f"{path} does not exist; pass a folder holding NAME_TRAIN.ts and "
                       "NAME_TEST.ts, or one of them")
    if path.is_file():
        m = _SPLIT_FILE.match(path.name)
        if m is None:
            raise HarError(f"{path}: expected a name like NAME_TRAIN.ts or NAME_TEST.ts (the "
                           "archive's train and test files); rename it")
        base = m["name"]
        train = path.with_name(f"{base}_TRAIN.ts")
        test = path.with_name(f"{base}_TEST.ts")
        if m["split"].upper() == "TEST" and not train.is_file():
            raise HarError(f"{path} is a _TEST file without its {train.name} beside it; the "
                           "train split comes from _TRAIN: pass that file or the folder")
        return train, (test if test.is_file() else None)
    pairs = _pairs(path)
    problems = sorted({name for name, split in pairs if split == "TRAIN"})
    if not problems:
        raise HarError(f"no NAME_TRAIN.ts file under {path}/; pass the folder of one UEA/UCR "
                       "problem (e.g. BasicMotions/ with BasicMotions_TRAIN.ts and _TEST.ts)")
    if len(problems) > 1:
        raise HarError(f"{path}/ holds several problems ({', '.join(problems[:5])}); pass the "
                       "folder or the _TRAIN.ts file of one")
    return pairs[(problems[0], "TRAIN")], pairs.get((problems[0], "TEST"))


def _classes(train, test, train_path: Path) -> List[str]:
    """The declared @classLabel order, else the sorted labels of both files."""
    if not train.labels:
        raise HarError(f"{train_path} has no class labels (@classLabel false); harkit trains "
                       "classifiers: use a classification problem")
    if train.class_labels:
        return list(train.class_labels)
    labels = set(train.labels) | set(test.labels if test is not None else [])
    numeric = all(re.fullmatch(r"[+-]?\d+(\.\d*)?", label) for label in labels)
    return sorted(labels, key=float if numeric else None)


def _target(opts: UeaOptions, lengths: np.ndarray) -> int:
    if opts.length_target:
        if opts.length == "truncate" and opts.length_target > lengths.min():
            raise HarError(f"--length-target {opts.length_target} exceeds the shortest case "
                           f"({int(lengths.min())} steps) and truncate cannot lengthen; give "
                           f"--length-target {int(lengths.min())} or less, or --length pad")
        return int(opts.length_target)
    target = int(lengths.min() if opts.length == "truncate" else lengths.max())
    if target < 2:
        raise HarError(f"the cases are {target} step long; harkit needs windows of 2 steps or "
                       "more (--length-target 2 with --length pad or resample)")
    return target


def _cases(ts, how: str, target: int, label_of: Dict[str, int]):
    """``(x [n, T, C] float32, y [n] int64, indices of the cases dropped)``: a case whose
    dimension holds no value at all cannot be filled and is dropped."""
    from data_prep.ts_format import to_equal_length

    x, _, has_nan = to_equal_length(ts.series, how, target)
    y = np.array([label_of[label] for label in ts.labels], np.int64)
    dropped = np.flatnonzero(has_nan)
    keep = ~has_nan
    return np.ascontiguousarray(x[keep], dtype=np.float32), y[keep], dropped


def _stratified(y: np.ndarray, fraction: float, seed: int, path: Path):
    """Indices ``(fit, held)`` of a seeded split of ``y``, stratified by class when every class
    has two cases or more (else plain, with a note saying why)."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(y))
    counts = np.bincount(y)
    stratify = y if counts[counts > 0].min() >= 2 else None
    held_count = int(round(fraction * len(y)))
    if held_count < 1 or held_count >= len(y):
        raise HarError(f"--val-fraction {fraction} of {len(y)} cases in {path} leaves "
                       f"{held_count} for validation; choose a fraction that holds out at "
                       "least one case and keeps one, or 'none'")
    if stratify is not None and held_count < len(np.unique(y)):
        stratify = None
    fit, held = train_test_split(index, test_size=held_count, random_state=seed,
                                 stratify=stratify)
    note = None if stratify is not None else (
        "not stratified: a class has one case, or there are fewer validation cases than classes")
    return np.sort(fit), np.sort(held), note


def _source(path: Path, ts) -> dict:
    data = path.read_bytes()
    return {"file": str(path), "size": len(data), "sha256": sha256_hex(data),
            "cases": len(ts.series), "dimensions": ts.dimensions}
