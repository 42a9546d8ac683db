"""`har prepare`: schema, windows, gap filling, splits, normalization, cache, atomic output."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from data_prep import load_prepare_config, load_prepared, prepare
from data_prep.cache import CACHE_VERSION
from data_prep.datasets import pamap2
from tests.conftest import activity_blocks, assert_umask_modes, one_error_line, write_dat

SMALL = ["--downsample", "1", "--window", "10", "--overlap", "0", "--no-normalize"]


def _prep(src, out, **overrides):
    base = {"out": str(out), "downsample": 1, "window": 10, "overlap": 0.0, "normalize": False,
            "val_subjects": [], "test_subjects": []}
    base.update(overrides)
    return prepare(src, load_prepare_config(None, base))


def _index_signal(n: int) -> np.ndarray:
    """Every value of row i is i (so a window's rows can be recovered from its values)."""
    return np.repeat(np.arange(n, dtype=np.float64)[:, None], pamap2.NUM_COLUMNS, axis=1)


# --------------------------------------------------------------------------- schema
def test_schema_has_54_columns_and_the_readme_channel_positions():
    assert len(pamap2.COLUMNS) == 54
    one_based = [pamap2.COLUMN_INDEX[c] + 1 for c in pamap2.imu_channels()]
    assert one_based == list(range(5, 17)) + list(range(22, 34)) + list(range(39, 51))
    assert pamap2.COLUMNS[:3] == ("timestamp", "activity_id", "heart_rate")
    assert [pamap2.COLUMN_INDEX[f"{s}_temperature"] + 1 for s in pamap2.SENSORS] == [4, 21, 38]
    assert not any("orientation" in c for c in pamap2.PARSED_COLUMNS)


def test_first_row_is_data_and_labels_map_in_ascending_id_order(tmp_path):
    ts, act = activity_blocks([(24, 30), (1, 20), (0, 7), (4, 40)])
    rows = write_dat(tmp_path / "raw/Protocol/subject101.dat", ts, act)
    meta = _prep(tmp_path / "raw", tmp_path / "out")
    data = load_prepared(tmp_path / "out")
    train = data["train"]
    assert [c["id"] for c in meta["classes"]] == list(pamap2.PROTOCOL_ACTIVITIES)
    assert meta["classes"][11] == {"label": 11, "id": 24, "name": "rope jumping"}
    assert list(train.y) == [11] * 3 + [0] * 2 + [3] * 4
    cols = [pamap2.COLUMN_INDEX[c] for c in pamap2.imu_channels()]
    np.testing.assert_allclose(train.x[0], rows[:10, cols], rtol=1e-6)   # row 1 is not a header
    assert train.x.dtype == np.float32 and train.x.shape == (9, 10, 36)
    assert meta["dropped"]["rows_excluded"] == 7            # transient


def test_windows_never_cross_an_activity_change_or_a_timestamp_gap(tmp_path):
    ts, act = activity_blocks([(1, 35), (2, 26), (1, 50)])
    ts[70:] += 3.0                                 # a 3 s gap inside the last activity
    write_dat(tmp_path / "raw/Protocol/subject101.dat", ts, act, signal=_index_signal(ts.size))
    _prep(tmp_path / "raw", tmp_path / "out", window=8, overlap=0.5)
    x = load_prepared(tmp_path / "out")["train"].x[:, :, 0]          # row index of each step
    assert len(x) > 0
    assert np.all(np.diff(x, axis=1) == 1)                          # consecutive rows only
    for w in x.astype(int):
        assert len({int(act[i]) for i in w}) == 1                   # one activity
        assert w[-1] < 70 or w[0] >= 70                              # one side of the gap
    starts = set(x[:, 0].astype(int))
    assert {0, 4, 8, 35, 61, 70}.issubset(starts)


def test_gap_filling_interpolates_holds_heart_rate_and_drops_edge_nan(tmp_path):
    n = 60
    sig = _index_signal(n)
    hand_x = pamap2.COLUMN_INDEX["hand_acc16_x"]
    sig[20:25, hand_x] = np.nan                    # interior dropout: interpolated
    sig[:3, pamap2.COLUMN_INDEX["ankle_gyro_z"]] = np.nan   # leading dropout: not extrapolated
    sig[:, 2] = np.nan
    sig[5::10, 2] = 100 + np.arange(6)             # heart rate every 10 rows
    ts, act = activity_blocks([(1, n)])
    write_dat(tmp_path / "raw/Protocol/subject101.dat", ts, act, signal=sig)
    meta = _prep(tmp_path / "raw", tmp_path / "out", heart_rate=True)
    data = load_prepared(tmp_path / "out")
    x = data["train"].x
    assert meta["dropped"]["windows_with_missing_values"]["train"] == 1   # window 0 (rows 0-9)
    assert len(x) == 5                                                     # rows 10..59
    hand = data.channels.index("hand_acc16_x")
    np.testing.assert_allclose(x[1, :, hand], np.arange(20, 30))          # 20..24 interpolated
    hr = x[:, :, data.channels.index("heart_rate")].ravel()
    expect = 100 + (np.arange(10, 60) - 5) // 10
    np.testing.assert_allclose(hr, expect)
    assert not np.isnan(x).any()


# --------------------------------------------------------------------------- splits, normalization
def _three_subjects(root: Path, scale_103: float = 1.0):
    for i, subject in enumerate((101, 102, 103)):
        ts, act = activity_blocks([(1, 100), (0, 10), (5, 100)])
        rng = np.random.default_rng(subject)
        sig = rng.normal(loc=i, scale=1 + i, size=(ts.size, 54))
        if subject == 103:
            sig *= scale_103
        write_dat(root / f"Protocol/subject{subject}.dat", ts, act, signal=sig.round(5))


def test_subject_splits_and_train_only_normalization(tmp_path):
    _three_subjects(tmp_path / "raw")
    raw_meta = _prep(tmp_path / "raw", tmp_path / "plain", val_subjects=[102],
                     test_subjects=[103])
    plain = load_prepared(tmp_path / "plain")
    assert {s: raw_meta["splits"][s]["subjects"] for s in plain.splits} == {
        "train": [101], "val": [102], "test": [103]}
    for split, subject in (("train", 101), ("val", 102), ("test", 103)):
        assert set(plain[split].subject) == {subject}
    meta = _prep(tmp_path / "raw", tmp_path / "norm", val_subjects=[102], test_subjects=[103],
                 normalize=True)
    flat = plain["train"].x.reshape(-1, 36).astype(np.float64)
    np.testing.assert_allclose(meta["normalization"]["mean"], flat.mean(0), rtol=1e-5)
    np.testing.assert_allclose(meta["normalization"]["std"], flat.std(0), rtol=1e-5)
    norm = load_prepared(tmp_path / "norm")
    expect = (plain["test"].x - flat.mean(0)) / flat.std(0)
    np.testing.assert_allclose(norm["test"].x, expect, rtol=1e-4, atol=1e-4)
    # statistics do not move when the held-out subjects change
    _three_subjects(tmp_path / "raw2", scale_103=10.0)
    meta2 = _prep(tmp_path / "raw2", tmp_path / "norm2", val_subjects=[102],
                  test_subjects=[103], normalize=True)
    assert meta2["normalization"]["mean"] == meta["normalization"]["mean"]


def test_include_optional_adds_six_classes(tmp_path):
    ts, act = activity_blocks([(1, 30)])
    write_dat(tmp_path / "raw/PAMAP2_Dataset/Protocol/subject101.dat", ts, act)
    ts, act = activity_blocks([(9, 30), (20, 30)])
    write_dat(tmp_path / "raw/PAMAP2_Dataset/Optional/subject101.dat", ts, act)
    meta = _prep(tmp_path / "raw", tmp_path / "p")
    assert len(meta["classes"]) == 12 and meta["splits"]["train"]["windows"] == 3
    meta = _prep(tmp_path / "raw", tmp_path / "o", include_optional=True)
    ids = [c["id"] for c in meta["classes"]]
    assert len(ids) == 18 and ids == sorted(ids) and {9, 10, 11, 18, 19, 20} <= set(ids)
    y = load_prepared(tmp_path / "o")["train"].y
    assert sorted(set(y.tolist())) == [0, ids.index(9), ids.index(20)]


def test_channel_selection_and_extra_channels(tmp_path):
    ts, act = activity_blocks([(1, 30)])
    write_dat(tmp_path / "raw/subject101.dat", ts, act)
    meta = _prep(tmp_path / "raw", tmp_path / "o", sensors=["ankle", "hand"],
                 modalities=["gyro"], heart_rate=True, temperature=True)
    assert meta["channels"] == ["hand_gyro_x", "hand_gyro_y", "hand_gyro_z", "ankle_gyro_x",
                                "ankle_gyro_y", "ankle_gyro_z", "heart_rate",
                                "hand_temperature", "ankle_temperature"]
    assert load_prepared(tmp_path / "o")["train"].x.shape[2] == 9


# --------------------------------------------------------------------------- the CLI end to end
def test_cli_prepare_prints_a_class_table_and_writes_meta(tmp_path, run_cli):
    _three_subjects(tmp_path / "raw")
    code, out, err = run_cli("prepare", tmp_path / "raw", "--out", tmp_path / "out", *SMALL,
                             "--val-subjects", "102", "--test-subjects", "none")
    assert code == 0, err
    assert "lying" in out and "running" in out and "train" in out and "val" in out
    meta = json.loads((tmp_path / "out/meta.json").read_text())
    assert set(meta["splits"]) == {"train", "val"}
    assert meta["options"]["window"] == 10 and meta["stride"] == 10
    assert meta["sample_rate_hz"] == 100.0
    src = {s["subject"]: s for s in meta["sources"]}
    assert src[101]["size"] == (tmp_path / "raw/Protocol/subject101.dat").stat().st_size
    import hashlib
    assert src[101]["sha256"] == hashlib.sha256(
        (tmp_path / "raw/Protocol/subject101.dat").read_bytes()).hexdigest()


def test_existing_out_needs_force_and_a_failed_run_leaves_nothing(tmp_path, run_cli,
                                                                  monkeypatch):
    _three_subjects(tmp_path / "raw")
    args = ["prepare", tmp_path / "raw", "--out", tmp_path / "out", *SMALL,
            "--val-subjects", "none", "--test-subjects", "none"]
    assert run_cli(*args)[0] == 0
    code, _, err = run_cli(*args)
    assert code == 2 and "--force" in err
    before = (tmp_path / "out/meta.json").read_text()

    from data_prep import store

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(store, "write_split", boom)
    prepare_force = load_prepare_config(None, {"out": str(tmp_path / "out"), "window": 10,
                                               "downsample": 1, "val_subjects": [],
                                               "test_subjects": []})
    with pytest.raises(KeyboardInterrupt):
        prepare(tmp_path / "raw", prepare_force, force=True)
    assert (tmp_path / "out/meta.json").read_text() == before     # old folder untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "out", "raw"]  # no temp dirs
    monkeypatch.undo()
    monkeypatch.setenv("HARKIT_CACHE", str(tmp_path / "cache"))
    assert run_cli(*args, "--force", "--window", "20")[0] == 0
    assert json.loads((tmp_path / "out/meta.json").read_text())["window"] == 20


# --------------------------------------------------------------------------- cache
def test_cache_skips_parsing_and_notices_a_changed_file(tmp_path, monkeypatch):
    _three_subjects(tmp_path / "raw")
    calls = []
    real = pamap2.parse_bytes
    monkeypatch.setattr(pamap2, "parse_bytes", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = _prep(tmp_path / "raw", tmp_path / "a")
    assert len(calls) == 3
    second = _prep(tmp_path / "raw", tmp_path / "b", window=20)      # other window: no parse
    assert len(calls) == 3
    assert second["sources"] == first["sources"]
    f = tmp_path / "raw/Protocol/subject102.dat"
    text = f.read_text().splitlines(keepends=True)
    f.write_text("".join(text[:-5]))                                 # the file changes
    third = _prep(tmp_path / "raw", tmp_path / "c")
    assert len(calls) == 4                                           # only that file again
    assert {s["subject"]: s["rows"] for s in third["sources"]}[102] == 205
    np.testing.assert_array_equal(load_prepared(tmp_path / "a")["train"].x[:5],
                                  load_prepared(tmp_path / "c")["train"].x[:5])


def test_prepared_folder_and_cache_entries_get_the_umask_mode(tmp_path, run_cli, umask_002):
    """mkdtemp's private 0o700 must not survive the rename, nor mkstemp's 0o600."""
    _three_subjects(tmp_path / "raw")
    code, _, err = run_cli("prepare", tmp_path / "raw", "--out", tmp_path / "out", *SMALL,
                           "--val-subjects", "none", "--test-subjects", "none")
    assert code == 0, err
    out = tmp_path / "out"
    assert "meta.json" in [p.name for p in out.iterdir()]
    assert_umask_modes(out, *out.iterdir())
    entries = [p for p in (tmp_path / "cache/pamap2" / CACHE_VERSION).iterdir()
               if p.is_dir()]
    assert len(entries) == 3
    assert_umask_modes(*entries, *(f for e in entries for f in e.iterdir()))


def test_no_cache_option_parses_without_writing(tmp_path, run_cli):
    _three_subjects(tmp_path / "raw")
    code, _, err = run_cli("prepare", tmp_path / "raw", "--out", tmp_path / "o", *SMALL,
                           "--val-subjects", "none", "--test-subjects", "none", "--no-cache")
    assert code == 0, err
    assert not (tmp_path / "cache").exists()


# --------------------------------------------------------------------------- zip input
def _zip_folder(folder: Path, zip_path: Path, prefix: str = "") -> None:
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                zf.write(f, prefix + str(f.relative_to(folder)))


def test_zip_and_nested_zip_give_the_same_windows_as_the_folder(tmp_path):
    _three_subjects(tmp_path / "raw/PAMAP2_Dataset")
    _prep(tmp_path / "raw", tmp_path / "from_dir")
    _zip_folder(tmp_path / "raw", tmp_path / "flat.zip")
    _zip_folder(tmp_path / "raw", tmp_path / "PAMAP2_Dataset.zip")
    with zipfile.ZipFile(tmp_path / "outer.zip", "w") as zf:
        zf.write(tmp_path / "PAMAP2_Dataset.zip", "PAMAP2_Dataset.zip")
        zf.writestr("readme.txt", "not data")
    want = load_prepared(tmp_path / "from_dir")["train"]
    for name in ("flat.zip", "outer.zip"):
        meta = _prep(tmp_path / name, tmp_path / f"from_{name}")
        got = load_prepared(tmp_path / f"from_{name}")["train"]
        np.testing.assert_array_equal(got.x, want.x)
        np.testing.assert_array_equal(got.y, want.y)
        assert all(".zip!" in s["file"] for s in meta["sources"])


# --------------------------------------------------------------------------- bad input
def _bad_line_file(root: Path, mutate) -> Path:
    ts, act = activity_blocks([(1, 40)])
    f = root / "Protocol/subject101.dat"
    write_dat(f, ts, act)
    lines = f.read_text().splitlines(keepends=True)
    f.write_text("".join(mutate(lines)))
    return f


@pytest.mark.parametrize("mutate, expect", [
    (lambda ls: ls[:6] + [" ".join(ls[6].split()[:53]) + "\n"] + ls[7:], "line 7: 53 columns"),
    (lambda ls: ls[:3] + [ls[3].replace(ls[3].split()[7], "abc", 1)] + ls[4:],
     "line 4, column 8"),
    (lambda ls: ls[:-1] + [" ".join(ls[-1].split()[:20])], "line 40: truncated last line"),
    (lambda ls: [], "is empty"),
    (lambda ls: ls[:2] + [ls[2].replace(ls[2].split()[1], "99", 1)] + ls[3:],
     "line 3: activityID (column 2) is 99, not one of"),
])
def test_malformed_files_name_the_file_and_line(tmp_path, run_cli, mutate, expect):
    f = _bad_line_file(tmp_path / "raw", mutate)
    code, out, err = run_cli("prepare", tmp_path / "raw", "--out", tmp_path / "o", *SMALL,
                             "--val-subjects", "none", "--test-subjects", "none")
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert str(f) in err and expect in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args, expect", [
    (["--window", "500"], "--window 500 is longer than every activity run"),
    (["--overlap", "1"], "--overlap must be in [0, 1)"),
    (["--overlap", "-0.1"], "--overlap must be in [0, 1)"),
    (["--val-subjects", "107"], "--val-subjects: subject(s) 107 not in the data"),
    (["--test-subjects", "999"], "--test-subjects: subject(s) 999 not in the data"),
    (["--val-subjects", "102", "--test-subjects", "102"], "in both --val-subjects"),
    (["--val-subjects", "101,102", "--test-subjects", "103"], "the train split is empty"),
    (["--sensors", "hand,wrist"], "--sensors: unknown 'wrist'"),
    (["--modalities", "acc"], "--modalities: unknown 'acc'"),
    (["--window", "0"], "--window must be an integer >= 2"),
    (["--downsample", "0"], "--downsample must be an integer >= 1"),
    (["--config", "nope.toml"], "--config: nope.toml does not exist"),
])
def test_bad_options_get_one_line_and_exit_2(tmp_path, run_cli, args, expect):
    _three_subjects(tmp_path / "raw")
    base = ["--downsample", "1", "--window", "10", "--val-subjects", "none",
            "--test-subjects", "none"]
    code, out, err = run_cli("prepare", tmp_path / "raw", "--out", tmp_path / "o", *base, *args)
    assert code == 2, err
    assert err.count("\n") == 1 and expect in err, err
    assert not (tmp_path / "o").exists()


