"""``mhealth``: the MHEALTH dataset (Banos et al. 2014, UCI #319).

``MHEALTHDATASET/mHealth_subject{1..10}.log``: tab-separated text, no header, no timestamp, one
row per sample at 50 Hz, 24 columns:

====== ====================================================================
column meaning (1-based)
====== ====================================================================
1-3    chest acceleration x, y, z (m/s²)
4-5    ECG lead 1, lead 2 (mV)
6-8    left-ankle acceleration (m/s²)
9-11   left-ankle gyroscope (deg/s)
12-14  left-ankle magnetometer (local units)
15-17  right-lower-arm acceleration (m/s²)
18-20  right-lower-arm gyroscope (deg/s)
21-23  right-lower-arm magnetometer (local units)
24     label: 0 = null (between activities), 1-12 the activities below
====== ====================================================================

The ECG leads are not IMU signals: they are off by default (``--ecg`` adds them). Rows with label
0 are dropped and counted like PAMAP2's transient. A row with the wrong number of columns or a
value that is not a number is an error naming the file and line.
"""

from __future__ import annotations

import re
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

RATE_HZ = 50.0
NUM_COLUMNS = 24
DATASET_DIR = "MHEALTHDATASET"
FILE_PATTERN = "mHealth_subject*.log"
SUBJECTS: Tuple[int, ...] = tuple(range(1, 11))
SENSORS: Tuple[str, ...] = ("chest", "left_ankle", "right_lower_arm")
#: Label → activity, as in the readme (0 = null).
ACTIVITIES: Dict[int, str] = {
    0: "null",
    1: "standing still",
    2: "sitting and relaxing",
    3: "lying down",
    4: "walking",
    5: "climbing stairs",
    6: "waist bends forward",
    7: "frontal elevation of arms",
    8: "knees bending (crouching)",
    9: "cycling",
    10: "jogging",
    11: "running",
    12: "jump front & back",
}
LABEL_NAMES: Tuple[str, ...] = tuple(ACTIVITIES[i] for i in range(len(ACTIVITIES)))


def _build_channels() -> List[Channel]:
    out = [Channel(f"chest_acc_{a}", "chest", "acc", "m/s^2") for a in "xyz"]
    out += [Channel(f"ecg_lead_{i}", "chest", "ecg", "mV") for i in (1, 2)]
    for sensor in SENSORS[1:]:
        out += [Channel(f"{sensor}_acc_{a}", sensor, "acc", "m/s^2") for a in "xyz"]
        out += [Channel(f"{sensor}_gyro_{a}", sensor, "gyro", "deg/s") for a in "xyz"]
        out += [Channel(f"{sensor}_mag_{a}", sensor, "mag", "local") for a in "xyz"]
    return out


#: The 23 signal columns in file order (column 24 is the label).
CHANNELS: Tuple[Channel, ...] = tuple(_build_channels())
assert len(CHANNELS) == NUM_COLUMNS - 1
CHANNEL_NAMES: Tuple[str, ...] = tuple(c.name for c in CHANNELS)


@dataclass(frozen=True)
class MhealthOptions(RecordingOptions):
    sensors: List[str] = option("Comma-separated subset of chest,left_ankle,right_lower_arm.")
    ecg: bool = option("Add the two ECG leads (not IMU signals: off by default).")


class Mhealth(Dataset):
    name = "mhealth"
    title = "MHEALTH (UCI #319): 10 subjects, 3 body-worn IMUs + 2-lead ECG at 50 Hz"
    layout = f"{DATASET_DIR}/mHealth_subject1.log ... subject10.log (or a folder above it)"
    rate_hz = RATE_HZ
    subjects_from = "file name (mHealth_subject3.log -> 3)"
    options = MhealthOptions
    excluded = ("null",)
    cacheable = True
    streams = True
    archive = Archive("https://archive.ics.uci.edu/static/public/319/mhealth+dataset.zip",
                      DATASET_DIR, FILE_PATTERN, "mhealth.zip", f"{FILE_PATTERN} files")

    def detect(self, path: Path) -> bool:
        path = Path(path)
        if path.is_file():
            return re.fullmatch(r"mHealth_subject\d+\.log", path.name) is not None
        return bool(visible_files(path, FILE_PATTERN))

    def all_channels(self) -> List[Channel]:
        return list(CHANNELS)

    def channels(self, opts: MhealthOptions) -> List[Channel]:
        return [c for c in CHANNELS if c.sensor in opts.sensors
                and (opts.ecg or c.modality != "ecg")]

    def classes(self, opts) -> List[ClassSpec]:
        return [ClassSpec(name, label) for label, name in ACTIVITIES.items() if label]

    def validate(self, opts: MhealthOptions) -> None:
        bad = [s for s in opts.sensors if s not in SENSORS]
        if bad or not opts.sensors or len(set(opts.sensors)) != len(opts.sensors):
            raise HarError(f"--sensors {','.join(opts.sensors) or 'none'}: choose one or more of "
                           f"{','.join(SENSORS)}, each once")
        if opts.ecg and "chest" not in opts.sensors:
            raise HarError("--ecg needs the chest sensor (the ECG leads are on the chest); add "
                           "chest to --sensors")
        for opt, subjects in (("--val-subjects", opts.val_subjects),
                              ("--test-subjects", opts.test_subjects)):
            wrong = [s for s in subjects if s not in SUBJECTS]
            if wrong:
                raise HarError(f"{opt}: {wrong} are not MHEALTH subjects; choose among 1-10")

    def sources(self, path: Path, opts) -> List[Source]:
        sources = self.recording_sources(Path(path))
        seen: Dict[int, str] = {}
        for s in sources:
            if s.subject not in SUBJECTS:
                raise HarError(f"{s.name}: the subject comes from the file name, "
                               "mHealth_subject<N>.log with N in 1-10; rename the file")
            if s.subject in seen:
                raise HarError(f"subject {s.subject} appears twice ({seen[s.subject]} and "
                               f"{s.name}); keep one copy under PATH")
            seen[s.subject] = s.name
        return sorted(sources, key=lambda s: s.subject)

    def recording_sources(self, path: Path) -> List[Source]:
        if not path.exists():
            raise HarError(f"{path} does not exist; pass the MHEALTHDATASET folder (get it with "
                           "'har download mhealth DEST' or 'har synth mhealth DEST')")
        files = [path] if path.is_file() else visible_files(path, FILE_PATTERN)
        if not files:
            raise HarError(f"no {FILE_PATTERN} files under {path}/; pass the MHEALTHDATASET "
                           "folder")
        return [file_source(f, subject=_subject(f)) for f in files]

    def parse(self, data, source: Source, opts, buffers=None, for_prepare: bool = True
              ) -> List[Recording]:
        signals, labels = parse_log(data, source.name, buffers)
        n = labels.size
        return [Recording(source.name, source.subject, np.arange(n) / RATE_HZ, signals,
                          CHANNEL_NAMES, labels, LABEL_NAMES, RATE_HZ, even=True,
                          size=source.size)]

    def subject_of(self, source: Source, parsed_subject):
        return source.subject

    def row_parser(self, opts, name: str) -> RowParser:
        return _Rows(name)


