"""`har predict` / ``har.predict``: scores equal `har evaluate`'s on the same windows, the
timeline CSV, streaming equal to batch (stdin, a growing file, a live pipe), the incremental
gap filling and windowing of ``data_prep.transform`` equal to the whole-recording path, and each
bad input as one line + exit code 2. Uses the session fixture ``trained`` of conftest.py."""

from __future__ import annotations

import csv
import io
import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from data_prep import windows
from data_prep.datasets import pamap2
from data_prep.transform import GapFiller, Preprocessing, Windower, cut, stretches
from har.evaluate import evaluate
from har.predict import Predictor, predict_path, summarize, torch_threads
from har.stream import Stream, read_chunks
from harkit.errors import HarError
from tests.conftest import one_error_line

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Single-window passes on a shared 2-core machine: 1 thread is ~100× steadier."""
    with torch_threads(1):
        yield


def _rows(path: Path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _chunks(data: bytes, seed: int, most: int = 5000):
    """``data`` cut at random line ends into pieces of up to ``most`` bytes."""
    rng = np.random.default_rng(seed)
    ends = [i + 1 for i, b in enumerate(data) if b == 10]
    pieces, start = [], 0
    while start < len(data):
        limit = start + int(rng.integers(1, most))
        stop = next((e for e in ends if e >= limit), len(data))
        pieces.append(data[start:stop])
        start = stop
    return pieces


def _same_timeline(a, b):
    assert len(a) == len(b) > 0
    np.testing.assert_array_equal(a.predicted, b.predicted)
    np.testing.assert_array_equal(a.start_s, b.start_s)
    np.testing.assert_array_equal(a.end_s, b.end_s)
    np.testing.assert_array_equal(a.true, b.true)
    assert a.true_names() == b.true_names()
    np.testing.assert_allclose(a.probability, b.probability, atol=1e-5)
    assert a.labelled == b.labelled and a.dropped_nan == b.dropped_nan


# --------------------------------------------------------------------------- batch
def test_by_label_scores_equal_evaluate_on_the_held_out_subject(trained, run_cli):
    report = evaluate(trained.checkpoint)                          # test split = subject 106
    predictor = Predictor.load(trained.checkpoint, by_label=True)
    summary = summarize(predict_path(predictor, trained.held_out), predictor)
    assert summary["scores"]["scored_windows"] == report["windows"]
    assert summary["scores"]["accuracy"] == pytest.approx(report["overall"]["accuracy"], abs=1e-12)
    assert summary["scores"]["f1_macro"] == pytest.approx(report["overall"]["f1_macro"], abs=1e-12)

    code, out, err = run_cli("predict", trained.checkpoint, trained.held_out, "--by-label")
    assert code == 0, err
    assert (f"accuracy {report['overall']['accuracy']:.4f}, macro F1 "
            f"{report['overall']['f1_macro']:.4f} on {report['windows']} windows") in out


def test_sliding_windows_score_like_evaluate(trained):
    """Without --by-label windows ignore labels; their scores are still close to evaluate's."""
    report = evaluate(trained.checkpoint)
    predictor = Predictor.load(trained.checkpoint)
    summary = summarize(predict_path(predictor, trained.held_out), predictor)
    assert summary["scores"]["scored_windows"] > 0.7 * report["windows"]
    assert summary["scores"]["accuracy"] == pytest.approx(report["overall"]["accuracy"], abs=0.1)


