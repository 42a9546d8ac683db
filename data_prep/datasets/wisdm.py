"""``wisdm``: the WISDM Activity Prediction dataset v1.1 (Kwapisz, Weiss & Moore 2010).

One text file, ``WISDM_ar_v1.1/WISDM_ar_v1.1_raw.txt``: a record per ``;``, usually one per line,
``user,activity,timestamp,x,y,z;`` -- 36 users, 6 activities (Walking, Jogging, Upstairs,
Downstairs, Sitting, Standing), a phone in the front trouser pocket sampling its accelerometer at
20 Hz; x, y, z in m/s² (the readme: "10 = 1 g"), the timestamp in nanoseconds of the phone's
uptime.

The file has known flaws, which are counted, skipped and reported (``meta.json["dropped"]``),
never fatal: several records on one line; a ``,`` before the ``;`` (not a value); records cut
short or with an empty value; values that are not numbers; timestamps of 0; timestamps that
repeat or go back.

Time: the phone's timestamps jitter (steps well off the nominal 50 ms are common), so, as the
literature's loaders do, a user's records are taken as evenly spaced at 20 Hz in file order. A
step back in time or a pause longer than :data:`MAX_STEP_S` starts a new part of the user's
recording (a gap no window crosses; :class:`_Clock`); a repeated timestamp or one of 0 drops its
record.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from data_prep.datasets.base import (
    Archive,
    Channel,
    ClassSpec,
    Dataset,
    Recording,
    RecordingOptions,
    RowParser,
    array_to_numpy,
    columns_into,
    to_numpy,
)
from data_prep.sources import Source, file_source, has_content, visible_files
from harkit.errors import HarError

RATE_HZ = 20.0
FILE_NAME = "WISDM_ar_v1.1_raw.txt"
DATASET_DIR = "WISDM_ar_v1.1"
ACTIVITIES: Tuple[str, ...] = ("Walking", "Jogging", "Upstairs", "Downstairs", "Sitting",
                               "Standing")
USERS: Tuple[int, ...] = tuple(range(1, 37))
CHANNELS: Tuple[str, ...] = ("acc_x", "acc_y", "acc_z")
#: How many offending line numbers ``meta.json`` keeps per cause.
REPORTED_LINES = 5
#: A step between a user's consecutive records longer than this (seconds), or backwards in
#: time, starts a new recording; shorter steps are jitter of the nominal 1 / RATE_HZ.
MAX_STEP_S = 1.0
_INT64 = (-(1 << 63), (1 << 63) - 1)


@dataclass(frozen=True)
class WisdmOptions(RecordingOptions):
    pass


class Wisdm(Dataset):
    name = "wisdm"
    title = "WISDM Activity Prediction v1.1: 36 users, a phone's accelerometer at 20 Hz"
    layout = f"{DATASET_DIR}/{FILE_NAME} (or that file, or a folder above it)"
    rate_hz = RATE_HZ
    subjects_from = "the user column (1-36)"
    options = WisdmOptions
    cacheable = True
    streams = True
    archive = Archive("https://www.cis.fordham.edu/wisdm/includes/datasets/latest/"
                      "WISDM_ar_latest.tar.gz", DATASET_DIR, FILE_NAME, "WISDM_ar_latest.tar.gz",
                      FILE_NAME)

    def detect(self, path: Path) -> bool:
        path = Path(path)
        if path.is_file():
            return path.name == FILE_NAME
        return bool(_find(path))

    def all_channels(self) -> List[Channel]:
        return [Channel(c, "phone (trouser pocket)", "acc", "m/s^2") for c in CHANNELS]

    def channels(self, opts) -> List[Channel]:
        return self.all_channels()

    def classes(self, opts) -> List[ClassSpec]:
        return [ClassSpec(a, a) for a in ACTIVITIES]

    def validate(self, opts) -> None:
        for opt, subjects in (("--val-subjects", opts.val_subjects),
                              ("--test-subjects", opts.test_subjects)):
            bad = [s for s in subjects if s not in USERS]
            if bad:
                raise HarError(f"{opt}: {bad} are not WISDM users; choose among 1-36")

    def sources(self, path: Path, opts) -> List[Source]:
        return self.recording_sources(Path(path))

    def recording_sources(self, path: Path) -> List[Source]:
        if not path.exists():
            raise HarError(f"{path} does not exist; pass the WISDM_ar_v1.1 folder or its "
                           f"{FILE_NAME} (get it with 'har download wisdm DEST')")
        files = [path] if path.is_file() else _find(path)
        if not files:
            raise HarError(f"no {FILE_NAME} under {path}/; pass the WISDM_ar_v1.1 folder or the "
                           "raw file")
        return [file_source(f) for f in files]

    def parse(self, data, source: Source, opts, buffers=None, for_prepare: bool = True
              ) -> List[Recording]:
        if not has_content(data):
            raise HarError(f"{source.name} is empty; download it again")
        parsed = parse_records(data)
        if not parsed.user.size:
            raise HarError(f"{source.name} holds no WISDM record (user,activity,timestamp,x,y,"
                           "z;); is it the WISDM v1.1 raw file?")
        return _recordings(parsed, source)

    def row_parser(self, opts, name: str) -> RowParser:
        return _Rows(name)


DATASET = Wisdm()


def _find(folder: Path) -> List[Path]:
    return [f for f in visible_files(folder, FILE_NAME)][:1]


# --------------------------------------------------------------------------- parsing
@dataclass
class Records:
    """Parsed records in file order, and what was skipped (by cause: count, first lines)."""

    user: np.ndarray          # int64 [n]
    activity: np.ndarray      # int64 [n], index into ACTIVITIES
    timestamp_ns: np.ndarray  # int64 [n]
    xyz: np.ndarray           # float32 [n, 3]
    skipped: Dict[str, Dict[str, object]]


def parse_records(data, first_line: int = 1) -> Records:
    """Every record of the raw text (``bytes`` or any buffer, e.g. a memory map); malformed
    ones are skipped and counted by cause with the first :data:`REPORTED_LINES` line numbers:
    ``cut_short`` (fewer than 6 fields; a ``,`` right before the ``;`` is not a field),
    ``too_many_fields``, ``empty_value`` (a field empty, or a value NaN), ``not_a_number`` (or
    a whole number out of the int64 range), ``unknown_activity``. Line numbers count from
    ``first_line``.

    The fast path makes each record a CSV line (``;`` -> newline, a ``,`` before it dropped,
    byte offsets kept) for pyarrow, which skips rows with the wrong field count; a
    value that is not a number sends the whole text to the record-by-record path
    (:func:`_parse_slowly`), which counts the same causes."""
    import pyarrow as pa

    text = _records_as_lines(data)
    bad: Dict[str, List[str]] = {"cut_short": [], "too_many_fields": []}
    try:
        table = _read_lines(text, bad)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return _parse_slowly(bytes(data), first_line)
    finder = _LineFinder(data, first_line)
    counts = {cause: len(rows) for cause, rows in bad.items()}
    first_bad = _first_bad_rows(text, bad)
    del text
    lines: Dict[str, List[int]] = {
        cause: finder.lines([r.encode() for r in rows], whole=True,
                            ordered=counts[cause] > len(rows))
        for cause, rows in first_bad.items() if rows}
    user = to_numpy(table.column("user"))
    stamp = to_numpy(table.column("timestamp"))
    xyz = np.empty((table.num_rows, 3), np.float32)
    columns_into([table.column(c) for c in "xyz"], xyz)
    activity = _activity_codes(table.column("activity"))
    del table
    with np.errstate(invalid="ignore"):
        empty = np.isnan(xyz[:, 0] + xyz[:, 1] + xyz[:, 2])   # NaN when a value is (or inf-inf)
    maybe = np.flatnonzero(empty)
    empty[maybe] = np.isnan(xyz[maybe]).any(axis=1)          # only a NaN value makes it empty
    empty |= activity == NO_ACTIVITY
    for column in (user, stamp):                      # float only when a value is missing
        if column.dtype.kind == "f":
            empty |= np.isnan(column)
    unknown = (activity < 0) & ~empty
    for cause, mask in (("empty_value", empty), ("unknown_activity", unknown)):
        if mask.any():                                 # (the table is in file order)
            counts[cause] = int(mask.sum())
            lines[cause] = finder.lines([b",%d," % int(stamp[i]) if stamp[i] == stamp[i]
                                         else b",," for i in np.flatnonzero(mask)[:REPORTED_LINES]],
                                        holds=_has_empty_value if cause == "empty_value"
                                        else _has_unknown_activity)
    skipped = {cause: {"records": counts[cause], "lines": lines[cause]}
               for cause in ("cut_short", "too_many_fields", "empty_value", "unknown_activity")
               if cause in lines}
    keep = ~(empty | unknown)
    if keep.all():
        return Records(user.astype(np.int64, copy=False), activity,
                       stamp.astype(np.int64, copy=False), xyz, skipped)
    return Records(np.asarray(user[keep], np.int64), activity[keep],
                   np.asarray(stamp[keep], np.int64), xyz[keep], skipped)


_COLUMNS = ["user", "activity", "timestamp", "x", "y", "z"]


def _read_lines(text: np.ndarray, bad: Dict[str, List[str]], ordered: bool = False):
    """``text`` (records as lines) as a pyarrow table; rows with too few or too many fields go
    into ``bad`` (a line of blanks is not a record). ``ordered``: the streaming reader, which
    reports them in file order; else the parallel one (faster, any order)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    def invalid(row):
        if row.text.strip():
            bad["cut_short" if row.actual_columns < 6 else "too_many_fields"].append(row.text)
        return "skip"

    options = dict(
        read_options=pacsv.ReadOptions(column_names=_COLUMNS),
        parse_options=pacsv.ParseOptions(invalid_row_handler=invalid),
        convert_options=pacsv.ConvertOptions(
            column_types={"user": pa.int64(), "timestamp": pa.int64(),
                          "activity": pa.dictionary(pa.int32(), pa.string()),
                          "x": pa.float32(), "y": pa.float32(), "z": pa.float32()},
            null_values=[""], strings_can_be_null=True))
    if ordered:
        return pacsv.open_csv(pa.py_buffer(text), **options).read_all()
    return pacsv.read_csv(pa.py_buffer(text), **options)


