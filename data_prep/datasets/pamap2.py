"""PAMAP2 Physical Activity Monitoring (UCI #231): schema, row rules, parser, discovery.

The one place for PAMAP2's column table, activity table and file layout. Source: the data set's
readme. Each ``subjectNNN.dat`` is space-separated text, 54 columns per row, 100 Hz, missing
values written ``NaN``:

====== ==========================================================
column meaning (1-based)
====== ==========================================================
1      timestamp (s)
2      activityID (0 = transient, see ``ACTIVITIES``)
3      heart rate (bpm, ~9 Hz; ``NaN`` between readings)
4-20   IMU hand  (17 columns, see ``IMU_FIELDS``)
21-37  IMU chest
38-54  IMU ankle
====== ==========================================================

An IMU block is: temperature (°C), 3D acceleration ±16 g (m/s²), 3D acceleration ±6 g (m/s²),
3D gyroscope (rad/s), 3D magnetometer (μT), orientation (4 values, marked invalid by the readme
and therefore never used).

The fast parse hands a file's bytes to pyarrow's multi-threaded CSV reader (the 40 useful
columns, orientation skipped). Only when pyarrow rejects a file does a line-by-line scan run
(:func:`row_error`), to name the exact line and the fix; the streaming parser uses the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from data_prep.datasets.base import (
    Archive,
    Channel,
    ClassSpec,
    Dataset,
    Recording,
    RecordingOptions,
    RowParser,
    option,
    to_numpy,
)
from data_prep.sources import Source, file_source, has_content, visible_files
from harkit.errors import HarError

SAMPLE_RATE_HZ = 100.0
HEART_RATE_HZ = 9.0
NUM_COLUMNS = 54
SUBJECTS: Tuple[int, ...] = tuple(range(101, 110))
FILE_PATTERN = "subject*.dat"
PROTOCOL_DIR = "Protocol"
OPTIONAL_DIR = "Optional"
DATASET_DIR = "PAMAP2_Dataset"

SENSORS: Tuple[str, ...] = ("hand", "chest", "ankle")
AXES: Tuple[str, ...] = ("x", "y", "z")
MODALITIES: Tuple[str, ...] = ("acc16", "acc6", "gyro", "mag")
UNITS: Dict[str, str] = {"acc16": "m/s^2", "acc6": "m/s^2", "gyro": "rad/s", "mag": "uT",
                         "temperature": "degC", "heart_rate": "bpm"}

#: The 17 columns of one IMU block, in file order: (field, number of columns).
IMU_FIELDS: Tuple[Tuple[str, int], ...] = (
    ("temperature", 1),
    ("acc16", 3),
    ("acc6", 3),
    ("gyro", 3),
    ("mag", 3),
    ("orientation", 4),
)


def _build_columns() -> List[str]:
    names = ["timestamp", "activity_id", "heart_rate"]
    for sensor in SENSORS:
        for field_name, width in IMU_FIELDS:
            if width == 1:
                names.append(f"{sensor}_{field_name}")
            elif field_name == "orientation":
                names.extend(f"{sensor}_orientation_{i}" for i in range(width))
            else:
                names.extend(f"{sensor}_{field_name}_{axis}" for axis in AXES)
    return names


#: All 54 column names in file order (0-based index = position in a row).
COLUMNS: Tuple[str, ...] = tuple(_build_columns())
assert len(COLUMNS) == NUM_COLUMNS
COLUMN_INDEX: Dict[str, int] = {name: i for i, name in enumerate(COLUMNS)}

#: Activity ID → name, as in the readme.
ACTIVITIES: Dict[int, str] = {
    0: "transient",
    1: "lying",
    2: "sitting",
    3: "standing",
    4: "walking",
    5: "running",
    6: "cycling",
    7: "Nordic walking",
    9: "watching TV",
    10: "computer work",
    11: "car driving",
    12: "ascending stairs",
    13: "descending stairs",
    16: "vacuum cleaning",
    17: "ironing",
    18: "folding laundry",
    19: "house cleaning",
    20: "playing soccer",
    24: "rope jumping",
}
TRANSIENT_ID = 0
PROTOCOL_ACTIVITIES: Tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 12, 13, 16, 17, 24)
OPTIONAL_ACTIVITIES: Tuple[int, ...] = (9, 10, 11, 18, 19, 20)
#: Label names indexed by activity ID (a parsed row's label code is its activityID).
LABEL_NAMES: Tuple[str, ...] = tuple(ACTIVITIES.get(i, f"activity {i}")
                                     for i in range(max(ACTIVITIES) + 1))

#: Rows per subject in the real Protocol folder (2,872,533 in all, ~1.3 GB of text).
PROTOCOL_ROWS: Dict[int, int] = {
    101: 376_417, 102: 447_000, 103: 252_833, 104: 329_576, 105: 374_783,
    106: 361_817, 107: 313_599, 108: 408_031, 109: 8_477,
}
#: Subjects that have a recording in the real Optional folder.
OPTIONAL_SUBJECTS: Tuple[int, ...] = (101, 105, 106, 108, 109)


def channel_name(sensor: str, modality: str, axis: str) -> str:
    """Column name of one IMU channel, e.g. ``hand_acc16_x``."""
    return f"{sensor}_{modality}_{axis}"


def imu_channels(sensors=SENSORS, modalities=MODALITIES) -> List[str]:
    """IMU channel names in file order for the chosen sensors and modalities."""
    return [channel_name(s, m, a) for s in SENSORS if s in sensors
            for m in MODALITIES if m in modalities for a in AXES]


#: Columns kept by the parser and its cache: everything except the invalid orientation columns.
#: Order: timestamp, activity_id, heart_rate, then per sensor temperature + 12 IMU channels.
PARSED_COLUMNS: Tuple[str, ...] = tuple(c for c in COLUMNS if "orientation" not in c)
#: Float signal columns of a parsed recording (everything after timestamp and activity_id).
SIGNAL_COLUMNS: Tuple[str, ...] = PARSED_COLUMNS[2:]


def subject_id(filename: str) -> int:
    """``subject101.dat`` → 101."""
    stem = filename.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return int(stem[len("subject"):])


def _channel(name: str) -> Channel:
    if name == "heart_rate":
        return Channel(name, "chest strap", "heart_rate", UNITS["heart_rate"], fill="hold")
    sensor, modality = name.split("_")[:2]
    return Channel(name, sensor, modality, UNITS[modality])


# --------------------------------------------------------------------------- row rules
# What makes a PAMAP2 text line valid, and the messages that say why one is not: the whole-file
# parser and the streaming parser both use these. Blank lines are skipped everywhere; line
# numbers count every line of the text.
def first_bad_row(timestamp_s: np.ndarray, activity: np.ndarray) -> Optional[int]:
    """Index of the first data row whose timestamp is missing or whose activityID is not one of
    :data:`ACTIVITIES`, else None."""
    bad = np.flatnonzero(~np.isfinite(timestamp_s) | ~np.isin(activity, list(ACTIVITIES)))
    return int(bad[0]) if bad.size else None


def row_error(data: bytes, name: str, first_line: int = 1, row: Optional[int] = None,
              ) -> HarError:
    """The error for the first malformed line of the text ``data`` (wrong column count, a
    value that is not a number), or with ``row`` for that data row's bad timestamp or activity
    (see :func:`first_bad_row`); ``first_line`` is the number of ``data``'s first line."""
    lines = bytes(data).split(b"\n")
    ends_with_newline = lines[-1] == b""
    if ends_with_newline:
        lines = lines[:-1]
    seen = -1
    for number, raw in enumerate(lines, start=first_line):
        tokens = raw.split()
        if not tokens:
            continue
        seen += 1
        where = f"{name} line {number}"
        if len(tokens) != NUM_COLUMNS:
            last = number == first_line + len(lines) - 1
            if last and not ends_with_newline and len(tokens) < NUM_COLUMNS:
                return HarError(f"{where}: truncated last line ({len(tokens)} of {NUM_COLUMNS} "
                                "columns); re-download the file or delete the line")
            return HarError(f"{where}: {len(tokens)} columns, expected {NUM_COLUMNS} "
                            "(space-separated PAMAP2 format); fix or delete the line")
        values = []
        for col, token in enumerate(tokens, start=1):
            try:
                values.append(float(token))
            except ValueError:
                text = token.decode("utf-8", "replace")[:20]
                return HarError(f"{where}, column {col} ({COLUMNS[col - 1]}): {text!r} is not "
                                "a number; missing values must be written NaN")
        if row is not None and seen == row:
            if not np.isfinite(values[0]):
                return HarError(f"{where}: the timestamp (column 1) is missing; every row needs "
                                "one; fix or delete the line")
            return HarError(f"{where}: activityID (column 2) is {values[1]:g}, not one of "
                            f"{sorted(ACTIVITIES)}; fix or delete the line")
    return HarError(f"{name} line {first_line}: not PAMAP2 text ({NUM_COLUMNS} space-separated "
                    "numbers per line); check the file")


