"""`har cv`: leak-free subject-wise folds, the report (pooled scores against scikit-learn),
resuming, parallel folds, cluster-style single folds, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics as skm

from data_prep import load_prepare_config, load_prepared, prepare
from data_prep.datasets import pamap2
from data_prep.folds import fold_data, plan
from data_prep.splits import fit_normalization
from har.cv import report, run
from tests.conftest import activity_blocks, one_error_line, write_dat

SUBJECTS = (101, 102, 103, 104, 105)
TINY = {"blocks": [1, 1], "widths": [8, 8]}
FAST = {"epochs": 2, "batch_size": 32, "lr": 1e-2, "threads": 1, "amp": False}


def _write_subject(root: Path, subject: int, scale: float = 1.0) -> None:
    """160 rows per activity 1-4; activity k shifts the hand acc16 channels (separable)."""
    ts, act = activity_blocks([(a, 160) for a in (1, 2, 3, 4)])
    rng = np.random.default_rng(subject)
    sig = rng.normal(size=(ts.size, pamap2.NUM_COLUMNS)).round(4)
    cols = [pamap2.COLUMN_INDEX[f"hand_acc16_{a}"] for a in "xyz"]
    for i in range(4):
        sig[i * 160:(i + 1) * 160, cols] += [i * 1.5, -i, (i % 2) * 2.0]
    sig[:, cols] *= scale
    sig[:, 2] = 100.0
    write_dat(root / f"Protocol/subject{subject}.dat", ts, act, signal=sig)


def _prepare(root: Path, out: Path, scale_105: float = 1.0) -> Path:
    for s in SUBJECTS:
        _write_subject(root, s, scale_105 if s == 105 else 1.0)
    cfg = {"out": str(out), "sensors": ["hand"], "modalities": ["acc16"], "downsample": 1,
           "window": 16, "overlap": 0.0, "val_subjects": [104], "test_subjects": [105]}
    prepare(root, load_prepare_config(None, cfg), use_cache=False)
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cv")
    return _prepare(root / "raw", root / "prep")


@pytest.fixture(scope="module")
def full(data, tmp_path_factory) -> Path:
    """A whole LOSO run (5 folds, 2 epochs each), shared by the report tests."""
    out = tmp_path_factory.mktemp("cv_full") / "cv"
    run(data, "loso", model="resnet", out=out, hparams=TINY, seed=0, **FAST)
    return out


# --------------------------------------------------------------------------- folds
def test_every_subject_is_tested_once_and_never_trained_on(data):
    prepared = load_prepared(data)
    loso = plan(prepared, "loso")
    assert [f.test for f in loso] == [[s] for s in SUBJECTS]
    assert [f.name for f in loso] == [f"fold-{s}" for s in SUBJECTS]
    for folds in (loso, plan(prepared, 2, seed=3), plan(prepared, 3, seed=0, inner=True)):
        tested = [s for f in folds for s in f.test]
        assert sorted(tested) == list(SUBJECTS)
        for f in folds:
            assert not set(f.test) & set(f.train + f.val)
            assert sorted(f.test + f.train + f.val) == list(SUBJECTS)
    inner = plan(prepared, "loso", inner=True, seed=0)
    assert all(len(f.val) == 1 for f in inner)
    two = plan(prepared, 2)
    assert sorted(len(f.test) for f in two) == [2, 3]       # whole subjects, balanced


def test_normalization_is_refitted_on_the_training_subjects_only(tmp_path):
    """Scaling the held-out subject's signals by 50 changes nothing in its fold but the test
    windows themselves: the fold's mean/std and train windows come from the others alone."""
    a = load_prepared(_prepare(tmp_path / "a", tmp_path / "pa"))
    b = load_prepared(_prepare(tmp_path / "b", tmp_path / "pb", scale_105=50.0))
    fa, fb = (fold_data(p, plan(p, "loso")[-1]) for p in (a, b))
    assert fa.meta["fold"]["test"] == [105]
    assert fa.meta["normalization"]["mean"] == fb.meta["normalization"]["mean"]
    assert fa.meta["normalization"]["std"] == fb.meta["normalization"]["std"]
    np.testing.assert_allclose(fa["train"].x, fb["train"].x, atol=1e-4)
    assert np.abs(fb["test"].x).max() > 10 * np.abs(fa["test"].x).max()
    # and the statistics are those of the training subjects' raw windows
    raw = np.concatenate([a[s].x for s in ("train", "val", "test")])
    raw = raw * np.float32(a.meta["normalization"]["std"]) + np.float32(
        a.meta["normalization"]["mean"])
    subjects = np.concatenate([a[s].subject for s in ("train", "val", "test")])
    mean, std = fit_normalization(raw[subjects != 105])
    np.testing.assert_allclose(fa.meta["normalization"]["mean"], mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fa.meta["normalization"]["std"], std, rtol=1e-5)


