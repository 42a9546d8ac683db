"""Gap-filled rows → model-input windows: the one definition, whole or row by row.

``prepare`` (training data) and ``har predict`` (raw recordings) cut windows with :func:`cut`,
one *stretch* of rows at a time: a run of one label for ``prepare``; a gap-free segment (or,
with ``by_label``, a run of one label) for ``predict`` (:func:`stretches`). Per stretch: select
the channels, downsample (every Nth row from the stretch's first, or with ``antialias``
:func:`data_prep.resample.fir_decimate`), slide windows of ``window`` steps every ``stride``
steps, drop windows holding NaN.

``har predict --follow`` gets rows as they arrive. :class:`GapFiller` (``windows.fill_gaps`` row
by row) and :class:`Windower` (:func:`cut` row by row) release exactly the values and windows
that the whole-recording path gives, each as soon as it is final:

* a missing value can be filled once the next valid sample of its channel arrives (linear
  interpolation), or a gap or the end of the stream shows that it stays NaN; held channels'
  rows before the segment's first reading wait for that reading (held backward);
* with ``antialias`` a window waits for the ``resample.REACH_STEPS × downsample`` rows after
  its last step that the filter reads, or for the end of its stretch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np

from data_prep import resample, windows
from harkit.errors import HarError


@dataclass(frozen=True)
class Preprocessing:
    """How windows are cut from gap-filled rows at ``rate_hz``."""

    channels: Tuple[str, ...]  # channel names, in model-input order
    rate_hz: float             # rate of the rows (Hz): the data's own, or --rate
    downsample: int            # keep every Nth row (or low-pass and keep every Nth)
    antialias: bool            # low-pass (resample.fir_decimate) before downsampling
    window: int                # T: steps per window
    stride: int                # steps between window starts

    def columns(self, available: Sequence[str], name: str = "the recording") -> List[int]:
        """Positions of ``channels`` among a recording's ``available`` channel names."""
        index = {c: i for i, c in enumerate(available)}
        unknown = [c for c in self.channels if c not in index]
        if unknown:
            raise HarError(f"{name} lacks the channel(s) {', '.join(unknown[:4])}"
                           f"{' and more' if len(unknown) > 4 else ''}; it has "
                           f"{', '.join(list(available)[:12])}"
                           f"{', ...' if len(available) > 12 else ''}")
        return [index[c] for c in self.channels]

    @property
    def step_rate_hz(self) -> float:
        """Rate of the windows' steps (Hz)."""
        return self.rate_hz / self.downsample

    @property
    def reach_rows(self) -> int:
        """Rows after a window's last step that its values depend on (the filter's reach)."""
        return resample.REACH_STEPS * self.downsample if self.antialias and \
            self.downsample > 1 else 0


@dataclass
class Windows:
    """The windows of one stretch, held as the stretch's rows and where each window starts:
    ``x`` cuts them (one copy, ``[N, T, C]``); :class:`StreamedWindows` streams them in chunks."""

    series: np.ndarray     # float32 [steps, C]: the stretch at the step rate (rows may be strided)
    starts: np.ndarray     # int64 [N]: step of each kept (finite) window's first step
    window: int            # T: steps per window
    first_row: np.ndarray  # int64 [N]: recording row of each window's first step
    dropped_nan: int       # windows dropped for holding NaN or ±inf
    #: Steps between consecutive starts when they are evenly spaced (0: not known to be).
    spacing: int = 0
    #: The rows ``series`` is a view of, shared with the recording's other stretches
    #: (:func:`cut_runs`), and the row of ``series[0]`` in them; None: ``series`` is its own.
    shared: Optional[np.ndarray] = None
    offset: int = 0

    def __len__(self) -> int:
        return int(self.starts.shape[0])

    @property
    def steps(self) -> int:
        """Length of the stretch after downsampling (steps)."""
        return int(self.series.shape[0])

    @property
    def x(self) -> np.ndarray:
        """float32 ``[N, T, C]``, a new C-contiguous array."""
        if not self.starts.size:
            return np.empty((0, self.window, self.series.shape[1]), np.float32)
        return windows.gather(self.series, self.starts, self.window)

    def cut_into(self, out: np.ndarray, lo: int, hi: int) -> np.ndarray:
        """Windows ``lo .. hi-1`` written into ``out[:hi - lo]`` (C-contiguous float32
        ``[>= hi - lo, T, C]``); returns that slice. Evenly spaced starts (the usual case) are
        copied from a strided view of the rows, with no temporary."""
        dest = out[:hi - lo]
        starts = self.starts[lo:hi]
        if not starts.size:
            return dest
        gap = self.spacing or (int(starts[1] - starts[0]) if starts.size > 1 else 1)
        if gap > 0 and (self.spacing or starts.size < 3
                        or bool((np.diff(starts) == gap).all())):
            row, col = self.series.strides
            view = np.lib.stride_tricks.as_strided(self.series[int(starts[0]):],
                                                   shape=dest.shape,
                                                   strides=(gap * row, row, col),
                                                   writeable=False)
            np.copyto(dest, view)
        else:
            dest[...] = windows.gather(self.series, starts, self.window)
        return dest