# --------------------------------------------------------------------------- parsing
def parse_bytes(data, name: str, buffers=None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The bytes of one ``.dat`` file → ``(timestamp float64 [n], activityID int64 [n],
    signals float32 [n, 40] column-major in SIGNAL_COLUMNS order, NaN where missing)``.
    ``buffers`` (a :class:`data_prep.read.SignalBuffers`) supplies pooled memory."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if not has_content(data):
        raise HarError(f"{name} is empty; re-download it or remove it from the folder")
    float32 = pa.float32()
    types = {c: float32 for c in SIGNAL_COLUMNS}
    types["timestamp"] = pa.float64()
    types["activity_id"] = pa.float64()      # validated below, then cast
    try:
        # null_values=[]: the float parser reads "NaN" as NaN itself, so no null handling.
        table = pacsv.read_csv(
            pa.py_buffer(data),
            read_options=pacsv.ReadOptions(column_names=list(COLUMNS)),
            parse_options=pacsv.ParseOptions(delimiter=" "),
            convert_options=pacsv.ConvertOptions(
                include_columns=list(PARSED_COLUMNS), column_types=types,
                null_values=[], strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        raise row_error(data, name) from None
    timestamp = column(table, "timestamp")
    activity = column(table, "activity_id")
    # Column-major [n, 40]: each parsed column is copied in contiguously, and the later
    # per-channel work (gap filling, channel selection) reads contiguous memory.
    width = len(SIGNAL_COLUMNS)
    signals = (buffers.take(table.num_rows, width) if buffers is not None
               else np.empty((width, table.num_rows), dtype=np.float32).T)
    for j, col in enumerate(SIGNAL_COLUMNS):
        column(table, col, out=signals[:, j])
    bad = first_bad_row(timestamp, activity)
    if bad is not None:
        raise row_error(data, name, row=bad)
    return timestamp, activity.astype(np.int64), signals


def column(table, name: str, out: Optional[np.ndarray] = None) -> np.ndarray:
    """One pyarrow table column as a numpy array (copied into ``out`` when given)."""
    return to_numpy(table.column(name), out)


_SIGNAL_INDEX = [COLUMN_INDEX[c] for c in SIGNAL_COLUMNS]


class _Rows(RowParser):
    """Streaming: complete PAMAP2 text lines → rows.

    Numbers are read as float64, then rounded to float32: the value pyarrow's direct float32
    parse gives whenever a number has at most 8 digits after the decimal point (PAMAP2 has at
    most 7), since no float64 rounding can then cross a float32 midpoint. numpy is used rather
    than pyarrow because it costs ~0.1 ms instead of ~1 ms per few lines."""

    channels = SIGNAL_COLUMNS
    rate_hz = SAMPLE_RATE_HZ

    def __init__(self, name: str) -> None:
        self.name, self.line = name, 1
        self.label_names = list(LABEL_NAMES)

    def parse(self, data: bytes):
        first, self.line = self.line, self.line + data.count(b"\n")
        rows = [tokens for tokens in (line.split() for line in data.split(b"\n")) if tokens]
        if any(len(tokens) != NUM_COLUMNS for tokens in rows):
            raise row_error(data, self.name, first)
        try:
            values = np.array([t for tokens in rows for t in tokens], dtype=np.float64)
        except ValueError:
            raise row_error(data, self.name, first) from None
        values = values.reshape(-1, NUM_COLUMNS)
        ts, act = values[:, 0], values[:, 1]
        bad = first_bad_row(ts, act)
        if bad is not None:
            raise row_error(data, self.name, first, row=bad)
        return ts.copy(), act.astype(np.int64), values[:, _SIGNAL_INDEX].astype(np.float32)


# --------------------------------------------------------------------------- the adapter
@dataclass(frozen=True)
class Pamap2Options(RecordingOptions):
    sensors: List[str] = option("Comma-separated subset of hand,chest,ankle.")
    modalities: List[str] = option("Comma-separated subset of acc16,acc6,gyro,mag.")
    heart_rate: bool = option("Add the heart-rate channel (held between readings).")
    temperature: bool = option("Add one temperature channel per sensor.")
    include_optional: bool = option("Also read Optional/ and add its 6 activities (18 classes).")


class Pamap2(Dataset):
    name = "pamap2"
    title = "PAMAP2 Physical Activity Monitoring (UCI #231): 9 subjects, 3 IMUs + heart rate"
    layout = ("PAMAP2_Dataset/Protocol/subject1NN.dat (and Optional/), any folder above it, or "
              "the downloaded .zip")
    rate_hz = SAMPLE_RATE_HZ
    subjects_from = "file name (subject101.dat -> 101)"
    options = Pamap2Options
    excluded = ("transient",)
    cacheable = True
    streams = True
    archive = Archive("https://archive.ics.uci.edu/static/public/231/"
                      "pamap2+physical+activity+monitoring.zip", DATASET_DIR, FILE_PATTERN,
                      "pamap2.zip", f"{FILE_PATTERN} files", (PROTOCOL_DIR, OPTIONAL_DIR))

    def detect(self, path: Path) -> bool:
        path = Path(path)
        if path.is_file():
            return path.suffix.lower() == ".zip" and _zip_holds(path) or (
                path.suffix == ".dat" and path.name.startswith("subject"))
        if any(True for _ in _iter_limit(path.rglob(FILE_PATTERN))):
            return True
        zips = sorted(path.glob("*.zip"))
        return len(zips) == 1 and _zip_holds(zips[0])

    def all_channels(self) -> List[Channel]:
        return [_channel(c) for c in SIGNAL_COLUMNS]

    def channels(self, opts: Pamap2Options) -> List[Channel]:
        names = imu_channels(opts.sensors, opts.modalities)
        if opts.heart_rate:
            names.append("heart_rate")
        if opts.temperature:
            names += [f"{s}_temperature" for s in SENSORS if s in opts.sensors]
        return [_channel(c) for c in names]

    def activity_ids(self, opts: Pamap2Options) -> List[int]:
        ids = list(PROTOCOL_ACTIVITIES) + (list(OPTIONAL_ACTIVITIES) if opts.include_optional
                                           else [])
        return sorted(ids)

    def classes(self, opts: Pamap2Options) -> List[ClassSpec]:
        return [ClassSpec(ACTIVITIES[a], a) for a in self.activity_ids(opts)]

    def validate(self, opts: Pamap2Options) -> None:
        _check_names(opts.sensors, SENSORS, "--sensors")
        _check_names(opts.modalities, MODALITIES, "--modalities")
        for opt, subjects in (("--val-subjects", opts.val_subjects),
                              ("--test-subjects", opts.test_subjects)):
            if not all(isinstance(s, int) and not isinstance(s, bool) for s in subjects):
                raise HarError(f"{opt}: expected subject IDs like 105, got {subjects!r}")

    def sources(self, path: Path, opts: Pamap2Options) -> List[Source]:
        return discover(Path(path), opts.include_optional)

    def parse(self, data, source: Source, opts, buffers=None, for_prepare: bool = True
              ) -> List[Recording]:
        ts, act, signals = parse_bytes(data, source.name, buffers)
        return [Recording(source.name, source.subject, ts, signals, SIGNAL_COLUMNS, act,
                          LABEL_NAMES, SAMPLE_RATE_HZ, hold=("heart_rate",), size=source.size,
                          extra={"folder": source.info.get("folder", PROTOCOL_DIR)})]

    def subject_of(self, source: Source, parsed_subject):
        return source.subject

    def row_parser(self, opts, name: str) -> RowParser:
        return _Rows(name)

    def recording_sources(self, path: Path) -> List[Source]:
        """``har predict``'s files: ``path`` itself, or every ``*.dat`` under the folder."""
        files = [path] if path.is_file() else visible_files(path, "*.dat")
        return [file_source(f, subject=_subject_or_zero(f.name), folder=f.parent.name)
                for f in files]


def _iter_limit(iterator, n: int = 1):
    for i, item in enumerate(iterator):
        if i >= n:
            return
        yield item


def _zip_holds(path: Path) -> bool:
    from data_prep.archive import ArchiveError, find_zip_recordings

    try:
        return bool(find_zip_recordings(path, FILE_PATTERN))
    except ArchiveError:
        return False


def _check_names(values: List[str], allowed, opt: str) -> None:
    if not values:
        raise HarError(f"{opt} is empty; choose from {','.join(allowed)}")
    bad = [v for v in values if v not in allowed]
    if bad:
        raise HarError(f"{opt}: unknown {', '.join(map(repr, bad))}; "
                       f"choose from {','.join(allowed)}")
    if len(set(values)) != len(values):
        raise HarError(f"{opt} names a value twice: {','.join(values)}")


def _subject_or_zero(filename: str) -> int:
    try:
        return subject_id(filename)
    except ValueError:
        return 0


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
        sources = [file_source(f, subject=_subject_or_error(f.name, str(f)),
                               folder=_folder_of(f.parent.name))
                   for f in visible_files(path, FILE_PATTERN)]
        if not sources:
            zips = sorted(path.glob("*.zip"))
            if len(zips) == 1:
                sources = _zip_sources(zips[0])
    where = f"{path}" + ("" if path.is_file() else "/")
    if not sources:
        raise HarError(f"no {FILE_PATTERN} files found under {where}; pass the "
                       "PAMAP2_Dataset folder, its Protocol folder, or the downloaded .zip")
    if not include_optional:
        sources = [s for s in sources if s.info["folder"] != OPTIONAL_DIR]
        if not sources:
            raise HarError(f"{where} holds only Optional/ recordings; add --include-optional "
                           "or pass the Protocol folder")
    _check_unique(sources)
    return sorted(sources, key=lambda s: (s.info["folder"] != PROTOCOL_DIR, s.subject, s.name))


def _folder_of(parent_name: str) -> str:
    return OPTIONAL_DIR if parent_name == OPTIONAL_DIR else PROTOCOL_DIR


def _zip_sources(zip_path: Path) -> List[Source]:
    from data_prep.archive import find_zip_recordings

    stat = zip_path.stat()
    base = f"{zip_path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    return [Source(name=rec.name, size=rec.size, index_key=f"{base}|{rec.member}|{rec.crc}",
                   read_bytes=rec.read_bytes, path=zip_path,
                   info={"subject": _subject_or_error(rec.member, rec.name),
                         "folder": _folder_of(rec.folder)})
            for rec in find_zip_recordings(zip_path, FILE_PATTERN)]


def _subject_or_error(filename: str, shown: str) -> int:
    try:
        return subject_id(filename)
    except ValueError:
        raise HarError(f"{shown}: expected a name like subject101.dat; rename or remove "
                       "the file") from None


def _check_unique(sources: List[Source]) -> None:
    seen = {}
    for s in sources:
        key = (s.info["folder"], s.subject)
        if key in seen:
            raise HarError(f"subject {s.subject} appears twice ({seen[key]} and {s.name}); "
                           "keep one copy of the data under PATH")
        seen[key] = s.name


DATASET = Pamap2()
