"""The ``.ts`` reader (:mod:`data_prep.ts_format`): parsing, every input error, equal length."""

from __future__ import annotations

import re

import numpy as np
import pytest

from data_prep.ts_format import TsFile, read_ts, to_equal_length
from harkit.errors import HarError

UNI_HEADER = """#A tiny univariate problem
@problemName Tiny
@timeStamps false
@missing false
@univariate true
@equalLength true
@seriesLength 4
@classLabel true walk run sit
@data
"""


def write(tmp_path, text: str, name: str = "case.ts", newline: str = "\n"):
    """Write ``text`` (``\\n`` lines) with the given line ending; return the path."""
    path = tmp_path / name
    path.write_bytes(text.replace("\n", newline).encode("utf-8"))
    return path


def har_error(path, line) -> str:
    """read_ts(path) must raise a one-line HarError naming the path and ``line``; return it."""
    with pytest.raises(HarError) as info:
        read_ts(path)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message
    assert str(path) in message
    if line is None:
        assert not re.search(r"line \d+:", message)
    else:
        assert f"{path} line {line}:" in message
    return message


# --------------------------------------------------------------------------------------------
# parsing


def test_univariate_equal_length_string_labels(tmp_path):
    path = write(tmp_path, UNI_HEADER + "1,2,3,4:run\n0.5,-1e3,7,8:walk\n1.25,0,0,1:run\n")
    ts = read_ts(path)
    assert isinstance(ts, TsFile)
    assert ts.path == path and ts.problem == "Tiny" and ts.dimensions == 1
    assert ts.lengths.dtype == np.int64 and ts.lengths.tolist() == [4, 4, 4]
    assert ts.labels == ["run", "walk", "run"]
    assert ts.class_labels == ["walk", "run", "sit"]
    assert ts.equal_length and not ts.missing
    assert ts.first_line == [10, 11, 12]
    assert all(s.dtype == np.float32 and s.shape == (1, 4) for s in ts.series)
    np.testing.assert_array_equal(ts.series[1], [[0.5, -1000.0, 7.0, 8.0]])


def test_multivariate_unequal_length_with_missing(tmp_path):
    text = ("@problemName Multi\n@missing true\n@univariate false\n@dimensions 3\n"
            "@equalLength false\n@classLabel true 1 2\n@data\n"
            "1,2,3:4,?,6:7,8,?:1\n"
            "?,1:2,3:NaN,nan:2\n"
            "5:6:7:1\n")
    ts = read_ts(write(tmp_path, text))
    assert ts.dimensions == 3 and ts.lengths.tolist() == [3, 2, 1]
    assert not ts.equal_length and ts.missing
    assert ts.labels == ["1", "2", "1"] and ts.class_labels == ["1", "2"]
    assert ts.first_line == [8, 9, 10]
    nan = np.nan
    np.testing.assert_array_equal(ts.series[0], [[1, 2, 3], [4, nan, 6], [7, 8, nan]])
    np.testing.assert_array_equal(ts.series[1], [[nan, 1], [2, 3], [nan, nan]])
    np.testing.assert_array_equal(ts.series[2], [[5], [6], [7]])


def test_comments_blank_lines_crlf_and_trailing_whitespace(tmp_path):
    text = ("# comment one\n\n#comment two   \n@PROBLEMNAME   Spaced   \n@Dimension 2  \n"
            "@classlabel TRUE a b\n\n@DATA  \n\n1,2:3,4:a   \n# a comment among data\n"
            "   \n5,6 : 7,8 : b\t\n\n")
    path = write(tmp_path, text, name="crlf.ts", newline="\r\n")
    ts = read_ts(path)
    assert ts.problem == "Spaced" and ts.dimensions == 2
    assert ts.labels == ["a", "b"] and ts.first_line == [10, 13]
    np.testing.assert_array_equal(ts.series[1], [[5, 6], [7, 8]])