# --------------------------------------------------------------------------- the report
def test_report_has_one_row_per_fold_and_pooled_scores_equal_sklearn(full):
    summary = json.loads((full / "summary.json").read_text())
    assert summary["folds_finished"] == 5 and summary["missing_folds"] == []
    assert summary["protocol"]["folds"] == "loso" and summary["protocol"]["selection"] == "last"
    rows = (full / "cv.csv").read_text().splitlines()
    assert rows[0].startswith("fold,test_subjects,train_windows,test_windows,accuracy")
    assert [r.split(",")[0] for r in rows[1:]] == [f"fold-{s}" for s in SUBJECTS]
    preds = [np.load(full / f"fold-{s}" / "test_predictions.npz") for s in SUBJECTS]
    y, p = (np.concatenate([d[k] for d in preds]) for k in ("y_true", "y_pred"))
    assert summary["pooled"]["windows"] == y.size == 5 * 40
    assert summary["pooled"]["f1_macro"] == pytest.approx(skm.f1_score(y, p, average="macro"))
    assert summary["pooled"]["accuracy"] == pytest.approx(skm.accuracy_score(y, p))
    f1 = [r["f1_macro"] for r in summary["folds"]]
    assert summary["mean"]["f1_macro"] == pytest.approx(np.mean(f1))
    assert summary["std"]["f1_macro"] == pytest.approx(np.std(f1))
    for s, row in zip(SUBJECTS, summary["folds"]):       # a fold's row is its best.pt's scores
        fold_summary = json.loads((full / f"fold-{s}" / "summary.json").read_text())
        assert row["f1_macro"] == pytest.approx(fold_summary["test"]["f1_macro"])
        assert row["test_subjects"] == [s] and row["epochs"] == 2
    assert (full / "folds.png").is_file() and (full / "confusion_pooled.png").is_file()


def test_cli_prints_the_table_and_one_line(full, run_cli):
    code, out, err = run_cli("cv", "--report", full)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0].split()[:3] == ["fold", "test", "windows"]
    assert lines[-2].startswith("LOSO macro F1 ") and "(pooled " in lines[-2]
    assert lines[-2].endswith("over 5 folds")


def test_single_folds_then_report_equal_a_full_run(data, full, tmp_path, run_cli):
    out = tmp_path / "cluster"
    for k in range(1, 6):                                  # e.g. a SLURM job array
        code, _, err = run_cli("cv", data, "--folds", "loso", "--fold", k, "--out", out,
                               "--model", "resnet", "--config", _tiny_toml(tmp_path),
                               "--seed", 0, *_fast_args())
        assert code == 0, err
        assert not (out / "summary.json").exists()
    joined = report(out)
    whole = json.loads((full / "summary.json").read_text())
    for a, b in zip(joined["folds"], whole["folds"]):
        assert {k: a[k] for k in ("fold", "f1_macro", "accuracy", "test_windows")} == \
            {k: b[k] for k in ("fold", "f1_macro", "accuracy", "test_windows")}
    assert joined["pooled"] == whole["pooled"]


