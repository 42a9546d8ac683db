"""``csv``: your own recordings, as CSV/TSV/text or Parquet files with named columns.

Input: a file, or a folder (searched recursively, hidden files skipped) of ``.csv``, ``.tsv``,
``.txt`` or ``.parquet`` files. Each file has a header line naming its columns (text files; the
delimiter is sniffed from the first lines, or ``--delimiter``). Columns are chosen by name:

* ``--label-col``: string or integer labels; an empty label means "no label" (the row is
  dropped and counted);
* ``--subject-col``, or ``--subject-from-name REGEX`` whose one group is applied to the file's
  path (relative to the folder given): ``"(P\\d+)"`` finds ``P07`` in ``study/P07/day1.csv``;
* ``--time-col``: seconds (``--time-unit ms|us|ns`` for integer clocks), or ISO-8601 /
  pandas-parsable datetimes; or no time column and ``--rate HZ`` for evenly spaced rows;
* ``--channels a,b,c``: default every other numeric column, in file order;
* ``--recording-col``: a file holding several recordings is split by this column's value (and
  by subject); each recording's rows keep their file order.

Timestamps must increase within a recording: unsorted or duplicate ones are an error naming the
file and line. The data's own rate is 1 / the median step; steps over 1.5 × the median are gaps.
``--rate HZ`` resamples each gap-free stretch onto an even grid (linear; see
:mod:`data_prep.resample`). Classes are the sorted distinct labels, or ``--classes a,b,c`` (its
order; rows with other labels are dropped and counted).
"""

from __future__ import annotations

import csv as pycsv
import dataclasses
import hashlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from data_prep.datasets.base import (
    Channel,
    ClassSpec,
    Dataset,
    Recording,
    RecordingOptions,
    RowParser,
    array_to_numpy,
    as_type,
    columns_into,
    is_number,
    label_codes,
    option,
    to_numpy,
)
from data_prep.sources import Source, file_source, has_content, visible_files
from harkit.errors import HarError

