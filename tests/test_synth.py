"""``har synth pamap2``: exact PAMAP2 text format, determinism, structure, realism, safety."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from data_prep.datasets import pamap2
from data_prep.synth import body, synth_pamap2
from data_prep.synth import pamap2 as synth
from harkit.errors import HarError

COL = pamap2.COLUMN_INDEX


def read_dat(path: Path):
    """Parse with a plain split: (timestamps in centiseconds [n] int, activity [n] int,
    values [n, 54] float)."""
    rows = []
    for line in path.read_text().splitlines():
        tokens = line.split(" ")
        assert len(tokens) == pamap2.NUM_COLUMNS, line[:80]
        rows.append([float(t) for t in tokens])
    values = np.array(rows)
    return np.round(values[:, 0] * 100).astype(np.int64), values[:, 1].astype(int), values


def sensor_block(values: np.ndarray, sensor: str, modality: str) -> np.ndarray:
    """[n, 3] columns of one sensor's modality, e.g. ("chest", "acc16")."""
    return values[:, [COL[pamap2.channel_name(sensor, modality, a)] for a in pamap2.AXES]]


def windows_of(values: np.ndarray, activity: np.ndarray, label: int, rows: int = 256):
    """Non-overlapping [rows] windows of one activity without NaN: [w, rows, 54]."""
    x = values[activity == label]
    x = x[: len(x) // rows * rows].reshape(-1, rows, values.shape[1])
    return x[~np.isnan(x[:, :, 3:]).any(axis=(1, 2))]


def dominant_hz(signal: np.ndarray, lo: float = 1.0, hi: float = 3.5) -> float:
    """Frequency (Hz) of the largest spectral peak of a 100 Hz signal within [lo, hi]."""
    signal = signal[~np.isnan(signal)] - np.nanmean(signal)
    size = 16 * signal.size
    spectrum = np.abs(np.fft.rfft(signal, size))
    freq = np.fft.rfftfreq(size, 1 / pamap2.SAMPLE_RATE_HZ)
    band = (freq >= lo) & (freq <= hi)
    return float(freq[band][spectrum[band].argmax()])


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """Subjects 101, 103, 105, 109 at 8 s per activity, with Optional/."""
    out = tmp_path_factory.mktemp("synth") / "raw"
    report = synth_pamap2(out, seed=0, seconds_per_activity=8, subjects=[101, 103, 105, 109],
                          optional=True)
    return out, report


# --------------------------------------------------------------------------- format
def test_layout_and_report(sample):
    out, report = sample
    protocol = sorted(p.name for p in (out / "Protocol").iterdir())
    optional = sorted(p.name for p in (out / "Optional").iterdir())
    assert protocol == ["subject101.dat", "subject103.dat", "subject105.dat", "subject109.dat"]
    assert optional == ["subject101.dat", "subject105.dat", "subject109.dat"]
    files = list(out.rglob("*.dat"))
    assert report["files"] == len(files) == 7
    assert report["bytes"] == sum(f.stat().st_size for f in files)
    assert report["rows"] == sum(f.read_bytes().count(b"\n") for f in files)
    assert report["path"] == str(out)
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]   # no temp left


def test_exact_54_column_format(sample):
    out, _ = sample
    data = (out / "Protocol" / "subject105.dat").read_bytes()
    assert data.endswith(b"\n") and b"\r" not in data and b"  " not in data
    tokens = data.split()
    assert b"nan" not in tokens and b"-0" not in tokens and b"" not in tokens
    numbers = [t for t in tokens[:200_000] if t != b"NaN"]
    digits = [len(t.lstrip(b"-").split(b"e")[0].replace(b".", b"").lstrip(b"0")) for t in numbers]
    assert max(digits) <= 6                                  # like the real files: 2.37223
    ts, act, values = read_dat(out / "Protocol" / "subject105.dat")
    assert set(act) == {0, *pamap2.PROTOCOL_ACTIVITIES}      # 105 has all twelve
    first = [line.split(b" ", 2)[:2] for line in data.splitlines()]
    assert all(re.fullmatch(rb"\d+(\.\d{1,2})?", t) for t, _ in first)   # e.g. 8.38
    assert all(re.fullmatch(rb"\d+", a) for _, a in first)                 # activityID