def cut(signals: np.ndarray, start: int, stop: int, prep: Preprocessing, columns: Sequence[int],
        stride: Optional[int] = None) -> Windows:
    """Windows of rows ``[start, stop)`` of ``signals [n, C_all]`` (gaps filled; ``columns``:
    positions of ``prep.channels``), every ``stride`` steps (default ``prep.stride``). Step
    ``k`` is row ``start + k * downsample`` (the filter is centred on it). The result holds
    its own copy of the stretch's rows, never a view of ``signals``."""
    stride = prep.stride if stride is None else stride
    q = prep.downsample
    filtered = prep.antialias and q > 1
    series = signals[start:stop:1 if filtered else q][:, columns]    # fancy index: a copy
    if filtered:
        series = resample.fir_decimate(series, q)
    series = np.ascontiguousarray(series, dtype=np.float32)
    starts = windows.window_starts(series.shape[0], prep.window, stride)
    kept = starts[windows.complete_starts(series, starts, prep.window)]
    dropped = int(starts.size - kept.size)
    return Windows(series, kept, prep.window, start + kept * q, dropped,
                   spacing=stride if dropped == 0 else 0)


def viewable(signals: np.ndarray, columns: Sequence[int]) -> bool:
    """Whether windows may be views of ``signals [n, C]`` itself: row-major float32 with every
    channel chosen, in memory (a file mapping would stay open per recording: a warm cache of
    thousands of recordings would run out of mappings), and most of the memory under it (a
    small array in a large pooled buffer would keep the whole buffer)."""
    if not (signals.flags.c_contiguous and signals.dtype == np.float32
            and list(columns) == list(range(signals.shape[1]))) or isinstance(signals, np.memmap):
        return False
    root = signals
    while isinstance(root.base, np.ndarray):
        root = root.base
    return not isinstance(root, np.memmap) and root.nbytes <= 1.5 * signals.nbytes


