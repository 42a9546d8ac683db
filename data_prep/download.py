"""``har download NAME DEST``: fetch a dataset's official archive, verify it, extract it safely.

After a successful run DEST holds (PAMAP2 as the example)::

    DEST/<archive>.zip        the archive as downloaded (``har prepare DEST/<archive>.zip`` works
                              for PAMAP2)
    DEST/PAMAP2_Dataset/      Protocol/subject101.dat ... (and Optional/, readme.pdf, ...)
    DEST/manifest.json        dataset, url, archive name, size, sha256, time, harkit version

Each adapter's ``archive`` (:class:`data_prep.datasets.base.Archive`) says where its archive is
and which folder of it to keep: ``pamap2`` (zip, nested zip) -> ``PAMAP2_Dataset/``;
``uci_har`` (zip, nested zip) -> ``UCI HAR Dataset/``; ``wisdm`` (tar.gz) -> ``WISDM_ar_v1.1/``;
``mhealth`` (zip) -> ``MHEALTHDATASET/``. Zips and tars are extracted by
:mod:`data_prep.archive`, which refuses members that would land outside DEST.

Nothing is half-written: the download streams into ``<archive>.zip.partial`` and extraction
happens in a hidden folder in DEST; both are renamed into place only when everything checked
out, and removed on any failure.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, Optional

from data_prep.archive import ArchiveError, safe_extract, safe_extract_tar
from data_prep.datasets import list_datasets
from data_prep.datasets.base import Archive
from harkit import __version__
from harkit.errors import HarError
from harkit.files import write_json
from harkit.progress import progress_bar

MANIFEST = "manifest.json"
CHUNK_BYTES = 1 << 20
_MIRROR_HINT = "pass --url with a mirror"


def archives() -> Dict[str, Archive]:
    """The datasets ``har download`` knows: each adapter's :attr:`Dataset.archive`."""
    return {d.name: d.archive for d in list_datasets() if d.archive is not None}


def download_pamap2(dest, *, url: Optional[str] = None, force: bool = False,
                    progress: bool = False, timeout_s: float = 60) -> dict:
    """:func:`download` of PAMAP2."""
    return download("pamap2", dest, url=url, force=force, progress=progress,
                    timeout_s=timeout_s)


def download(dataset: str, dest, *, url: Optional[str] = None, force: bool = False,
             progress: bool = False, timeout_s: float = 60) -> dict:
    """Download ``dataset``'s archive from ``url`` (default: its adapter's ``archive``) into
    ``dest``.

    Streams the archive (following redirects) while computing its size and sha256, checks the
    size against Content-Length, tests and extracts it (zips, nested zips included, with
    :func:`data_prep.archive.safe_extract`; tars with :func:`~data_prep.archive.safe_extract_tar`)
    and leaves ``dest/<dataset_dir>/`` -- also when the archive holds the dataset's files
    without that folder. The archive itself is kept in ``dest``.

    If ``dest/<dataset_dir>`` and ``dest/manifest.json`` already exist this does nothing and
    returns the manifest, unless ``force``. ``progress`` draws a bar on stderr (TTY only).

    Returns the manifest: ``dataset``, ``url``, ``archive`` (file name), ``size`` (archive
    bytes), ``sha256``, ``downloaded_at`` (UTC ISO time), ``harkit_version``, ``recordings``
    (number of marker files), plus ``dataset_dir`` and ``archive_path`` as paths under ``dest``
    (the file on disk stores them relative to ``dest``). Raises :class:`HarError` (one line) for
    an unknown dataset, an unreachable URL, an HTTP error, a truncated download, a file that is
    not an archive, a corrupt archive, a member escaping the destination, or an archive of
    another dataset.
    """
    known = archives()
    if dataset not in known:
        raise HarError(f"'har download {dataset}': no archive is known for {dataset!r}; choose "
                       f"one of {', '.join(known)}")
    spec = known[dataset]
    dest = Path(dest)
    url = _as_url(url or spec.url)
    if dest.exists() and not dest.is_dir():
        raise HarError(f"{dest} is a file; pass a folder to download into")
    if not force:
        existing = _existing(dest, spec)
        if existing is not None:
            return existing
    dest.mkdir(parents=True, exist_ok=True)
    name = _archive_name(url, spec.file_name)
    partial = dest / f"{name}.partial"
    staging = dest / f".{spec.dataset_dir}.{os.getpid()}.extracting"
    try:
        fetched = _fetch(url, partial, label=name, timeout_s=timeout_s, progress=progress)
        kind = _check_signature(partial, url, fetched["content_type"])
        try:
            (safe_extract if kind == "zip" else safe_extract_tar)(partial, staging)
        except ArchiveError as exc:
            raise HarError(f"the archive from {url} {exc.problem}; try again or "
                           f"{_MIRROR_HINT}") from None
        root, recordings = _dataset_root(staging, url, dataset, spec)
        (dest / MANIFEST).unlink(missing_ok=True)   # an interrupted --force leaves no stale one
        _swap_into_place(root, dest / spec.dataset_dir)
        os.replace(partial, dest / name)
        manifest = {
            "dataset": dataset, "url": url, "final_url": fetched["final_url"],
            "archive": name, "size": fetched["size"], "sha256": fetched["sha256"],
            "downloaded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "harkit_version": __version__, "dataset_dir": spec.dataset_dir,
            "recordings": recordings,
        }
        write_json(dest / MANIFEST, manifest)
    finally:
        partial.unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
    return _with_paths(manifest, dest, spec)


