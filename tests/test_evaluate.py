"""`har evaluate` / ``har.evaluate``: the report's figures (checked against scikit-learn), the
printed tables, the JSON and PNG files, and each bad input as one line + exit code 2.

Uses the session fixture ``trained`` of conftest.py (a tiny ResNet trained on ``har synth``
recordings, subject 106 held out as the test split).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from data_prep import load_prepare_config, load_prepared, prepare
from har.evaluate import data_folder_of, evaluate
from har.predict import torch_threads
from harkit.errors import HarError
from tests.conftest import one_error_line, png_size


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Single-window passes on a shared 2-core machine: 1 thread is ~100× steadier."""
    with torch_threads(1):
        yield


# --------------------------------------------------------------------------- figures
def test_report_agrees_with_scikit_learn(trained):
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

    from har.checkpoint import load_checkpoint, model_from_checkpoint
    from har.predict import predict_proba

    report = evaluate(trained.checkpoint)
    test = load_prepared(trained.prepared)["test"]
    pred = predict_proba(model_from_checkpoint(load_checkpoint(trained.checkpoint)),
                         test.x).argmax(1)
    y = test.y
    k = len(report["per_class"])
    assert report["windows"] == len(y) and report["split"] == "test"
    assert report["data"] == str(trained.prepared.resolve())   # the checkpoint's own folder
    assert report["overall"]["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert report["overall"]["f1_macro"] == pytest.approx(
        f1_score(y, pred, average="macro", zero_division=0))
    assert report["overall"]["f1_weighted"] == pytest.approx(
        f1_score(y, pred, average="weighted", zero_division=0))
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=range(k), zero_division=0)
    for i, row in enumerate(report["per_class"]):
        assert (row["precision"], row["recall"], row["f1"]) == pytest.approx((p[i], r[i], f[i]))
        assert row["support"] == s[i]
    assert report["per_class"][0] == {**report["per_class"][0], "label": 0, "id": 1,
                                      "name": "lying"}
    assert [s["subject"] for s in report["per_subject"]] == [106]
    assert report["per_subject"][0]["f1_macro"] == pytest.approx(report["overall"]["f1_macro"])
    cm = np.array(report["confusion_matrix"]["counts"])
    assert cm.sum() == len(y) and list(cm.sum(axis=1)) == list(s)
    norm = np.array(report["confusion_matrix"]["normalized"])
    np.testing.assert_allclose(norm.sum(axis=1)[cm.sum(axis=1) > 0], 1.0, atol=1e-5)


def test_cli_prints_tables_and_writes_json_and_png(trained, tmp_path, run_cli):
    code, out, err = run_cli("evaluate", trained.checkpoint, "--split", "val",
                             "--json", tmp_path / "sub" / "val.json", "--out", tmp_path / "png")
    assert code == 0, err
    report = json.loads((tmp_path / "sub" / "val.json").read_text())
    assert report["format"] == "harkit.evaluation" and report["split"] == "val"
    assert set(report) >= {"overall", "per_class", "per_subject", "confusion_matrix",
                           "checkpoint", "data", "windows", "confusion_png"}
    assert f"accuracy {report['overall']['accuracy']:.4f}" in out
    assert "ascending stairs" in out and "row-normalized" in out
    assert any(line.split()[:1] == ["105"] for line in out.splitlines())   # per-subject row
    assert png_size(tmp_path / "png" / "confusion_val.png") == (800, 700)
    assert report["confusion_png"] == str(tmp_path / "png" / "confusion_val.png")


# --------------------------------------------------------------------------- bad input
def test_foreign_and_older_checkpoints_are_one_line_errors(trained, tmp_path, run_cli):
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint\n")
    older = tmp_path / "older.pt"
    ckpt = torch.load(trained.checkpoint, weights_only=True)
    torch.save({**ckpt, "format_version": 0}, older)
    for path, words in ((foreign, "not a harkit checkpoint"), (text, "not a harkit checkpoint"),
                        (older, "format_version 0"), (tmp_path / "absent.pt", "does not exist")):
        code, _, err = run_cli("evaluate", path)
        assert code == 2 and words in one_error_line(err) and str(path) in err


def test_data_folder_that_does_not_match_is_refused(trained, tmp_path, run_cli):
    cfg = load_prepare_config(None, {"out": str(tmp_path / "hand"), "window": 32,
                                     "sensors": ["hand"], "val_subjects": [105],
                                     "test_subjects": [106]})
    prepare(trained.raw, cfg, use_cache=False)
    code, _, err = run_cli("evaluate", trained.checkpoint, "--data", tmp_path / "hand")
    line = one_error_line(err)
    assert code == 2 and "12 channels" in line and "36 channels" in line and "--data" in line
    code, _, err = run_cli("evaluate", trained.checkpoint, "--split", "train")
    assert code == 2 and "--split" in one_error_line(err)
    moved = tmp_path / "moved.pt"
    ckpt = torch.load(trained.checkpoint, weights_only=True)
    torch.save({**ckpt, "training": {**ckpt["training"], "data": str(tmp_path / "gone")}}, moved)
    code, _, err = run_cli("evaluate", moved)
    assert code == 2 and "no longer exists" in one_error_line(err) and "--data" in err


def test_the_data_folder_is_the_one_training_recorded():
    """``har train`` records it as ``training.data``; no other key is read."""
    assert data_folder_of({"training": {"data": "/p/prep"}}, "best.pt") == "/p/prep"
    for ckpt in ({"preprocessing": {"data": "/p/prep"}, "training": {}}, {}):
        with pytest.raises(HarError, match="does not record its data folder.*--data"):
            data_folder_of(ckpt, "best.pt")