def test_timestamps_heart_rate_and_dropouts(sample):
    out, _ = sample
    ts, act, values = read_dat(out / "Protocol" / "subject101.dat")
    step = np.diff(ts)
    assert step.min() >= 1                                   # strictly increasing, 0.01 s
    assert np.mean(step == 1) > 0.99
    gaps = step[step > 1]
    assert all(100 <= g <= 500 + 1 for g in gaps)            # a few seconds missing
    hr = values[:, COL["heart_rate"]]
    readings = hr[~np.isnan(hr)]
    assert 0.07 < readings.size / hr.size < 0.11             # ~9 Hz of 100 Hz
    assert np.all(readings == np.round(readings)) and 40 < readings.min() < readings.max() < 220
    imu = values[:, 3:]
    missing_rows = np.isnan(imu).any(axis=1)
    assert 0.003 < missing_rows.mean() < 0.03
    for k, sensor in enumerate(pamap2.SENSORS):              # a dropout blanks a whole IMU
        block = np.isnan(imu[:, 17 * k: 17 * (k + 1)])
        assert np.array_equal(block.all(axis=1), block.any(axis=1)), sensor
    acc6 = sensor_block(values, "ankle", "acc6")
    assert np.nanmax(np.abs(acc6)) <= 6 * body.G + 1e-3


def test_optional_activities_and_subject_differences(sample):
    out, _ = sample
    _, act, _ = read_dat(out / "Optional" / "subject105.dat")
    assert set(act) <= {0, *pamap2.OPTIONAL_ACTIVITIES} and len(set(act)) >= 3
    _, act103, _ = read_dat(out / "Protocol" / "subject103.dat")
    assert not set(act103) & {5, 6, 7, 24}                   # as in the real data
    _, act109, _ = read_dat(out / "Protocol" / "subject109.dat")
    assert 24 in act109 and len(set(act109) - {0}) <= 3
    assert act109.size < act103.size / 2


def test_project_reader_accepts_the_files(sample):
    from data_prep import load_prepare_config
    from data_prep.cache import ParseCache
    from data_prep.read import read_source

    out, _ = sample
    opts = load_prepare_config(None, {"include_optional": True})
    sources = pamap2.DATASET.sources(out, opts)
    assert len(sources) == 7
    (rec,) = read_source(pamap2.DATASET, sources[0], opts, ParseCache(None, "pamap2"))
    assert rec.rows > 1000 and rec.signals.shape[1] == len(pamap2.SIGNAL_COLUMNS)


# --------------------------------------------------------------------------- determinism
def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    args = dict(seconds_per_activity=3, subjects=[104, 106])
    synth_pamap2(tmp_path / "a", seed=7, **args)
    synth_pamap2(tmp_path / "b", seed=7, **args)
    synth_pamap2(tmp_path / "c", seed=8, **args)
    for name in ("subject104.dat", "subject106.dat"):
        a, b, c = ((tmp_path / d / "Protocol" / name).read_bytes() for d in "abc")
        assert a == b
        assert a != c


def test_parallel_processes_write_the_same_bytes(tmp_path):
    jobs = [synth._Job(pamap2.PROTOCOL_DIR, s, 3, 2.0, False) for s in (102, 109)]
    for folder, workers in ((tmp_path / "serial", 1), (tmp_path / "parallel", 2)):
        folder.mkdir()
        results = synth._run_jobs(jobs, folder, workers, bar=_NoBar())
        assert [r for r, _ in results] == [
            (folder / "Protocol" / f"subject{j.subject}.dat").read_bytes().count(b"\n")
            for j in jobs]
    for j in jobs:
        name = f"Protocol/subject{j.subject}.dat"
        assert (tmp_path / "serial" / name).read_bytes() == (tmp_path / "parallel" / name
                                                               ).read_bytes()


class _NoBar:
    def update(self, n):
        pass


def test_full_size_plan_matches_the_real_row_counts():
    for subject, real_rows in pamap2.PROTOCOL_ROWS.items():
        job = synth._Job(pamap2.PROTOCOL_DIR, subject, 0, 60.0, True)
        plan = synth._plan(job, np.random.default_rng(0))
        rows = sum(r for _, r in plan)
        assert abs(rows - real_rows) < 0.01 * real_rows, subject
        transient = sum(r for a, r in plan if a == 0)
        assert 0.2 < transient / rows < 0.45


