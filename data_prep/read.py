"""Reading raw files through an adapter: hashing, the parse cache, and conditioning.

:func:`read_source` turns one :class:`~data_prep.sources.Source` into the recordings it holds,
each *conditioned* (:func:`condition`): put on an even time grid when ``--rate`` asks for it,
its missing values filled within each gap-free segment (:func:`data_prep.windows.fill_gaps`:
linear interpolation, or the last reading held for channels such as heart rate). What comes out
is what the windowing step and ``har predict`` cut windows from. Conditioned recordings go to the
parse cache (:mod:`data_prep.cache`) when the adapter allows it.
"""

from __future__ import annotations

import threading
from typing import Dict, List, Optional

import numpy as np

from data_prep import resample, windows
from data_prep.cache import ParseCache
from data_prep.datasets.base import Dataset, Recording
from data_prep.sources import Source, sha256_hex


class SignalBuffers:
    """Reusable memory for the arrays a parse makes (signals, timestamps, label codes), shared
    by the threads that parse recordings.

    First writes to freshly allocated memory cost a page fault per 4 KiB page, which on these
    machines is as slow as parsing: reusing a few buffers across a dataset's files saves
    about a tenth of a cold ``prepare``. Only buffers made here are taken back. Thread-safe.
    """

    def __init__(self) -> None:
        self._free: List[np.ndarray] = []
        self._mine: Dict[int, np.ndarray] = {}      # every buffer made, kept: ids stay unique
        self._lock = threading.Lock()

    def take(self, rows: int, width: int = 0, dtype=np.float32, order: str = "F") -> np.ndarray:
        """A ``[rows, width]`` array of ``dtype`` (``width`` 0: ``[rows]``), column-major
        (``order`` "F") or row-major ("C"), contents undefined."""
        dtype = np.dtype(dtype)
        need = rows * max(width, 1) * dtype.itemsize
        with self._lock:
            fits = [i for i, b in enumerate(self._free) if b.size >= need]
            buf = (self._free.pop(min(fits, key=lambda i: self._free[i].size)) if fits
                   else None)
        if buf is None:
            buf = np.empty(need + need // 4, dtype=np.uint8)      # slack: untouched, no cost
            with self._lock:
                self._mine[id(buf)] = buf
        flat = buf[:need].view(dtype)
        if not width:
            return flat
        return flat.reshape(rows, width) if order == "C" else flat.reshape(width, rows).T

    @property
    def in_use(self) -> int:
        """Buffers given out and not handed back yet."""
        with self._lock:
            return len(self._mine) - len(self._free)

    def give(self, array: np.ndarray) -> None:
        """Take back the buffer under ``array`` (when it is one of these); ``array`` must not
        be used after."""
        base = array
        while isinstance(base, np.ndarray) and base.base is not None:
            base = base.base
        with self._lock:
            if id(base) in self._mine and not any(b is base for b in self._free):
                self._free.append(base)


def read_source(adapter: Dataset, source: Source, opts, cache: ParseCache,
                buffers: Optional[SignalBuffers] = None, rate_hz: float = 0.0,
                for_prepare: bool = True) -> List[Recording]:
    """The conditioned recordings of ``source`` (from ``cache`` when it has them); HarError
    names the bad line. ``rate_hz`` > 0 resamples onto that grid (``--rate``). With
    ``for_prepare`` False (``har predict``) labels and subjects may be absent, and what is
    parsed then is not cached."""
    sha = cache.known_hash(source.index_key)
    recordings = cache.load(sha, source.name) if sha is not None else None
    if recordings is None:
        data = source.read_bytes()
        hashing = None
        if cache.holds_entries():     # the same bytes may be cached under another file's name
            sha = sha256_hex(data)
            recordings = cache.load(sha, source.name)
        else:                         # nothing to look up: hash while the adapter parses
            hashing = _Hashing(data)
        if recordings is not None:
            cache.remember(source.index_key, sha)
        else:
            try:
                recordings = adapter.parse(data, source, opts, buffers, for_prepare)
            except BaseException:
                if hashing is not None:   # no thread may read the file once this call is over
                    hashing.stop()
                raise
            sha = hashing.hexdigest() if hashing is not None else sha
            for rec in recordings:
                rec.sha256 = sha
                if buffers is not None and rec.on_release is None:
                    rec.on_release = buffers.give
                condition(rec, rate_hz)
            if adapter.cacheable and for_prepare:
                cache.store(source.index_key, recordings, source.name)
    for rec in recordings:
        rec.subject = adapter.subject_of(source, rec.subject)
        rec.size = source.size
        if len(recordings) == 1:
            rec.name = source.name
    return recordings


class _Hashing:
    """The sha256 of ``data``, computed by a thread of its own (hashlib releases the GIL), so
    that it overlaps the parse of the same bytes."""

    def __init__(self, data) -> None:
        self._digest = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(data,), daemon=True)
        self._thread.start()

    def _run(self, data) -> None:
        self._digest = sha256_hex(data, self._stop)

    def hexdigest(self) -> str:
        self._thread.join()
        return self._digest

    def stop(self) -> None:
        """Give up (within one block) and wait for the thread to end."""
        self._stop.set()
        self._thread.join()


def condition(rec: Recording, rate_hz: float = 0.0) -> None:
    """In place: resample ``rec`` onto an even ``rate_hz`` grid per gap-free segment (when
    given), then fill its missing values per segment; marks it ``filled``."""
    if rec.filled:
        return
    if rate_hz and not (rec.even and abs(rec.rate_hz - rate_hz) <= 1e-9 * rate_hz):
        times, parts, labels = [], [], []
        for a, b in windows.segments(rec.timestamp_s, rec.rate_hz):
            t, v, lab = resample.resample_linear(rec.timestamp_s[a:b], rec.signals[a:b],
                                                 rec.labels[a:b], rate_hz)
            times.append(t)
            parts.append(v)
            labels.append(lab)
        rec.release()
        rec.timestamp_s = np.concatenate(times)
        rec.signals = np.asfortranarray(np.concatenate(parts))
        rec.labels = np.concatenate(labels)
        rec.rate_hz = float(rate_hz)
    if windows.has_nan(rec.signals):
        hold = [i for i, c in enumerate(rec.channels) if c in rec.hold]
        windows.fill_gaps(rec.timestamp_s, rec.signals, hold, rec.rate_hz)
    rec.filled = True
