"""Atomic file writes: a temp file beside the target, then one rename.

A reader never sees a half-written file, and an error or Ctrl-C mid-write leaves the previous
file (or none) in place.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Union

from har.errors import HarError


def output_file(path, option: str) -> Path:
    """``path`` as a file to write; HarError naming ``option`` when it is an existing folder."""
    path = Path(path)
    if path.is_dir():
        raise HarError(f"{option} {path} is a folder; pass a file name")
    return path


def write_atomic(path, data: Union[str, bytes]) -> Path:
    """Write ``data`` (text is written as UTF-8, newlines as given) to ``path`` atomically."""
    return write_with(path, lambda fh: fh.write(data.encode() if isinstance(data, str)
                                                 else data))


def copy_atomic(src, dst) -> Path:
    """Copy the file ``src`` to ``dst`` atomically."""
    def copy(fh):
        with open(src, "rb") as source:
            shutil.copyfileobj(source, fh)
    return write_with(dst, copy)


def write_with(path, write: Callable) -> Path:
    """Call ``write(binary file)`` on a temp file beside ``path``, then rename it to ``path``
    (its folder is created first)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