# --------------------------------------------------------------------------- realism
def test_lying_and_running_are_separable(tmp_path):
    synth_pamap2(tmp_path / "raw", seconds_per_activity=12, subjects=[102])
    _, act, values = read_dat(tmp_path / "raw" / "Protocol" / "subject102.dat")
    chest = [COL[pamap2.channel_name("chest", "acc16", a)] for a in pamap2.AXES]

    def features(label):
        w = windows_of(values, act, label)[:, :, chest]
        magnitude = np.linalg.norm(w, axis=2)
        return magnitude.mean(axis=1), magnitude.std(axis=1), w.mean(axis=1)

    lying, running, standing = features(1), features(5), features(3)
    assert lying[1].max() < 0.5 < 3.0 < running[1].min()                # m/s², std of |acc|
    assert np.all(np.abs(lying[0] - body.G) < 1.0)                      # at rest: |acc| ≈ g
    g_lying, g_standing = lying[2].mean(axis=0), standing[2].mean(axis=0)
    cos = g_lying @ g_standing / np.linalg.norm(g_lying) / np.linalg.norm(g_standing)
    assert cos < np.cos(np.radians(60))                                  # gravity turned


def test_gyroscope_reads_the_turn_rate_in_the_sensor_frame():
    """A sensor turning steadily about its own axes reads that rate, whatever its start."""
    from scipy.spatial.transform import Rotation

    t = np.arange(300) / pamap2.SAMPLE_RATE_HZ
    omega = np.array([0.3, -1.2, 2.0])                         # rad/s, sensor frame
    start = Rotation.from_euler("xyz", [20.0, -40.0, 75.0], degrees=True)
    q = start * Rotation.from_rotvec(t[:, None] * omega)
    np.testing.assert_allclose(body._angular_velocity(q), np.tile(omega, (t.size, 1)),
                               rtol=0, atol=1e-3)


def test_walking_cadence_differs_between_subjects(tmp_path):
    """Seed 0 gives subject 103 a slow walker's cadence and 105 a fast one's (traits)."""
    synth_pamap2(tmp_path / "raw", seconds_per_activity=20, subjects=[103, 105], seed=0)
    cadence = {}
    for subject in (103, 105):
        _, act, values = read_dat(tmp_path / "raw" / "Protocol" / f"subject{subject}.dat")
        chest = sensor_block(values[act == 4], "chest", "acc16")
        cadence[subject] = dominant_hz(np.linalg.norm(chest, axis=1))
        nominal = body.MOTIONS[4].cadence_hz * body.Traits.draw(0, subject).cadence[4]
        assert abs(cadence[subject] - nominal) < 0.15, (subject, cadence, nominal)
    assert all(1.6 <= c <= 2.3 for c in cadence.values()), cadence     # steps per second
    assert cadence[105] - cadence[103] > 0.3, cadence


def test_classes_are_learnable_across_subjects(tmp_path):
    """Nearest centroid on per-window mean/std of the accelerometers, trained on three
    subjects, scores far above chance (1/12) on a fourth."""
    subjects = [101, 102, 108, 105]
    synth_pamap2(tmp_path / "raw", seconds_per_activity=12, subjects=subjects, seed=1)
    acc = [COL[pamap2.channel_name(s, "acc16", a)] for s in pamap2.SENSORS for a in pamap2.AXES]
    feats, labels, who = [], [], []
    for subject in subjects:
        _, act, values = read_dat(tmp_path / "raw" / "Protocol" / f"subject{subject}.dat")
        for label in pamap2.PROTOCOL_ACTIVITIES:
            w = windows_of(values, act, label)[:, :, acc]
            feats.append(np.concatenate([w.mean(axis=1), w.std(axis=1)], axis=1))
            labels += [label] * len(w)
            who += [subject] * len(w)
    x, y, who = np.concatenate(feats), np.array(labels), np.array(who)
    train, test = who != 105, who == 105
    mu, sd = x[train].mean(axis=0), x[train].std(axis=0) + 1e-6
    x = (x - mu) / sd
    classes = np.unique(y[train])
    centroids = np.stack([x[train & (y == c)].mean(axis=0) for c in classes])
    predicted = classes[np.argmin(((x[test, None] - centroids) ** 2).sum(axis=2), axis=1)]
    assert np.mean(predicted == y[test]) > 0.5