def test_archive_quirks_percent_comments_and_repeated_headers(tmp_path):
    text = ("%# ARFF-style comment\n%\n@problemName First\n@problemName Second\n"
            "@missing false\n@MISSING False\n@data\n1,2\n")
    ts = read_ts(write(tmp_path, text))
    assert ts.problem == "Second" and ts.first_line == [8]


def test_no_labels_and_problem_from_stem(tmp_path):
    ts = read_ts(write(tmp_path, "@classLabel false\n@data\n1,2\n3,4,5\n", name="Stem.ts"))
    assert ts.problem == "Stem" and ts.labels == [] and ts.class_labels == []
    assert ts.dimensions == 1 and ts.lengths.tolist() == [2, 3] and not ts.equal_length


def test_round_trip_random_multivariate(tmp_path):
    rng = np.random.default_rng(1234)
    classes = ["standing", "walking", "c3"]
    cases, labels = [], []
    for _ in range(40):
        length = int(rng.integers(1, 30))
        values = (rng.normal(size=(4, length)) * 10.0 ** rng.integers(-3, 4)).astype(np.float32)
        values[rng.random(values.shape) < 0.05] = np.nan
        cases.append(values)
        labels.append(classes[int(rng.integers(len(classes)))])
    lines = ["@problemName RoundTrip", "@univariate false", "@dimensions 4",
             "@classLabel true " + " ".join(classes), "@data"]
    for values, label in zip(cases, labels):
        dims = [",".join("?" if np.isnan(v) else repr(float(v)) for v in row) for row in values]
        lines.append(":".join(dims) + ":" + label)
    ts = read_ts(write(tmp_path, "\n".join(lines) + "\n"))
    assert ts.labels == labels and ts.first_line == list(range(6, 46))
    assert ts.lengths.tolist() == [c.shape[1] for c in cases]
    for got, want in zip(ts.series, cases):
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want)


# --------------------------------------------------------------------------------------------
# errors


def test_missing_file(tmp_path):
    message = har_error(tmp_path / "absent.ts", None)
    assert "not found" in message


def test_unreadable_path(tmp_path):
    folder = tmp_path / "folder.ts"
    folder.mkdir()
    assert "cannot read" in har_error(folder, None)


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_not_utf8_names_the_line(tmp_path, bom):
    path = tmp_path / "latin.ts"
    path.write_bytes(bom + b"@problemName X\n@data\n1,2\n1,3 # caf\xe9\n")
    assert "not UTF-8" in har_error(path, 4)


def test_byte_order_mark_is_ignored(tmp_path):
    path = tmp_path / "bom.ts"
    path.write_bytes(b"\xef\xbb\xbf@problemName B\n@data\n1,2\n")
    ts = read_ts(path)
    assert ts.problem == "B" and ts.first_line == [3]


def test_no_data_line(tmp_path):
    message = har_error(write(tmp_path, "@problemName X\n@classLabel false\n"), None)
    assert "no @data line" in message