def _first_bad_rows(text: np.ndarray, bad: Dict[str, List[str]]) -> Dict[str, List[str]]:
    """Per cause, the first :data:`REPORTED_LINES` bad rows in file order when there are more
    (found by parsing, in order, a prefix of the text that grows until it holds that many of
    each), else all of them, in any order."""
    wanted = {cause for cause, rows in bad.items() if len(rows) > REPORTED_LINES}
    size = 1 << 20
    while wanted:
        end = text.size                                      # the prefix ends a line
        if size < text.size:
            newlines = np.flatnonzero(text[:size] == ord("\n"))
            if not newlines.size:
                size *= 4
                continue
            end = int(newlines[-1]) + 1
        found: Dict[str, List[str]] = {cause: [] for cause in bad}
        _read_lines(text[:end], found, ordered=True)
        if end == text.size or all(len(found[c]) >= REPORTED_LINES for c in wanted):
            return {c: (found[c] if c in wanted else rows)[:REPORTED_LINES]
                    for c, rows in bad.items()}
        size *= 4
    return bad


def _records_as_lines(data, block: int = 1 << 20) -> np.ndarray:
    """The raw text with every ``;`` made a newline and a ``,`` right before one dropped (made
    a newline too: empty lines are skipped), byte offsets kept: uint8 ``[len(data)]``.

    Vectorized a block at a time, so that the temporaries stay in the cache and only the
    result is new memory: 2-3x faster than ``bytes.replace`` (which stops at every comma of
    the text) and ``bytes.translate``, each of which makes a whole copy."""
    raw = np.frombuffer(data, np.uint8)
    text = np.empty_like(raw)
    semicolon = np.empty(block + 1, bool)
    newline = np.empty(block, bool)
    for lo in range(0, raw.size, block):
        hi = min(lo + block, raw.size)
        n, ahead = hi - lo, min(hi + 1, raw.size) - lo
        np.equal(raw[lo:lo + ahead], ord(";"), out=semicolon[:ahead])
        semicolon[ahead:n + 1] = False
        np.equal(raw[lo:hi], ord(","), out=newline[:n])       # a "," before a ";" ...
        newline[:n] &= semicolon[1:n + 1]
        newline[:n] |= semicolon[:n]                           # ... and every ";"
        np.copyto(text[lo:hi], raw[lo:hi])
        np.copyto(text[lo:hi], np.uint8(ord("\n")), where=newline[:n])
    return text