def cut_runs(signals: np.ndarray, starts: np.ndarray, stops: np.ndarray, prep: Preprocessing,
             columns: Sequence[int]) -> List[Windows]:
    """:func:`cut` for many stretches of one recording (rows ``[starts[i], stops[i])``, in
    order, not overlapping): the same windows, each stretch's in one :class:`Windows`.

    Without downsampling every stretch is a view of the recording's chosen channels, row-major:
    of ``signals`` itself when :func:`viewable` (the windows then hold it: the caller must not
    reuse its memory), else of one copy. Window starts are computed for all stretches at once;
    a recording of thousands of short activity bouts then costs a few array operations, not a
    copy and a NaN scan per bout. With downsampling each stretch gets its own (smaller) copy."""
    if prep.downsample > 1 or not len(starts):
        return [cut(signals, int(a), int(b), prep, columns) for a, b in zip(starts, stops)]
    lo, hi = int(starts[0]), int(stops[-1])
    if viewable(signals, columns):
        rows = signals[lo:hi]
    else:
        rows = np.empty((hi - lo, len(columns)), np.float32)
        for j, c in enumerate(columns):                  # column by column: no temporary
            rows[:, j] = signals[lo:hi, c]
    finite = windows.all_finite(rows)
    window, stride = prep.window, prep.stride
    counts = np.maximum((stops - starts - window) // stride + 1, 0)
    every = np.arange(int(counts.max()) * stride, step=stride, dtype=np.int64)
    out = []
    for a, b, n in zip(starts.tolist(), stops.tolist(), counts.tolist()):
        series = rows[a - lo:b - lo]
        if finite:
            kept, dropped = every[:n], 0
        else:
            kept = every[:n][windows.complete_starts(series, every[:n], window)]
            dropped = n - kept.size
        out.append(Windows(series, kept, window, a + kept, dropped,
                           spacing=stride if dropped == 0 else 0, shared=rows, offset=a - lo))
    return out


#: Bytes of windows :class:`StreamedWindows` cuts at a time: few enough to stay in a core's cache
#: while they are normalized and written, enough that each write is one large system call
#: (128 KiB to 4 MiB measured the same).
CHUNK_BYTES = 1 << 20

#: Rows per block of :meth:`StreamedWindows.weighted_rows`.
COVERAGE_ROWS = 1 << 16


class StreamedWindows:
    """The windows of many stretches as one virtual float32 ``[N, T, C]`` array that is never
    built whole: :meth:`fill` cuts any range of them into a buffer, :meth:`chunks` all of them,
    in order, into one reused buffer (what :func:`data_prep.store.write_split` writes), and
    :meth:`weighted_rows` gives each stretch's rows with their window counts (what train-only
    normalization is fitted on). A split's windows overlap (stride < window), so this holds a
    fraction of their bytes."""

    def __init__(self, parts: Sequence[Windows], window: int, channels: int):
        self.parts = [p for p in parts if len(p)]
        self._ends = np.cumsum([len(p) for p in self.parts], dtype=np.int64)
        self.shape = (int(self._ends[-1]) if self.parts else 0, int(window), int(channels))

    def __len__(self) -> int:
        return self.shape[0]

    def chunk_windows(self, chunk_bytes: Optional[int] = None) -> int:
        """Windows per chunk: as many as fit in ``chunk_bytes`` (default :data:`CHUNK_BYTES`),
        at least one."""
        size = CHUNK_BYTES if chunk_bytes is None else chunk_bytes
        return max(1, size // max(1, self.shape[1] * self.shape[2] * 4))

    def fill(self, lo: int, hi: int, out: np.ndarray) -> np.ndarray:
        """Windows ``lo .. hi-1`` (of the whole ``[N, T, C]``) cut into ``out[:hi - lo]``;
        returns that slice."""
        part = int(np.searchsorted(self._ends, lo, side="right"))
        pos = lo
        while pos < hi:
            first = int(self._ends[part - 1]) if part else 0
            stop = min(hi, int(self._ends[part]))
            self.parts[part].cut_into(out[pos - lo:], pos - first, stop - first)
            pos, part = stop, part + 1
        return out[:hi - lo]

    def chunks(self, chunk_bytes: Optional[int] = None) -> Iterator[np.ndarray]:
        """Consecutive pieces ``[n_i, T, C]`` of the windows, each (but the last) holding
        :meth:`chunk_windows` windows of one or more stretches; each is a view of one buffer
        that the next piece overwrites."""
        per = self.chunk_windows(chunk_bytes)
        buf = np.empty((max(1, min(per, self.shape[0])),) + self.shape[1:], np.float32)
        for lo in range(0, self.shape[0], per):
            yield self.fill(lo, min(lo + per, self.shape[0]), buf)

    def weighted_rows(self, exact: bool = False) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
        """``(rows [k, C], windows holding each row float64 [k])``: summing ``weight @ rows``
        over all of them sums the windows' rows without cutting the windows.

        By default the rows come in blocks of up to :data:`COVERAGE_ROWS` rows that run across
        neighbouring stretches of one recording (the rows :func:`cut_runs` shares), so that a
        split of thousands of short activity runs is summed in a few large steps. Rows between
        them, and rows of dropped windows, weigh 0 there; such a row may hold a value that no
        window holds (NaN, inf), which makes a sum non-finite: ``exact=True`` then gives each
        stretch's held rows only, one block per stretch."""
        if exact:
            yield from self._held_rows()
            return
        window = self.shape[1]
        for rows, starts, first, last in self._row_groups():
            for a in range(first, last, COVERAGE_ROWS):
                b = min(a + COVERAGE_ROWS, last)
                i, j = np.searchsorted(starts, (a - window + 1, b))   # windows touching [a, b)
                yield rows[a:b], windows.coverage(starts[i:j] - a, window, b - a, np.float64)

    def _row_groups(self):
        """``(rows, window starts in rows (sorted), first row, end row)`` per run of
        neighbouring stretches over the same rows (a gap of more than :data:`COVERAGE_ROWS`
        between two starts a new run: its rows would be summed for nothing)."""
        window = self.shape[1]
        group = None
        for p in self.parts:
            rows = p.series if p.shared is None else p.shared
            starts = p.starts + p.offset             # (offset 0 when series is its own)
            first, last = int(starts[0]), int(starts[-1]) + window
            if group is not None and rows is group[0] and first - group[3] <= COVERAGE_ROWS \
                    and first >= group[3] - window:
                group[1].append(starts)
                group[3] = last
                continue
            if group is not None:
                yield group[0], np.concatenate(group[1]), group[2], group[3]
            group = [rows, [starts], first, last]
        if group is not None:
            yield group[0], np.concatenate(group[1]), group[2], group[3]

    def _held_rows(self):
        """Each stretch's rows that some window holds, with their window counts."""
        window = self.shape[1]
        for part in self.parts:
            f = int(part.starts[0])
            n = int(part.starts[-1]) - f + window
            counts = windows.coverage(part.starts - f, window, n, np.float64)
            rows = part.series[f:f + n]
            if counts.min() > 0:
                yield rows, counts
            else:                               # holes: dropped windows, or stride > window
                held = counts > 0
                yield rows[held], counts[held]


def stretches(timestamp_s: np.ndarray, labels: np.ndarray, by_label: bool, rate_hz: float
              ) -> Iterator[Tuple[int, int]]:
    """``(start, stop)`` row ranges to window independently: gap-free segments, split further at
    every change of label when ``by_label`` (as ``prepare`` cuts training windows)."""
    for seg in windows.segments(timestamp_s, rate_hz):
        if not by_label:
            yield seg
            continue
        for run in windows.runs(labels, seg, np.unique(labels[seg[0]:seg[1]])):
            yield run.start, run.stop


def span_labels(labels: np.ndarray, first_row: np.ndarray, last_row: np.ndarray) -> np.ndarray:
    """int64 ``[N]``: the label code of rows ``first_row..last_row`` (inclusive) of each window
    when they all carry the same one, else -2 (the window straddles a change of label)."""
    if first_row.size == 0:
        return np.empty(0, np.int64)
    run_id = np.concatenate(([0], np.cumsum(labels[1:] != labels[:-1])))
    same = run_id[first_row] == run_id[last_row]
    return np.where(same, labels[first_row].astype(np.int64), STRADDLES)


#: :func:`span_labels`' code for a window across a change of label (-1 is "no label").
STRADDLES = -2


# --------------------------------------------------------------------------- streaming
@dataclass
class Rows:
    """Consecutive gap-filled rows of one segment, released by :class:`GapFiller`."""

    segment: int               # segment counter: +1 at every timestamp gap
    timestamp_s: np.ndarray    # float64 [k]
    labels: np.ndarray         # int64 [k] label codes
    values: np.ndarray         # float32 [k, C], the channels being filled


class GapFiller:
    """``windows.fill_gaps`` row by row for ``C`` channels (``hold``: positions held, the rest
    interpolated linearly). :meth:`push` takes raw rows, returns the rows whose values are final;
    :meth:`close` (end of stream) releases the rest. Released values equal ``fill_gaps`` on the
    whole recording bit for bit: interpolation between the same two readings is computed by the
    same ``np.interp`` from offsets that do not depend on where the buffer starts."""

    def __init__(self, channels: int, rate_hz: float, hold: Sequence[int] = ()):
        self.hold = set(hold)
        self.channels = channels
        self.rate_hz = rate_hz
        self.segment = -1
        self._last_ts: Optional[float] = None
        self._reset()

    def _reset(self) -> None:
        self._chunks: List[Tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._pending = 0                                         # rows held back
        self._p0 = 0                                              # segment row of the first
        self._last_known = np.full(self.channels, -1, np.int64)   # segment row, -1: none yet
        self._prior_row = np.full(self.channels, -1, np.int64)    # last released reading
        self._prior_val = np.full(self.channels, np.nan)

    def push(self, timestamp_s: np.ndarray, labels: np.ndarray, values: np.ndarray
             ) -> List[Rows]:
        """Append raw rows (``values [k, C]`` with NaN for missing); return the final ones."""
        out: List[Rows] = []
        if timestamp_s.size == 0:
            return out
        head = [] if self._last_ts is None else [self._last_ts]
        bounds = windows.segments(np.concatenate((head, timestamp_s)), self.rate_hz)
        for a, b in bounds:
            starts_segment = a > 0 or not head     # a timestamp gap before row a, or the first
            a, b = max(a - len(head), 0), b - len(head)
            if b <= a:
                continue
            if starts_segment:
                out += self._release(final=True)
                self._reset()
                self.segment += 1
            self._append(timestamp_s[a:b], labels[a:b], values[a:b])
            out += self._release(final=False)
        self._last_ts = float(timestamp_s[-1])
        return out

    def close(self) -> List[Rows]:
        """End of stream: release every row held back."""
        return self._release(final=True)

    def _append(self, ts: np.ndarray, act: np.ndarray, vals: np.ndarray) -> None:
        vals = np.array(vals, dtype=np.float32)
        known = ~np.isnan(vals)
        has = known.any(axis=0)
        last = vals.shape[0] - 1 - np.argmax(known[::-1], axis=0)
        start = self._p0 + self._pending
        self._last_known[has] = start + last[has]
        self._chunks.append((np.asarray(ts, np.float64), np.asarray(act), vals))
        self._pending += vals.shape[0]

    def _ready(self) -> int:
        """How many held-back rows have final values."""
        end = self._p0 + self._pending          # segment row after the last one held
        limit = self._pending
        for c in range(self.channels):
            last = int(self._last_known[c])
            if last < 0 or last == end - 1:      # never seen (stays NaN) or no trailing NaN
                continue
            if c in self.hold:
                continue                         # held from the last reading
            limit = min(limit, max(last - self._p0 + 1, 0))
        for c in self.hold:                      # before the first reading: wait for it
            if self._last_known[c] < 0:
                limit = 0
        return limit

    def _release(self, final: bool) -> List[Rows]:
        if not self._pending:
            return []
        n = self._pending if final else self._ready()
        if n == 0:
            return []
        ts, act, vals = (np.concatenate(parts) for parts in zip(*self._chunks))
        filled = vals[:n].copy()
        gappy = np.isnan(vals).any(axis=0)
        clean = np.flatnonzero(~gappy)                    # nothing to fill: last row is known
        self._prior_row[clean] = self._p0 + n - 1
        self._prior_val[clean] = vals[n - 1, clean]
        for c in np.flatnonzero(gappy):
            column = vals[:, c]
            known = np.flatnonzero(~np.isnan(column))
            prior = bool(self._prior_row[c] >= 0)
            if c in self.hold:
                held = np.concatenate(([self._prior_val[c]], column)) if prior else column.copy()
                windows.fill_hold(held)
                filled[:, c] = held[len(held) - len(column):][:n]
            elif prior or known.size:
                rows = np.concatenate(([self._prior_row[c] - self._p0], known)) if prior \
                    else known
                readings = column[known].astype(np.float64)
                if prior:
                    readings = np.concatenate(([self._prior_val[c]], readings))
                missing = np.flatnonzero(np.isnan(column[:n]))
                inner = missing[(missing > rows[0]) & (missing < rows[-1])]
                filled[inner, c] = np.interp(inner, rows, readings)
            released = known[known < n]
            if released.size:
                self._prior_row[c] = self._p0 + released[-1]
                self._prior_val[c] = float(column[released[-1]])
        self._chunks = [(ts[n:], act[n:], vals[n:])] if n < len(ts) else []
        self._pending -= n
        self._p0 += n
        return [Rows(self.segment, ts[:n], act[:n], filled)]


@dataclass
class StreamWindow:
    """One window released by :class:`Windower`."""

    x: np.ndarray           # float32 [T, C], not normalized
    timestamp_s: np.ndarray  # float64 [2]: timestamps of its first and last step's rows
    labels: np.ndarray      # int64 [rows]: label codes of the rows from its first to its last step


class Windower:
    """:func:`cut` row by row: fed :class:`Rows` (gap-filled, in order), releases each window of
    each stretch (see :func:`stretches`) once its values are final, in the order and with the
    values that :func:`cut` gives for the whole stretch; windows holding NaN are dropped and
    counted in ``dropped_nan``. Memory: the rows of about one window (plus the filter's reach)."""

    def __init__(self, prep: Preprocessing, stride: Optional[int] = None, by_label: bool = False):
        self.prep, self.by_label = prep, by_label
        self.stride = prep.stride if stride is None else stride
        self.dropped_nan = 0
        self._key = None
        self._new_stretch()

    def _new_stretch(self) -> None:
        self._ts, self._act, self._vals = [], [], []   # chunks of rows from stretch row _b0
        self._b0 = 0            # stretch row of the first buffered row
        self._rows = 0          # stretch rows received
        self._next = 0          # next window's first step

    def push(self, rows: Rows) -> List[StreamWindow]:
        """Add gap-filled rows; return the windows that became final."""
        out: List[StreamWindow] = []
        act = rows.labels
        cuts = [0]
        if self.by_label and act.size:
            cuts += (np.flatnonzero(act[1:] != act[:-1]) + 1).tolist()
        cuts.append(act.size)
        for a, b in zip(cuts[:-1], cuts[1:]):
            if b <= a:
                continue
            key = (rows.segment, int(act[a]) if self.by_label else None)
            if key != self._key:
                out += self.close()
                self._new_stretch()
                self._key = key
            self._ts.append(rows.timestamp_s[a:b])
            self._act.append(act[a:b])
            self._vals.append(rows.values[a:b])
            self._rows += b - a
            out += self._emit(ended=False)
        return out

    def close(self) -> List[StreamWindow]:
        """The current stretch ended (gap, label change or end of stream): release the rest."""
        return self._emit(ended=True) if self._rows else []

    def _emit(self, ended: bool) -> List[StreamWindow]:
        prep, q, T = self.prep, self.prep.downsample, self.prep.window
        reach = prep.reach_rows
        out = []
        while True:
            s = self._next
            last_row = (s + T - 1) * q
            if last_row >= self._rows or (not ended and last_row + reach >= self._rows):
                break
            self._merge()
            ts, act, vals = self._ts[0], self._act[0], self._vals[0]
            if reach:
                x = resample.fir_decimate(vals, q, first=s, count=T, row0=self._b0,
                                          end=self._rows)
            else:
                x = vals[s * q - self._b0:last_row + 1 - self._b0:q]
            first = s * q - self._b0
            if not np.isfinite(x).all():              # as windows.complete_starts
                self.dropped_nan += 1
            else:
                out.append(StreamWindow(np.ascontiguousarray(x, dtype=np.float32),
                                        ts[[first, last_row - self._b0]],
                                        act[first:last_row - self._b0 + 1]))
            self._next += self.stride
            self._trim()
        return out

    def _merge(self) -> None:
        if len(self._vals) > 1:
            self._ts, self._act, self._vals = ([np.concatenate(p)] for p in
                                               (self._ts, self._act, self._vals))

    def _trim(self) -> None:
        """Drop the rows no later window reads (the filter reads ``reach_rows`` before too)."""
        keep = max(0, self._next * self.prep.downsample - self.prep.reach_rows)
        drop = keep - self._b0
        if drop <= 0:
            return
        self._merge()
        self._ts, self._act, self._vals = ([p[0][drop:]] for p in
                                           (self._ts, self._act, self._vals))
        self._b0 = keep