ERRORS = [
    # (file text, line of the error, fragments of the message)
    ("@problemName X\n@foo bar\n@data\n1\n", 2, ["unknown header", "'@foo'"]),
    ("@seriesLength abc\n@data\n1\n", 1, ["@seriesLength", "'abc'", "whole number"]),
    ("@seriesLength 0\n@data\n1\n", 1, ["@seriesLength", "'0'"]),
    ("#c\n@classLabel maybe\n@data\n1:a\n", 2, ["@classLabel", "'maybe'"]),
    ("@missing maybe\n@data\n1\n", 1, ["@missing", "true or false"]),
    ("@problemName\n@data\n1\n", 1, ["@problemName", "no name"]),
    ("@missing false\n@missing true\n@data\n1\n", 2, ["contradicts", "line 1"]),
    ("@data extra\n1\n", 1, ["@data takes no value"]),
    ("@problemName X\n1,2,3\n@data\n1,2,3\n", 2, ["data line before @data"]),
    ("@dimensions 3\n@data\n1,2:3,4:5,6\n1,2:3,4\n", 4,
     ["case has 2 dimensions", "expected 3", "@dimensions 3"]),
    ("@dimensions 2\n@data\n1,2:3,4:walk\n", 3, ["case has 3 dimensions", "expected 2"]),
    ("@data\n1,2:3,4\n\n1,2:3,4:5,6\n", 4,
     ["case has 3 dimensions", "first case (line 2) has 2"]),
    ("@dimensions 2\n@data\n1,2:3,4\n1,abcdefghijklmnopqrstuvwxyz,3:4,5,6\n", 4,
     ["dimension 1", "'abcdefghijklmnopqrst'...", "not a number"]),
    ("@dimensions 2\n@data\n1,2:3,x\n", 3, ["dimension 2", "'x'"]),
    ("@data\n1,1e39\n", 2, ["dimension 1", "'1e39'", "too large"]),
    ("@data\n(0,1),(1,2)\n", 2, ["'(0'", "timestamped"]),
    ("@classLabel true walk run\n@data\n1,2:walk\n1,2:jump\n", 4,
     ["'jump'", "not listed", "'walk', 'run'"]),
    ("@classLabel true a b\n@data\n1,2\n", 3, ["no class label"]),
    ("@classLabel true\n@data\n1:a\n", 1, ["lists no labels"]),
    ("@classLabel true a a\n@data\n1:a\n", 1, ["twice"]),
    ("@equalLength true\n@data\n1,2,3\n1,2,3\n1,2\n", 5,
     ["length 2", "first case (line 3) has 3", "@equalLength true"]),
    ("#x\n@seriesLength 5\n@data\n1,2,3\n1,2,3\n", 2, ["@seriesLength 5", "length 3"]),
    ("@dimensions 3\n@data\n1,2::3,4\n", 3, ["dimension 2 is empty"]),
    ("@classLabel true a\n@data\n:a\n", 3, ["dimension 1 is empty"]),
    ("@data\n1,,2\n", 2, ["dimension 1", "empty value"]),
    ("@univariate true\n@data\n1,2\n1,2:3,4\n", 4, ["2 dimensions", "@univariate true"]),
    ("@univariate true\n@dimensions 3\n@data\n1\n", 2, ["@dimensions 3", "@univariate true"]),
    ("@timeStamps true\n@data\n(0,1),(1,2)\n", 1, ["timestamp", "not supported"]),
    ("@targetLabel true\n@data\n1:0.5\n", 1, ["regression", "not supported"]),
    ("@dimensions 2\n@data\n1,2,3:4,5\n", 3, ["different lengths (3, 2)"]),
    ("@data\n1\n@missing true\n", 3, ["header line after @data"]),
    ("@problemName X\n@data\n\n# nothing\n", None, ["no cases"]),
]


@pytest.mark.parametrize("text,line,fragments", ERRORS)
def test_input_errors(tmp_path, text, line, fragments):
    message = har_error(write(tmp_path, text), line)
    for fragment in fragments:
        assert fragment in message


def test_error_line_numbers_count_crlf_lines(tmp_path):
    path = write(tmp_path, "# c\n\n@dimensions 2\n@data\n1:2\n\n1:x\n", newline="\r\n")
    assert "dimension 2: value 'x'" in har_error(path, 7)


# --------------------------------------------------------------------------------------------
# equal length


def case(*rows):
    return np.array(rows, dtype=np.float32)


def test_pad_repeats_last_value():
    x, target, has_nan = to_equal_length([case([1, 2, 3], [4, 5, 6]), case([7], [8])], "pad",
                                         None)
    assert target == 3 and x.shape == (2, 3, 2) and x.dtype == np.float32
    np.testing.assert_array_equal(x[0], [[1, 4], [2, 5], [3, 6]])
    np.testing.assert_array_equal(x[1], [[7, 8], [7, 8], [7, 8]])
    assert has_nan.tolist() == [False, False]