TEXT_SUFFIXES = (".csv", ".tsv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
#: Suffixes that make a folder look like tabular data to ``har prepare`` (``.txt`` is too
#: common: pass --dataset csv for text files).
DETECT_SUFFIXES = (".csv", ".tsv") + PARQUET_SUFFIXES
DELIMITERS = ",\t;| "
TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
SNIFF_BYTES = 1 << 16


@dataclass(frozen=True)
class CsvOptions(RecordingOptions):
    label_col: str = option("Column holding the activity label.")
    subject_col: str = option("Column holding the subject ('' = use --subject-from-name).")
    subject_from_name: str = option("Regex with one group, applied to each file's path, that "
                                    "gives its subject (instead of --subject-col).")
    time_col: str = option("Column holding the time: seconds or datetimes ('' = none: rows "
                           "are evenly spaced at --rate).")
    time_unit: str = option("Unit of a numeric time column.", choices=tuple(TIME_UNITS))
    channels: List[str] = option("Comma-separated signal columns (default: every other numeric "
                                 "column, in file order).")
    classes: List[str] = option("Comma-separated labels to keep, in class order (default: "
                                "every label, sorted).")
    recording_col: str = option("Column that splits a file into several recordings.")
    delimiter: str = option("Field delimiter of text files ('' = sniffed; 'tab' for tabs).")


class Tabular(Dataset):
    name = "csv"
    title = "Your own recordings: CSV/TSV/text or Parquet files with named columns"
    layout = "*.csv, *.tsv or *.parquet files (a file or a folder; *.txt with --dataset csv)"
    rate_hz = None
    subjects_from = "--subject-col, or --subject-from-name REGEX on the file's path"
    options = CsvOptions
    cacheable = True
    streams = True

    def detect(self, path: Path) -> bool:
        path = Path(path)
        if path.is_file():
            return path.suffix.lower() in DETECT_SUFFIXES
        return any(f.suffix.lower() in DETECT_SUFFIXES for f in visible_files(path, "*"))

    def validate(self, opts: CsvOptions) -> None:
        if not opts.subject_col and not opts.subject_from_name:
            raise HarError("--subject-col '' needs --subject-from-name REGEX: say where each "
                           "recording's subject comes from")
        if opts.subject_from_name:
            try:
                pattern = re.compile(opts.subject_from_name)
            except re.error as exc:
                raise HarError(f"--subject-from-name {opts.subject_from_name!r} is not a regular "
                               f"expression ({exc}); e.g. --subject-from-name '(P\\d+)'") from None
            if pattern.groups != 1:
                raise HarError(f"--subject-from-name {opts.subject_from_name!r} has "
                               f"{pattern.groups} groups; use exactly one, around the subject: "
                               "e.g. 'subject_(\\d+)'")
        if not opts.time_col and not opts.rate:
            raise HarError("no --time-col and no --rate: pass the column holding the time, or "
                           "--rate HZ when the rows are evenly spaced")
        if len(set(opts.classes)) != len(opts.classes):
            raise HarError(f"--classes names a label twice: {','.join(opts.classes)}")
        if _delimiter(opts.delimiter) is not None and len(_delimiter(opts.delimiter)) != 1:
            raise HarError(f"--delimiter {opts.delimiter!r} must be one character (or 'tab')")

    def resolve(self, path: Path, opts: CsvOptions) -> CsvOptions:
        """No ``--channels``: the numeric columns of the first file, decided once for all."""
        if opts.channels:
            return opts
        first = _files(Path(path))[0]
        source = file_source(first)
        data = source.read_bytes()
        if Path(first).suffix.lower() in PARQUET_SUFFIXES:
            chosen = _read_parquet(data, source, opts, columns_only=True)
        else:
            head = bytes(data[:SNIFF_BYTES]).decode("utf-8", "replace")
            delimiter = _delimiter(opts.delimiter) or _sniff(head, first.suffix.lower(),
                                                             str(first))
            columns = _header_of(head, delimiter)
            chosen = _choose_columns(columns, str(first), opts,
                                     _numeric_columns(head, delimiter, columns))
        return dataclasses.replace(opts, channels=list(chosen["channels"]))

    def channels(self, opts: CsvOptions) -> Optional[List[Channel]]:
        return [Channel(c) for c in opts.channels] or None

    def all_channels(self) -> List[Channel]:
        return []

    def classes(self, opts: CsvOptions) -> Optional[List[ClassSpec]]:
        return [ClassSpec(c, c) for c in opts.classes] or None

    def cache_key(self, opts: CsvOptions) -> str:
        keys = ("label_col", "subject_col", "time_col", "time_unit", "channels", "recording_col",
                "delimiter", "rate")
        text = json.dumps({k: getattr(opts, k) for k in keys}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    # ---- files
    def sources(self, path: Path, opts: CsvOptions) -> List[Source]:
        files = _files(Path(path))
        if opts.subject_from_name:
            pattern = re.compile(opts.subject_from_name)
            for f in files:
                _subject_from(pattern, _relative(f, Path(path)), f, opts.subject_from_name)
        root = Path(path) if Path(path).is_dir() else Path(path).parent
        return [file_source(f, relative=_relative(f, root)) for f in files]

    def recording_sources(self, path: Path) -> List[Source]:
        root = path if path.is_dir() else path.parent
        return [file_source(f, relative=_relative(f, root)) for f in _files(path)]

    def subject_of(self, source: Source, parsed_subject):
        return parsed_subject

    # ---- parsing
    def parse(self, data, source: Source, opts: CsvOptions, buffers=None,
              for_prepare: bool = True) -> List[Recording]:
        if not for_prepare:                 # predict: labels and subjects may be absent
            opts = _optional_roles(data, source, opts)
        table, header_lines = _read_table(data, source, opts)
        return _recordings(table, header_lines, source, opts, buffers)

    def row_parser(self, opts: CsvOptions, name: str) -> RowParser:
        return _Rows(opts, name)


DATASET = Tabular()


def _optional_roles(data, source: Source, opts: CsvOptions) -> CsvOptions:
    """``opts`` without the label, subject and recording columns a file to predict lacks."""
    import dataclasses

    columns = _header(data, source, opts)
    changes = {k: "" for k in ("label_col", "subject_col", "recording_col")
               if getattr(opts, k) and getattr(opts, k) not in columns}
    if "subject_col" in changes or not opts.subject_col:
        changes.update(subject_col="", subject_from_name="")
    return dataclasses.replace(opts, **changes) if changes else opts


def _header(data, source: Source, opts: CsvOptions) -> List[str]:
    suffix = Path(source.name).suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return list(pq.ParquetFile(pa.BufferReader(pa.py_buffer(data))).schema_arrow.names)
        except (pa.ArrowInvalid, OSError):
            return []
    head = bytes(data[:SNIFF_BYTES]).decode("utf-8", "replace")
    delimiter = _delimiter(opts.delimiter) or _sniff(head, suffix, source.name)
    return [c.strip() for c in next(pycsv.reader(io.StringIO(head.split("\n", 1)[0]),
                                                 delimiter=delimiter), [])]


# --------------------------------------------------------------------------- files
def _files(path: Path) -> List[Path]:
    if not path.exists():
        raise HarError(f"{path} does not exist; pass a CSV/TSV/Parquet file or a folder of them")
    suffixes = TEXT_SUFFIXES + PARQUET_SUFFIXES
    if path.is_file():
        if path.suffix.lower() not in suffixes:
            raise HarError(f"{path} is not a .csv, .tsv, .txt or .parquet file; pass one, or a "
                           "folder of them")
        return [path]
    files = [f for f in visible_files(path, "*") if f.suffix.lower() in suffixes]
    if not files:
        raise HarError(f"no .csv, .tsv, .txt or .parquet files under {path}/; pass the folder "
                       "holding your recordings")
    return files


def _relative(file: Path, root: Path) -> str:
    try:
        return file.relative_to(root).as_posix()
    except ValueError:
        return file.as_posix()


def _subject_from(pattern: re.Pattern, relative: str, file: Path, regex: str) -> Any:
    match = pattern.search(relative)
    if match is None or match.group(1) is None:
        raise HarError(f"--subject-from-name {regex!r} does not match {file} (searched in "
                       f"{relative!r}); fix the regex or move the file")
    return _as_subject(match.group(1))


def _as_subject(text: str):
    """Subjects that are whole numbers are kept as numbers (105); others as text (P01)."""
    text = str(text).strip()
    return int(text) if re.fullmatch(r"[+-]?\d+", text) else text


def _delimiter(option_value: str) -> Optional[str]:
    if not option_value:
        return None
    return "\t" if option_value.lower() in ("tab", "\\t") else option_value


# --------------------------------------------------------------------------- reading
@dataclass
class _Table:
    columns: List[str]                 # every column of the file
    data: Dict[str, Any]               # the chosen columns as pyarrow ChunkedArrays
    channels: List[str]


def _read_table(data, source: Source, opts: CsvOptions) -> Tuple[_Table, int]:
    """Parse the columns ``opts`` needs: ``(table, header lines before the first row)``."""
    suffix = Path(source.name).suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        return _read_parquet(data, source, opts), 1
    if not has_content(data):
        raise HarError(f"{source.name} is empty; remove it or fill it")
    head = bytes(data[:SNIFF_BYTES]).decode("utf-8", "replace")
    delimiter = _delimiter(opts.delimiter) or _sniff(head, suffix, source.name)
    columns = _header_of(head, delimiter)
    chosen = _choose_columns(columns, source.name, opts, numeric=_numeric_columns(
        head, delimiter, columns))
    return _parse_text(data, source, opts, delimiter, columns, chosen), 1


def _sniff(head: str, suffix: str, name: str) -> str:
    if suffix == ".tsv":
        return "\t"
    lines = [ln for ln in head.splitlines()[:20] if ln.strip()]
    try:
        return pycsv.Sniffer().sniff("\n".join(lines), delimiters=DELIMITERS).delimiter
    except pycsv.Error:
        if lines and "," in lines[0]:
            return ","
        raise HarError(f"{name}: cannot tell the field delimiter from the first lines; pass "
                       "--delimiter (e.g. --delimiter ',' or --delimiter tab)") from None


def _header_of(head: str, delimiter: str) -> List[str]:
    """The column names on the first line of ``head``."""
    first = head.split("\n", 1)[0].rstrip("\r")
    return [c.strip() for c in next(pycsv.reader([first], delimiter=delimiter), [])]


def _numeric_columns(head: str, delimiter: str, columns: List[str]) -> List[bool]:
    """Per column: do nine in ten or more of its values in the first lines read as numbers
    (empty ones aside)? A stray bad value then fails the parse with its line named, instead of
    silently taking the column out of the channels."""
    rows = list(pycsv.reader(io.StringIO(head), delimiter=delimiter))[1:200]
    if rows and len(head) >= SNIFF_BYTES:
        rows = rows[:-1]                       # the last line may be cut off
    out = []
    for j in range(len(columns)):
        values = [r[j].strip() for r in rows if j < len(r) and r[j].strip()]
        numbers = sum(is_number(v) for v in values)
        out.append(bool(values) and numbers >= 0.9 * len(values))
    return out


def _choose_columns(columns: List[str], name: str, opts: CsvOptions,
                    numeric: Sequence[bool]) -> Dict[str, Any]:
    """The columns to read, by role; HarError naming a missing one and the columns there are."""
    def need(col: str, option_name: str) -> str:
        if col not in columns:
            raise HarError(f"{name}: no column {col!r} ({option_name}); it has "
                           f"{', '.join(columns)}; pass {option_name} with one of them")
        return col

    label = need(opts.label_col, "--label-col") if opts.label_col else None
    subject = need(opts.subject_col, "--subject-col") if opts.subject_col else None
    time = need(opts.time_col, "--time-col") if opts.time_col else None
    recording = need(opts.recording_col, "--recording-col") if opts.recording_col else None
    roles = {c for c in (label, subject, time, recording) if c}
    if opts.channels:
        channels = [need(c, "--channels") for c in opts.channels]
    else:
        channels = [c for c, is_num in zip(columns, numeric) if is_num and c not in roles]
        if not channels:
            raise HarError(f"{name}: no numeric column besides {', '.join(sorted(roles))}; pass "
                           "--channels with the signal columns")
    clash = sorted(set(channels) & roles)
    if clash:
        raise HarError(f"--channels names {', '.join(clash)}, which is also the label, subject, "
                       "time or recording column; leave it out")
    return {"label": label, "subject": subject, "time": time, "recording": recording,
            "channels": channels}


def _parse_text(data, source: Source, opts: CsvOptions, delimiter: str, columns: List[str],
                chosen: Dict[str, Any]) -> _Table:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    types = {c: pa.float32() for c in chosen["channels"]}
    for role in ("label", "subject", "recording"):     # read straight into codes + names
        if chosen[role]:
            types[chosen[role]] = pa.dictionary(pa.int32(), pa.string())
    include = list(dict.fromkeys(c for c in (chosen["time"], chosen["label"], chosen["subject"],
                                             chosen["recording"], *chosen["channels"]) if c))
    # The time column: numbers first; date-times (naive, then with a zone offset) when its
    # first values are not numbers; anything else pandas parses later (_pandas_datetimes).
    time_types = [pa.float64()]
    if chosen["time"] and _time_is_text(data, delimiter, columns, chosen):
        time_types = [pa.timestamp("ns"), pa.timestamp("ns", tz="UTC"), pa.string()]
    for i, time_type in enumerate(time_types):
        if chosen["time"]:
            types[chosen["time"]] = time_type
        try:
            table = pacsv.read_csv(
                pa.py_buffer(data),
                read_options=pacsv.ReadOptions(column_names=columns, skip_rows=1),
                parse_options=pacsv.ParseOptions(delimiter=delimiter),
                convert_options=pacsv.ConvertOptions(
                    include_columns=include, column_types=types,
                    null_values=["", "NaN", "nan", "NA", "null"], strings_can_be_null=True,
                    timestamp_parsers=[pacsv.ISO8601]))
            break
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            if i + 1 == len(time_types):
                raise _locate_error(data, source.name, delimiter, columns, chosen) from None
    return _Table(columns, {c: table.column(c) for c in include}, chosen["channels"])


def _time_is_text(data, delimiter, columns, chosen) -> bool:
    """Whether the first values of the time column are not numbers (datetimes, then)."""
    head = bytes(data[:SNIFF_BYTES]).decode("utf-8", "replace")
    j = columns.index(chosen["time"])
    rows = list(pycsv.reader(io.StringIO(head), delimiter=delimiter))[1:20]
    values = [r[j].strip() for r in rows if j < len(r) and r[j].strip()]
    return bool(values) and not all(is_number(v) for v in values)


def _locate_error(data, name: str, delimiter: str, columns: List[str],
                  chosen: Dict[str, Any]) -> HarError:
    """Slow path: the first line with the wrong field count or a non-numeric value."""
    numeric = list(chosen["channels"])
    text = io.StringIO(bytes(data).decode("utf-8", "replace"))
    for number, row in enumerate(pycsv.reader(text, delimiter=delimiter), start=1):
        if number == 1 or not row or not any(v.strip() for v in row):
            continue
        if len(row) != len(columns):
            return HarError(f"{name} line {number}: {len(row)} fields, expected {len(columns)} "
                            f"({', '.join(columns[:8])}{', ...' if len(columns) > 8 else ''}); "
                            "fix or delete the line")
        for col in numeric + ([chosen["time"]] if chosen["time"] else []):
            value = row[columns.index(col)].strip()
            if value and value.lower() not in ("nan", "na", "null") and not is_number(value):
                if col == chosen["time"]:
                    continue                  # datetimes are checked where they are converted
                return HarError(f"{name} line {number}, column {col!r}: {value[:20]!r} is not a "
                                "number; leave missing values empty or write NaN")
    return HarError(f"{name}: the time column {chosen['time']!r} mixes numbers and datetimes or "
                    "holds values that are neither; fix the column or pass --time-col")


def _read_parquet(data, source: Source, opts: CsvOptions, columns_only: bool = False):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        reader = pq.ParquetFile(pa.BufferReader(pa.py_buffer(data)))
    except (pa.ArrowInvalid, OSError) as exc:
        raise HarError(f"{source.name} is not a readable Parquet file ({exc}); re-export "
                       "it") from None
    schema = reader.schema_arrow
    columns = list(schema.names)
    numeric = [pa.types.is_integer(t) or pa.types.is_floating(t) for t in schema.types]
    chosen = _choose_columns(columns, source.name, opts, numeric)
    if columns_only:
        return chosen
    for col in chosen["channels"]:
        kind = schema.field(col).type
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
            raise HarError(f"{source.name}: column {col!r} holds {kind}, not numbers; pass "
                           "--channels with the numeric signal columns")
    include = list(dict.fromkeys(c for c in (chosen["time"], chosen["label"], chosen["subject"],
                                             chosen["recording"], *chosen["channels"]) if c))
    table = reader.read(columns=include)
    return _Table(columns, {c: table.column(c) for c in include}, chosen["channels"])


# --------------------------------------------------------------------------- recordings
def _recordings(table: _Table, header_lines: int, source: Source, opts: CsvOptions,
                buffers) -> List[Recording]:
    import pyarrow as pa

    n = len(next(iter(table.data.values())))
    if n == 0:
        raise HarError(f"{source.name} holds a header but no rows; remove it or fill it")
    if opts.label_col:
        codes, names = _dictionary(table.data[opts.label_col], buffers)
    else:
        codes, names = np.full(n, -1, np.int64), []
    time = _seconds(table, opts, source, header_lines, buffers) if opts.time_col else None
    groups = _groups(table, opts, source, n)
    width = len(table.channels)
    columns = [as_type(table.data[col], pa.float32()) for col in table.channels]
    whole = None if len(groups) == 1 else [to_numpy(c) for c in columns]
    recordings = []
    for key, rows in groups:
        count = n if rows is None else len(rows)
        signals = (buffers.take(count, width, order="C") if buffers is not None   # row-major:
                   else np.empty((count, width), np.float32))      # windows are cut from it
        if whole is None:
            columns_into(columns, signals)
        else:
            for j in range(width):
                signals[:, j] = whole[j][rows]
        ts, rate, even = _timeline(time, rows, count, opts, source, header_lines, buffers)
        labels = codes if rows is None else codes[rows]
        subject, recording = key
        name = source.name if recording is None else f"{source.name}#{recording}"
        recordings.append(Recording(
            name, subject, ts, signals, tuple(table.channels), labels, tuple(names), rate,
            size=source.size, extra={"recording": recording} if recording is not None else {},
            even=even))
    if buffers is not None and groups[0][1] is not None:   # rows were copied out of the
        for array in (time, codes):                         # whole file's: no longer needed
            if array is not None:
                buffers.give(array)
    return recordings


def _dictionary(column, buffers=None) -> Tuple[np.ndarray, List[str]]:
    """int64 codes (-1: empty or missing) and the label names of a column (read as a dictionary
    of strings, or any other type, which is encoded here). Values equal once stripped share a
    code; names are in order of first appearance.

    Each chunk's dictionary is mapped onto the names here, straight into the codes: no unified
    copy of the column and no second pass to widen the codes. ``buffers`` (a
    :class:`data_prep.read.SignalBuffers`) may supply the codes' memory."""
    import pyarrow as pa

    if not pa.types.is_dictionary(column.type):
        import pyarrow.compute as pc

        column = pc.dictionary_encode(column.cast(pa.string()))
    codes = (np.empty(len(column), np.int64) if buffers is None
             else buffers.take(len(column), dtype=np.int64))
    names: List[str] = []
    index: Dict[str, int] = {}
    pos = 0
    for chunk in column.chunks:
        values = chunk.dictionary.to_pylist()
        lookup = np.full(len(values) + 1, -1, np.int64)       # the last entry: missing
        for i, value in enumerate(values):
            name = "" if value is None else str(value).strip()
            if name:
                if name not in index:
                    index[name] = len(names)
                    names.append(name)
                lookup[i] = index[name]
        indices = array_to_numpy(chunk.indices)
        if indices.dtype.kind == "f":                           # missing values
            indices = np.where(np.isnan(indices), len(values), indices).astype(np.intp)
        np.take(lookup, indices, out=codes[pos:pos + len(chunk)])
        pos += len(chunk)
    return codes, names


def _only_value(column) -> Optional[str]:
    """The column's one value when every row holds the same (stripped) text, found from the
    chunks' dictionaries alone; None otherwise, or when that cannot be told so cheaply."""
    import pyarrow as pa

    if not pa.types.is_dictionary(column.type) or column.null_count or not column.num_chunks:
        return None
    seen = set()
    for chunk in column.chunks:
        seen.update(str(v).strip() for v in chunk.dictionary.to_pylist())
        if len(seen) > 1:
            return None
    return seen.pop() if len(seen) == 1 else None


def _groups(table: _Table, opts: CsvOptions, source: Source, n: int):
    """``[((subject, recording), row indices)]`` in order of first appearance (row indices
    None: the whole file is one recording)."""
    if opts.subject_col and not opts.recording_col:
        only = _only_value(table.data[opts.subject_col])
        if only:
            return [((_as_subject(only), None), None)]   # one recording: every row, no copy
    keys = []
    for role in (opts.subject_col, opts.recording_col):
        if role:
            col = table.data[role]
            if col.null_count:
                first = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
                raise HarError(f"{source.name} line {first + 2}: the {role!r} column is empty; "
                               "every row needs one")
            codes, names = _dictionary(col)
            keys.append((codes, names))
        else:
            keys.append(None)
    subject = 0
    if keys[0] is None and opts.subject_from_name:
        subject = _subject_from(re.compile(opts.subject_from_name),
                                source.info.get("relative", source.name), Path(source.name),
                                opts.subject_from_name)
    if all(k is None for k in keys) or (keys[1] is None and len(keys[0][1]) == 1):
        only = subject if keys[0] is None else _as_subject(keys[0][1][0])
        return [((only, None), None)]                  # one recording: every row, no copy
    combined = np.zeros(n, np.int64)
    for k in keys:
        if k is not None:
            combined = combined * (len(k[1]) + 1) + k[0]
    _, first, inverse = np.unique(combined, return_index=True, return_inverse=True)
    order = np.argsort(first)
    groups = []
    for g in order:
        rows = np.flatnonzero(inverse == g)
        r0 = rows[0]
        subj = subject if keys[0] is None else _as_subject(keys[0][1][keys[0][0][r0]])
        rec = None if keys[1] is None else keys[1][1][keys[1][0][r0]]
        groups.append(((subj, rec), rows))
    return groups


def _seconds(table: _Table, opts: CsvOptions, source: Source, header_lines: int,
             buffers=None) -> np.ndarray:
    """float64 seconds of the time column (datetimes: since the Unix epoch); numbers are
    copied into memory from ``buffers`` when given."""
    import pyarrow as pa

    col = table.data[opts.time_col]
    if pa.types.is_timestamp(col.type):
        col = as_type(col, pa.timestamp("ns", tz=col.type.tz))  # (text reads as ns)
        ns = to_numpy(pa.chunked_array([c.view(pa.int64()) for c in col.chunks], pa.int64()))
        values = ns.astype(np.float64) * 1e-9
        missing = np.isnan(values)
    elif pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
        col = as_type(col, pa.float64())
        values = to_numpy(col, None if buffers is None
                          else buffers.take(len(col), dtype=np.float64))
        if TIME_UNITS[opts.time_unit] != 1.0:
            values = np.multiply(values, TIME_UNITS[opts.time_unit],
                                 out=values if values.flags.writeable else None)
        missing = ~np.isfinite(values)
    else:
        values, missing = _pandas_datetimes(col, source, header_lines)
    if missing.any():
        line = int(np.flatnonzero(missing)[0]) + header_lines + 1
        raise HarError(f"{source.name} line {line}: the time ({opts.time_col!r}) is missing; "
                       "every row needs one")
    return values


def _pandas_datetimes(col, source: Source, header_lines: int):
    import pandas as pd

    text = pd.Series(col.to_pylist(), dtype="string")
    parsed = pd.to_datetime(text, errors="coerce", utc=True, format="mixed")
    bad = parsed.isna() & text.notna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise HarError(f"{source.name} line {i + header_lines + 1}: time {text[i]!r} is neither "
                       "seconds nor a date-time; fix the value or pass --time-col")
    seconds = parsed.astype("int64").to_numpy().astype(np.float64) * 1e-9
    return seconds, parsed.isna().to_numpy()


def _timeline(time, rows, count: int, opts: CsvOptions, source: Source, header_lines: int,
              buffers=None):
    """``(timestamp_s [count], rate_hz, even)`` of one recording (``rows`` of the file, None:
    all); HarError for unsorted or duplicate timestamps (naming the line) or too few rows to
    tell the rate."""
    if time is None:
        return np.arange(count, dtype=np.float64) / opts.rate, float(opts.rate), True
    ts = time[rows] if rows is not None else time
    step = np.subtract(ts[1:], ts[:-1], out=None if buffers is None or ts.size < 2
                       else buffers.take(ts.size - 1, dtype=np.float64))
    try:
        return ts, _rate(ts, step, rows, source, header_lines), False
    finally:
        if buffers is not None:
            buffers.give(step)


def _rate(ts, step, rows, source: Source, header_lines: int) -> float:
    """1 / the median of ``step`` (the steps of ``ts``; reordered); HarError for a step that
    is not positive, naming its line."""
    if not (step > 0).all():
        i = int(np.flatnonzero(step <= 0)[0]) + 1
        line = (i if rows is None else int(rows[i])) + header_lines + 1
        what = "repeats" if step[i - 1] == 0 else "goes back from"
        raise HarError(f"{source.name} line {line}: the time {what} the previous row's "
                       f"({ts[i]:.6g} s after {ts[i - 1]:.6g} s); sort the rows by time and "
                       "remove duplicates")
    if step.size == 0:
        raise HarError(f"{source.name}: a recording with one row has no rate; pass --rate or "
                       "remove it")
    return float(1.0 / _median(step))


def _median(values: np.ndarray) -> float:
    """``np.median(values)``, the same value, found by partitioning ``values`` in place (no
    copy of a recording-long array)."""
    half = values.size // 2
    if values.size % 2:
        values.partition(half)
        return float(values[half])
    values.partition((half - 1, half))
    return float(np.mean(values[half - 1:half + 1]))


# --------------------------------------------------------------------------- streaming
class _Rows(RowParser):
    """Streaming text rows: the first line is the header; then each chunk of complete lines."""

    def __init__(self, opts: CsvOptions, name: str) -> None:
        self.opts, self.name = opts, name
        self.line = 0
        self.header: Optional[List[str]] = None
        self.label_names: List[str] = []
        self.delimiter = _delimiter(opts.delimiter)
        self.rate_hz = float(opts.rate) or 0.0
        self.t_index = None
        self._last_t = None
        self._step = None

    def parse(self, data: bytes):
        text = data.decode("utf-8", "replace")
        if self.header is None:
            first, _, text = text.partition("\n")
            self.line += 1
            if self.delimiter is None:
                self.delimiter = _sniff(first + "\n" + text[:4096], Path(self.name).suffix,
                                        self.name)
            self.header = [c.strip() for c in next(pycsv.reader([first],
                                                                 delimiter=self.delimiter))]
            label = self.opts.label_col if self.opts.label_col in self.header else ""
            opts = dataclasses.replace(self.opts, label_col=label, subject_col="",
                                       subject_from_name="", recording_col="")
            chosen = _choose_columns(self.header, self.name, opts,
                                     _numeric_columns(first + "\n" + text[:4096],
                                                      self.delimiter, self.header))
            self.channels = tuple(chosen["channels"])
            self.columns = [self.header.index(c) for c in self.channels]
            self.label_index = self.header.index(label) if label else None
            self.t_index = self.header.index(chosen["time"]) if chosen["time"] else None
            self.even = self.t_index is None          # rows already on the --rate grid
        rows = list(pycsv.reader(io.StringIO(text), delimiter=self.delimiter))
        first_line = self.line + 1
        self.line += text.count("\n")
        kept, numbers = [], []
        for k, row in enumerate(rows):
            if not row or not any(v.strip() for v in row):
                continue
            if len(row) != len(self.header):
                raise HarError(f"{self.name} line {first_line + k}: {len(row)} fields, expected "
                               f"{len(self.header)}; fix or delete the line")
            kept.append(row)
            numbers.append(first_line + k)
        signals = np.full((len(kept), len(self.columns)), np.nan, np.float32)
        for i, row in enumerate(kept):
            for j, c in enumerate(self.columns):
                value = row[c].strip()
                if value and value.lower() not in ("nan", "na", "null"):
                    try:
                        signals[i, j] = float(value)
                    except ValueError:
                        raise HarError(f"{self.name} line {numbers[i]}, column "
                                       f"{self.header[c]!r}: {value[:20]!r} is not a number; "
                                       "leave missing values empty or write NaN") from None
        if self.label_index is None:
            return self._times(kept, numbers), np.full(len(kept), -1, np.int64), signals
        labels = label_codes([r[self.label_index].strip() for r in kept], self.label_names)
        empty = [i for i, n in enumerate(self.label_names) if n == ""]
        if empty:
            labels[np.isin(labels, empty)] = -1
        return self._times(kept, numbers), labels, signals

    def _times(self, rows, numbers) -> np.ndarray:
        if self.t_index is None:
            start = 0 if self._last_t is None else self._last_t + 1
            ts = (start + np.arange(len(rows))) / self.rate_hz
            if len(rows):
                self._last_t = start + len(rows) - 1
            return ts
        values = [r[self.t_index].strip() for r in rows]
        try:
            ts = np.array(values, dtype=np.float64) * TIME_UNITS[self.opts.time_unit]
        except ValueError:
            import pandas as pd

            parsed = pd.to_datetime(pd.Series(values, dtype="string"), errors="coerce", utc=True,
                                    format="mixed")
            if parsed.isna().any():
                i = int(np.flatnonzero(parsed.isna().to_numpy())[0])
                raise HarError(f"{self.name} line {numbers[i]}: time {values[i]!r} is neither "
                               "seconds nor a date-time; fix the value") from None
            ts = parsed.astype("int64").to_numpy().astype(np.float64) * 1e-9
        previous = np.concatenate(([self._last_t], ts)) if self._last_t is not None else ts
        bad = np.flatnonzero(np.diff(previous) <= 0)
        if bad.size:
            i = int(bad[0]) + (0 if self._last_t is not None else 1)
            raise HarError(f"{self.name} line {numbers[i]}: the time repeats or goes back; sort "
                           "the rows by time and remove duplicates")
        if ts.size:
            self._last_t = float(ts[-1])
            if not self.rate_hz and ts.size > 1:
                self.rate_hz = float(1.0 / np.median(np.diff(ts)))
        return ts
