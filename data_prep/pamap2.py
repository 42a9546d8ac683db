"""The PAMAP2 schema: the one place for its column table, activity table and file layout.

Source: the readme of the PAMAP2 Physical Activity Monitoring data set (UCI #231).
Each ``subjectNNN.dat`` is space-separated text, 54 columns per row, 100 Hz, missing values
written ``NaN``:

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
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import numpy as np

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
        for field, width in IMU_FIELDS:
            if width == 1:
                names.append(f"{sensor}_{field}")
            elif field == "orientation":
                names.extend(f"{sensor}_orientation_{i}" for i in range(width))
            else:
                names.extend(f"{sensor}_{field}_{axis}" for axis in AXES)
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
    return [
        channel_name(s, m, a)
        for s in SENSORS
        if s in sensors
        for m in MODALITIES
        if m in modalities
        for a in AXES
    ]


#: Columns kept by the parser and its cache: everything except the invalid orientation columns.
#: Order: timestamp, activity_id, heart_rate, then per sensor temperature + 12 IMU channels.
PARSED_COLUMNS: Tuple[str, ...] = tuple(c for c in COLUMNS if "orientation" not in c)
#: Float signal columns stored in the parse cache (everything after timestamp and activity_id).
SIGNAL_COLUMNS: Tuple[str, ...] = PARSED_COLUMNS[2:]


def subject_id(filename: str) -> int:
    """``subject101.dat`` → 101."""
    stem = filename.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return int(stem[len("subject"):])


# --------------------------------------------------------------------------- row rules
# The one place for what makes a PAMAP2 text line valid, and for the messages that say why one
# is not: the whole-file parser (data_prep.read) and the streaming parser (har.stream) both use
# these. Blank lines are skipped everywhere; line numbers count every line of the text.
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
