"""The ``csv`` adapter: your own recordings as CSV/TSV/Parquet files, prepared, trained on and
predicted from (batch and streamed), and every bad input as one line + exit code 2. Each test
writes its own small files."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from data_prep import load_prepare_config, load_prepared, prepare
from tests.conftest import one_error_line

RATE = 50.0
ACTIVITIES = ("walk", "sit", "run")


def _signals(rng, label: str, n: int, t0: float):
    """Two channels a small CNN separates: a sine whose frequency and offset depend on the
    label, plus noise."""
    t = t0 + np.arange(n) / RATE
    f = {"walk": 2.0, "sit": 0.2, "run": 3.5}[label]
    ax = np.sin(2 * np.pi * f * t) + (label == "run") + rng.normal(0, 0.1, n)
    ay = np.cos(2 * np.pi * f * t) - (label == "sit") + rng.normal(0, 0.1, n)
    return t, ax, ay


def write_subject(path: Path, subject: str, seed: int, plan=ACTIVITIES * 2, rows: int = 150,
                  jitter: float = 0.0, gap_after: int = -1, sep: str = ",",
                  time_format=None, extra=None):
    """One recording: ``time,ax,ay,label,subject`` rows, ``rows`` per activity of ``plan``;
    ``jitter`` (s) perturbs the timestamps, ``gap_after`` inserts a 2 s gap after that block."""
    rng = np.random.default_rng(seed)
    lines = [sep.join(["time", "ax", "ay", "label", "subject"] + list(extra or {}))]
    t0 = 1.0
    for k, label in enumerate(plan):
        t, ax, ay = _signals(rng, label, rows, t0)
        t = t + rng.uniform(-jitter, jitter, rows) if jitter else t
        for i in range(rows):
            when = time_format(t[i]) if time_format else f"{t[i]:.4f}"
            cells = [when, f"{ax[i]:.5f}", f"{ay[i]:.5f}", label, subject]
            lines.append(sep.join(cells + [str(v) for v in (extra or {}).values()]))
        t0 = t[-1] + 1 / RATE + (2.0 if k == gap_after else 0.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def _study(root: Path, subjects=("P01", "P02", "P03", "P04"), **kw) -> Path:
    for i, s in enumerate(subjects):
        write_subject(root / f"{s}.csv", s, seed=i, **kw)
    return root


def _options(out: Path, **overrides):
    base = {"out": str(out), "window": 32, "overlap": 0.5, "val_subjects": ["P03"],
            "test_subjects": ["P04"]}
    return load_prepare_config(None, {**base, **overrides}, "csv")


# --------------------------------------------------------------------------- preparing
def test_string_labels_and_subjects_irregular_time_with_a_gap(tmp_path):
    raw = _study(tmp_path / "raw", jitter=0.002, gap_after=1)
    meta = prepare(raw, _options(tmp_path / "out"), use_cache=False)
    assert meta["dataset"] == "csv" and meta["options"]["label_col"] == "label"
    assert [c["name"] for c in meta["classes"]] == ["run", "sit", "walk"]      # sorted labels
    assert meta["channels"] == ["ax", "ay"]                                    # numeric, in order
    assert meta["source_rate_hz"] == pytest.approx(RATE, rel=0.01)            # median step
    assert meta["splits"]["val"]["subjects"] == ["P03"]
    assert meta["splits"]["train"]["subjects"] == ["P01", "P02"]
    data = load_prepared(tmp_path / "out")
    assert data["test"].subject.tolist() == ["P04"] * len(data["test"])
    # no window crosses the 2 s gap after block 1 or a change of label: every window's steps
    # come from one block of 150 rows, so a block yields (150 - 32) // 16 + 1 = 8 windows
    assert meta["splits"]["train"]["windows"] == 2 * 6 * 8
    assert meta["dropped"]["rows_without_label"] == 0


def test_an_infinite_reading_drops_the_windows_holding_it_not_the_statistics(tmp_path):
    """A sensor glitch written ``inf`` (pyarrow reads it as a number) must not reach the
    normalization (an infinite mean turns every value of that channel into NaN): the windows
    holding it are dropped and counted, like those with a dropout."""
    raw = _study(tmp_path / "raw")
    path = raw / "P01.csv"
    lines = path.read_text().splitlines()
    cells = lines[75].split(",")                      # row 75 of the first 150-row block
    lines[75] = ",".join([cells[0], "inf"] + cells[2:])
    path.write_text("\n".join(lines) + "\n")
    meta = prepare(raw, _options(tmp_path / "out"), use_cache=False)
    # windows of 32 rows every 16: rows 74 (0-based in the block) lie in windows 3 and 4
    assert meta["dropped"]["windows_with_missing_values"] == {"train": 2, "val": 0, "test": 0}
    assert meta["splits"]["train"]["windows"] == 2 * 6 * 8 - 2
    assert np.isfinite(meta["normalization"]["mean"]).all()
    assert np.isfinite(load_prepared(tmp_path / "out")["train"].x).all()


def test_statistics_summed_recording_by_recording_are_those_of_the_train_windows(tmp_path):
    """prepare sums the train statistics one recording at a time while it reads; combined, they
    are the float64 mean and std of the written train windows, however unlike the subjects
    (means 1e4 apart, stds 1e-2 to 20), and the held-out subjects never enter them."""
    rng = np.random.default_rng(7)
    raw = tmp_path / "raw"
    people = [("P01", 0.0, 1.0), ("P02", 1e3, 0.01), ("P03", -50.0, 20.0), ("P04", 5.0, 1.0),
              ("P05", 1e4, 1e3)]
    for subject, offset, scale in people:
        n = 960
        labels = np.repeat(["walk", "sit", "run"], n // 3)
        ax = offset + scale * rng.standard_normal(n)
        ay = 2.0 - offset + 3 * scale * rng.standard_normal(n)
        rows = [f"{i / RATE:.4f},{ax[i]:.5f},{ay[i]:.5f},{labels[i]},{subject}" for i in range(n)]
        raw.mkdir(exist_ok=True)
        (raw / f"{subject}.csv").write_text("time,ax,ay,label,subject\n" + "\n".join(rows))
    held = {"val_subjects": ["P04"], "test_subjects": ["P05"]}
    prepare(raw, _options(tmp_path / "plain", normalize=False, **held), use_cache=False)
    meta = prepare(raw, _options(tmp_path / "norm", **held), use_cache=False)
    train = load_prepared(tmp_path / "plain")["train"]
    assert sorted(set(train.subject)) == ["P01", "P02", "P03"]
    flat = train.x.reshape(-1, 2).astype(np.float64)
    np.testing.assert_allclose(meta["normalization"]["mean"], flat.mean(0), rtol=1e-12)
    np.testing.assert_allclose(meta["normalization"]["std"], flat.std(0), rtol=1e-12)


def test_rate_resamples_each_stretch_onto_an_even_grid(tmp_path):
    raw = _study(tmp_path / "raw", jitter=0.004)
    meta = prepare(raw, _options(tmp_path / "out", rate=25.0), use_cache=False)
    assert meta["source_rate_hz"] == 25.0 and meta["sample_rate_hz"] == 25.0
    assert meta["options"]["rate"] == 25.0
    rows_per_block = 150 / RATE * 25        # 3 s of rows at 25 Hz per block: 1 window each
    assert meta["splits"]["train"]["windows"] == 2 * 6 * int((rows_per_block - 32) // 16 + 1)


def test_classes_option_fixes_order_and_subset_other_rows_are_counted(tmp_path):
    raw = _study(tmp_path / "raw")
    meta = prepare(raw, _options(tmp_path / "out", classes=["walk", "run"]), use_cache=False)
    assert [c["name"] for c in meta["classes"]] == ["walk", "run"]
    assert meta["dropped"]["rows_other_labels"] == 4 * 2 * 150                 # "sit", dropped
    assert meta["dropped"]["other_labels"] == {"sit": 1200}
    assert load_prepared(tmp_path / "out")["train"].y.max() == 1


def test_several_recordings_in_one_file_tsv_parquet_and_subject_from_name(tmp_path):
    import pandas as pd

    raw = tmp_path / "raw"
    a = write_subject(tmp_path / "a.csv", "P01", seed=0, extra={"session": "s1"})
    b = write_subject(tmp_path / "b.csv", "P01", seed=1, extra={"session": "s2"})
    both = pd.concat([pd.read_csv(a), pd.read_csv(b)])
    raw.mkdir()
    both.to_csv(raw / "subject_P01.tsv", sep="\t", index=False)          # one file, 2 sessions
    pd.read_csv(write_subject(tmp_path / "c.csv", "x", seed=2, extra={"session": "s1"})
                ).to_parquet(raw / "subject_P02.parquet")
    write_subject(raw / "nested" / "subject_P03.csv", "x", seed=3, sep=";",
                  extra={"session": "s1"})
    opts = _options(tmp_path / "out", subject_col="", subject_from_name=r"subject_(P\d+)",
                    recording_col="session", val_subjects=[], test_subjects=["P03"])
    meta = prepare(raw, opts, use_cache=False)
    names = sorted(s["file"] for s in meta["sources"])
    assert sum("#s1" in n or "#s2" in n for n in names) == 2                 # split by session
    assert meta["splits"]["train"]["subjects"] == ["P01", "P02"]
    assert {s["subject"] for s in meta["sources"]} == {"P01", "P02", "P03"}
    assert meta["splits"]["test"]["windows"] == 6 * 8


def test_no_time_column_with_rate_and_datetime_time_columns(tmp_path):
    import datetime as dt

    start = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.timezone.utc)
    iso = _study(tmp_path / "iso", time_format=lambda t: (start + dt.timedelta(seconds=t))
                 .isoformat(timespec="milliseconds"))
    meta = prepare(iso, _options(tmp_path / "a"), use_cache=False)
    assert meta["source_rate_hz"] == pytest.approx(RATE, rel=1e-3)
    plain = _study(tmp_path / "plain")
    seconds = prepare(plain, _options(tmp_path / "b"), use_cache=False)
    np.testing.assert_allclose(load_prepared(tmp_path / "a")["train"].x,
                               load_prepared(tmp_path / "b")["train"].x, atol=1e-5)
    assert seconds["splits"] == meta["splits"]
    norate = prepare(plain, _options(tmp_path / "c", time_col="", rate=RATE), use_cache=False)
    assert norate["splits"] == meta["splits"]


def test_cache_is_used_for_a_second_preparation(tmp_path, monkeypatch):
    from data_prep.datasets import tabular

    raw = _study(tmp_path / "raw")
    calls = []
    real = tabular._read_table
    monkeypatch.setattr(tabular, "_read_table", lambda *a: calls.append(1) or real(*a))
    first = prepare(raw, _options(tmp_path / "a"), cache_dir=tmp_path / "cache")
    second = prepare(raw, _options(tmp_path / "b", window=20), cache_dir=tmp_path / "cache")
    assert len(calls) == 4 and second["sources"] == first["sources"]
    prepare(raw, _options(tmp_path / "c", label_col="subject"), cache_dir=tmp_path / "cache")
    assert len(calls) == 8                         # another label column: parsed again


# --------------------------------------------------------------------------- the whole flow
@pytest.fixture(scope="module")
def csv_run(tmp_path_factory):
    from har.train import fit

    root = tmp_path_factory.mktemp("csv_flow")
    raw = _study(root / "raw")
    prepare(raw, _options(root / "prep"), use_cache=False)
    fit(root / "prep", "resnet", out=root / "run", hparams={"blocks": [1, 1], "widths": [8, 8]},
        epochs=8, batch_size=16, lr=3e-3, threads=1, seed=0, amp=False)
    return root


def test_train_then_predict_a_csv_recording(csv_run, run_cli):
    summary = json.loads((csv_run / "run" / "summary.json").read_text())
    assert summary["test"]["f1_macro"] > 0.6                         # chance: ~0.33
    code, out, err = run_cli("predict", csv_run / "run" / "best.pt", csv_run / "raw/P04.csv",
                             "--by-label", "--out", csv_run / "t.csv")
    assert code == 0, err
    assert "macro F1" in out
    header = (csv_run / "t.csv").read_text().splitlines()[0]
    assert header == "start_s,end_s,activity,probability,true_activity"


def test_predict_without_labels_and_stream_equals_batch(csv_run, tmp_path, monkeypatch,
                                                        run_cli):
    from har.predict import Predictor, predict_path
    from har.stream import Stream

    text = (csv_run / "raw/P04.csv").read_text()
    unlabelled = tmp_path / "live.csv"
    rows = [line.split(",")[:3] for line in text.splitlines()]
    rows[200][2] = "-inf"                      # a glitch: both drop the windows holding it
    unlabelled.write_text("\n".join(",".join(cells) for cells in rows) + "\n")
    predictor = Predictor.load(csv_run / "run" / "best.pt")
    batch = predict_path(predictor, unlabelled)[0]
    assert len(batch) > 0 and not batch.labelled
    chunks = [c.encode() for c in _pieces(unlabelled.read_text(), 7)]
    stream = Stream(predictor, chunks, name="live")
    list(stream)
    streamed = stream.timeline()
    assert streamed.dropped_nan == batch.dropped_nan > 0
    np.testing.assert_array_equal(streamed.predicted, batch.predicted)
    np.testing.assert_array_equal(streamed.start_s, batch.start_s)
    np.testing.assert_allclose(streamed.probability, batch.probability, atol=1e-5)
    labelled = Stream(predictor, [c.encode() for c in _pieces(text, 3)], name="stdin")
    list(labelled)
    whole = predict_path(predictor, csv_run / "raw/P04.csv")[0]
    assert labelled.timeline().true_names() == whole.true_names()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode())))
    code, out, err = run_cli("predict", csv_run / "run" / "best.pt", "-", "--threads", "1")
    assert code == 0, err
    assert out.splitlines()[0].split()[:3] == ["start_s", "end_s", "activity"]


def _pieces(text: str, count: int):
    lines = text.splitlines(keepends=True)
    cuts = np.linspace(0, len(lines), count + 1).astype(int)
    return ["".join(lines[a:b]) for a, b in zip(cuts[:-1], cuts[1:])]


# --------------------------------------------------------------------------- bad input
def _fails(run_cli, *args, words=()):
    code, out, err = run_cli("prepare", *args)
    line = one_error_line(err)
    assert code == 2 and all(w in line for w in words), line
    return line


def test_bad_columns_values_and_options_are_one_line_errors(tmp_path, run_cli):
    raw = _study(tmp_path / "raw")
    out = tmp_path / "out"
    common = (raw, "--dataset", "csv", "--out", out, "--window", "32")
    _fails(run_cli, *common, "--label-col", "activity",
           words=["no column 'activity' (--label-col)", "time, ax, ay, label, subject"])
    _fails(run_cli, *common, "--channels", "ax,az", words=["no column 'az'", "--channels"])
    _fails(run_cli, *common, "--time-col", "", words=["no --time-col and no --rate"])
    _fails(run_cli, *common, "--subject-col", "", "--subject-from-name", r"(Q\d+)",
           words=["does not match", "P01.csv"])
    bad = (raw / "P02.csv").read_text().splitlines()
    bad[40] = bad[40].replace(bad[40].split(",")[1], "oops", 1)
    (raw / "P02.csv").write_text("\n".join(bad) + "\n")
    _fails(run_cli, *common, words=["P02.csv line 41", "'ax'", "'oops' is not a number"])
    assert not out.exists()


def test_unsorted_or_duplicate_timestamps_name_the_line(tmp_path, run_cli):
    for case, edit in (("back", lambda ls: ls[:20] + [ls[25]] + ls[20:25] + ls[26:]),
                       ("dup", lambda ls: ls[:30] + [ls[29]] + ls[30:])):
        raw = tmp_path / case
        f = write_subject(raw / "P01.csv", "P01", seed=0)
        lines = f.read_text().splitlines()
        f.write_text("\n".join(edit(lines)) + "\n")
        line = _fails(run_cli, raw, "--dataset", "csv", "--out", tmp_path / "o",
                      words=["P01.csv line", "sort the rows by time"])
        assert ("line 22" in line) if case == "back" else ("line 31" in line and "repeats"
                                                           in line)


def test_a_config_file_holds_the_study_layout(tmp_path, run_cli):
    raw = _study(tmp_path / "raw", subjects=("A1", "A2", "A3"))
    for f in raw.iterdir():                     # the study names its columns differently
        f.write_text(f.read_text().replace("label,subject", "activity,participant", 1))
    study = tmp_path / "study.toml"
    study.write_text('[prepare]\ndataset = "csv"\nlabel_col = "activity"\n'
                     'subject_col = "participant"\nwindow = 32\nval_subjects = ["A2"]\n'
                     'test_subjects = ["A3"]\n')
    code, out, err = run_cli("prepare", raw, "--config", study, "--out", tmp_path / "o")
    assert code == 0, err
    meta = json.loads((tmp_path / "o/meta.json").read_text())
    assert meta["splits"]["test"]["subjects"] == ["A3"] and meta["options"]["window"] == 32
    code, _, err = run_cli("prepare", raw, "--config", study, "--sensors", "hand")
    assert code == 2 and "--sensors" in one_error_line(err) and "csv" in err


def test_arrow_columns_to_numpy_keep_values_and_mark_nulls_as_nan():
    """Columns as pyarrow hands them over (many chunks, sliced chunks, nulls in integer and
    float columns) reach numpy value for value, nulls as NaN, into a given buffer too."""
    import pyarrow as pa

    from data_prep.datasets.base import to_numpy

    ints = pa.array([7, None, 3, 4, None, 6], pa.int64()).slice(1)
    floats = pa.chunked_array([pa.array([1.5, None], pa.float32()), pa.array([2.5], pa.float32())])
    np.testing.assert_array_equal(to_numpy(pa.chunked_array([ints])), [np.nan, 3, 4, np.nan, 6])
    assert to_numpy(pa.chunked_array([pa.array([1, 2, 3], pa.int32()).slice(1)])).tolist() == [2, 3]
    out = np.zeros(3, np.float32)
    to_numpy(floats, out)
    np.testing.assert_array_equal(out, [1.5, np.nan, 2.5])


def test_arrow_columns_fill_a_row_major_array_chunk_by_chunk():
    """Columns chunked alike (as arrow's CSV reader cuts them) fill a row-major array block by
    block; chunked differently, or into a column-major array, column by column: the same
    values either way, nulls as NaN."""
    import pyarrow as pa

    from data_prep.datasets.base import columns_into

    rng = np.random.default_rng(0)
    values = rng.standard_normal((3, 10)).astype(np.float32)
    values[1, 4] = np.nan

    def chunked(row, cuts):
        pieces = np.split(values[row], cuts)
        return pa.chunked_array([pa.array(p, pa.float32(), from_pandas=True) for p in pieces])

    alike = [chunked(j, [3, 7]) for j in range(3)]
    unlike = [chunked(0, [3, 7]), chunked(1, [5]), chunked(2, [])]
    for columns in (alike, unlike):
        for out in (np.zeros((10, 3), np.float32), np.zeros((3, 10), np.float32).T):
            np.testing.assert_array_equal(columns_into(columns, out), values.T)
    assert alike[1].null_count == 1


def test_label_codes_span_chunks_with_their_own_dictionaries():
    """pyarrow's CSV reader gives each block its own dictionary (other values, other order).
    The codes must name the same label in every chunk; values equal once stripped share one
    code; empty and missing labels are -1; a column of one value is told from the
    dictionaries alone."""
    import pyarrow as pa

    from data_prep.datasets.tabular import _dictionary, _only_value
    from data_prep.read import SignalBuffers

    def chunk(values):
        return pa.array(values, pa.string()).dictionary_encode()

    column = pa.chunked_array([chunk(["walk", "sit", "walk", None]),
                               chunk(["sit ", "", "run", "walk"]),
                               chunk(["run", "run"])])
    for buffers in (None, SignalBuffers()):
        codes, names = _dictionary(column, buffers)
        assert codes.dtype == np.int64 and names == ["walk", "sit", "run"]
        assert [names[c] if c >= 0 else None for c in codes] == [
            "walk", "sit", "walk", None, "sit", None, "run", "walk", "run", "run"]
    assert _only_value(pa.chunked_array([chunk(["P01", "P01"]), chunk([" P01"])])) == "P01"
    assert _only_value(pa.chunked_array([chunk(["P01"]), chunk(["P02"])])) is None
    assert _only_value(pa.chunked_array([chunk(["P01", None])])) is None


def test_parse_memory_is_reused_only_when_it_is_the_pools_own():
    """Buffers handed back are given out again (no fresh pages for the next file); arrays the
    pool did not make are never taken, so their memory cannot be handed to another parse."""
    from data_prep.read import SignalBuffers

    pool = SignalBuffers()
    signals = pool.take(100, 3)
    assert signals.shape == (100, 3) and signals.dtype == np.float32
    assert signals.flags.f_contiguous
    signals[:] = 1.0
    pool.give(signals[10:20])                     # any view of it hands back the buffer
    stamps = pool.take(120, dtype=np.float64)     # 960 bytes fit in the 1200 given back
    assert stamps.shape == (120,) and np.shares_memory(stamps, signals)
    foreign = np.zeros(1000, np.float32)
    pool.give(foreign)
    pool.give(stamps)
    pool.give(stamps)                              # twice: still one free buffer
    again = pool.take(50, dtype=np.int64)
    assert np.shares_memory(again, signals)
    assert not np.shares_memory(pool.take(10), foreign)


def test_parse_memory_comes_back_for_every_layout_of_a_file(tmp_path):
    """Whatever the grouping (one recording, a recording column holding one value or two),
    every pooled buffer a parse takes is handed back once its recordings are released."""
    from data_prep.cache import ParseCache
    from data_prep.datasets import get_dataset
    from data_prep.read import SignalBuffers, read_source
    from data_prep.sources import file_source

    one = write_subject(tmp_path / "one.csv", "P01", seed=0, extra={"session": "s1"})
    two = tmp_path / "two.csv"
    two.write_text(one.read_text() + "".join(
        line.replace(",s1", ",s2") + "\n" for line in one.read_text().splitlines()[1:]))
    adapter = get_dataset("csv")
    for path, recording_col in ((one, ""), (one, "session"), (two, "session")):
        opts = _options(tmp_path / "out", recording_col=recording_col)
        pool = SignalBuffers()
        recs = read_source(adapter, file_source(path), opts, ParseCache(None, "csv"), pool)
        assert pool.in_use > 0
        for rec in recs:
            rec.release()
        assert pool.in_use == 0, (path.name, recording_col)


def test_a_copy_of_a_file_is_named_after_itself_cold_or_warm(tmp_path):
    """Two files with the same bytes share a parse-cache entry; each recording is still named
    after the file it was read from, on the first run and when the cache answers."""
    import shutil

    raw = tmp_path / "raw"
    first = write_subject(raw / "P01.csv", "P01", seed=0, extra={"session": "s1"}).read_text()
    (raw / "P01.csv").write_text(first + "".join(                     # two sessions
        line.replace(",s1", ",s2") + "\n" for line in first.splitlines()[1:]))
    shutil.copy(raw / "P01.csv", raw / "P01-copy.csv")
    write_subject(raw / "P02.csv", "P02", seed=1, extra={"session": "s1"})
    names = []
    for run in ("cold", "warm"):
        opts = _options(tmp_path / run, recording_col="session", val_subjects=[],
                        test_subjects=[])
        meta = prepare(raw, opts, cache_dir=tmp_path / "cache")
        names.append(sorted(s["file"] for s in meta["sources"]))
    assert names[0] == names[1] == sorted(
        [str(raw / f) + s for f in ("P01.csv", "P01-copy.csv") for s in ("#s1", "#s2")]
        + [str(raw / "P02.csv")])