def test_timeline_csv_and_summary(trained, tmp_path, run_cli):
    out = tmp_path / "t.csv"
    code, stdout, err = run_cli("predict", trained.checkpoint, trained.held_out, "--out", out)
    assert code == 0, err
    rows = _rows(out)
    assert list(rows[0]) == ["start_s", "end_s", "activity", "probability", "true_activity"]
    predictor = Predictor.load(trained.checkpoint)
    window_s = predictor.prep.window / predictor.prep.step_rate_hz
    assert all(float(r["end_s"]) - float(r["start_s"]) == pytest.approx(window_s, abs=0.011)
               for r in rows)
    assert {r["activity"] for r in rows} <= set(predictor.classes)
    assert all(0 < float(r["probability"]) <= 1 for r in rows)
    assert {"transient", "walking", ""} <= {r["true_activity"] for r in rows}
    assert f"{len(rows)} windows, one prediction every {predictor.hop_s:.2f} s" in stdout
    assert "predicted activity" in stdout and "accuracy" in stdout

    out = tmp_path / "new" / "t.csv"                                  # its folder is made
    code, _, err = run_cli("predict", trained.checkpoint, trained.held_out, "--out", out,
                           "--hop", predictor.prep.stride // 2)
    assert code == 0, err
    assert len(_rows(out)) >= 2 * len(rows) - 10


def test_unlabelled_recording_and_folder(trained, tmp_path, run_cli):
    lines = trained.held_out.read_bytes().splitlines(keepends=True)
    unlabelled = b"".join(b" ".join([ln.split()[0], b"0"] + ln.split()[2:]) + b"\n"
                          for ln in lines)
    folder = tmp_path / "rec"
    folder.mkdir()
    (folder / "live.dat").write_bytes(unlabelled)
    (folder / "subject106.dat").write_bytes(trained.held_out.read_bytes())
    code, out, err = run_cli("predict", trained.checkpoint, folder / "live.dat",
                             "--out", tmp_path / "a.csv")
    assert code == 0, err
    assert list(_rows(tmp_path / "a.csv")[0]) == ["start_s", "end_s", "activity", "probability"]
    assert "accuracy" not in out
    code, out, err = run_cli("predict", trained.checkpoint, folder, "--out", tmp_path / "b.csv")
    assert code == 0, err
    rows = _rows(tmp_path / "b.csv")
    assert list(rows[0])[0] == "recording" and "true_activity" in rows[0]
    assert {Path(r["recording"]).name for r in rows} == {"live.dat", "subject106.dat"}
    assert "live.dat:" in out and "subject106.dat:" in out


# --------------------------------------------------------------------------- streaming
def test_stream_equals_batch(trained):
    predictor = Predictor.load(trained.checkpoint)
    batch = predict_path(predictor, trained.held_out)[0]
    stream = Stream(predictor, _chunks(trained.held_out.read_bytes(), seed=1))
    predictions = list(stream)
    assert all(p.latency_ms > 0 for p in predictions)
    _same_timeline(stream.timeline(), batch)


def test_stream_equals_batch_with_antialias_heart_rate_and_hop(trained, tmp_path):
    """Plumbing on edited preprocessing: heart rate (held, waits for readings) replaces a
    channel, antialias (waits for the filter's reach), a hop of 5, windows by label."""
    ckpt = torch.load(trained.checkpoint, weights_only=True)
    ckpt["channels"] = ["heart_rate"] + ckpt["channels"][1:]
    ckpt["preprocessing"] = {**ckpt["preprocessing"], "antialias": True}
    path = tmp_path / "edited.pt"
    torch.save(ckpt, path)
    part = tmp_path / "part.dat"                          # ~80 s: 6 activities, transients
    part.write_bytes(b"".join(trained.held_out.read_bytes().splitlines(keepends=True)[:8000]))
    for by_label in (False, True):
        predictor = Predictor.load(path, hop=5, by_label=by_label)
        batch = predict_path(predictor, part)[0]
        stream = Stream(predictor, _chunks(part.read_bytes(), seed=2, most=3000))
        list(stream)
        _same_timeline(stream.timeline(), batch)


def test_stdin_stream_writes_the_batch_csv(trained, tmp_path, run_cli, monkeypatch):
    code, _, err = run_cli("predict", trained.checkpoint, trained.held_out,
                           "--out", tmp_path / "batch.csv")
    assert code == 0, err
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(trained.held_out.read_bytes())))
    code, out, err = run_cli("predict", trained.checkpoint, "-", "--out", tmp_path / "s.csv",
                             "--plot", tmp_path / "s.png")
    assert code == 0, err
    batch, streamed = _rows(tmp_path / "batch.csv"), _rows(tmp_path / "s.csv")
    strip = [{k: v for k, v in r.items() if k != "probability"} for r in batch]
    assert strip == [{k: v for k, v in r.items() if k != "probability"} for r in streamed]
    printed = [line for line in out.splitlines() if line.strip().endswith(
        tuple(pamap2.ACTIVITIES.values())) or line.split()[-1:] and "." in line.split()[-1]]
    assert out.splitlines()[0].split()[:3] == ["start_s", "end_s", "activity"]
    assert len(printed) >= len(batch)
    assert (tmp_path / "s.png").is_file()


