"""Raw files to read: a file on disk or a member of a zip archive, read on demand.

A :class:`Source` knows its display name, size, a cheap identity for the parse cache's index
(``path|size|mtime_ns``, plus member and CRC inside a zip) and how to get its bytes. Files are
memory-mapped, so parsing and hashing read the page cache in place.
"""

from __future__ import annotations

import functools
import hashlib
import mmap
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional


@dataclass
class Source:
    """One raw file to read."""

    name: str                     # display name used in messages and meta.json
    size: int                     # bytes
    index_key: str                # cheap identity: path|size|mtime_ns (+ member|crc for zips)
    read_bytes: Callable[[], "bytes | mmap.mmap"]   # the file's bytes (any buffer)
    path: Path = Path()           # the file on disk (the archive, for a zip member)
    info: Dict[str, Any] = field(default_factory=dict)   # adapter facts: subject, folder, ...

    @property
    def subject(self):
        return self.info.get("subject")


#: Bytes that :func:`sha256_hex` hashes at a time.
HASH_BLOCK = 1 << 16


def sha256_hex(data, stop: Optional[threading.Event] = None) -> str:
    """The sha256 of ``data`` (any buffer: bytes, a memory map), as hex ("" when ``stop`` is
    set before the end).

    Each block is first copied into a small buffer that stays in the core's cache: SHA-256
    straight from a large mapping is ~1.4x slower on the machines measured, its loads waiting
    on memory, while the copy streams ahead."""
    digest = hashlib.sha256()
    view = memoryview(data).cast("B")
    block = bytearray(min(HASH_BLOCK, len(view)))
    held = memoryview(block)
    for i in range(0, len(view), HASH_BLOCK):
        if stop is not None and stop.is_set():
            return ""
        n = min(HASH_BLOCK, len(view) - i)
        held[:n] = view[i:i + n]
        digest.update(held[:n])
    return digest.hexdigest()


def map_file(path: Path):
    """The bytes of ``path`` as a read-only memory map, pages loaded up front.

    No copy into a ``bytes`` object and its page faults per file. An empty file gives ``b""``
    (mmap cannot map zero bytes)."""
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            return b""
        if not hasattr(mmap, "MAP_SHARED"):                      # Windows
            return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
        return mmap.mmap(fh.fileno(), 0, flags=flags, prot=mmap.PROT_READ)


def visible_files(root: Path, pattern: str) -> List[Path]:
    """Files under ``root`` matching ``pattern`` (recursively), skipping hidden files and
    folders, sorted."""
    return sorted(f for f in Path(root).rglob(pattern)
                  if f.is_file() and not any(p.startswith(".") for p in f.relative_to(root).parts))


def file_source(file: Path, **info: Any) -> Source:
    """A file on disk as a :class:`Source` (read through a memory map); ``info`` are the
    adapter's facts about it (subject, folder, ...)."""
    file = Path(file)
    stat = file.stat()
    return Source(name=str(file), size=stat.st_size,
                  index_key=f"{file.resolve()}|{stat.st_size}|{stat.st_mtime_ns}",
                  read_bytes=functools.partial(map_file, file), path=file, info=dict(info))


def has_content(data) -> bool:
    """True unless ``data`` is empty or whitespace only (looks at a prefix first: no copy of a
    large file just to say it is not empty)."""
    return bool(bytes(data[:4096]).strip()) or bool(bytes(data).strip())
