"""Safe zip handling shared by ``har download`` and ``har prepare``.

Two entry points:

* :func:`safe_extract` extracts an archive, and every ``.zip`` inside it, into a folder,
  atomically, refusing members that would land outside it.
* :func:`find_zip_recordings` lists the recordings inside an archive and its nested zips
  without extracting anything; each :class:`ZipRecording` reads its own bytes on demand.

The UCI PAMAP2 archive is nested (``pamap2+physical+activity+monitoring.zip`` holds
``PAMAP2_Dataset.zip`` which holds ``PAMAP2_Dataset/Protocol/subject101.dat`` ...); some mirrors
ship the folder directly. Both shapes work. A nested zip stored uncompressed is read in place
through a byte-range view of its parent; a compressed one is copied once to a temporary file.

Every member's CRC-32 is checked as it is read (zipfile does that at the end of each member), so
a corrupt or truncated archive raises :class:`ArchiveError` (a :class:`HarError`) instead of
yielding bad bytes. macOS metadata (``__MACOSX/``, ``._*``) is ignored.
"""

from __future__ import annotations

import contextlib
import fnmatch
import io
import os
import posixpath
import re
import shutil
import struct
import tempfile
import threading
import weakref
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterator, List, Optional

from harkit.errors import HarError
from harkit.files import default_permissions

MAX_NESTING = 4                      # zips inside zips deeper than this are refused
_COPY_CHUNK = 1 << 20
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")   # zip local file header (30 bytes)
_DRIVE = re.compile(r"^[A-Za-z]:")


class ArchiveError(HarError):
    """A zip that cannot be used: corrupt, truncated, unsafe or unsupported.

    ``problem`` is the middle of the message (``"is corrupt or truncated (...)"``) so that a
    caller such as the downloader can reword the fix without repeating the diagnosis.
    """

    def __init__(self, zip_path, problem: str, fix: str = "delete it and download again"):
        self.zip_path = Path(zip_path)
        self.problem = problem
        super().__init__(f"{zip_path} {problem}: {fix}")


# --------------------------------------------------------------------------- extraction
def safe_extract(zip_path: Path, dest: Path) -> List[Path]:
    """Extract ``zip_path`` into ``dest`` (which must not exist, or be empty); return the files.

    Every ``.zip`` member is extracted in turn into the folder where it lies (read in place,
    never written out itself). Members with an absolute path, a drive letter or a ``..`` that
    escapes the destination are refused (:class:`ArchiveError` naming the member); so are
    corrupt or truncated archives (CRC-32 checked as each member is read). Work happens in a
    hidden temporary folder beside ``dest`` that is renamed into place at the end, so after
    any error ``dest`` does not exist and no temporary file is left.
    """
    zip_path, dest = Path(zip_path), Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise HarError(f"{dest} already exists and is not empty; remove it or extract elsewhere")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".extracting", dir=dest.parent))
    root = _ZipNode(zip_path, spill_dir=dest.parent)
    try:
        files = _extract_node(root, tmp, depth=0)
        return _publish(tmp, dest, files)
    finally:
        root.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _publish(tmp: Path, dest: Path, files: List[Path]) -> List[Path]:
    """Rename the finished extraction ``tmp`` to ``dest`` (an empty ``dest`` is replaced);
    the extracted ``files`` under their new paths, sorted."""
    default_permissions(tmp)
    if dest.exists():
        dest.rmdir()
    os.replace(tmp, dest)
    return sorted(dest / f.relative_to(tmp) for f in files)


