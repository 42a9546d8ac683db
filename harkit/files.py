"""Atomic files and folders: a temp file (or folder) beside the target, then one rename.

A reader never sees a half-written file, and an error or Ctrl-C mid-write leaves the previous
file (or none) in place. ``tempfile.mkstemp``/``mkdtemp`` create private (0o600/0o700) entries;
:func:`default_permissions` gives the renamed result the mode a plain ``open``/``mkdir`` would
have had under the process umask. Every atomic write in harkit goes through it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Union

from harkit.errors import HarError

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux /proc)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def default_permissions(path) -> None:
    """Give ``path`` the mode ``open``/``mkdir`` would have given it: 0o666 (files) or 0o777
    (folders) less the umask. Call it on a ``mkstemp``/``mkdtemp`` result before the rename."""
    base = 0o777 if os.path.isdir(path) else 0o666
    os.chmod(path, base & ~current_umask())


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
        default_permissions(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


@contextmanager
def atomic_dir(out: Path, force: bool, option: str = "--force") -> Iterator[Path]:
    """Yield a temp folder beside ``out``; on success it replaces ``out`` in one rename.

    Refuses an existing ``out`` unless ``force``. On any error (or Ctrl-C) the temp folder is
    removed and ``out`` is left as it was.
    """
    out = Path(out)
    if out.exists() and not force:
        raise HarError(f"{out} already exists; pass {option} to replace it or choose another "
                       "--out")
    if out.exists() and not out.is_dir():
        raise HarError(f"{out} exists and is not a folder; choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
        default_permissions(tmp)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / out.name)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_json(path, data: Any) -> Path:
    """Write ``data`` as indented JSON (a trailing newline), atomically."""
    return write_atomic(path, json.dumps(data, indent=2) + "\n")