NO_ACTIVITY = -2


def _activity_codes(column) -> np.ndarray:
    """int64 index into ACTIVITIES of each record (-1: another label; NO_ACTIVITY: empty)."""
    index = {a: i for i, a in enumerate(ACTIVITIES)}
    column = column.unify_dictionaries() if column.num_chunks > 1 else column
    if not column.num_chunks:
        return np.empty(0, np.int64)
    names = column.chunks[0].dictionary.to_pylist()
    lookup = np.array([index.get(n, -1) if n.strip() else NO_ACTIVITY for n in names]
                      + [NO_ACTIVITY], np.int64)
    codes = np.concatenate([array_to_numpy(c.indices) for c in column.chunks])
    if codes.dtype.kind == "f":  # some records have no activity
        codes = np.where(np.isnan(codes), len(names), codes)
    return lookup[codes.astype(np.int64)]


def _has_empty_value(fields: List[bytes]) -> bool:
    """A record of 6 fields with an empty one or a NaN value (``empty_value``)."""
    return len(fields) == 6 and any(not f.strip() or f.strip().lower() == b"nan"
                                    for f in fields)


def _has_unknown_activity(fields: List[bytes]) -> bool:
    """A record of 6 fields whose activity is not one of WISDM's (``unknown_activity``)."""
    return len(fields) == 6 and fields[1].strip().decode("utf-8", "replace") not in ACTIVITIES


