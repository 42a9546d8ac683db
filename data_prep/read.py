"""Fast parsing of raw PAMAP2 ``.dat`` files, with a per-file parse cache.

The fast path hands the file's bytes to pyarrow's multi-threaded CSV reader (the 40 useful
columns, orientation skipped); the bytes are hashed with sha256 in the same pass. Only when
pyarrow rejects a file does a slow line-by-line scan run, to name the exact line and the fix.

Cache layout (``<cache_dir>/pamap2/v1``)::

    <sha256>/timestamp.npy  float64 [n]       seconds
    <sha256>/activity.npy   int16   [n]       activity IDs
    <sha256>/signals.npy    float32 [n, 40]   pamap2.SIGNAL_COLUMNS, gaps filled (see below)
    index.json              {"<path>|<size>|<mtime_ns>": "<sha256>"}

Missing values are filled once, at parse time, since the fill does not depend on any option:
linear interpolation along time within each gap-free segment, heart rate held between readings
(``windows.fill_gaps``). What stays NaN (a segment's leading/trailing dropouts) makes the windows
that touch it drop out later.

An entry is named by the content hash, so a changed file (new size/mtime → rehash → new hash)
is parsed again, while an unchanged one is found through the index without reading it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import mmap
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

import numpy as np

from data_prep import pamap2, windows
from harkit.errors import HarError
from harkit.files import default_permissions, write_atomic

CACHE_VERSION = "v1"  # bump when the cached arrays change meaning


@dataclass
class Source:
    """One raw recording to read: a file on disk or a member of a zip archive."""

    name: str                     # display name used in messages and meta.json
    subject: int
    folder: str                   # "Protocol" or "Optional"
    size: int                     # bytes
    index_key: str                # cheap identity: path|size|mtime_ns (+ member|crc for zips)
    read_bytes: Callable[[], "bytes | mmap.mmap"]   # the file's bytes (any buffer)


@dataclass
class Recording:
    """A parsed recording: rows in file order."""

    source: Source
    sha256: str
    timestamp_s: np.ndarray       # float64 [n]
    activity: np.ndarray          # int16 [n]
    signals: np.ndarray           # float32 [n, len(SIGNAL_COLUMNS)], gaps filled; may be a mmap
    buffers: Optional["SignalBuffers"] = None   # where ``signals`` goes back on release()

    @property
    def rows(self) -> int:
        return int(self.timestamp_s.shape[0])

    def release(self) -> None:
        """Done with ``signals``: hand its memory back for the next recording (if pooled)."""
        if self.buffers is not None:
            self.buffers.give(self.signals)
            self.buffers = None
        self.signals = None


class SignalBuffers:
    """Reusable memory for parsed signals, shared by the threads that parse recordings.

    First writes to freshly allocated memory cost a page fault per 4 KiB page, which on these
    machines is as slow as parsing: reusing a few buffers across a dataset's files saves
    about a tenth of a cold ``prepare``. Thread-safe.
    """

    def __init__(self) -> None:
        self._free: List[np.ndarray] = []
        self._lock = threading.Lock()

    def take(self, rows: int) -> np.ndarray:
        """A float32 ``[rows, len(SIGNAL_COLUMNS)]`` column-major array (contents undefined)."""
        width = len(pamap2.SIGNAL_COLUMNS)
        need = rows * width
        with self._lock:
            fits = [i for i, b in enumerate(self._free) if b.size >= need]
            buf = (self._free.pop(min(fits, key=lambda i: self._free[i].size)) if fits
                   else None)
        if buf is None:
            buf = np.empty(need + need // 4, dtype=np.float32)   # slack: untouched, no cost
        return buf[:need].reshape(width, rows).T

    def give(self, signals: np.ndarray) -> None:
        base = signals
        while base.base is not None:
            base = base.base
        with self._lock:
            self._free.append(base)


def default_cache_dir() -> Path:
    """``$HARKIT_CACHE`` or ``~/.cache/harkit``."""
    env = os.environ.get("HARKIT_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "harkit"


class ParseCache:
    """Parsed recordings keyed by content hash; see the module docstring for the layout."""

    def __init__(self, root: Optional[Path]):
        self.root = None if root is None else Path(root) / "pamap2" / CACHE_VERSION
        self._index = {}
        self._dirty = False
        if self.root is not None:
            try:
                self._index = json.loads((self.root / "index.json").read_text())
            except (OSError, ValueError):
                self._index = {}

    def known_hash(self, source: Source) -> Optional[str]:
        if self.root is None:
            return None
        sha = self._index.get(source.index_key)
        return sha if sha and (self.root / sha / "signals.npy").is_file() else None

    def load(self, source: Source, sha: str) -> Optional[Recording]:
        if self.root is None or not (self.root / sha / "signals.npy").is_file():
            return None
        folder = self.root / sha
        try:
            return Recording(source, sha, np.load(folder / "timestamp.npy"),
                             np.load(folder / "activity.npy"),
                             np.load(folder / "signals.npy", mmap_mode="r"))
        except (OSError, ValueError):
            return None          # a damaged entry is parsed again

    def store(self, rec: Recording) -> None:
        self.remember(rec.source, rec.sha256)
        if self.root is None or (self.root / rec.sha256).is_dir():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.root))
        try:
            np.save(tmp / "timestamp.npy", rec.timestamp_s)
            np.save(tmp / "activity.npy", rec.activity)
            np.save(tmp / "signals.npy", rec.signals)
            default_permissions(tmp)
            os.replace(tmp, self.root / rec.sha256)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)   # the cache is an optimisation only

    def remember(self, source: Source, sha: str) -> None:
        if self._index.get(source.index_key) != sha:
            self._index[source.index_key] = sha
            self._dirty = True

    def flush(self) -> None:
        """Write the index atomically (once per prepare)."""
        if self.root is None or not self._dirty:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        write_atomic(self.root / "index.json", json.dumps(self._index))
        self._dirty = False


def read_recording(source: Source, cache: ParseCache,
                   buffers: Optional[SignalBuffers] = None) -> Recording:
    """Parse ``source`` (or take it from ``cache``); raise HarError naming the bad line.
    With ``buffers``, a parsed recording's signals live in pooled memory until ``release()``."""
    sha = cache.known_hash(source)
    if sha is not None:
        rec = cache.load(source, sha)
        if rec is not None:
            return rec
    data = source.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    rec = cache.load(source, sha)
    if rec is not None:
        cache.remember(source, sha)
        return rec
    rec = parse_bytes(data, source, sha, buffers)
    cache.store(rec)
    return rec


