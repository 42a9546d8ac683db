"""A strict reader for the UEA/UCR archive ``.ts`` text format (the one aeon and sktime read).

Supported subset
----------------
* ``#`` comment lines and blank lines, anywhere (before ``@data``, ARFF-style ``%`` comment
  lines too); ``\\n``, ``\\r\\n`` or ``\\r`` line endings; trailing whitespace; UTF-8 text
  (a leading byte-order mark is ignored).
* Header lines before ``@data``, keys case-insensitive; a key may repeat only with the same
  value, except ``@problemName`` (the last one counts):
  ``@problemName NAME``, ``@timeStamps false``, ``@missing true|false``,
  ``@univariate true|false``, ``@dimensions N`` (or ``@dimension N``),
  ``@equalLength true|false``, ``@seriesLength N``,
  ``@classLabel true L1 L2 ...`` or ``@classLabel false``, ``@targetLabel false``.
* After ``@data``, one case per line: its dimensions separated by ``:``, each a comma-separated
  list of numbers, then (with ``@classLabel true``) the class label as the last ``:`` field.
  Missing values are ``?`` (``NaN``/``nan`` are accepted too).

Not supported, with a clear error: ``@timeStamps true`` (``(t,v)`` values) and
``@targetLabel true`` (regression targets).

Shapes and units
----------------
:func:`read_ts` returns a :class:`TsFile` whose ``series`` holds one float32 array of shape
``[dimensions, length]`` per case, in the file's own units, NaN where a value is missing.
``missing`` and ``equal_length`` describe the data as read (not the header's claims, which are
checked where they can be wrong: ``@equalLength true``, ``@seriesLength`` of an equal-length
file, ``@dimensions``, ``@univariate true``). ``@seriesLength`` of an unequal-length file is
ignored (some archive files give the longest length there).

:func:`to_equal_length` fills missing values and pads, truncates or resamples the cases to one
length, giving ``[n_cases, T, C]`` (time first, channels last).

Error policy
------------
Every problem in the input raises :class:`~harkit.errors.HarError` with a one-line message
naming the file, the 1-based line number where one applies, what is wrong and how to fix it.
Nothing is guessed or skipped silently. Programming errors raise ``ValueError``.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harkit.errors import HarError

#: Header keys (lower case) and how their value is read.
_BOOL_KEYS = ("timestamps", "missing", "univariate", "equallength", "targetlabel")
_INT_KEYS = ("dimensions", "serieslength")
_ALIASES = {"dimension": "dimensions"}
_KNOWN = ("@problemName, @timeStamps, @missing, @univariate, @dimensions, @equalLength, "
          "@seriesLength, @classLabel, @targetLabel, @data")
#: Longest quoted token or label in a message.
_QUOTE_MAX = 20
#: At most this many class labels are listed in a message.
_LIST_MAX = 10
_HOWS = ("pad", "truncate", "resample")


@dataclass
class TsFile:
    """The content of one ``.ts`` file; ``series[i]`` is float32 ``[dimensions, lengths[i]]``."""

    path: Path
    problem: str                  # @problemName, or the file stem
    dimensions: int
    lengths: np.ndarray           # int64 [n_cases]
    series: list[np.ndarray]      # float32 [dimensions, length] per case, NaN = missing
    labels: list[str]             # class label per case; [] with @classLabel false
    class_labels: list[str]       # as declared by @classLabel true, in order; [] otherwise
    missing: bool                 # any NaN in the data
    equal_length: bool            # all cases have the same length
    first_line: list[int]         # 1-based file line of each case


@dataclass
class _Header:
    """Header values by lower-case key, and the line each came from."""

    values: dict[str, object] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)

    def get(self, key: str, default=None):
        """The value of header ``key`` (lower case), or ``default`` if absent."""
        return self.values.get(key, default)


def _err(path: Path, line: int | None, message: str) -> HarError:
    """A HarError ``"<path> line <n>: <message>"`` (no line part when ``line`` is None)."""
    where = f"{path} line {line}" if line is not None else f"{path}"
    return HarError(f"{where}: {message}")


def _quote(text: str) -> str:
    """``text`` quoted with repr (one line), cut to ``_QUOTE_MAX`` characters."""
    if len(text) > _QUOTE_MAX:
        return repr(text[:_QUOTE_MAX]) + "..."
    return repr(text)


def _list_labels(labels: Sequence[str]) -> str:
    """The first ``_LIST_MAX`` labels, quoted, for a message."""
    shown = ", ".join(_quote(x) for x in labels[:_LIST_MAX])
    more = len(labels) - _LIST_MAX
    return shown + (f", ... ({len(labels)} labels)" if more > 0 else "")


# --------------------------------------------------------------------------------------------
# reading


def read_ts(path: str | os.PathLike) -> TsFile:
    """Read and check a ``.ts`` file; raise HarError naming the file and line on any problem."""
    path = Path(path)
    lines = _read_lines(path)
    data_index = _find_data_line(path, lines)
    header = _parse_header(path, lines[:data_index])
    series, labels, first_line = _parse_cases(path, lines, data_index + 1, header)
    lengths = np.array([s.shape[1] for s in series], dtype=np.int64)
    equal = bool((lengths == lengths[0]).all())
    _check_lengths(path, header, lengths, first_line)
    return TsFile(path=path, problem=str(header.get("problemname", path.stem)),
                  dimensions=int(series[0].shape[0]), lengths=lengths, series=series,
                  labels=labels, class_labels=list(header.get("classlabel", [])),
                  missing=any(bool(np.isnan(s).any()) for s in series),
                  equal_length=equal, first_line=first_line)


def _read_lines(path: Path) -> list[str]:
    """The file's lines (``\\n``, ``\\r\\n`` or ``\\r`` endings), without their line ending."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise _err(path, None, "file not found; check the path") from None
    except OSError as e:
        raise _err(path, None, f"cannot read the file ({e.strerror or e}); "
                               "check that it is a readable file") from None
    start = 3 if data.startswith(b"\xef\xbb\xbf") else 0   # skip a UTF-8 byte-order mark
    try:
        text = data[start:].decode("utf-8")
    except UnicodeDecodeError as e:
        bad = start + e.start
        line = data.count(b"\n", 0, bad) + 1
        raise _err(path, line, f"not UTF-8 text (bad byte {data[bad]:#04x}); save the file "
                               "as UTF-8") from None
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.split("\n")