_PRINTED = re.compile(r"^\s*(\S+)\s+(\S+)\s+(.+?)\s+(\d\.\d{3})\s+(\d+\.\d)(?:\s+(.+))?$")


def test_streamed_true_column_equals_the_batch_csv(trained, tmp_path, run_cli, monkeypatch):
    """Transient windows say "transient" in both; blank means only "crosses a change"."""
    code, _, err = run_cli("predict", trained.checkpoint, trained.held_out,
                           "--out", tmp_path / "batch.csv")
    assert code == 0, err
    batch = _rows(tmp_path / "batch.csv")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(trained.held_out.read_bytes())))
    code, out, err = run_cli("predict", trained.checkpoint, "-", "--follow")
    assert code == 0, err
    printed = [_PRINTED.match(line) for line in out.splitlines()[1:1 + len(batch)]]
    assert all(printed), out
    assert [(float(m[1]), m[3], m[6] or "") for m in printed] == [
        (round(float(r["start_s"]), 2), r["activity"], r["true_activity"]) for r in batch]
    assert {"transient", ""} < {r["true_activity"] for r in batch}


def test_follow_a_growing_file(trained, tmp_path):
    data = trained.held_out.read_bytes()
    live = tmp_path / "live.dat"
    live.write_bytes(b"")
    pieces = _chunks(data, seed=3, most=400_000)
    done = {}

    def writer():
        with open(live, "ab") as fh:
            for piece in pieces:
                fh.write(piece)
                fh.flush()
                time.sleep(0.05)
        done["t"] = time.monotonic()

    predictor = Predictor.load(trained.checkpoint)
    thread = threading.Thread(target=writer)
    thread.start()
    stream = Stream(predictor, read_chunks(live, follow=True, idle_timeout=0.5, poll_s=0.01))
    first = None
    for _ in stream:
        first = first or time.monotonic()
    thread.join()
    assert len(pieces) > 3 and first < done["t"]          # predictions before the writer ended
    _same_timeline(stream.timeline(), predict_path(predictor, trained.held_out)[0])