def test_pad_to_explicit_target_cuts_longer_cases():
    x, target, _ = to_equal_length([case([1, 2, 3, 4]), case([5, 6])], "pad", 3)
    assert target == 3
    np.testing.assert_array_equal(x[:, :, 0], [[1, 2, 3], [5, 6, 6]])


def test_truncate_keeps_first_steps():
    series = [case([1, 2, 3, 4], [5, 6, 7, 8]), case([9, 10, 11], [12, 13, 14])]
    x, target, _ = to_equal_length(series, "truncate", None)
    assert target == 3
    np.testing.assert_array_equal(x[0], [[1, 5], [2, 6], [3, 7]])
    x, target, _ = to_equal_length(series, "truncate", 2)
    assert target == 2
    np.testing.assert_array_equal(x[1], [[9, 12], [10, 13]])


def test_resample_interpolates_over_each_case():
    series = [case([0, 10, 20, 30, 40]), case([0, 8, 4], [1, 1, 1])[:1], case([5, 7])]
    x, target, _ = to_equal_length(series, "resample", None)
    assert target == 5
    np.testing.assert_array_equal(x[:, :, 0], [[0, 10, 20, 30, 40],
                                               [0, 4, 8, 6, 4],
                                               [5, 5.5, 6, 6.5, 7]])
    x, target, _ = to_equal_length(series, "resample", 3)
    np.testing.assert_array_equal(x[:, :, 0], [[0, 20, 40], [0, 8, 4], [5, 6, 7]])


def test_missing_values_filled_and_has_nan_mask():
    nan = np.nan
    series = [case([nan, 2, nan, nan, 8, nan], [1, 2, 3, 4, 5, 6]),
              case([nan, nan, 1, 2], [nan, nan, nan, nan]),
              case([nan, 3, nan, nan], [4, nan, nan, 4])]
    x, target, has_nan = to_equal_length(series, "pad", None)
    assert target == 6
    np.testing.assert_array_equal(x[0, :, 0], [2, 2, 4, 6, 8, 8])
    np.testing.assert_array_equal(x[0, :, 1], [1, 2, 3, 4, 5, 6])
    np.testing.assert_array_equal(x[1, :, 0], [1, 1, 1, 2, 2, 2])
    assert np.isnan(x[1, :, 1]).all()
    np.testing.assert_array_equal(x[2], [[3, 4], [3, 4], [3, 4], [3, 4], [3, 4], [3, 4]])
    assert has_nan.dtype == bool and has_nan.tolist() == [False, True, False]


def test_input_series_not_modified():
    original = case([np.nan, 1, np.nan])
    to_equal_length([original], "pad", 4)
    assert np.isnan(original[0, 0]) and np.isnan(original[0, 2])


def test_equal_length_from_read_ts(tmp_path):
    ts = read_ts(write(tmp_path, "@dimensions 2\n@data\n1,?,3:4,5,6\n7,8:9,?\n"))
    x, target, has_nan = to_equal_length(ts.series, "pad", None)
    np.testing.assert_array_equal(x, [[[1, 4], [2, 5], [3, 6]], [[7, 9], [8, 9], [8, 9]]])
    assert target == 3 and not has_nan.any()


def test_unknown_how_is_value_error():
    with pytest.raises(ValueError):
        to_equal_length([case([1, 2])], "stretch", None)


@pytest.mark.parametrize("how,target,series", [
    ("pad", 1, [case([1, 2, 3])]),
    ("resample", 0, [case([1, 2, 3])]),
    ("truncate", None, [case([1, 2, 3]), case([4])]),
    ("truncate", 3, [case([1, 2, 3]), case([4, 5])]),
])
def test_bad_length_target_is_har_error(how, target, series):
    with pytest.raises(HarError) as info:
        to_equal_length(series, how, target)
    message = str(info.value)
    assert "--length-target" in message and "\n" not in message