def _header_key(line: str) -> str:
    """The lower-case key of a header line (``"@classLabel true a"`` → ``"classlabel"``)."""
    parts = line.split(None, 1)
    return parts[0][1:].lower() if parts else ""


def _find_data_line(path: Path, lines: list[str]) -> int:
    """Index of the ``@data`` line; HarError when there is none."""
    for i, line in enumerate(lines):
        if line.lstrip().startswith("@") and _header_key(line.strip()) == "data":
            if len(line.split()) > 1:
                raise _err(path, i + 1, "@data takes no value; put the data on the lines "
                                        "below it")
            return i
    raise _err(path, None, "no @data line; add a line '@data' between the header lines and "
                           "the data")


def _parse_header(path: Path, lines: list[str]) -> _Header:
    """Parse and cross-check the lines before ``@data``."""
    header = _Header()
    for i, raw in enumerate(lines):
        line = raw.strip()
        if not line or line.startswith(("#", "%")):
            continue
        if not line.startswith("@"):
            raise _err(path, i + 1, "data line before @data; move it below the @data line or "
                                    "start it with '#' to make it a comment")
        _parse_header_line(path, i + 1, line, header)
    _check_header(path, header)
    return header


def _parse_header_line(path: Path, n: int, line: str, header: _Header) -> None:
    """Parse one ``@key value`` line into ``header``."""
    parts = line.split()
    key = _ALIASES.get(parts[0][1:].lower(), parts[0][1:].lower())
    args = parts[1:]
    if key in _BOOL_KEYS:
        value = _parse_bool(path, n, parts[0], args)
    elif key in _INT_KEYS:
        value = _parse_int(path, n, parts[0], args)
    elif key == "problemname":
        if not args:
            raise _err(path, n, "@problemName has no name; write '@problemName NAME'")
        value = line.split(None, 1)[1].strip()
    elif key == "classlabel":
        value = _parse_class_label(path, n, parts[0], args)
    else:
        raise _err(path, n, f"unknown header {_quote(parts[0])}; known headers are {_KNOWN}; "
                            "fix or remove the line")
    if key in header.values and key != "problemname" and header.values[key] != value:
        raise _err(path, n, f"{parts[0]} contradicts the same header on line "
                            f"{header.lines[key]}; keep only one")
    header.values[key] = value
    header.lines[key] = n