def _tiny_toml(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text("[model]\nblocks = [1, 1]\nwidths = [8, 8]\n")
    return path


def _fast_args():
    return ["--epochs", 2, "--batch-size", 32, "--lr", 0.01, "--threads", 1, "--no-amp"]


def test_a_rerun_skips_finished_folds_and_resumes_an_interrupted_one(data, tmp_path):
    out = tmp_path / "cv"
    run(data, 2, model="resnet", out=out, hparams=TINY, seed=0, fold=1, **FAST)
    first = (out / "fold-1" / "fold.json").stat().st_mtime_ns
    (out / "fold-2").mkdir()                               # fold 2 was interrupted after
    run(data, 2, model="resnet", out=out / "scratch", hparams=TINY, seed=0, fold=2,
        **{**FAST, "epochs": 1})                           # epoch 1: move its folder over
    for name in ("last.pt", "best.pt", "metrics.csv", "config.json"):
        (out / "scratch" / "fold-2" / name).rename(out / "fold-2" / name)
    lines = []
    summary = run(data, 2, model="resnet", out=out, hparams=TINY, seed=0, log=lines.append,
                  **FAST)
    assert (out / "fold-1" / "fold.json").stat().st_mtime_ns == first
    assert "fold-1: finished earlier, skipped" in lines
    assert [r["epochs"] for r in summary["folds"]] == [2, 2]     # fold 2 resumed to epoch 2
    metrics = (out / "fold-2" / "metrics.csv").read_text().splitlines()
    assert len(metrics) == 3


def test_two_jobs_give_the_same_folds_as_one(data, tmp_path):
    one = run(data, 3, model="resnet", out=tmp_path / "one", hparams=TINY, seed=1, **FAST)
    two = run(data, 3, model="resnet", out=tmp_path / "two", hparams=TINY, seed=1, jobs=2,
              **FAST)
    keys = ("fold", "test_subjects", "accuracy", "f1_macro", "loss")
    assert [{k: r[k] for k in keys} for r in one["folds"]] == \
        [{k: r[k] for k in keys} for r in two["folds"]]


def test_thread_plan_fills_the_cores_in_the_last_round():
    from har.cv.runner import thread_plan

    assert thread_plan(3, 2, 2) == [1, 1, 2]          # the third fold runs alone: both cores
    assert thread_plan(9, 2, 2) == [1] * 8 + [2]
    assert thread_plan(4, 2, 8) == [4, 4, 4, 4]
    assert thread_plan(5, 3, 12) == [4, 4, 4, 6, 6]
    assert thread_plan(3, 4, 2) == [1, 1, 1]          # more jobs than cores: one thread each


# --------------------------------------------------------------------------- bad input
def test_bad_input_is_one_line_and_exit_2(data, full, tmp_path, run_cli):
    cases = [
        (["cv", data, "--folds", "9", "--out", tmp_path / "a"], ["--folds 9", "5 subjects"]),
        (["cv", data, "--folds", "1", "--out", tmp_path / "a"], ["--folds 1", "2 or more"]),
        (["cv", data, "--fold", "6", "--out", tmp_path / "a"], ["--fold 6", "folds 1..5"]),
        (["cv", "--report", tmp_path], ["no plan.json", "har cv"]),
        (["cv", data, "--folds", "abc"], ["--folds 'abc'"]),
    ]
    for args, words in cases:
        code, _, err = run_cli(*args)
        line = one_error_line(err)
        assert code == 2 and all(w in line for w in words), line
    out = tmp_path / "empty"
    run(data, "loso", model="resnet", out=out, hparams=TINY, fold=1, **{**FAST, "epochs": 1})
    for f in (out / "fold-101").iterdir():
        if f.name in ("fold.json", "test_predictions.npz"):
            f.unlink()
    code, _, err = run_cli("cv", "--report", out)
    assert code == 2 and "no finished fold" in one_error_line(err)


def test_one_subject_and_case_indices_are_refused_with_advice(tmp_path):
    from harkit.errors import HarError

    _write_subject(tmp_path / "raw", 101)
    cfg = {"out": str(tmp_path / "one"), "sensors": ["hand"], "modalities": ["acc16"],
           "window": 16, "downsample": 1, "val_subjects": [], "test_subjects": []}
    prepare(tmp_path / "raw", load_prepare_config(None, cfg), use_cache=False)
    with pytest.raises(HarError, match="needs 2 or more"):
        plan(load_prepared(tmp_path / "one"), "loso")
    prepared = load_prepared(tmp_path / "one")
    prepared.meta["subjects_are"] = "cases"
    prepared.splits["train"].subject[:] = np.arange(len(prepared["train"]))
    with pytest.raises(HarError, match="case indices.*--folds K"):
        plan(prepared, "loso")
    folds = plan(prepared, 4, seed=0)
    assert sum(len(f.test) for f in folds) == len(prepared["train"])