# --------------------------------------------------------------------------- steps
def _existing(dest: Path, spec: Archive) -> Optional[dict]:
    """The manifest of a finished earlier download into ``dest``, or None."""
    dataset, manifest = dest / spec.dataset_dir, dest / MANIFEST
    if not dataset.exists():
        return None
    if not manifest.is_file():
        raise HarError(f"{dataset} already exists but {manifest} does not (not written by "
                       "'har download'); pass --force to replace it, or choose another DEST")
    try:
        return _with_paths(json.loads(manifest.read_text()), dest, spec)
    except (ValueError, OSError) as exc:
        raise HarError(f"{manifest} is unreadable ({exc}); pass --force to download "
                       "again") from None


def _fetch(url: str, out: Path, *, label: str, timeout_s: float, progress: bool) -> dict:
    """Stream ``url`` into ``out``; return size, sha256, final URL and Content-Type."""
    try:
        request = urllib.request.Request(url, headers={"User-Agent": f"harkit/{__version__}"})
        response = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as exc:
        exc.close()
        raise HarError(f"could not download {url}: HTTP {exc.code} {exc.reason}; check the "
                       f"URL or {_MIRROR_HINT}") from None
    except urllib.error.URLError as exc:
        raise HarError(f"could not reach {url} ({exc.reason}); check the connection or "
                       f"{_MIRROR_HINT}") from None
    except (OSError, http.client.HTTPException) as exc:
        raise HarError(f"could not download {url} ({_one_line(exc)}); try again or "
                       f"{_MIRROR_HINT}") from None
    except ValueError:
        raise HarError(f"--url: {url!r} is neither a URL nor an existing file") from None

    length = response.headers.get("Content-Length", "")
    expected = int(length) if length.strip().isdigit() else None
    digest, size = hashlib.sha256(), 0
    with response, open(out, "wb") as fh, _progress(expected, label, progress) as bar:
        while True:
            try:
                chunk = response.read(CHUNK_BYTES)
            except (OSError, http.client.HTTPException) as exc:
                raise HarError(f"download of {url} was interrupted after {size:,} bytes "
                               f"({_one_line(exc)}); try again") from None
            if not chunk:
                break
            try:
                fh.write(chunk)
            except OSError as exc:
                raise HarError(f"could not write {out}: {exc.strerror}; free some space or "
                               "choose another DEST") from None
            digest.update(chunk)
            size += len(chunk)
            bar.update(len(chunk))
    if expected is not None and size != expected:
        raise HarError(f"download of {url} is truncated: got {size:,} of {expected:,} bytes; "
                       "try again")
    return {"size": size, "sha256": digest.hexdigest(), "final_url": response.geturl(),
            "content_type": response.headers.get("Content-Type", "unknown")}