def _parse_bool(path: Path, n: int, name: str, args: list[str]) -> bool:
    """``true``/``false`` (any case) as the only argument."""
    if len(args) != 1 or args[0].lower() not in ("true", "false"):
        got = _quote(" ".join(args))
        raise _err(path, n, f"{name} expects true or false, got {got}; write '{name} true' or "
                            f"'{name} false'")
    return args[0].lower() == "true"


def _parse_int(path: Path, n: int, name: str, args: list[str]) -> int:
    """A positive integer as the only argument."""
    if len(args) == 1 and args[0].isascii() and args[0].isdigit() and int(args[0]) > 0:
        return int(args[0])
    got = _quote(" ".join(args))
    raise _err(path, n, f"{name} expects a positive whole number, got {got}; write e.g. "
                        f"'{name} 3'")


def _parse_class_label(path: Path, n: int, name: str, args: list[str]) -> list[str]:
    """``true L1 L2 ...`` → the labels; ``false`` → []."""
    flag = args[0].lower() if args else ""
    if flag == "false" and len(args) == 1:
        return []
    if flag != "true":
        raise _err(path, n, f"{name} expects 'true LABEL1 LABEL2 ...' or 'false', got "
                            f"{_quote(' '.join(args))}; fix the line")
    labels = args[1:]
    if not labels:
        raise _err(path, n, f"{name} true lists no labels; list every class label after "
                            f"'true', e.g. '{name} true walk run'")
    seen = set()
    for label in labels:
        if label in seen:
            raise _err(path, n, f"{name} lists label {_quote(label)} twice; list each once")
        seen.add(label)
    return labels


def _check_header(path: Path, header: _Header) -> None:
    """Reject unsupported or contradictory header values."""
    if header.get("timestamps"):
        raise _err(path, header.lines["timestamps"],
                   "@timeStamps true: timestamped (t,v) values are not supported; convert the "
                   "file to plain comma-separated values with '@timeStamps false'")
    if header.get("targetlabel"):
        raise _err(path, header.lines["targetlabel"],
                   "@targetLabel true: regression files are not supported; use a "
                   "classification file ('@classLabel true ...')")
    dims = header.get("dimensions")
    if header.get("univariate") and dims is not None and dims != 1:
        raise _err(path, header.lines["dimensions"],
                   f"@dimensions {dims} contradicts @univariate true (line "
                   f"{header.lines['univariate']}); set '@univariate false' or '@dimensions 1'")


def _parse_cases(path: Path, lines: list[str], start: int, header: _Header):
    """Parse the data lines from index ``start`` on → (series, labels, first_line)."""
    expected = header.get("dimensions", 1 if header.get("univariate") else None)
    classes = header.get("classlabel", [])
    class_set = set(classes)
    series: list[np.ndarray] = []
    labels: list[str] = []
    first_line: list[int] = []
    for i in range(start, len(lines)):
        line = lines[i].strip()
        if not line or line.startswith("#"):
            continue
        n = i + 1
        if line.startswith("@"):
            raise _err(path, n, "header line after @data; move it above the @data line")
        body, label = _split_label(path, n, line, classes, class_set)
        dims = body.count(":") + 1
        if expected is None:
            expected = dims
        elif dims != expected:
            raise _dimension_error(path, n, dims, expected, header, first_line)
        series.append(_parse_values(path, n, body))
        first_line.append(n)
        if classes:
            labels.append(label)
    if not series:
        raise _err(path, None, "no cases after @data; add one line per case below @data")
    return series, labels, first_line