def test_live_pipe_prints_predictions_as_rows_arrive(trained):
    lines = trained.held_out.read_bytes().splitlines(keepends=True)
    proc = subprocess.Popen(
        [sys.executable, "-c", "from cli import main; main()", "predict",
         str(trained.checkpoint), "-", "--follow", "--threads", "1"],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    out: "queue.Queue[bytes]" = queue.Queue()
    threading.Thread(target=lambda: [out.put(line) for line in proc.stdout], daemon=True).start()
    try:
        proc.stdin.write(b"".join(lines[:3000]))             # ~30 s of rows, then wait
        proc.stdin.flush()
        assert out.get(timeout=60).split()[:3] == [b"start_s", b"end_s", b"activity"]
        assert len(out.get(timeout=30).split()) >= 5         # a prediction before end of input
        proc.stdin.write(b"".join(lines[3000:]))
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()


# --------------------------------------------------------------------------- transform
def _random_recording(rng, n: int, channels: int):
    ts = 5 + np.arange(n) / 100.0
    for g in rng.integers(0, n, 3):
        ts[g:] += rng.uniform(0.02, 3)                      # timestamp gaps, some tiny
    act = np.repeat(rng.choice([0, 1, 2, 4], size=n // 150 + 1), 150)[:n].astype(np.int64)
    values = rng.normal(size=(n, channels)).astype(np.float32)
    for c in range(channels):
        for _ in range(rng.integers(0, 6)):
            a = rng.integers(0, n)
            values[a:a + rng.integers(1, 80), c] = np.nan   # dropouts, some at the edges
    values[:, 0] = np.nan
    values[::11, 0] = 100 + rng.integers(0, 5, size=values[::11].shape[0])   # heart rate
    values[:rng.integers(0, 40), 0] = np.nan
    return np.round(ts, 2), act, values


def _feed(rng, ts, act, values, filler, windower=None, most=300):
    released, out, i = [], [], 0
    while i < ts.size:
        k = int(rng.integers(1, most))
        released += filler.push(ts[i:i + k], act[i:i + k], values[i:i + k])
        i += k
    released += filler.close()
    if windower is not None:
        for rows in released:
            out += windower.push(rows)
        out += windower.close()
    return released, out


@pytest.mark.parametrize("seed", range(12))
def test_gap_filler_and_windower_equal_the_whole_recording(seed):
    rng = np.random.default_rng(seed)
    n, c = int(rng.integers(200, 3000)), 4
    ts, act, values = _random_recording(rng, n, c)
    whole = values.copy(order="F")
    windows.fill_gaps(ts, whole, [0], pamap2.SAMPLE_RATE_HZ)
    rate = pamap2.SAMPLE_RATE_HZ
    released, _ = _feed(rng, ts, act, values, GapFiller(c, rate, hold=[0]))
    np.testing.assert_array_equal(np.concatenate([r.values for r in released]), whole)

    signals = np.full((n, len(pamap2.SIGNAL_COLUMNS)), np.nan, np.float32)
    signals[:, :c] = whole
    for q, antialias, window, stride, by_label in [(3, False, 16, 5, False),
                                                   (3, True, 16, 7, True),
                                                   (2, True, 40, 13, False),
                                                   (1, False, 10, 3, True),
                                                   (3, True, 8, 4, False)]:
        prep = Preprocessing(pamap2.SIGNAL_COLUMNS[:c], rate, q, antialias, window, stride)
        columns = prep.columns(pamap2.SIGNAL_COLUMNS)
        cuts = [cut(signals, a, b, prep, columns) for a, b in stretches(ts, act, by_label, rate)]
        windower = Windower(prep, by_label=by_label)
        _, streamed = _feed(rng, ts, act, values, GapFiller(c, rate, hold=[0]), windower)
        expected = np.concatenate([w.x for w in cuts])
        got = np.stack([w.x for w in streamed]) if streamed else expected[:0]
        np.testing.assert_array_equal(got, expected)
        first = np.concatenate([w.first_row for w in cuts])
        np.testing.assert_array_equal([w.timestamp_s[0] for w in streamed], ts[first])
        assert windower.dropped_nan == sum(w.dropped_nan for w in cuts)


# --------------------------------------------------------------------------- bad input
def test_bad_recordings_are_one_line_errors(trained, tmp_path, run_cli, monkeypatch):
    lines = trained.held_out.read_bytes().splitlines(keepends=True)
    (tmp_path / "short.dat").write_bytes(b"".join(lines[:50]))
    (tmp_path / "cols.dat").write_bytes(b"".join(b" ".join(ln.split()[:53]) + b"\n"
                                                 for ln in lines[:800]))
    bad = list(lines[:800])
    fields = bad[699].split()
    bad[699] = b" ".join(fields[:4] + [b"abc"] + fields[5:]) + b"\n"
    (tmp_path / "bad.dat").write_bytes(b"".join(bad))
    wrong = list(lines[:800])
    wrong[9] = b" ".join([wrong[9].split()[0], b"8"] + wrong[9].split()[2:]) + b"\n"
    (tmp_path / "act.dat").write_bytes(b"".join(wrong))
    chest = [i for i, c in enumerate(pamap2.COLUMNS) if c.startswith("chest_")]
    blank = [ln.split() for ln in lines[:800]]
    for fields in blank:
        for i in chest:
            fields[i] = b"NaN"
    (tmp_path / "blank.dat").write_bytes(b"".join(b" ".join(f) + b"\n" for f in blank))
    cases = [("cols.dat", ["line 1", "53 columns, expected 54"]),
             ("bad.dat", ["line 700", "column 5", "'abc'"]),
             ("act.dat", ["line 10", "activityID (column 2) is 8, not one of"]),
             ("blank.dat", ["column(s) 22 (chest_acc16_x)", "more hold no value",
                            "the sensors it was trained on"]),
             ("short.dat", ["shorter than one window", "0.50 s"]),
             ("absent.dat", ["does not exist"])]
    for name, words in cases:
        code, _, err = run_cli("predict", trained.checkpoint, tmp_path / name)
        line = one_error_line(err)
        assert code == 2 and str(tmp_path / name) in line and all(w in line for w in words), line
    for name, words in cases[:4]:                                    # the same, streamed
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(
            (tmp_path / name).read_bytes())))
        code, _, err = run_cli("predict", trained.checkpoint, "-")
        line = one_error_line(err.splitlines()[-1])
        assert code == 2 and "stdin" in line and all(w in line for w in words), line
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"".join(lines[:50]))))
    code, _, err = run_cli("predict", trained.checkpoint, "-")
    assert code == 2 and "no complete window" in one_error_line(err)


