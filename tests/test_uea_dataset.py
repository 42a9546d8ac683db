"""The ``uea`` adapter: a UEA/UCR problem (NAME_TRAIN.ts, NAME_TEST.ts) prepared as pre-cut
windows: equal lengths by a named rule, a stratified seeded validation split, cases as
"subjects", and one-line errors. The .ts parsing itself is tested in test_ts_format.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from data_prep import load_prepare_config, load_prepared, prepare
from tests.conftest import one_error_line

LABELS = ("standing", "walking", "running")


def write_ts(path: Path, cases, labels, dims: int = 2, header_dims=None) -> Path:
    """A multivariate, unequal-length .ts file; ``cases`` holds [dims, length] arrays (NaN is
    written ``?``)."""
    lines = ["# written by the tests", "@problemName Moves", "@timeStamps false",
             "@missing true", "@univariate false", f"@dimensions {header_dims or dims}",
             "@equalLength false", f"@classLabel true {' '.join(LABELS)}", "@data"]
    for case, label in zip(cases, labels):
        dims_text = [",".join("?" if np.isnan(v) else f"{v:.4f}" for v in row) for row in case]
        lines.append(":".join(dims_text + [label]))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def _cases(rng, n: int):
    cases, labels = [], []
    for i in range(n):
        label = LABELS[i % 3]
        length = int(rng.integers(20, 31))
        t = np.arange(length)
        f = {"standing": 0.0, "walking": 0.1, "running": 0.25}[label]
        case = np.stack([np.sin(2 * np.pi * f * t), np.cos(2 * np.pi * f * t)]) + rng.normal(
            0, 0.05, (2, length))
        if i % 5 == 0:
            case[1, 3] = np.nan                                       # a missing value
        cases.append(case)
        labels.append(label)
    return cases, labels


@pytest.fixture
def problem(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    folder = tmp_path / "Moves"
    write_ts(folder / "Moves_TRAIN.ts", *_cases(rng, 30))
    write_ts(folder / "Moves_TEST.ts", *_cases(rng, 12))
    return folder


def test_unequal_lengths_missing_values_and_a_stratified_val_split(problem, tmp_path, run_cli):
    code, out, err = run_cli("prepare", tmp_path, "--out", tmp_path / "p")     # detected
    assert code == 0, err
    meta = json.loads((tmp_path / "p/meta.json").read_text())
    assert meta["dataset"] == "uea" and meta["subjects_are"] == "cases"
    assert meta["length"]["how"] == "pad" and meta["length"]["target"] == meta["length"]["longest"]
    assert [c["name"] for c in meta["classes"]] == list(LABELS)               # @classLabel order
    assert meta["channels"] == ["dim_1", "dim_2"] and meta["stride"] is None
    data = load_prepared(tmp_path / "p")
    assert data["train"].x.shape[1:] == (meta["length"]["target"], 2)
    assert not np.isnan(data["train"].x).any()
    assert (len(data["train"]), len(data["val"]), len(data["test"])) == (24, 6, 12)
    assert np.bincount(data["val"].y).tolist() == [2, 2, 2]                 # stratified
    cases = np.concatenate([data[s].subject for s in ("train", "val")])
    assert sorted(cases.tolist()) == list(range(30))                       # the case index
    assert data["test"].subject.tolist() == list(range(30, 42))
    assert "cases: train 24; val 6; test 12" in out


@pytest.mark.parametrize("how, target", [("truncate", 20), ("resample", 25), ("pad", 40)])
def test_length_rule_and_target(problem, tmp_path, how, target):
    opts = load_prepare_config(None, {"out": str(tmp_path / how), "length": how,
                                      "length_target": target if how != "truncate" else 0,
                                      "val_fraction": 0.0}, "uea")
    meta = prepare(problem / "Moves_TRAIN.ts", opts)
    data = load_prepared(tmp_path / how)
    assert "val" not in data.splits and meta["length"]["target"] == target
    assert data["train"].x.shape[1] == data["test"].x.shape[1] == target


def test_same_seed_same_validation_cases(problem, tmp_path):
    def val_cases(seed, out):
        opts = load_prepare_config(None, {"out": str(tmp_path / out), "seed": seed}, "uea")
        prepare(problem, opts)
        return load_prepared(tmp_path / out)["val"].subject.tolist()

    assert val_cases(0, "a") == val_cases(0, "b") != val_cases(1, "c")


def test_bad_ts_files_and_options_are_one_line_errors(problem, tmp_path, run_cli):
    rng = np.random.default_rng(1)
    bad = write_ts(tmp_path / "Bad" / "Bad_TRAIN.ts", *_cases(rng, 6), header_dims=3)
    code, _, err = run_cli("prepare", bad, "--out", tmp_path / "o")
    line = one_error_line(err)
    assert code == 2 and str(bad) in line and "line 10" in line and "@dimensions 3" in line
    code, _, err = run_cli("prepare", problem, "--out", tmp_path / "o", "--val-fraction", "2")
    assert code == 2 and "--val-fraction" in one_error_line(err)
    code, _, err = run_cli("prepare", problem, "--dataset", "uea", "--window", "10")
    assert code == 2 and "--window" in one_error_line(err) and "uea" in err
    assert not (tmp_path / "o").exists()


def test_predict_on_a_window_dataset_says_why_not(problem, tmp_path, run_cli):
    from har.train import fit

    opts = load_prepare_config(None, {"out": str(tmp_path / "p")}, "uea")
    prepare(problem, opts)
    fit(tmp_path / "p", "cnn", out=tmp_path / "run", hparams={"blocks": [1], "widths": [4]},
        epochs=1, batch_size=8, threads=1, amp=False)
    code, _, err = run_cli("predict", tmp_path / "run" / "best.pt", problem / "Moves_TEST.ts")
    line = one_error_line(err)
    assert code == 2 and "pre-cut windows" in line and "har evaluate" in line
    code, out, err = run_cli("evaluate", tmp_path / "run" / "best.pt")
    assert code == 0, err