class _LineFinder:
    """File line numbers of reported records, looked up only when asked: each record is
    searched for, and the newlines before them counted in one forward pass."""

    def __init__(self, data, first_line: int) -> None:
        self.data, self.first_line = data, first_line
        self.raw = np.frombuffer(data, np.uint8)

    def lines(self, needles: List[bytes], whole: bool = False, ordered: bool = True,
              holds: Optional[Callable[[List[bytes]], bool]] = None) -> List[int]:
        """The lines of occurrences of ``needles``, in file order. ``ordered``: the needles are
        in file order (each is searched for after the one before); else each is found from the
        start (a repeated one at its next occurrence) and the lines come sorted. ``whole``: a
        needle is a whole record (it starts the text or follows a ``;`` or newline, and a
        ``;``, ``,;`` or the line's end follows it), not part of a longer one. ``holds``: only
        an occurrence inside a record whose fields pass it counts (a timestamp also appears in
        the records around a flawed one)."""
        offsets, after = [], {}
        for needle in needles:
            pos = after.get(needle, 0) if not ordered else (
                offsets[-1][1] if offsets else 0)
            found = self.data.find(needle, pos)
            while found >= 0 and (whole and not self._whole(found, len(needle))
                                  or holds is not None and not holds(self._fields(found))):
                found = self.data.find(needle, found + 1)
            found = max(found, 0)                          # (cannot fail: the text has it)
            offsets.append((found, found + len(needle)))
            after[needle] = found + len(needle)
        out, line, at = [], self.first_line, 0
        for offset in sorted(o for o, _ in offsets):
            for lo in range(at, offset, 1 << 22):          # in pieces: no text-sized temporary
                line += int(np.count_nonzero(self.raw[lo:min(lo + (1 << 22), offset)]
                                             == ord("\n")))
            out.append(line)
            at = max(at, offset)
        return out

    def _fields(self, offset: int) -> List[bytes]:
        """The fields of the record holding byte ``offset`` (a ``,`` before its ``;`` is not
        a field)."""
        start = max(self.data.rfind(b"\n", 0, offset), self.data.rfind(b";", 0, offset)) + 1
        ends = [e for e in (self.data.find(b";", offset), self.data.find(b"\n", offset))
                if e >= 0]
        fields = bytes(self.data[start:min(ends) if ends else len(self.data)]).split(b",")
        if len(fields) == 7 and not fields[-1].strip():
            fields.pop()
        return fields

    def _whole(self, offset: int, size: int) -> bool:
        before = self.raw[offset - 1] if offset else ord("\n")
        after = bytes(self.raw[offset + size:offset + size + 2])
        return before in b";\n" and (after[:1] in b";\n\r " or after == b",;")