def _split_label(path: Path, n: int, line: str, classes: list[str], class_set: set):
    """``"1,2:3,4:walk"`` → (``"1,2:3,4"``, ``"walk"``); no split with ``@classLabel false``."""
    if not classes:
        return line, None
    cut = line.rfind(":")
    if cut < 0:
        raise _err(path, n, "no class label; with @classLabel true end each case with "
                            "':LABEL'")
    label = line[cut + 1:].strip()
    if label not in class_set:
        raise _err(path, n, f"class label {_quote(label)} is not listed in @classLabel "
                            f"({_list_labels(classes)}); add it to @classLabel or fix the line")
    return line[:cut], label


def _dimension_error(path: Path, n: int, got: int, expected: int, header: _Header,
                     first_line: list[int]) -> HarError:
    """The message for a case whose number of dimensions is wrong."""
    if "dimensions" in header.values:
        return _err(path, n, f"case has {got} dimensions, expected {expected} "
                             f"(@dimensions {expected}); fix the line or the header")
    if header.get("univariate"):
        return _err(path, n, f"case has {got} dimensions but the file says @univariate true "
                             f"(line {header.lines['univariate']}); set '@univariate false' "
                             f"and '@dimensions {got}', or fix the line")
    return _err(path, n, f"case has {got} dimensions, but the first case (line "
                         f"{first_line[0]}) has {expected}; give every case the same number "
                         "of ':'-separated dimensions")


def _parse_values(path: Path, n: int, body: str) -> np.ndarray:
    """``"1,2:3,?"`` → float32 ``[[1, 2], [3, nan]]``, checked; one bulk conversion per line."""
    fields = body.split(":")
    counts = []
    for d, text in enumerate(fields, start=1):
        if not text.strip():
            raise _err(path, n, f"dimension {d} is empty (no values); write at least one "
                                "value or '?' for each dimension")
        counts.append(text.count(",") + 1)
    if len(set(counts)) > 1:
        shown = ", ".join(str(c) for c in counts)
        raise _err(path, n, f"the dimensions of this case have different lengths ({shown}); "
                            "give every dimension of a case the same number of values")
    flat = body.replace(":", ",").replace("?", "nan").split(",")
    try:
        with np.errstate(over="ignore"):
            values = np.array(flat, dtype=np.float32)
    except ValueError:
        raise _bad_value(path, n, fields) from None
    if np.isinf(values).any():
        raise _bad_value(path, n, fields)
    return values.reshape(len(fields), counts[0])


def _bad_value(path: Path, n: int, fields: list[str]) -> HarError:
    """Locate the first token of ``fields`` that is not a finite float32 number."""
    for d, text in enumerate(fields, start=1):
        for token in text.split(","):
            problem = _token_problem(token.strip())
            if problem:
                return _err(path, n, f"dimension {d}: {problem}")
    return _err(path, n, "a value is not a number; write finite numbers, or '?' if missing")


def _token_problem(token: str) -> str:
    """What is wrong with one value token, with the fix; "" when it is fine."""
    if token == "?":
        return ""
    if not token:
        return "empty value (',,' or a trailing comma); write a number or '?' there"
    try:
        number = float(token)
    except ValueError:
        hint = (" (timestamped (t,v) values are not supported)"
                if token.startswith("(") or token.endswith(")") else "")
        return (f"value {_quote(token)} is not a number{hint}; write a number, or '?' if "
                "missing")
    with np.errstate(over="ignore"):
        if np.isfinite(np.float32(number)) or np.isnan(number):
            return ""
    return (f"value {_quote(token)} is infinite or too large for float32; write a finite "
            "number, or '?' if missing")


def _check_lengths(path: Path, header: _Header, lengths: np.ndarray,
                   first_line: list[int]) -> None:
    """Check ``@equalLength true`` and ``@seriesLength`` against the lengths read."""
    if header.get("equallength"):
        odd = np.flatnonzero(lengths != lengths[0])
        if odd.size:
            i = int(odd[0])
            raise _err(path, first_line[i],
                       f"case has length {lengths[i]}, but the first case (line "
                       f"{first_line[0]}) has {lengths[0]} and the header says @equalLength "
                       f"true (line {header.lines['equallength']}); set '@equalLength false' "
                       "or fix the line")
    want = header.get("serieslength")
    if want is not None and (lengths == lengths[0]).all() and lengths[0] != want:
        raise _err(path, header.lines["serieslength"],
                   f"@seriesLength {want} but every case has length {lengths[0]} (first case "
                   f"on line {first_line[0]}); write '@seriesLength {lengths[0]}'")