def test_missing_path_and_folder_without_recordings(tmp_path, run_cli):
    code, _, err = run_cli("prepare", tmp_path / "nope", "--out", tmp_path / "o")
    assert code == 2 and "does not exist" in err and err.count("\n") == 1
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty/notes.txt").write_text("hi")
    code, _, err = run_cli("prepare", tmp_path / "empty", "--out", tmp_path / "o")
    line = one_error_line(err)
    assert code == 2 and "holds no dataset harkit recognises" in line
    assert all(f"{name}:" in line for name in ("pamap2", "uea", "csv"))      # layouts tried
    code, _, err = run_cli("prepare", tmp_path / "empty", "--dataset", "pamap2")
    assert code == 2 and "no subject*.dat files found" in one_error_line(err)
    code, _, err = run_cli("prepare", tmp_path / "empty/notes.txt", "--dataset", "pamap2")
    assert code == 2 and "not a .zip" in one_error_line(err)


def test_corrupt_zip_is_refused(tmp_path, run_cli):
    _three_subjects(tmp_path / "raw")
    _zip_folder(tmp_path / "raw", tmp_path / "data.zip")
    blob = (tmp_path / "data.zip").read_bytes()
    (tmp_path / "cut.zip").write_bytes(blob[: len(blob) // 2])
    code, _, err = run_cli("prepare", tmp_path / "cut.zip", "--out", tmp_path / "o")
    assert code == 2 and "cut.zip" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_load_prepared_names_what_is_missing(tmp_path):
    from harkit.errors import HarError

    _three_subjects(tmp_path / "raw")
    _prep(tmp_path / "raw", tmp_path / "out", val_subjects=[102])
    (tmp_path / "out/y_val.npy").unlink()
    with pytest.raises(HarError, match="lacks y_val.npy"):
        load_prepared(tmp_path / "out")
    with pytest.raises(HarError, match="has no meta.json"):
        load_prepared(tmp_path / "raw")
    with pytest.raises(HarError, match="does not exist"):
        load_prepared(tmp_path / "nothing")


def test_split_written_and_normalized_piece_by_piece(tmp_path):
    from data_prep import store
    from data_prep.splits import fit_normalization

    rng = np.random.default_rng(0)
    parts = [(rng.standard_normal((n, 7, 3)) * [1, 10, 0] + [5, -3, 2]).astype(np.float32)
             for n in (4, 1, 9)]
    whole = np.concatenate(parts)
    mean, std = fit_normalization(parts, chunk_rows=5)    # blocks straddle the pieces
    flat = whole.reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(mean, flat.mean(0), rtol=1e-12)
    np.testing.assert_allclose(std[:2], flat.std(0)[:2], rtol=1e-12)
    assert std[2] == 1.0                                  # constant channel: no division by 0
    store.write_split(tmp_path, "train", parts, np.arange(14), np.full(14, 101))
    np.testing.assert_array_equal(np.load(tmp_path / "x_train.npy"), whole)


def _assert_fits_and_writes_as(ws, whole: np.ndarray, folder: Path, chunk_rows: int) -> None:
    """The streamed windows ``ws`` give the statistics and the file bytes of ``whole``, the
    same windows materialized ``[N, T, C]``."""
    from data_prep import store
    from data_prep.splits import fit_normalization

    mean, std = fit_normalization(ws, chunk_rows=chunk_rows)
    flat = whole.reshape(-1, whole.shape[-1]).astype(np.float64)
    np.testing.assert_allclose(mean, flat.mean(0), rtol=1e-12)
    np.testing.assert_allclose(std, flat.std(0), rtol=1e-12)
    store.write_split(folder, "train", ws, np.zeros(len(ws)), np.full(len(ws), 101))
    np.testing.assert_array_equal(np.load(folder / "x_train.npy"), whole)


def test_normalization_keeps_its_precision_when_the_first_rows_are_unlike_the_rest():
    """The fit sums about the first block's mean; a first block far from the data's mean (a
    sensor settling, a calibration pose) must not cost digits of the std (a second pass)."""
    from data_prep import splits

    rng = np.random.default_rng(2)
    x = (rng.standard_normal((20000, 5, 1)) * 1e-3).astype(np.float32)
    x[0, :, 0] += 1e3
    ref = x.reshape(-1, 1).astype(np.float64)
    mean, std = splits.fit_normalization(x, chunk_rows=4)
    np.testing.assert_allclose(std, ref.std(0), rtol=1e-13)
    np.testing.assert_allclose(mean, ref.mean(0), rtol=1e-13)   # one pass: std off by ~1e-10


def test_prepare_turns_huge_pages_off_and_back(monkeypatch):
    """prepare's arrays are written once (huge pages cost more to fault in than they save):
    numpy's huge-page advice and the process's transparent huge pages (which pyarrow's
    allocator asks for) are off while it runs, as they were after, and left to the user when
    ``NUMPY_MADVISE_HUGEPAGE`` is set."""
    import sys

    from data_prep import pages

    module = sys.modules["data_prep.prepare"]      # (the package exports the function)
    switch = pages.huge_page_switch()
    prctl = pages._prctl()

    def thp_disabled():
        return None if prctl is None else pages._thp_call(prctl, pages.PR_GET_THP_DISABLE)

    seen = []
    monkeypatch.setattr(module, "_prepare",
                        lambda *a: seen.append((switch(False), thp_disabled())) or {})
    monkeypatch.delenv("NUMPY_MADVISE_HUGEPAGE", raising=False)
    before, thp_before = switch(True), thp_disabled()
    try:
        module.prepare("raw", None)
        assert seen[-1][0] is False and switch(True) is True      # off inside, restored after
        if thp_before is not None and thp_before >= 0:             # Linux
            assert seen[-1][1] == 1 and thp_disabled() == thp_before
        monkeypatch.setenv("NUMPY_MADVISE_HUGEPAGE", "1")
        module.prepare("raw", None)
        assert seen[-1] == (True, thp_before)                      # the user's choice stands
    finally:
        switch(before)


def test_window_coverage_counts_the_windows_holding_each_row():
    """The weight of each row in train-only normalization: checked against a direct count,
    with windows that begin before the first row, end after the last, or hold no row."""
    from data_prep.windows import coverage

    rng = np.random.default_rng(3)
    for length, window in ((50, 7), (9, 20), (1, 1), (0, 4)):
        starts = np.sort(rng.integers(-25, length + 25, size=12))
        direct = np.zeros(length, np.int64)
        for s in starts:
            direct[max(s, 0):max(min(s + window, length), 0)] += 1
        got = coverage(starts, window, length)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, direct)
        np.testing.assert_array_equal(coverage(starts, window, length, np.float64), direct)
        np.testing.assert_array_equal(coverage(starts[:0], window, length), 0 * direct)


def test_runs_of_a_recording_cut_at_once_equal_each_cut_alone(tmp_path, monkeypatch):
    """prepare cuts all activity runs of a recording in one go (views of one copy of its rows)
    and writes a split with two threads, each into its half of the file. The windows, their
    first rows and the NaN drops must equal cutting each run alone; the statistics fitted on
    the shared rows (rows between runs weigh 0) must equal those of the materialized windows
    and the file written in halves, in many chunks, their bytes. A value no window holds (an
    inf or NaN between runs) must not reach the statistics."""
    from data_prep import store, transform
    from data_prep.splits import fit_normalization
    from data_prep.transform import Preprocessing, StreamedWindows, cut, cut_runs

    rng = np.random.default_rng(11)
    signals = np.asfortranarray(rng.standard_normal((900, 4)).astype(np.float32) * [1, 4, 2, 9])
    starts = np.array([0, 130, 131, 300, 520, 700])
    stops = np.array([120, 131, 290, 515, 700, 900])          # rows 120-130 etc. in no run
    monkeypatch.setattr(transform, "CHUNK_BYTES", 7 * 16 * 3 * 4)   # 7 windows a chunk
    signals[125, 0] = np.inf                                  # in no run: must not count
    for missing in (False, True):
        if missing:
            signals[[40, 333], [1, 2]] = np.nan
        for q in (1, 2):
            prep = Preprocessing(("a", "b", "c"), 50.0, q, False, 16, 5)
            runs = cut_runs(signals, starts, stops, prep, [3, 0, 1])
            alone = [cut(signals, a, b, prep, [3, 0, 1]) for a, b in zip(starts, stops)]
            for w, v in zip(runs, alone):
                np.testing.assert_array_equal(w.x, v.x)
                np.testing.assert_array_equal(w.first_row, v.first_row)
                assert w.dropped_nan == v.dropped_nan and w.steps == v.steps
            assert (sum(w.dropped_nan for w in runs) > 0) == missing
            whole = np.concatenate([w.x for w in alone])
            _assert_fits_and_writes_as(StreamedWindows(runs, 16, 3), whole, tmp_path, 50)
            for a, b in zip(fit_normalization(StreamedWindows(runs, 16, 3)),
                            fit_normalization(StreamedWindows(alone, 16, 3))):
                np.testing.assert_allclose(a, b, rtol=1e-13)
    signals[125, 0], signals[[40, 333], [1, 2]] = 1e30, 0.0   # all finite: the rows between
    prep = Preprocessing(("a", "b", "c"), 50.0, 1, False, 16, 5)   # runs are summed (weight 0)
    runs = cut_runs(signals, starts, stops, prep, [3, 0, 1])
    assert all(w.shared is runs[0].shared is not None for w in runs)
    _assert_fits_and_writes_as(StreamedWindows(runs, 16, 3),
                               np.concatenate([w.x for w in runs]), tmp_path, 50)
    empty = StreamedWindows([], 16, 3)
    store.write_split(tmp_path, "val", empty, np.zeros(0), np.zeros(0))
    assert np.load(tmp_path / "x_val.npy").shape == (0, 16, 3)


def test_windows_view_the_parsed_rows_only_when_they_own_them(tmp_path):
    """Row-major float32 rows with every channel chosen (what the CSV adapter parses) are not
    copied: the windows view them, with the same windows and statistics as a copy. A file
    mapping (a warm parse cache) and a small array in a much larger buffer (a recycled pool
    buffer) are copied, so that the windows keep neither open nor whole."""
    from data_prep.splits import fit_normalization
    from data_prep.transform import Preprocessing, StreamedWindows, cut_runs

    rng = np.random.default_rng(5)
    rows = (rng.standard_normal((600, 3)) * [1, 3, 5] + [0, 10, -4]).astype(np.float32)
    starts, stops = np.array([0, 200, 410]), np.array([190, 400, 600])
    prep = Preprocessing(("a", "b", "c"), 50.0, 1, False, 20, 10)
    copied = cut_runs(np.asfortranarray(rows), starts, stops, prep, [0, 1, 2])
    viewed = cut_runs(rows, starts, stops, prep, [0, 1, 2])
    assert np.shares_memory(viewed[0].series, rows)
    assert not np.shares_memory(copied[0].series, rows)
    for a, b in zip(copied, viewed):
        np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(fit_normalization(StreamedWindows(copied, 20, 3)),
                                  fit_normalization(StreamedWindows(viewed, 20, 3)))
    np.save(tmp_path / "rows.npy", rows)
    mapped = np.load(tmp_path / "rows.npy", mmap_mode="r")
    small = np.empty(10 * rows.size, np.float32)[:rows.size].reshape(rows.shape)
    small[...] = rows
    for source in (mapped, small):
        cuts = cut_runs(source, starts, stops, prep, [0, 1, 2])
        assert not np.shares_memory(cuts[0].series, source)
        np.testing.assert_array_equal(cuts[1].x, viewed[1].x)


def test_window_set_streams_the_windows_that_cut_gives(tmp_path):
    """prepare never builds a split's windows whole: it fits normalization on the rows weighted
    by how many windows hold them and cuts the windows chunk by chunk into the file. Both must
    equal the materialized windows: same statistics, same bytes, also across dropped (NaN)
    windows, uneven starts, chunk edges and a stride above the window."""
    from data_prep.transform import Preprocessing, StreamedWindows, cut

    rng = np.random.default_rng(3)
    signals = (rng.standard_normal((400, 4)) * [1, 5, 0.1, 2] + [0, 3, -1, 7]).astype(np.float32)
    signals[57, 1] = np.nan                      # drops the windows over row 57
    signals[300:303, 0] = np.nan
    for q, window, stride in [(1, 20, 10), (2, 16, 5), (1, 12, 15), (3, 8, 8)]:
        prep = Preprocessing(("a", "b", "c"), 50.0, q, False, window, stride)
        cuts = [cut(signals, a, b, prep, [3, 1, 0]) for a, b in ((0, 170), (170, 171), (171, 400))]
        assert sum(w.dropped_nan for w in cuts) > 0
        whole = np.concatenate([w.x for w in cuts])
        ws = StreamedWindows(cuts, window, 3)
        assert ws.shape == whole.shape
        for chunk_bytes in (1, window * 3 * 4 * 3, 1 << 20):
            np.testing.assert_array_equal(
                np.concatenate([c.copy() for c in ws.chunks(chunk_bytes)]), whole)
        _assert_fits_and_writes_as(ws, whole, tmp_path, 7)
    # Kept starts 0, 5, 6, 15: the first step and the span agree with an even spacing of 5,
    # but the windows are not evenly spaced.
    rows = np.arange(19 * 2, dtype=np.float32).reshape(19, 2)
    rows[[4, 10, 14], 0] = np.nan
    w = cut(rows, 0, 19, Preprocessing(("a", "b"), 50.0, 1, False, 4, 1), [0, 1])
    assert w.starts.tolist() == [0, 5, 6, 15]
    np.testing.assert_array_equal(next(StreamedWindows([w], 4, 2).chunks()), w.x)
