"""The parse cache: recordings an adapter parsed, kept on disk by content hash.

Layout (``<cache_dir>/<dataset>/v4``)::

    <sha256>[-<options key>]/recordings.json   one entry per recording of the file: name,
                                               source (the file it was parsed from), subject,
                                               channels, label_names, rate_hz, hold, filled,
                                               extra, dropped
    <sha256>[-<options key>]/<i>.timestamp.npy float64 [n]    seconds
    <sha256>[-<options key>]/<i>.labels.npy    int32 [n]      index into label_names, -1 none
    <sha256>[-<options key>]/<i>.signals.npy   float32 [n, C] gap-filled when ``filled``
    index.json                                 {"<path>|<size>|<mtime_ns>": "<sha256>"}

An entry is named by the file's content hash (and the parse options that change what a parse
yields, :meth:`Dataset.cache_key`), so a changed file is parsed again, while an unchanged one is
found through the index without reading it. Missing values are filled before caching when the
fill does not depend on options. Deleting the folder is always safe; the cache is an
optimisation only, and a damaged entry is parsed again.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import List, Optional

import numpy as np

from data_prep.datasets.base import Recording
from harkit.files import default_permissions, write_atomic

CACHE_VERSION = "v4"  # bump when the cached arrays or records change meaning (v4: WISDM
#                      one recording per user; a source per entry)


def default_cache_dir() -> Path:
    """``$HARKIT_CACHE`` or ``~/.cache/harkit``."""
    env = os.environ.get("HARKIT_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "harkit"


class ParseCache:
    """Parsed recordings of one dataset, keyed by content hash (+ options key)."""

    def __init__(self, root: Optional[Path], dataset: str, options_key: str = ""):
        self.root = None if root is None else Path(root) / dataset / CACHE_VERSION
        self.suffix = f"-{options_key}" if options_key else ""
        self._index = {}
        self._dirty = False
        self._held: Optional[bool] = None
        if self.root is not None:
            try:
                self._index = json.loads((self.root / "index.json").read_text())
            except (OSError, ValueError):
                self._index = {}

    def _entry(self, sha: str) -> Optional[Path]:
        return None if self.root is None else self.root / f"{sha}{self.suffix}"

    def known_hash(self, index_key: str) -> Optional[str]:
        """The content hash recorded for a file identity, when its entry exists."""
        if self.root is None:
            return None
        sha = self._index.get(index_key)
        entry = self._entry(sha) if sha else None
        return sha if entry is not None and (entry / "recordings.json").is_file() else None

    def holds_entries(self) -> bool:
        """Whether any file was cached before this run (a file not in the index may still
        be, under its content hash); looked at once."""
        if self._held is None:
            try:
                self._held = self.root is not None and any(
                    p.is_dir() and not p.name.startswith(".") for p in self.root.iterdir())
            except OSError:
                self._held = False
        return self._held

    def load(self, sha: str, source_name: str = "") -> Optional[List[Recording]]:
        """The recordings cached under ``sha``; named after ``source_name`` (the file being
        read: the entry may have been made from another file with the same bytes)."""
        entry = self._entry(sha)
        if entry is None or not (entry / "recordings.json").is_file():
            return None
        try:
            records = json.loads((entry / "recordings.json").read_text())
            return [Recording(
                name=_renamed(r["name"], r.get("source", ""), source_name), subject=r["subject"],
                timestamp_s=np.load(entry / f"{i}.timestamp.npy"),
                signals=np.load(entry / f"{i}.signals.npy", mmap_mode="r"),
                channels=tuple(r["channels"]),
                labels=np.load(entry / f"{i}.labels.npy").astype(np.int64),
                label_names=tuple(r["label_names"]), rate_hz=float(r["rate_hz"]),
                hold=tuple(r["hold"]), even=bool(r["even"]), filled=bool(r["filled"]),
                sha256=sha, size=int(r["size"]),
                extra=dict(r.get("extra", {})), dropped=dict(r.get("dropped", {})))
                for i, r in enumerate(records)]
        except (OSError, ValueError, KeyError):
            return None

    def store(self, index_key: str, recordings: List[Recording], source_name: str = "") -> None:
        """Keep ``recordings`` (all of one file, ``source_name``, same ``sha256``) under their
        hash."""
        if not recordings:
            return
        sha = recordings[0].sha256
        self.remember(index_key, sha)
        entry = self._entry(sha)
        if entry is None or entry.is_dir():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.root))
        try:
            records = []
            for i, rec in enumerate(recordings):
                np.save(tmp / f"{i}.timestamp.npy", rec.timestamp_s)
                np.save(tmp / f"{i}.labels.npy", rec.labels.astype(np.int32))
                np.save(tmp / f"{i}.signals.npy", rec.signals)
                records.append({"name": rec.name, "source": source_name, "subject": rec.subject,
                                "channels": list(rec.channels),
                                "label_names": list(rec.label_names), "rate_hz": rec.rate_hz,
                                "hold": list(rec.hold), "even": rec.even,
                                "filled": rec.filled, "size": rec.size, "extra": rec.extra,
                                "dropped": rec.dropped})
            (tmp / "recordings.json").write_text(json.dumps(records))
            default_permissions(tmp)
            os.replace(tmp, entry)
        except (OSError, TypeError, ValueError):
            shutil.rmtree(tmp, ignore_errors=True)   # the cache is an optimisation only

    def remember(self, index_key: str, sha: str) -> None:
        if self._index.get(index_key) != sha:
            self._index[index_key] = sha
            self._dirty = True

    def flush(self) -> None:
        """Write the index atomically (once per prepare)."""
        if self.root is None or not self._dirty:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        write_atomic(self.root / "index.json", json.dumps(self._index))
        self._dirty = False


def _renamed(name: str, cached_source: str, source_name: str) -> str:
    """A cached recording's name made the reading file's: ``<file>#<suffix>`` keeps its suffix."""
    if source_name and cached_source and name.startswith(cached_source):
        return source_name + name[len(cached_source):]
    return name