def safe_extract_tar(tar_path: Path, dest: Path) -> List[Path]:
    """Extract the (gzip-, bz2- or xz-compressed) tar ``tar_path`` into ``dest`` like
    :func:`safe_extract`: regular files and folders only (links, devices and FIFOs are refused,
    as are absolute paths and ``..`` that escape ``dest``), into a hidden folder renamed at the
    end; a corrupt or truncated archive is an :class:`ArchiveError` and leaves nothing."""
    import tarfile

    tar_path, dest = Path(tar_path), Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise HarError(f"{dest} already exists and is not empty; remove it or extract elsewhere")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".extracting", dir=dest.parent))
    files = []
    try:
        try:
            with tarfile.open(tar_path, "r:*") as tar:
                for member in tar:
                    if _is_junk(member.name):
                        continue
                    target = _tar_target(tar_path, tmp, member)
                    if member.isdir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    source = tar.extractfile(member)
                    with source, open(target, "wb") as out:
                        shutil.copyfileobj(source, out, _COPY_CHUNK)
                    default_permissions(target)
                    files.append(target)
        except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
            raise ArchiveError(tar_path, f"is corrupt or truncated ({type(exc).__name__}: "
                               f"{str(exc)[:80]})") from None
        return _publish(tmp, dest, files)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _tar_target(tar_path: Path, folder: Path, member) -> Path:
    """Where a tar member goes under ``folder``; ArchiveError for links, special files and
    paths that would escape."""
    if not (member.isfile() or member.isdir()):
        kind = "a link" if member.issym() or member.islnk() else "a special file"
        raise ArchiveError(tar_path, f"holds {kind} ({member.name!r}), which harkit does not "
                           "extract", "extract it with another tool and pass the folder")
    posix = member.name.replace("\\", "/")
    norm = posixpath.normpath(posix) if posix else "."
    if posix.startswith("/") or _DRIVE.match(posix) or norm == ".." or norm.startswith("../"):
        raise ArchiveError(tar_path, f"holds {member.name!r}, which would land outside the "
                           "destination (path traversal)", "refusing to extract it")
    target = folder if norm == "." else folder / norm
    if not target.resolve().is_relative_to(folder.resolve()):
        raise ArchiveError(tar_path, f"holds {member.name!r}, which would land outside the "
                           "destination (path traversal)", "refusing to extract it")
    return target


def _extract_node(node: "_ZipNode", folder: Path, depth: int) -> List[Path]:
    """Extract the zip ``node`` into ``folder``; nested zips recurse instead of being written."""
    files, nested = [], []
    with node.open() as zf, _zip_errors(node):
        members = [(info, _safe_target(node, folder, info.filename))
                   for info in zf.infolist() if not _is_junk(info.filename)]
        for info, target in members:
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            elif info.filename.lower().endswith(".zip"):
                nested.append((info.filename, target.parent))
            else:
                _write_member(zf, info, target, node)
                files.append(target)
    for member, where in nested:
        if depth + 1 > MAX_NESTING:
            raise ArchiveError(node.root_path, f"nests zips more than {MAX_NESTING} levels deep",
                               "extract it with another tool and pass the folder")
        child = node.child(member)
        try:
            where.mkdir(parents=True, exist_ok=True)
            files += _extract_node(child, where, depth + 1)
        finally:
            child.close()
    return files


def _safe_target(node: "_ZipNode", folder: Path, name: str) -> Path:
    """Where member ``name`` goes under ``folder``; ArchiveError if it would escape."""
    posix = name.replace("\\", "/")
    norm = posixpath.normpath(posix) if posix else "."
    why = None
    if posix.startswith("/"):
        why = "an absolute path"
    elif _DRIVE.match(posix):
        why = "a drive letter"
    elif norm == ".." or norm.startswith("../"):
        why = "'..' would place it outside the destination"
    target = folder if norm == "." else folder / norm
    if why is None and not target.resolve().is_relative_to(folder.resolve()):
        why = "it would be written outside the destination"
    if why:
        raise ArchiveError(node.root_path, f"has an unsafe member '{node.inner(name)}' ({why})",
                           "refusing to extract; get the archive from a trusted source")
    return target


def _write_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, node) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with _zip_errors(node, info.filename), zf.open(info) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, _COPY_CHUNK)
    except (FileExistsError, IsADirectoryError, NotADirectoryError):
        raise ArchiveError(node.root_path, f"has conflicting members ({node.inner(info.filename)}"
                           " is both a file and a folder)",
                           "extract it with another tool and pass the folder") from None


def _is_junk(name: str) -> bool:
    """macOS resource forks and folders: never data, and their ``._x.zip`` are not zips."""
    posix = name.replace("\\", "/")
    return posix.startswith("__MACOSX/") or posix.rsplit("/", 1)[-1].startswith("._")