def _check_signature(path: Path, url: str, content_type: str) -> str:
    """``"zip"`` or ``"tar"``; a clear message for the usual wrong answer: an HTML page."""
    import tarfile

    with open(path, "rb") as fh:
        head = fh.read(4)
    if head[:2] == b"PK":
        if not zipfile.is_zipfile(path):
            raise HarError(f"the archive from {url} is corrupt or truncated (no zip directory); "
                           f"try again or {_MIRROR_HINT}")
        return "zip"
    if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:4] == b"\xfd7zX" or (
            tarfile.is_tarfile(path)):
        return "tar"
    raise HarError(f"{url} did not return a zip or tar archive (Content-Type {content_type}, "
                   f"starts with {head!r}); check the URL or {_MIRROR_HINT}")


def _dataset_root(staging: Path, url: str, dataset: str, spec: Archive):
    """The folder under ``staging`` to become ``DEST/<dataset_dir>``, and its marker count.

    Preference: a folder named ``dataset_dir``; else the folder holding the marker files (the
    parent of the ``subdirs`` they sit in: PAMAP2's ``Protocol/``); else loose marker files are
    moved into ``subdirs[0]`` of a new folder.
    """
    files = sorted(p.relative_to(staging) for p in staging.rglob(spec.marker) if p.is_file())
    if not files:
        raise HarError(f"the archive from {url} holds no {spec.what} (is it the {dataset} "
                       f"data set?); {_MIRROR_HINT}")
    depth = lambda p: len(p.parts)  # noqa: E731
    named = [a for f in files for a in f.parents if a.name == spec.dataset_dir]
    roots = named or [f.parent.parent for f in files if f.parent.name in spec.subdirs]
    if not spec.subdirs:
        roots = roots or [f.parent for f in files]
    if roots:
        root = staging / min(roots, key=depth)
        return root, sum(1 for _ in root.rglob(spec.marker))
    loose = min((f.parent for f in files), key=depth)
    root = staging / f".{spec.dataset_dir}"
    (root / spec.subdirs[0]).mkdir(parents=True)
    moved = [f for f in files if f.parent == loose]
    for f in moved:
        os.replace(staging / f, root / spec.subdirs[0] / f.name)
    return root, len(moved)


def _swap_into_place(new: Path, target: Path) -> None:
    """Rename ``new`` to ``target``; an existing ``target`` is replaced only once that works."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.{os.getpid()}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    try:
        os.replace(new, target)
    except BaseException:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------- helpers
def _as_url(url: str) -> str:
    """``--url`` may also name a local file (an archive fetched by hand): make it a file URL."""
    local = Path(url).expanduser()
    if "://" not in url and local.is_file():
        return local.resolve().as_uri()
    return url


def _archive_name(url: str, fallback: str) -> str:
    """The archive's file name from the URL path, or ``fallback`` if it is not a plain one."""
    base = urllib.parse.unquote(urllib.parse.urlsplit(url).path).rsplit("/", 1)[-1]
    ok = re.fullmatch(r"[\w+.-]+\.(zip|tar|tgz|tar\.gz|tar\.bz2|tar\.xz)", base,
                      flags=re.ASCII) and not base.startswith(".")
    return base if ok else fallback


def _with_paths(manifest: dict, dest: Path, spec: Archive) -> dict:
    out = dict(manifest)
    out["dataset_dir"] = str(dest / manifest.get("dataset_dir", spec.dataset_dir))
    if "archive" in manifest:
        out["archive_path"] = str(dest / manifest["archive"])
    return out


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _progress(total: Optional[int], label: str, enabled: bool):
    """A byte progress bar (Content-Length known) or a running byte counter, on stderr."""
    if total:
        return progress_bar(length=total, label=f"downloading {label}", enabled=enabled)
    return _ByteCounter(f"downloading {label}", enabled and sys.stderr.isatty())


class _ByteCounter:
    """``downloading x.zip: 12.3 MB`` redrawn at most 5 times a second (TTY only)."""

    def __init__(self, label: str, enabled: bool):
        self.label, self.enabled, self.bytes, self._drawn = label, enabled, 0, 0.0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.enabled:
            self._draw()
            sys.stderr.write("\n")

    def update(self, n: int) -> None:
        self.bytes += n
        if self.enabled and time.monotonic() - self._drawn > 0.2:
            self._draw()

    def _draw(self) -> None:
        sys.stderr.write(f"\r{self.label}: {self.bytes / 1e6:.1f} MB")
        sys.stderr.flush()
        self._drawn = time.monotonic()