def _parse_slowly(data: bytes, first_line: int = 1) -> Records:
    """:func:`parse_records` record by record, for text pyarrow cannot convert (a value that
    is not a number): the same records and causes, with exact line numbers."""
    users, acts, stamps, values = [], [], [], []
    skipped: Dict[str, Dict[str, object]] = {}
    index = {a: i for i, a in enumerate(ACTIVITIES)}

    def skip(cause: str, number: int) -> None:
        entry = skipped.setdefault(cause, {"records": 0, "lines": []})
        entry["records"] += 1
        if len(entry["lines"]) < REPORTED_LINES:
            entry["lines"].append(number)

    for number, raw in enumerate(data.split(b"\n"), start=first_line):
        pieces = raw.split(b";")
        for k, record in enumerate(pieces):
            record = record.strip()
            if not record:
                continue
            if record.endswith(b",") and k < len(pieces) - 1:    # the "," of ",;"
                record = record[:-1]
            fields = [f.strip() for f in record.split(b",")]
            if len(fields) != 6:
                skip("cut_short" if len(fields) < 6 else "too_many_fields", number)
                continue
            if not all(fields):
                skip("empty_value", number)
                continue
            try:
                user, stamp = int(fields[0]), int(fields[2])
                xyz = [float(f) for f in fields[3:]]
            except ValueError:
                skip("not_a_number", number)
                continue
            if not all(_INT64[0] <= v <= _INT64[1] for v in (user, stamp)):
                skip("not_a_number", number)
                continue
            if any(v != v for v in xyz):
                skip("empty_value", number)
                continue
            activity = index.get(fields[1].decode("utf-8", "replace"))
            if activity is None:
                skip("unknown_activity", number)
                continue
            users.append(user)
            acts.append(activity)
            stamps.append(stamp)
            values.append(xyz)
    return Records(np.array(users, np.int64), np.array(acts, np.int64),
                   np.array(stamps, np.int64), np.array(values, np.float32).reshape(-1, 3),
                   skipped)


def _recordings(parsed: Records, source: Source) -> List[Recording]:
    """One recording per user, records in file order, timed by :class:`_Clock`: evenly at
    RATE_HZ within a part, and a gap no window crosses wherever the time goes back or pauses
    for more than MAX_STEP_S. Records with a timestamp of 0 or one that repeats the previous
    are dropped, as are parts of a single record. The file's counts by cause go on its first
    recording (``dropped``), the first lines of each in ``extra``."""
    out = []
    dropped: Dict[str, int] = {c: int(v["records"]) for c, v in parsed.skipped.items()}
    # Rows grouped by user, file order kept within each (a stable sort: the file holds each
    # user's records in long stretches, which it merges in linear time).
    order = np.argsort(parsed.user, kind="stable")
    bounds = np.flatnonzero(np.diff(parsed.user[order])) + 1
    for rows in np.split(order, bounds) if order.size else []:
        user = int(parsed.user[rows[0]])
        t = parsed.timestamp_ns[rows]
        zero = t == 0
        repeat = np.zeros(rows.size, bool)
        repeat[1:] = t[1:] == t[:-1]
        _count(dropped, "zero_timestamp", zero.sum())
        _count(dropped, "repeated_timestamp", (repeat & ~zero).sum())
        keep = rows[~zero & ~repeat]
        first = np.concatenate(([0], np.flatnonzero(_new_part(
            np.diff(parsed.timestamp_ns[keep]))) + 1))              # each part's first row
        size = np.diff(np.concatenate((first, [keep.size])))
        _count(dropped, "single_record_part", int((size == 1).sum()))
        if (size == 1).any():
            keep = keep[np.repeat(size > 1, size)]
            first = np.concatenate(([0], np.cumsum(size[size > 1])[:-1]))
        if not keep.size:
            continue
        new_part = np.zeros(keep.size, bool)
        new_part[first] = True
        seconds = _Clock().times(parsed.timestamp_ns[keep], new_part)
        if keep[-1] - keep[0] + 1 == keep.size:                  # consecutive rows: views
            keep = slice(int(keep[0]), int(keep[-1]) + 1)
        out.append(Recording(
            f"{source.name}#user{user}", user, seconds, parsed.xyz[keep], CHANNELS,
            parsed.activity[keep], ACTIVITIES, RATE_HZ, even=True, size=source.size,
            extra={"user": user, "parts": int(first.size)}))
    if out:
        out[0].dropped = dropped
        if parsed.skipped:
            out[0].extra["first_lines_skipped"] = {c: v["lines"]
                                                   for c, v in parsed.skipped.items()}
    return out


