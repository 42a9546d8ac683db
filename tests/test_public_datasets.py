"""UCI-HAR, WISDM v1.1 and MHEALTH: synthetic data in their exact layouts, prepared with the
literature's defaults, their known flaws counted instead of fatal, prediction on raw
recordings (WISDM streamed too), cross-validation, and one-line errors."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from data_prep import load_prepare_config, load_prepared, prepare
from data_prep.datasets import wisdm
from data_prep.synth import synth_mhealth, synth_uci_har, synth_wisdm
from tests.conftest import one_error_line

TINY = {"blocks": [1, 1], "widths": [8, 8]}


def _prepare(raw: Path, out: Path, dataset: str, **overrides):
    return prepare(raw, load_prepare_config(None, {"out": str(out), **overrides}, dataset),
                   use_cache=False)


# --------------------------------------------------------------------------- WISDM
@pytest.fixture(scope="module")
def wisdm_raw(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("wisdm")
    synth_wisdm(root / "raw", seed=0, seconds_per_activity=25, subjects=list(range(1, 9)))
    return root / "raw"


def test_wisdm_defaults_and_the_raw_files_flaws(wisdm_raw, tmp_path, run_cli):
    code, out, err = run_cli("prepare", wisdm_raw, "--out", tmp_path / "p",
                             "--val-subjects", "7", "--test-subjects", "8")
    assert code == 0, err
    meta = json.loads((tmp_path / "p" / "meta.json").read_text())
    assert meta["dataset"] == "wisdm" and meta["window"] == 200 and meta["stride"] == 100
    assert meta["sample_rate_hz"] == 20.0 and meta["channels"] == ["acc_x", "acc_y", "acc_z"]
    assert [c["name"] for c in meta["classes"]] == list(wisdm.ACTIVITIES)
    assert meta["splits"]["test"]["subjects"] == [8]
    skipped = meta["dropped"]["records_skipped"]
    assert {"cut_short", "empty_value", "repeated_timestamp"} <= set(skipped)
    lines = meta["sources"][0]["first_lines_skipped"]
    for cause in ("cut_short", "empty_value"):
        assert skipped[cause] >= len(lines[cause]) >= 1 and len(lines[cause]) <= 5
    assert meta["splits"]["train"]["windows"] > 50


def test_wisdm_flaws_by_hand_and_a_non_numeric_value(tmp_path):
    """Each flaw counted under its cause with its line, the same by pyarrow's fast path and by
    the record-by-record path that a non-numeric value forces."""
    text = (b"1,Walking,1000000000,1.5,2.5,3.5;\n"
            b"1,Walking,1050000000,1.6,2.6,3.6;1,Walking,1100000000,1.7,2.7,3.7;\n"   # 2 on 1
            b"1,Walking,1150000000,1.8,2.8,3.8,;\n"                                  # ,;
            b"1,Walking,1200000000,1.9,,3.9;\n"                                      # empty
            b"1,Walking,1150000000,2.0,3.0,4.0;\n"                                   # repeat
            b"1,Walking,0,2.1,3.1,4.1;\n"                                            # zero
            b"1,Walking,13000\n"                                                     # cut
            b"1,Walking,1300000000,2.2,3.2,4.2;  \t\n"                               # blanks
            b"1,Walking,1310000000,2.3,3.3,4.3\n"                                    # no ;
            b"1,Walking,1320000000,2.4,3.4,;\n"                                      # 5 fields
            b"1,Walking,1330000000,2.5,3.5,4.5,5.5;\n"                               # 7 fields
            b"1,,1340000000,2.6,3.6,4.6;\n")                                         # empty
    expected = {"cut_short": {"records": 2, "lines": [7, 10]},
                "too_many_fields": {"records": 1, "lines": [11]},
                "empty_value": {"records": 2, "lines": [4, 12]}}
    slow = text + (b"1,Walking,1350000000,x1,3.3,4.3;\n"
                   b"99999999999999999999,Walking,1360000000,1,2,3;\n")
    for label, body in (("fast", text), ("slow", slow)):
        parsed = wisdm.parse_records(body)
        assert {c: parsed.skipped[c] for c in expected} == expected, label
        recs = wisdm.DATASET.parse(body, _source(tmp_path, body), None)
        assert recs[0].rows == 6, label              # 8 whole records - zero - repeat
        assert recs[0].dropped == {"zero_timestamp": 1, "repeated_timestamp": 1,
                                   "cut_short": 2, "too_many_fields": 1, "empty_value": 2, **(
                                       {"not_a_number": 2} if label == "slow" else {})}
        assert recs[0].extra["first_lines_skipped"]["cut_short"] == [7, 10]
    assert parsed.skipped["not_a_number"] == {"records": 2, "lines": [13, 14]}


def test_wisdm_reports_the_first_bad_lines_in_file_order():
    """The reported lines of a cause are its first ones in the file, the same on every run,
    also when the text spans many of pyarrow's blocks (parsed in parallel, in any order), and
    a cut-short record that is the start of a whole one is not found inside that one."""
    good = b"7,Jogging,%d,1.25,-2.5,9.75;\n"
    lines = [good % (10**12 + 50_000_000 * i) for i in range(120_000)]      # ~4 MB of text
    bad = list(range(3_000, 120_000, 9_000))                              # 13 bad lines
    for i in bad:
        lines[i] = b"7,Jogging,%d,1.25;\n" % (10**12 + 50_000_000 * (i - 1))   # a prefix of i-1
    body = b"".join(lines)
    for _ in range(3):
        parsed = wisdm.parse_records(body)
        assert parsed.skipped["cut_short"] == {
            "records": len(bad), "lines": [i + 1 for i in bad[:wisdm.REPORTED_LINES]]}


def test_wisdm_first_record_is_not_taken_for_a_cut_short_copy_and_inf_is_a_value():
    """A cut-short record that is the start of the file's first record is reported at its own
    line, not line 1; infinite values are values (kept, as the record-by-record path keeps
    them), only NaN or an empty field is ``empty_value``."""
    text = (b"7,Jogging,1000000000000,1.25,-2.5,9.75;\n"
            b"7,Jogging,1000050000000,inf,-inf,9.75;\n"
            b"7,Jogging,1000000000000,1.25\n"
            b"7,Jogging,1000100000000,1.5,NaN,9.5;\n")
    for label, body in (("fast", text), ("slow", text + b"7,Jogging,1000150000000,x,1,2;\n")):
        parsed = wisdm.parse_records(body)
        assert parsed.skipped["cut_short"] == {"records": 1, "lines": [3]}, label
        assert parsed.skipped["empty_value"] == {"records": 1, "lines": [4]}, label
        assert parsed.user.size == 2 and np.isinf(parsed.xyz[1, :2]).all(), label


def test_wisdm_reports_the_flawed_record_not_a_neighbour_with_its_timestamp():
    """Records with an empty value or an unknown activity are found by their timestamp; a
    whole record just before with the same timestamp (the phones repeat them) is not the one
    reported. Fast and record-by-record paths agree."""
    text = (b"7,Jogging,1000000000000,1.0,2.0,3.0;\n"
            b"7,Jogging,1000050000000,1.0,2.0,3.0;\n"
            b"7,Jogging,1000050000000,1.0,,3.0;\n"                 # empty, as line 2's time
            b"7,Jogging,1000100000000,1.0,2.0,3.0,;\n"
            b"7,Running,1000100000000,1.0,2.0,3.0;\n")            # unknown, as line 4's time
    for label, body in (("fast", text), ("slow", text + b"7,Jogging,1000150000000,x,1,2;\n")):
        parsed = wisdm.parse_records(body)
        assert parsed.skipped["empty_value"] == {"records": 1, "lines": [3]}, label
        assert parsed.skipped["unknown_activity"] == {"records": 1, "lines": [5]}, label


def test_wisdm_records_become_lines_across_block_edges():
    """The vectorized rewrite of the raw text (``;`` a newline, a ``,`` before it dropped)
    equals the plain bytes rewrite, also where a ``,;`` straddles two blocks."""
    from data_prep.datasets.wisdm import _records_as_lines

    rng = np.random.default_rng(5)
    text = bytes(rng.choice(np.frombuffer(b"1,;a\n ", np.uint8), 5000))
    expected = text.replace(b",;", b";;").replace(b";", b"\n")
    for block in (1, 2, 7, 64, 1 << 20):
        assert _records_as_lines(text, block).tobytes() == expected
    assert _records_as_lines(b"").tobytes() == b""


def test_wisdm_jittery_timestamps_are_evenly_spaced_and_pauses_split(tmp_path):
    """Steps of 50 and 100 ms (the phones' jitter) are taken as evenly spaced at 20 Hz; a pause
    over 1 s or a step back starts a new part of the user's recording, a gap no window
    crosses; the stream times its rows the same way, to the bit."""
    rng = np.random.default_rng(0)
    steps = np.where(rng.random(300) < 0.5, 50_000_000, 100_000_000)
    steps[150] = 3_000_000_000                                       # a 3 s pause
    stamps = 10**12 + np.cumsum(steps)
    stamps[250:] -= 10**11                                           # the clock went back
    body = b"".join(b"5,Walking,%d,1.0,2.0,%d;\n" % (t, i) for i, t in enumerate(stamps))
    recs = wisdm.DATASET.parse(body, _source(tmp_path, body), None)
    assert [r.rows for r in recs] == [300] and recs[0].even and recs[0].extra["parts"] == 3
    step = np.diff(recs[0].timestamp_s)
    assert np.allclose(step[step < 0.5], 0.05) and np.flatnonzero(step > 0.5).tolist() == [
        149, 249]
    assert recs[0].timestamp_s[150] == stamps[150] * 1e-9     # a part keeps its own start...
    assert step[249] == pytest.approx(1.05)                   # ... unless the clock went back
    rows = wisdm.DATASET.row_parser(None, "live")
    lines = body.splitlines(keepends=True)
    seconds = np.concatenate([rows.parse(b"".join(lines[i:i + 70]))[0]
                              for i in range(0, len(lines), 70)])
    np.testing.assert_array_equal(seconds, recs[0].timestamp_s)   # the stream times the same


def _source(tmp_path: Path, data: bytes):
    from data_prep.sources import file_source

    path = tmp_path / "WISDM_ar_v1.1_raw.txt"
    path.write_bytes(data)
    return file_source(path)


@pytest.fixture(scope="module")
def wisdm_run(wisdm_raw, tmp_path_factory):
    from har.train import fit

    root = tmp_path_factory.mktemp("wisdm_run")
    _prepare(wisdm_raw, root / "prep", "wisdm", window=40, val_subjects=[7],
             test_subjects=[8])
    fit(root / "prep", "cnn", out=root / "run", hparams=TINY, epochs=2, batch_size=32,
        lr=1e-2, threads=1, amp=False)
    return root / "run" / "best.pt"


def test_wisdm_predict_whole_file_and_stream_agree(wisdm_raw, wisdm_run, tmp_path,
                                                   monkeypatch, run_cli):
    from har.predict import Predictor, predict_path
    from har.stream import Stream

    one_user = tmp_path / "user8.txt"
    raw = (wisdm_raw / "WISDM_ar_v1.1" / wisdm.FILE_NAME).read_bytes()
    one_user.write_bytes(b"\n".join(line for line in raw.split(b"\n")
                                    if line.startswith(b"8,")) + b"\n")
    predictor = Predictor.load(wisdm_run, by_label=True)
    whole = predict_path(predictor, one_user)
    assert sum(len(t) for t in whole) > 10
    lines = one_user.read_bytes().splitlines(keepends=True)
    chunks = [b"".join(lines[i:i + 97]) for i in range(0, len(lines), 97)]
    stream = Stream(predictor, chunks, name="live")
    list(stream)
    streamed = stream.timeline()
    np.testing.assert_array_equal(streamed.predicted,
                                  np.concatenate([t.predicted for t in whole]))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(one_user.read_bytes())))
    code, out, err = run_cli("predict", wisdm_run, "-", "--threads", "1")
    assert code == 0, err and "accuracy" in out


def test_wisdm_k_fold_by_user(wisdm_raw, tmp_path):
    from har.cv import run

    _prepare(wisdm_raw, tmp_path / "prep", "wisdm", window=40, val_subjects=[],
             test_subjects=[])
    summary = run(tmp_path / "prep", 4, model="cnn", out=tmp_path / "cv", hparams=TINY,
                  epochs=1, batch_size=32, threads=1, amp=False)
    assert summary["folds_finished"] == 4
    tested = [s for row in summary["folds"] for s in row["test_subjects"]]
    assert sorted(tested) == list(range(1, 9))


# --------------------------------------------------------------------------- MHEALTH
@pytest.fixture(scope="module")
def mhealth_raw(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mhealth")
    synth_mhealth(root / "raw", seed=0, seconds_per_activity=8, subjects=[1, 2, 9, 10])
    return root / "raw"


def test_mhealth_defaults_ecg_off_and_null_rows_dropped(mhealth_raw, tmp_path):
    meta = _prepare(mhealth_raw, tmp_path / "p", "mhealth", val_subjects=[9],
                    test_subjects=[10])
    assert meta["dataset"] == "mhealth" and meta["window"] == 128 and meta["stride"] == 64
    assert len(meta["channels"]) == 21 and not any("ecg" in c for c in meta["channels"])
    assert len(meta["classes"]) == 12 and meta["dropped"]["rows_excluded"] > 0   # label 0
    ecg = _prepare(mhealth_raw, tmp_path / "e", "mhealth", ecg=True, val_subjects=[9],
                   test_subjects=[10], sensors=["chest"])
    assert ecg["channels"] == ["chest_acc_x", "chest_acc_y", "chest_acc_z", "ecg_lead_1",
                               "ecg_lead_2"]


def test_mhealth_row_with_the_wrong_column_count_is_named(mhealth_raw, tmp_path, run_cli):
    bad = tmp_path / "raw" / "MHEALTHDATASET" / "mHealth_subject1.log"
    bad.parent.mkdir(parents=True)
    lines = (mhealth_raw / "MHEALTHDATASET" / "mHealth_subject1.log").read_text().splitlines()
    lines[41] = "\t".join(lines[41].split("\t")[:20])
    bad.write_text("\n".join(lines) + "\n")
    code, _, err = run_cli("prepare", tmp_path / "raw", "--out", tmp_path / "o",
                           "--val-subjects", "none", "--test-subjects", "none")
    line = one_error_line(err)
    assert code == 2 and f"{bad} line 42" in line and "20 tab-separated columns" in line
    lines[41] = "   "                                      # a line of blanks is named too
    bad.write_text("\n".join(lines) + "\n")
    code, _, err = run_cli("prepare", tmp_path / "raw", "--out", tmp_path / "o",
                           "--val-subjects", "none", "--test-subjects", "none")
    assert code == 2 and f"{bad} line 42" in one_error_line(err)
    renamed = bad.with_name("mHealth_subject11.log")
    bad.rename(renamed)
    code, _, err = run_cli("prepare", tmp_path / "raw", "--out", tmp_path / "o",
                           "--val-subjects", "none", "--test-subjects", "none")
    assert code == 2 and "mHealth_subject<N>.log with N in 1-10" in one_error_line(err)
    assert not (tmp_path / "o").exists()


def test_mhealth_loso_and_predict_a_raw_recording(mhealth_raw, tmp_path, run_cli):
    from har.cv import run

    _prepare(mhealth_raw, tmp_path / "prep", "mhealth", val_subjects=[], test_subjects=[],
             window=64)
    summary = run(tmp_path / "prep", "loso", model="cnn", out=tmp_path / "cv", hparams=TINY,
                  epochs=1, batch_size=32, threads=1, amp=False)
    assert [r["test_subjects"] for r in summary["folds"]] == [[1], [2], [9], [10]]
    ckpt = tmp_path / "cv" / "fold-10" / "best.pt"
    code, out, err = run_cli("predict", ckpt,
                             mhealth_raw / "MHEALTHDATASET" / "mHealth_subject10.log")
    assert code == 0, err
    assert "windows" in out and "accuracy" in out


# --------------------------------------------------------------------------- UCI HAR
@pytest.fixture(scope="module")
def uci_raw(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("uci")
    synth_uci_har(root / "raw", seed=0, seconds_per_activity=6, subjects=[1, 2, 3, 4, 5, 28])
    return root / "raw"


def test_uci_har_official_split_and_validation_from_training_subjects(uci_raw, tmp_path,
                                                                      run_cli):
    code, out, err = run_cli("prepare", uci_raw, "--out", tmp_path / "p", "--val-subjects", 28)
    assert code == 0, err
    data = load_prepared(tmp_path / "p")
    assert data.meta["dataset"] == "uci_har" and data.window == 128
    assert len(data.channels) == 9 and data.meta["sample_rate_hz"] == 50.0
    assert sorted(set(data["test"].subject.tolist())) == [2, 4]          # official test
    assert sorted(set(data["train"].subject.tolist())) == [1, 3, 5]
    assert set(data["val"].subject.tolist()) == {28}
    code, _, err = run_cli("prepare", uci_raw, "--out", tmp_path / "q", "--val-subjects", 2)
    assert code == 2 and "validation subjects come from the training" in one_error_line(err)


def test_uci_har_bad_window_line_and_predict_explains(uci_raw, tmp_path, run_cli):
    import shutil

    from har.train import fit

    bad = tmp_path / "bad"
    shutil.copytree(uci_raw, bad)
    path = bad / "UCI HAR Dataset" / "test" / "Inertial Signals" / "body_gyro_y_test.txt"
    lines = path.read_text().splitlines()
    first, second = lines[6].split(), lines[7].split()   # a value moved to the next line:
    lines[6], lines[7] = " ".join(first[:127]), " ".join(first[127:] + second)  # same count
    path.write_text("\n".join(lines) + "\n")
    code, _, err = run_cli("prepare", bad, "--out", tmp_path / "o")
    line = one_error_line(err)
    assert code == 2 and "body_gyro_y_test.txt line 7" in line and "127 values" in line
    subjects = bad / "UCI HAR Dataset" / "train" / "subject_train.txt"
    subjects.write_text(subjects.read_text().replace("1\n", "99999999999999999999\n", 1))
    code, _, err = run_cli("prepare", bad, "--out", tmp_path / "o")
    assert code == 2 and "subject_train.txt line 1" in one_error_line(err)
    code, _, err = run_cli("prepare", uci_raw, "--out", tmp_path / "o", "--val-subjects", "30")
    assert code == 2 and "--val-subjects: subject(s) 30 not in the data" in one_error_line(err)
    assert not (tmp_path / "o").exists()
    _prepare(uci_raw, tmp_path / "p", "uci_har", val_subjects=[])
    fit(tmp_path / "p", "cnn", out=tmp_path / "run", hparams=TINY, epochs=1, batch_size=32,
        threads=1, amp=False)
    code, _, err = run_cli("predict", tmp_path / "run" / "best.pt", uci_raw)
    assert code == 2 and "pre-cut windows" in one_error_line(err)


def test_a_file_of_another_dataset_is_one_line_naming_it(wisdm_raw, mhealth_raw, tmp_path,
                                                         run_cli):
    """Each dataset's file where the other's should be (renamed into its layout, or passed
    with --dataset): one line naming the file, exit 2, no output folder."""
    wisdm_file = wisdm_raw / "WISDM_ar_v1.1" / wisdm.FILE_NAME
    mhealth_file = mhealth_raw / "MHEALTHDATASET" / "mHealth_subject1.log"
    as_mhealth = tmp_path / "a" / "MHEALTHDATASET" / "mHealth_subject1.log"
    as_wisdm = tmp_path / "b" / "WISDM_ar_v1.1" / wisdm.FILE_NAME
    for src, dst in ((wisdm_file, as_mhealth), (mhealth_file, as_wisdm)):
        dst.parent.mkdir(parents=True)
        dst.write_bytes(src.read_bytes())
    cases = [((tmp_path / "a",), f"{as_mhealth} line 1", "MHEALTH"),
             ((tmp_path / "b",), str(as_wisdm), "WISDM"),
             ((mhealth_file, "--dataset", "wisdm"), str(mhealth_file), "WISDM")]
    for args, where, hint in cases:
        code, _, err = run_cli("prepare", *args, "--out", tmp_path / "o")
        line = one_error_line(err)
        assert code == 2 and where in line and hint in line, line
        assert not (tmp_path / "o").exists()


def test_synthetic_layouts_are_detected(uci_raw, wisdm_raw, mhealth_raw):
    from data_prep.datasets import detect

    assert [detect(p).name for p in (uci_raw, wisdm_raw, mhealth_raw)] == [
        "uci_har", "wisdm", "mhealth"]
