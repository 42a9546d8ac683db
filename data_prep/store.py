"""The prepared folder: atomic write, validated load. The format is documented in
docs/FORMAT.md; this module is its implementation."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np

from data_prep.splits import SPLITS
from harkit.errors import HarError

FORMAT_NAME = "harkit.prepared"
FORMAT_VERSION = 2
#: Versions the loader reads: 1 (harkit 0.1, PAMAP2 only) is upgraded in memory.
READABLE_VERSIONS = (1, 2)


def write_split(folder: Path, split: str, x, y: np.ndarray, subject: np.ndarray,
                before_write: Optional[Callable[[np.ndarray], None]] = None) -> None:
    """``x_{split}.npy`` float32 [N, T, C], ``y_{split}.npy`` int64 [N],
    ``subject_{split}.npy`` [N] (int64, or unicode text when the subjects are names).

    ``x`` is an array, a list of ``[n_i, T, C]`` pieces written one after the other as if
    concatenated, or a window source (an object with ``shape`` ``(N, T, C)`` and ``chunks()``
    yielding the pieces, e.g. :class:`data_prep.transform.StreamedWindows`), so that no copy of the
    whole split is made. ``before_write(piece)`` (e.g. normalization in place) runs on each
    piece just before it is written. A source that can also ``fill(lo, hi, out)`` any range of
    its windows into a buffer of ``chunk_windows()`` windows is cut, normalized and written by
    two threads, each into its half of the file.
    """
    path = folder / f"x_{split}.npy"
    if callable(getattr(x, "chunk_windows", None)) and hasattr(os, "pwrite"):
        _write_windows_in_halves(path, x, before_write)
    else:
        _write_windows(path, x, before_write)
    np.save(folder / f"y_{split}.npy", y.astype(np.int64))
    subject = np.asarray(subject)
    np.save(folder / f"subject_{split}.npy",
            subject if subject.dtype.kind == "U" else subject.astype(np.int64))


def _header(fh, shape) -> int:
    """Write the ``.npy`` header of a float32 C-order array of ``shape``; return its length."""
    np.lib.format.write_array_header_1_0(
        fh, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
             "fortran_order": False, "shape": tuple(shape)})
    return fh.tell()


def _write_windows(path: Path, x, before_write) -> None:
    if callable(getattr(x, "chunks", None)):
        shape, parts = tuple(x.shape), x.chunks()
    else:
        pieces = [x] if isinstance(x, np.ndarray) else list(x)
        shape = (sum(p.shape[0] for p in pieces),) + tuple(pieces[0].shape[1:])
        parts = iter(pieces)
    written = 0
    with open(path, "wb") as fh:
        _header(fh, shape)
        for part in parts:
            if part.shape[1:] != shape[1:] or part.dtype != np.float32:
                raise ValueError(f"window pieces {part.dtype} {part.shape[1:]} and float32 "
                                 f"{shape[1:]}")
            part = np.ascontiguousarray(part)
            if before_write is not None:
                before_write(part)
            fh.write(part.data)
            written += part.shape[0]
    if written != shape[0]:
        raise ValueError(f"{written} windows written for {path.name}, {shape[0]} announced")


def _write_windows_in_halves(path: Path, x, before_write) -> None:
    """Two threads, each cutting, normalizing and writing (``os.pwrite``) one half of the
    windows chunk by chunk with its own buffer: the copies, the arithmetic and the system calls
    release the GIL, so the second core shares the work."""
    n, steps, channels = (int(v) for v in x.shape)
    per = x.chunk_windows()
    row_bytes = steps * channels * 4
    with open(path, "wb") as fh:
        start = _header(fh, x.shape)
        fh.flush()
        fd = fh.fileno()
        middle = min(n, -(-n // 2 // per) * per)           # a chunk boundary near the middle

        def write(lo: int, hi: int) -> None:
            buf = np.empty((max(1, min(per, hi - lo)), steps, channels), np.float32)
            for a in range(lo, hi, per):
                piece = x.fill(a, min(a + per, hi), buf)
                if before_write is not None:
                    before_write(piece)
                view, offset = memoryview(piece).cast("B"), start + a * row_bytes
                while view:
                    done = os.pwrite(fd, view, offset)
                    view, offset = view[done:], offset + done

        with ThreadPoolExecutor(2) as pool:
            for job in [pool.submit(write, 0, middle), pool.submit(write, middle, n)]:
                job.result()
        os.ftruncate(fd, start + n * row_bytes)


@dataclass
class Split:
    """One split of a prepared folder."""

    x: np.ndarray        # float32 [N, T, C]
    y: np.ndarray        # int64 [N], labels 0..classes-1
    subject: np.ndarray  # int64 [N], or unicode [N] when subjects are names

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass
class PreparedData:
    """A loaded prepared folder: ``meta`` (meta.json) and its splits."""

    path: Path
    meta: dict
    splits: Dict[str, Split]

    @property
    def class_names(self) -> List[str]:
        return [c["name"] for c in self.meta["classes"]]

    @property
    def channels(self) -> List[str]:
        return list(self.meta["channels"])

    @property
    def window(self) -> int:
        return int(self.meta["window"])

    def __getitem__(self, split: str) -> Split:
        if split not in self.splits:
            raise HarError(f"{self.path} has no {split!r} split (it has "
                           f"{', '.join(self.splits) or 'none'}); prepare it with "
                           f"--{split}-subjects")
        return self.splits[split]


def load_prepared(path, mmap: bool = False) -> PreparedData:
    """Load and validate a prepared folder; HarError says what is missing or inconsistent."""
    path = Path(path)
    hint = "run 'har prepare' to create it"
    if not path.is_dir():
        raise HarError(f"prepared folder {path} does not exist; {hint}")
    meta_file = path / "meta.json"
    if not meta_file.is_file():
        raise HarError(f"{path} has no meta.json, so it is not a prepared folder; {hint}")
    try:
        meta = json.loads(meta_file.read_text())
    except ValueError as exc:
        raise HarError(f"{meta_file} is not valid JSON ({exc}); prepare the folder again") from None
    if meta.get("format") != FORMAT_NAME:
        raise HarError(f"{meta_file} is not a harkit prepared-folder description; {hint}")
    if meta.get("format_version") not in READABLE_VERSIONS:
        raise HarError(f"{meta_file} has format_version {meta.get('format_version')!r}, this "
                       f"harkit reads {', '.join(map(str, READABLE_VERSIONS))}; prepare the "
                       "folder again")
    meta = _upgrade(meta)
    channels, window = len(meta["channels"]), int(meta["window"])
    classes = len(meta["classes"])
    splits = {}
    for split in SPLITS:
        if split not in meta["splits"]:
            continue
        arrays = {}
        for kind in ("x", "y", "subject"):
            file = path / f"{kind}_{split}.npy"
            if not file.is_file():
                raise HarError(f"{path} lacks {file.name} (meta.json lists a {split} split); "
                               "prepare the folder again")
            try:
                arrays[kind] = np.load(file, mmap_mode="r" if mmap else None)
            except (OSError, ValueError) as exc:
                raise HarError(f"{file} is unreadable ({exc}); prepare the folder again") from None
        _check_split(path, split, arrays, window, channels, classes)
        splits[split] = Split(arrays["x"], arrays["y"], arrays["subject"])
    if not splits:
        raise HarError(f"{path} holds no split; prepare the folder again")
    return PreparedData(path, meta, splits)


def _upgrade(meta: dict) -> dict:
    """A version-1 meta.json (harkit 0.1: PAMAP2 only) in version 2's terms."""
    if meta.get("format_version") != 1:
        return meta
    meta = dict(meta)
    meta["classes"] = [{"label": c["label"], "id": c.get("activity_id"), "name": c["name"]}
                       for c in meta["classes"]]
    meta.setdefault("subjects_are", "subjects")
    return meta


def _check_split(path: Path, split: str, arrays: dict, window: int, channels: int,
                 classes: int) -> None:
    x, y, subject = arrays["x"], arrays["y"], arrays["subject"]
    problem: Optional[str] = None
    if x.dtype != np.float32 or x.ndim != 3:
        problem = f"x_{split}.npy is {x.dtype} {x.shape}, expected float32 [N, T, C]"
    elif x.shape[1:] != (window, channels):
        problem = (f"x_{split}.npy has windows of {x.shape[1:]} but meta.json says "
                   f"({window}, {channels})")
    elif y.shape != (x.shape[0],) or subject.shape != (x.shape[0],):
        problem = f"y/subject_{split}.npy do not have one entry per window ({x.shape[0]})"
    elif subject.dtype.kind not in "iuU":
        problem = f"subject_{split}.npy is {subject.dtype}, expected int64 or text"
    elif y.dtype.kind not in "iu" or (y.size and (y.min() < 0 or y.max() >= classes)):
        problem = f"y_{split}.npy holds labels outside 0..{classes - 1}"
    if problem:
        raise HarError(f"{path}: {problem}; prepare the folder again")