DATASET = Mhealth()


def _subject(path: Path) -> int:
    m = re.fullmatch(r"mHealth_subject(\d+)\.log", Path(path).name)
    return int(m.group(1)) if m else 0


def parse_log(data, name: str, buffers=None, first_line: int = 1
              ) -> Tuple[np.ndarray, np.ndarray]:
    """The bytes of a ``.log`` file → ``(signals float32 [n, 23] column-major, labels int64
    [n])``; HarError naming the file and line of a row with the wrong column count, a value that
    is not a number, or a label outside 0-12."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if not has_content(data):
        raise HarError(f"{name} is empty; download it again or remove it")
    names = list(CHANNEL_NAMES) + ["label"]
    try:
        table = pacsv.read_csv(
            pa.py_buffer(data), read_options=pacsv.ReadOptions(column_names=names),
            parse_options=pacsv.ParseOptions(delimiter="\t"),
            convert_options=pacsv.ConvertOptions(
                column_types={**{c: pa.float32() for c in CHANNEL_NAMES},
                              "label": pa.float64()}, null_values=[]))
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        raise _row_error(bytes(data), name, first_line) from None
    n = table.num_rows
    width = len(CHANNEL_NAMES)
    signals = (buffers.take(n, width) if buffers is not None
               else np.empty((width, n), np.float32).T)
    for j, c in enumerate(CHANNEL_NAMES):
        to_numpy(table.column(c), signals[:, j])
    label = to_numpy(table.column("label"))
    bad = np.flatnonzero(~np.isin(label, list(ACTIVITIES)))
    if bad.size:
        raise _row_error(bytes(data), name, first_line, row=int(bad[0]))
    return signals, label.astype(np.int64)


def _row_error(data: bytes, name: str, first_line: int, row: Optional[int] = None) -> HarError:
    """The first malformed line (or data row ``row``'s bad label), named."""
    seen = -1
    for number, raw in enumerate(data.split(b"\n"), start=first_line):
        fields = raw.rstrip(b"\r").split(b"\t")
        if not raw.rstrip(b"\r"):
            continue
        seen += 1
        where = f"{name} line {number}"
        if len(fields) != NUM_COLUMNS:
            fix = ("is it an MHEALTH mHealth_subject*.log?" if number == 1
                   else "fix or delete the line")
            return HarError(f"{where}: {len(fields)} tab-separated columns, expected "
                            f"{NUM_COLUMNS}; {fix}")
        for col, token in enumerate(fields, start=1):
            try:
                value = float(token)
            except ValueError:
                return HarError(f"{where}, column {col}: {token.decode('utf-8', 'replace')[:20]!r}"
                                " is not a number; fix the value")
        if row is not None and seen == row:
            return HarError(f"{where}: label (column 24) is {value:g}, not one of 0-12; fix or "
                            "delete the line")
    return HarError(f"{name} line {first_line}: not MHEALTH text (24 tab-separated numbers per "
                    "line); check the file")


class _Rows(RowParser):
    """Streaming MHEALTH lines: rows at 50 Hz, timed by their count."""

    channels = CHANNEL_NAMES
    rate_hz = RATE_HZ
    even = True

    def __init__(self, name: str) -> None:
        self.name, self.line, self.rows = name, 1, 0
        self.label_names = list(LABEL_NAMES)

    def parse(self, data: bytes):
        first, self.line = self.line, self.line + data.count(b"\n")
        signals, labels = parse_log(data, self.name, first_line=first)
        t = (self.rows + np.arange(labels.size)) / RATE_HZ
        self.rows += labels.size
        return t, labels, np.ascontiguousarray(signals)