# --------------------------------------------------------------------------- listing
@dataclass(frozen=True)
class ZipRecording:
    """One file found inside a zip (possibly nested), readable without extracting anything.

    ``name`` is a display path such as
    ``pamap2.zip!PAMAP2_Dataset.zip!PAMAP2_Dataset/Protocol/subject101.dat``; ``member`` the
    path inside its innermost zip; ``folder`` the member's parent folder name (``"Protocol"``,
    ``"Optional"``, or ``""`` at the zip's top); ``size`` the uncompressed bytes; ``crc`` the
    member's CRC-32 as recorded in the zip. Safe to read from several threads at once.
    """

    name: str
    member: str
    folder: str
    size: int
    crc: int
    _node: "_ZipNode" = field(repr=False, compare=False)

    def read_bytes(self) -> bytes:
        """The member's bytes, CRC-checked; ArchiveError if the archive is damaged."""
        with self._node.open() as zf, _zip_errors(self._node, self.member):
            return zf.read(self.member)


def find_zip_recordings(zip_path: Path, pattern: str = "subject*.dat") -> List[ZipRecording]:
    """Every member of ``zip_path`` and of the zips inside it whose base name matches
    ``pattern`` (case-sensitive glob), in archive order, without extracting anything (a
    compressed nested zip is copied once to a temporary file that lives as long as the returned
    recordings). Corrupt or truncated archives raise :class:`ArchiveError`; a damaged member is
    only detected when it is read."""
    found: List[ZipRecording] = []
    _walk(_ZipNode(Path(zip_path)), pattern, found, depth=0)
    return found


def _walk(node: "_ZipNode", pattern: str, found: List[ZipRecording], depth: int) -> None:
    nested = []
    with node.open() as zf, _zip_errors(node):
        for info in zf.infolist():
            if info.is_dir() or _is_junk(info.filename):
                continue
            path = PurePosixPath(info.filename.replace("\\", "/"))
            if fnmatch.fnmatchcase(path.name, pattern):
                found.append(ZipRecording(
                    name=node.label(info.filename), member=info.filename,
                    folder=path.parent.name, size=info.file_size, crc=info.CRC, _node=node))
            elif path.name.lower().endswith(".zip"):
                nested.append(info.filename)
    for member in nested:
        if depth + 1 > MAX_NESTING:
            raise ArchiveError(node.root_path, f"nests zips more than {MAX_NESTING} levels deep",
                               "extract it with another tool and pass the folder")
        _walk(node.child(member), pattern, found, depth + 1)