# --------------------------------------------------------------------------------------------
# equal length


def to_equal_length(series: Sequence[np.ndarray], how: str, target: int | None = None
                    ) -> tuple[np.ndarray, int, np.ndarray]:
    """Fill missing values, then make every case ``target`` steps long.

    ``series``: float arrays ``[C, length_i]``. ``how``: ``"pad"`` repeats each case's last
    value up to ``target`` (default: the longest length; longer cases are cut to ``target``),
    ``"truncate"`` keeps the first ``target`` steps (default: the shortest length),
    ``"resample"`` interpolates each case linearly onto ``target`` evenly spaced points over its
    own span (default: the longest length).

    Returns ``(x, target, has_nan)``: ``x`` float32 ``[n, target, C]``, and a bool ``[n]`` mask
    of cases that still hold NaN (a dimension with no known value at all).
    """
    if how not in _HOWS:
        raise ValueError(f"how must be one of {_HOWS}, got {how!r}")
    cases = [_fill_missing(_as_case(s, i)) for i, s in enumerate(series)]
    if not cases:
        raise HarError("no cases to make equal length; check that the input has data")
    channels = cases[0].shape[0]
    if any(c.shape[0] != channels for c in cases):
        raise ValueError("every case must have the same number of dimensions")
    lengths = np.array([c.shape[1] for c in cases])
    target = _choose_target(how, target, lengths)
    x = np.empty((len(cases), target, channels), dtype=np.float32)
    for i, case in enumerate(cases):
        x[i] = _resample(case, target).T if how == "resample" else _pad_or_cut(case, target).T
    return x, target, np.isnan(x).any(axis=(1, 2))


def _as_case(case, i: int) -> np.ndarray:
    """One case as a float32 ``[C, L]`` copy; ValueError if not 2-D or empty."""
    arr = np.array(case, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"case {i} must be a non-empty [dimensions, length] array, "
                         f"got shape {arr.shape}")
    return arr


def _choose_target(how: str, target: int | None, lengths: np.ndarray) -> int:
    """The output length: the given one (checked) or the default for ``how``."""
    given = target is not None
    if not given:
        target = int(lengths.min() if how == "truncate" else lengths.max())
    target = operator.index(target)
    origin = "" if given else f" (the default for '{how}')"
    if target < 2:
        raise HarError(f"--length-target {target}{origin} is too short; give --length-target "
                       "2 or more")
    if how == "truncate" and target > lengths.min():
        raise HarError(f"--length-target {target} exceeds the shortest case ({lengths.min()} "
                       f"steps) and truncate cannot lengthen; give --length-target "
                       f"{lengths.min()} or less, or pad/resample instead")
    return target


def _fill_missing(case: np.ndarray) -> np.ndarray:
    """Fill NaN in place per dimension: linear inside, held at the ends; all-NaN stays NaN."""
    steps = np.arange(case.shape[1])
    for row in case:
        known = ~np.isnan(row)
        if known.all() or not known.any():
            continue
        row[:] = np.interp(steps, steps[known], row[known])
    return case


def _pad_or_cut(case: np.ndarray, target: int) -> np.ndarray:
    """The first ``target`` steps of ``case``, padded by repeating its last value."""
    length = case.shape[1]
    if length >= target:
        return case[:, :target]
    tail = np.repeat(case[:, -1:], target - length, axis=1)
    return np.concatenate([case, tail], axis=1)


def _resample(case: np.ndarray, target: int) -> np.ndarray:
    """``case`` linearly interpolated onto ``target`` evenly spaced points of its index span."""
    length = case.shape[1]
    old = np.arange(length, dtype=np.float64)
    new = np.linspace(0.0, length - 1, target)
    return np.stack([np.interp(new, old, row) for row in case]).astype(np.float32)