# --------------------------------------------------------------------------- safety
def test_existing_out_is_refused_unless_force(tmp_path):
    out = tmp_path / "raw"
    synth_pamap2(out, seconds_per_activity=1, subjects=[109], seed=0)
    before = (out / "Protocol" / "subject109.dat").read_bytes()
    with pytest.raises(HarError, match="--force") as err:
        synth_pamap2(out, seconds_per_activity=1, subjects=[109], seed=1)
    assert str(out) in str(err.value)
    assert (out / "Protocol" / "subject109.dat").read_bytes() == before
    synth_pamap2(out, seconds_per_activity=1, subjects=[109], seed=1, force=True)
    assert (out / "Protocol" / "subject109.dat").read_bytes() != before
    (out / "notes.txt").write_text("mine")
    with pytest.raises(HarError, match="notes.txt"):
        synth_pamap2(out, seconds_per_activity=1, subjects=[109], force=True)
    assert (out / "notes.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


def test_interrupted_run_leaves_no_out(tmp_path, monkeypatch):
    calls = []

    def interrupted(path, recording):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real_write(path, recording)

    real_write = synth._write_dat
    monkeypatch.setattr(synth, "_write_dat", interrupted)
    with pytest.raises(KeyboardInterrupt):
        synth_pamap2(tmp_path / "raw", seconds_per_activity=1, subjects=[101, 102])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kwargs, message", [
    (dict(seconds_per_activity=0), "--seconds-per-activity"),
    (dict(seconds_per_activity=-3.0), "--seconds-per-activity"),
    (dict(seconds_per_activity=float("nan")), "--seconds-per-activity"),
    (dict(subjects=[101, 110]), "110"),
    (dict(subjects=[]), "--subjects"),
    (dict(seed=-1), "--seed"),
])
def test_bad_arguments_are_user_errors(tmp_path, kwargs, message):
    with pytest.raises(HarError, match=message):
        synth_pamap2(tmp_path / "raw", **kwargs)
    assert not (tmp_path / "raw").exists()


# --------------------------------------------------------------------------- CLI
def test_cli_synth(tmp_path, run_cli):
    out = tmp_path / "raw"
    code, stdout, err = run_cli("synth", "pamap2", out, "--seconds-per-activity", "2",
                                "--subjects", "105,109", "--optional", "--seed", "4")
    assert code == 0, err
    assert "wrote 4 files" in stdout
    assert sorted(p.name for p in (out / "Optional").iterdir()) == ["subject105.dat",
                                                                   "subject109.dat"]
    code, _, err = run_cli("synth", "pamap2", out, "--seconds-per-activity", "2")
    assert code == 2 and "--force" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli("synth", "pamap2", tmp_path / "x", "--subjects", "99")
    assert code == 2 and "--subjects" in err


def test_synth_csv_writes_a_study_the_csv_adapter_reads(tmp_path, run_cli):
    code, out, err = run_cli("synth", "csv", tmp_path / "study", "--seconds-per-activity", 8,
                             "--subjects", "101,102,105")
    assert code == 0, err
    files = sorted(p.name for p in (tmp_path / "study").iterdir())
    assert files == ["P01.csv", "P02.csv", "P05.csv"]
    lines = (tmp_path / "study" / "P01.csv").read_text().splitlines()
    assert lines[0] == "time,acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z,activity,participant"
    assert lines[1].endswith(",,P01")                      # starts in a transient: no label
    code, out, err = run_cli("prepare", tmp_path / "study", "--label-col", "activity",
                             "--subject-col", "participant", "--window", 50,
                             "--test-subjects", "P05", "--out", tmp_path / "prep")
    assert code == 0, err
    meta = json.loads((tmp_path / "prep" / "meta.json").read_text())
    assert meta["dataset"] == "csv" and meta["source_rate_hz"] == pytest.approx(50.0)
    assert meta["channels"] == ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]
    assert len(meta["classes"]) == 12 and meta["dropped"]["rows_without_label"] > 0
    again = tmp_path / "again"
    assert run_cli("synth", "csv", again, "--seconds-per-activity", 8, "--subjects", "101")[0] == 0
    assert (again / "P01.csv").read_bytes() == (tmp_path / "study" / "P01.csv").read_bytes()