# --------------------------------------------------------------------------- nested zips
class _ZipNode:
    """One zip in a nesting chain: the archive on disk, or a ``.zip`` member of its parent.

    :meth:`open` gives a fresh :class:`zipfile.ZipFile` with its own file handles each call
    (thread-safe). A member stored uncompressed is opened in place through :class:`_Region`;
    a compressed one is copied ("spilled") once to a temporary file in ``spill_dir``, removed
    by :meth:`close` or when the node is garbage-collected.
    """

    def __init__(self, path: Path, parent: Optional["_ZipNode"] = None,
                 member: Optional[str] = None, spill_dir: Optional[Path] = None):
        self.path, self.parent, self.member, self.spill_dir = Path(path), parent, member, spill_dir
        self._lock = threading.Lock()
        self._spill: Optional[Path] = None
        self._finalizer = None

    @property
    def root_path(self) -> Path:
        """The archive on disk that holds this chain (named in error messages)."""
        return self.path

    def label(self, member: Optional[str] = None) -> str:
        """Display path: ``outer.zip!inner.zip!member``."""
        base = self.path.name if self.parent is None else self.parent.label(self.member)
        return base if member is None else f"{base}!{member}"

    def inner(self, member: Optional[str] = None) -> str:
        """Like :meth:`label` without the outer archive's name (which messages already show),
        control characters replaced so a message stays one line."""
        text = self.label(member).split("!", 1)[1] if (self.parent or member) else ""
        return "".join(c if c.isprintable() else "?" for c in text)

    def child(self, member: str) -> "_ZipNode":
        return _ZipNode(self.path, parent=self, member=member, spill_dir=self.spill_dir)

    @contextlib.contextmanager
    def open(self) -> Iterator[zipfile.ZipFile]:
        with self._open_file() as fh, _zip_errors(self), zipfile.ZipFile(fh) as zf:
            infos = zf.infolist()
            if infos and min(i.header_offset for i in infos) != 0:
                # zipfile accepts data before the first member; here that means the end of
                # the archive is missing and a stored inner zip's directory was found instead
                raise zipfile.BadZipFile("its zip directory does not match the file; the end "
                                         "may be missing")
            yield zf

    @contextlib.contextmanager
    def _open_file(self) -> Iterator[io.RawIOBase]:
        """A seekable binary file object holding exactly this zip's bytes."""
        if self.parent is None:
            with open(self.path, "rb") as fh:
                yield fh
            return
        with self.parent._open_file() as pfh, _zip_errors(self.parent, self.member):
            info = zipfile.ZipFile(pfh).getinfo(self.member)
            if info.compress_type == zipfile.ZIP_STORED and not info.flag_bits & 0x1:
                yield _Region(pfh, _data_offset(pfh, info), info.file_size)
                return
            spill = self._spilled(pfh, info)
        with open(spill, "rb") as fh:
            yield fh

    def _spilled(self, pfh, info: zipfile.ZipInfo) -> Path:
        with self._lock:
            if self._spill is None:
                fd, name = tempfile.mkstemp(prefix=".harkit-", suffix=".zip", dir=self.spill_dir)
                path = Path(name)
                try:
                    with os.fdopen(fd, "wb") as out, zipfile.ZipFile(pfh).open(info) as src:
                        shutil.copyfileobj(src, out, _COPY_CHUNK)
                except BaseException:
                    path.unlink(missing_ok=True)
                    raise
                self._spill = path
                self._finalizer = weakref.finalize(self, _unlink_quietly, path)
            return self._spill

    def close(self) -> None:
        """Remove the spilled copy, if any (the node can still be opened again)."""
        with self._lock:
            if self._finalizer is not None:
                self._finalizer()
            self._spill, self._finalizer = None, None


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


class _Region(io.RawIOBase):
    """Read-only, seekable view of bytes ``[start, start + length)`` of a binary file."""

    def __init__(self, fh, start: int, length: int):
        super().__init__()
        self._fh, self._start, self._length, self._pos = fh, start, length, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._length}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer) -> int:
        n = max(0, min(len(buffer), self._length - self._pos))
        if n == 0:
            return 0
        self._fh.seek(self._start + self._pos)
        got = self._fh.readinto(memoryview(buffer)[:n]) or 0
        self._pos += got
        return got


def _data_offset(fh, info: zipfile.ZipInfo) -> int:
    """Offset in ``fh`` of the first data byte of member ``info`` (after its local header)."""
    fh.seek(info.header_offset)
    raw = fh.read(_LOCAL_HEADER.size)
    if len(raw) != _LOCAL_HEADER.size or raw[:4] != b"PK\x03\x04":
        raise zipfile.BadZipFile(f"bad local header for {info.filename!r}")
    *_, name_len, extra_len = _LOCAL_HEADER.unpack(raw)
    return info.header_offset + _LOCAL_HEADER.size + name_len + extra_len


@contextlib.contextmanager
def _zip_errors(node: _ZipNode, member: Optional[str] = None):
    """Turn zipfile's low-level failures into one-line :class:`ArchiveError`."""
    try:
        yield
    except ArchiveError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, struct.error) as exc:
        where = node.inner(member)
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise ArchiveError(node.root_path, "is corrupt or truncated ("
                           + (f"{where}: " if where else "") + detail + ")") from None
    except NotImplementedError as exc:
        raise ArchiveError(node.root_path, f"uses an unsupported zip feature ({exc})",
                           "extract it with another tool and pass the folder") from None
    except RuntimeError as exc:
        if "encrypted" not in str(exc):
            raise
        raise ArchiveError(node.root_path, "is password-protected",
                           "extract it with another tool and pass the folder") from None