class _Clock:
    """Seconds of one stream of kept records (a user's, in file order), fed in pieces: a part
    starts at its first record's own time, or MAX_STEP_S + 1 / RATE_HZ after the previous
    record when its own time is not later than that (the clock went back, or the even grid ran
    ahead of the jittery one); within a part records are 1 / RATE_HZ apart."""

    def __init__(self) -> None:
        self.start: Optional[float] = None     # seconds of the current part's first record
        self.count = 0                         # records of the current part so far

    def times(self, raw_ns: np.ndarray, new_part: np.ndarray) -> np.ndarray:
        """float64 seconds ``[n]`` of records with raw timestamps ``raw_ns`` (ns) and
        ``new_part`` (bool: the record starts a part; the first one ever always does)."""
        out = np.empty(raw_ns.size)
        starts = np.flatnonzero(new_part).tolist()
        bounds = sorted(set([0] + starts + [raw_ns.size]))
        for a, b in zip(bounds[:-1], bounds[1:]):
            if self.start is None or new_part[a]:
                own = raw_ns[a] * 1e-9
                if self.start is not None:
                    end = self.start + (self.count - 1) / RATE_HZ
                    own = max(own, end + MAX_STEP_S + 1.0 / RATE_HZ)
                self.start, self.count = own, 0
            out[a:b] = self.start + (self.count + np.arange(b - a)) / RATE_HZ
            self.count += b - a
        return out


def _new_part(step_ns: np.ndarray) -> np.ndarray:
    """Which steps between consecutive records start a new part: back in time, or a pause."""
    return (step_ns < 0) | (step_ns > MAX_STEP_S * 1e9)


def _count(counts: Dict[str, int], cause: str, n) -> None:
    if n:
        counts[cause] = counts.get(cause, 0) + int(n)


class _Rows(RowParser):
    """Streaming WISDM text: records of any user, in order, as rows (the user is ignored),
    timed like :func:`_recordings` (:class:`_Clock`): evenly at RATE_HZ, a pause or a step
    back a gap."""

    channels = CHANNELS
    rate_hz = RATE_HZ

    def __init__(self, name: str) -> None:
        self.name, self.line = name, 1
        self.label_names = list(ACTIVITIES)
        self._last: Optional[int] = None        # raw timestamp of the previous record
        self._kept: Optional[int] = None        # ... of the previous record kept
        self._clock = _Clock()
        self.skipped: Dict[str, Dict[str, object]] = {}

    def parse(self, data: bytes):
        first, self.line = self.line, self.line + data.count(b"\n")
        parsed = parse_records(data, first)
        for cause, entry in parsed.skipped.items():
            mine = self.skipped.setdefault(cause, {"records": 0, "lines": []})
            mine["records"] += entry["records"]
            mine["lines"] = (mine["lines"] + entry["lines"])[:REPORTED_LINES]
        t = parsed.timestamp_ns
        previous = np.concatenate(([-1 if self._last is None else self._last], t[:-1]))
        keep = (t != 0) & (t != previous)
        if t.size:
            self._last = int(t[-1])
        t = t[keep]
        if not t.size:
            return np.empty(0), parsed.activity[keep], parsed.xyz[keep]
        before = t[0] if self._kept is None else self._kept
        gap = _new_part(np.diff(np.concatenate(([before], t))))
        seconds = self._clock.times(t, gap)
        self._kept = int(t[-1])
        return seconds, parsed.activity[keep], parsed.xyz[keep]