def parse_bytes(data: bytes, source: Source, sha: str = "",
                buffers: Optional[SignalBuffers] = None) -> Recording:
    """Parse the bytes of one ``.dat`` file into a :class:`Recording`."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if not _has_content(data):
        raise HarError(f"{source.name} is empty; re-download it or remove it from the folder")
    float32 = pa.float32()
    types = {c: float32 for c in pamap2.SIGNAL_COLUMNS}
    types["timestamp"] = pa.float64()
    types["activity_id"] = pa.float64()      # validated below, then cast
    try:
        # null_values=[]: the float parser reads "NaN" as NaN itself, so no null handling.
        table = pacsv.read_csv(
            pa.py_buffer(data),
            read_options=pacsv.ReadOptions(column_names=list(pamap2.COLUMNS)),
            parse_options=pacsv.ParseOptions(delimiter=" "),
            convert_options=pacsv.ConvertOptions(
                include_columns=list(pamap2.PARSED_COLUMNS), column_types=types,
                null_values=[], strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        raise pamap2.row_error(data, source.name) from None
    timestamp = _column(table, "timestamp")
    activity = _column(table, "activity_id")
    # Column-major [n, 40]: each parsed column is copied in contiguously, and the later
    # per-channel work (gap filling, channel selection) reads contiguous memory.
    width = len(pamap2.SIGNAL_COLUMNS)
    signals = (buffers.take(table.num_rows) if buffers is not None
               else np.empty((width, table.num_rows), dtype=np.float32).T)
    for j, name in enumerate(pamap2.SIGNAL_COLUMNS):
        _column(table, name, out=signals[:, j])
    bad = pamap2.first_bad_row(timestamp, activity)
    if bad is not None:
        raise pamap2.row_error(data, source.name, row=bad)
    windows.fill_gaps(timestamp, signals, [pamap2.SIGNAL_COLUMNS.index("heart_rate")],
                      pamap2.SAMPLE_RATE_HZ)
    return Recording(source, sha, timestamp, activity.astype(np.int16), signals, buffers)


def _has_content(data) -> bool:
    """True unless ``data`` is empty or whitespace only (looks at a prefix first: no copy of
    a large file just to say it is not empty)."""
    return bool(bytes(data[:4096]).strip()) or bool(bytes(data).strip())


def map_file(path: Path):
    """The bytes of ``path`` as a read-only memory map, pages loaded up front.

    Parsing and hashing read the page cache in place: no 150 MB copy into a ``bytes`` object
    and its page faults per file. An empty file gives ``b""`` (mmap cannot map zero bytes)."""
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            return b""
        if not hasattr(mmap, "MAP_SHARED"):                      # Windows
            return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
        return mmap.mmap(fh.fileno(), 0, flags=flags, prot=mmap.PROT_READ)


def _column(table, name: str, out: Optional[np.ndarray] = None) -> np.ndarray:
    """One column as a numpy array (copied into ``out`` when given), chunk by chunk."""
    chunks = table.column(name).chunks
    if out is None:
        return np.concatenate([c.to_numpy() for c in chunks]) if len(chunks) != 1 \
            else chunks[0].to_numpy()
    pos = 0
    for c in chunks:
        values = c.to_numpy()
        out[pos:pos + values.size] = values
        pos += values.size
    return out


# --------------------------------------------------------------------------- discovery
def discover(path: Path, include_optional: bool) -> List[Source]:
    """The raw recordings under ``path`` (folder, any folder above Protocol/, or a .zip)."""
    path = Path(path)
    if not path.exists():
        raise HarError(f"{path} does not exist; pass the PAMAP2 folder or .zip "
                       "(get one with 'har download pamap2 DEST' or 'har synth pamap2 DEST')")
    if path.is_file():
        if path.suffix.lower() != ".zip":
            raise HarError(f"{path} is a file but not a .zip; pass the folder holding "
                           "Protocol/subject*.dat or the downloaded archive")
        sources = _zip_sources(path)
    else:
        sources = _folder_sources(path)
        if not sources:
            zips = sorted(path.glob("*.zip"))
            if len(zips) == 1:
                sources = _zip_sources(zips[0])
    where = f"{path}" + ("" if path.is_file() else "/")
    if not sources:
        raise HarError(f"no {pamap2.FILE_PATTERN} files found under {where}; pass the "
                       "PAMAP2_Dataset folder, its Protocol folder, or the downloaded .zip")
    if not include_optional:
        sources = [s for s in sources if s.folder != pamap2.OPTIONAL_DIR]
        if not sources:
            raise HarError(f"{where} holds only Optional/ recordings; add --include-optional "
                           "or pass the Protocol folder")
    _check_unique(sources)
    return sorted(sources, key=lambda s: (s.folder != pamap2.PROTOCOL_DIR, s.subject, s.name))


def _folder_of(parent_name: str) -> str:
    return pamap2.OPTIONAL_DIR if parent_name == pamap2.OPTIONAL_DIR else pamap2.PROTOCOL_DIR


def visible_files(root: Path, pattern: str) -> List[Path]:
    """Files under ``root`` matching ``pattern`` (recursively), skipping hidden files and
    folders, sorted."""
    return sorted(f for f in root.rglob(pattern)
                  if f.is_file() and not any(p.startswith(".") for p in f.relative_to(root).parts))


def file_source(file: Path, subject: int, folder: str) -> Source:
    """A recording on disk as a :class:`Source` (read through a memory map)."""
    stat = file.stat()
    return Source(name=str(file), subject=subject, folder=folder, size=stat.st_size,
                  index_key=f"{file.resolve()}|{stat.st_size}|{stat.st_mtime_ns}",
                  read_bytes=functools.partial(map_file, file))


def _folder_sources(root: Path) -> List[Source]:
    return [file_source(f, _subject_or_error(f.name, str(f)), _folder_of(f.parent.name))
            for f in visible_files(root, pamap2.FILE_PATTERN)]


def _zip_sources(zip_path: Path) -> List[Source]:
    from data_prep.archive import find_zip_recordings

    stat = zip_path.stat()
    base = f"{zip_path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    return [
        Source(name=rec.name, subject=_subject_or_error(rec.member, rec.name),
               folder=_folder_of(rec.folder), size=rec.size,
               index_key=f"{base}|{rec.member}|{rec.crc}", read_bytes=rec.read_bytes)
        for rec in find_zip_recordings(zip_path, pamap2.FILE_PATTERN)
    ]


def _subject_or_error(filename: str, shown: str) -> int:
    try:
        return pamap2.subject_id(filename)
    except ValueError:
        raise HarError(f"{shown}: expected a name like subject101.dat; rename or remove "
                       "the file") from None


def _check_unique(sources: List[Source]) -> None:
    seen = {}
    for s in sources:
        key = (s.folder, s.subject)
        if key in seen:
            raise HarError(f"subject {s.subject} appears twice ({seen[key]} and {s.name}); "
                           "keep one copy of the data under PATH")
        seen[key] = s.name