def test_bad_checkpoints_and_options_are_one_line_errors(trained, tmp_path, run_cli):
    ckpt = torch.load(trained.checkpoint, weights_only=True)
    older = tmp_path / "older.pt"
    torch.save({**ckpt, "format_version": 0}, older)
    bare = tmp_path / "bare.pt"
    torch.save({k: v for k, v in ckpt.items() if k != "preprocessing"}, bare)
    alien = tmp_path / "alien.pt"
    torch.save({**ckpt, "channels": ["wrist_acc_x"] + ckpt["channels"][1:]}, alien)
    text = tmp_path / "text.pt"
    text.write_text("hello\n")
    for path, words in ((older, "format_version 0"), (bare, "preprocessing"),
                        (alien, "wrist_acc_x"), (text, "not a harkit checkpoint")):
        code, _, err = run_cli("predict", path, trained.held_out)
        line = one_error_line(err)
        assert code == 2 and str(path) in line and words in line, line
    for args, words in ((["--hop", "0"], "--hop 0"),
                        (["--idle-timeout", "1"], "--idle-timeout"),
                        (["--out", tmp_path], f"--out {tmp_path} is a folder"),
                        (["--out", tmp_path / "t.csv", "--plot", tmp_path], "--plot")):
        code, _, err = run_cli("predict", trained.checkpoint, trained.held_out, *args)
        assert code == 2 and words in one_error_line(err)
    assert not (tmp_path / "t.csv").exists()                          # nothing half-written


def test_windows_of_the_wrong_shape_are_refused_not_pooled(trained):
    """The model pools time away, so a window of the wrong length would silently give an
    answer: the library API refuses it and names the [N, T, C] it expects."""
    from har.predict import predict_proba

    predictor = Predictor.load(trained.checkpoint)
    steps, channels = predictor.prep.window, len(predictor.prep.channels)
    expected = f"[N, {steps}, {channels}]"
    for shape in ((2, steps + 5, channels), (2, steps - 1, channels), (steps, channels)):
        with pytest.raises(HarError, match=re.escape(expected)):
            predictor.probabilities(np.zeros(shape, np.float32))
        with pytest.raises(HarError, match=re.escape(expected)):
            predict_proba(predictor.model, np.zeros(shape, np.float32))
    assert predict_proba(predictor.model, np.zeros((2, steps, channels), np.float32)).shape == (
        2, len(predictor.classes))
