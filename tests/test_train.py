"""`har train` / ``har.train.fit``: rows and files, learning, checkpoints, resume, determinism,
AMP, and every bad input as one line + exit code 2.

All runs use a tiny prepared set (3 channels, 16-step windows, 4 separable activities, subjects
101-104 train / 105 val / 106 test), a 2-stage ResNet of widths 8, 8 and one CPU thread (faster
for so small a model, and immune to busy neighbours).
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from data_prep import load_prepare_config, load_prepared, prepare
from data_prep.datasets import pamap2
from har.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from har.device import cpu_bf16_supported
from har.evaluate import evaluate
from har.metrics import classification_scores
from har.models import create_model, list_models
from har.train import METRICS_COLUMNS, TIMING_COLUMNS, fit
from har.train.options import defaults, resolve
from harkit.errors import HarError
from tests.conftest import activity_blocks, assert_umask_modes, png_size, write_dat

ACTIVITIES = (1, 2, 3, 4)
TINY = {"blocks": [1, 1], "widths": [8, 8]}
FAST = {"batch_size": 32, "lr": 1e-2, "seed": 0, "threads": 1}   # 1 thread: tiny model
TINY_TOML = """
[train]
batch_size = 32
lr = 1e-2
threads = 1
[model]
blocks = [1, 1]
widths = [8, 8]
"""


def _write_subject(path: Path, subject: int, activities, seed: int) -> None:
    """160 rows per activity; activity k shifts the hand acc16 channels by k (separable)."""
    ts, act = activity_blocks([(a, 160) for a in activities])
    rng = np.random.default_rng(seed + subject)
    sig = rng.normal(size=(ts.size, pamap2.NUM_COLUMNS)).round(4)
    cols = [pamap2.COLUMN_INDEX[f"hand_acc16_{a}"] for a in "xyz"]
    for i, a in enumerate(activities):
        sig[i * 160:(i + 1) * 160, cols] += [i * 1.5, -i, (i % 2) * 2.0]
    sig[:, 2] = 100.0
    write_dat(path / f"Protocol/subject{subject}.dat", ts, act, signal=sig)


def _prepare(raw: Path, out: Path, window: int = 16, val=(105,), test=(106,)) -> Path:
    cfg = {"out": str(out), "sensors": ["hand"], "modalities": ["acc16"], "downsample": 1,
           "window": window, "overlap": 0.0, "val_subjects": list(val),
           "test_subjects": list(test)}
    prepare(raw, load_prepare_config(None, cfg), use_cache=False)
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("train_data")
    for subject in range(101, 107):
        _write_subject(root / "raw", subject, ACTIVITIES, seed=0)
    _prepare(root / "raw", root / "prep8", window=8)
    return _prepare(root / "raw", root / "prep")


@pytest.fixture(scope="module")
def tiny_toml(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "tiny.toml"
    path.write_text(TINY_TOML)
    return path


def _fit(data, out, **options):
    return fit(data, "resnet", out=out, hparams=TINY, **{**FAST, **options})


def _rows(run: Path):
    with open(run / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _values(rows):
    """Non-timing columns as floats (None for empty)."""
    return [[float(r[c]) if r[c] else None for c in METRICS_COLUMNS if c not in TIMING_COLUMNS]
            for r in rows]


# --------------------------------------------------------------------------- rows and files
def test_fit_learns_and_writes_the_run_folder(data, tmp_path):
    run = tmp_path / "run"
    summary = _fit(data, run, epochs=6)
    assert sorted(p.name for p in run.iterdir()) == [
        "best.pt", "config.json", "curves.png", "last.pt", "metrics.csv", "summary.json"]
    assert png_size(run / "curves.png") == (1000, 400)
    assert (run / "metrics.csv").read_text().splitlines()[0] == (
        "epoch,train_loss,val_loss,val_accuracy,val_precision_macro,val_recall_macro,"
        "val_f1_macro,val_f1_weighted,epoch_s,val_infer_s,train_latency_ms")
    rows = _rows(run)
    assert [int(r["epoch"]) for r in rows] == list(range(1, 7))
    assert all(float(r["train_latency_ms"]) > 0 and float(r["epoch_s"]) > 0 for r in rows)
    f1 = [float(r["val_f1_macro"]) for r in rows]
    assert max(f1) > 0.7                                   # chance is ~0.25 for 4 classes
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])

    on_disk = json.loads((run / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert on_disk["best_epoch"] == 1 + int(np.argmax(f1))
    assert on_disk["best_val"]["f1_macro"] == pytest.approx(max(f1), abs=1e-7)
    assert on_disk["test"]["windows"] == 40 and on_disk["test"]["f1_macro"] > 0.5
    assert set(on_disk["best_val"]) == {"loss", "accuracy", "precision_macro", "recall_macro",
                                        "f1_macro", "f1_weighted"}
    assert set(on_disk["test"]) == set(on_disk["best_val"]) | {"windows"}
    # the test scores are best.pt's, not the last epoch's weights
    best = load_checkpoint(run / "best.pt")
    assert best["epoch"] == on_disk["best_epoch"]
    test = load_prepared(data)["test"]
    with torch.no_grad():
        logits = model_from_checkpoint(best)(torch.from_numpy(test.x).unsqueeze(1))
    assert on_disk["test"]["f1_macro"] == pytest.approx(classification_scores(
        test.y, logits.argmax(1).numpy())["f1_macro"], abs=1e-9)
    # one meaning per number: summary.json's test scores are what `har evaluate` reports
    report = evaluate(run / "best.pt", data, "test")
    assert on_disk["test"] == {"loss": report["loss"], **report["overall"],
                               "windows": report["windows"]}

    config = json.loads((run / "config.json").read_text())
    options = resolve({"epochs": 6, **FAST}, defaults()).to_dict()
    assert config["training"] == {**options, "data": str(data.resolve())}   # every option
    assert config["model"] == {**best["model"], "widths": [8, 8]}
    assert config["data"]["meta_sha256"] == hashlib.sha256(
        (data / "meta.json").read_bytes()).hexdigest()
    assert set(config["versions"]) >= {"harkit", "torch", "numpy", "python"}
    assert config["device"]["type"] == "cpu" and config["device"]["name"]
    assert config["device"]["amp"] in ("fp32", "bfloat16 autocast")
    assert config["device"]["threads"] == 1


def test_run_folder_files_get_the_umask_mode(data, tmp_path, umask_002):
    """Not mkstemp's private 0o600: a colleague (or a web server) can read the run."""
    run = tmp_path / "run"
    _fit(data, run, epochs=1)
    files = sorted(run.iterdir())
    assert [p.name for p in files] == [
        "best.pt", "config.json", "curves.png", "last.pt", "metrics.csv", "summary.json"]
    assert_umask_modes(run, *files)


def test_cli_prints_one_row_per_epoch_and_a_result_line(data, tiny_toml, tmp_path, run_cli):
    code, out, err = run_cli("train", "--data", data, "--config", tiny_toml, "--epochs", 2,
                             "--out", tmp_path / "run")
    assert code == 0, err
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["epoch",
                                                                            "train_loss"])
    assert [line.split()[0] for line in lines[header + 1:header + 3]] == ["1", "2"]
    assert len(lines[header + 1].split()) == 11           # every column of metrics.csv
    assert "best epoch" in lines[-1] and "test macro F1" in lines[-1]
    assert len(_rows(tmp_path / "run")) == 2


def test_cli_models_lists_parameters_and_macs(run_cli):
    code, out, _ = run_cli("models", "--window", 171, "--channels", 36, "--classes", 12)
    assert code == 0
    resnet = next(line for line in out.splitlines() if line.startswith("resnet"))
    assert "1,610,572" in resnet and "738,395,136" in resnet
    assert any(line.startswith("deepconvlstm") for line in out.splitlines())


# --------------------------------------------------------------------------- checkpoints
def test_checkpoint_round_trip_with_weights_only(data, tmp_path):
    _fit(data, tmp_path / "run", epochs=2)
    raw = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    assert raw["format"] == "harkit.checkpoint" and raw["format_version"] == 2
    assert {"model", "input_shape", "classes", "class_ids", "channels", "normalization",
            "preprocessing", "training", "epoch", "best_val_f1_macro", "state_dict",
            "optimizer", "scheduler", "scaler", "rng", "data_digest"} <= set(raw)
    assert raw["input_shape"] == [1, 16, 3]
    assert raw["channels"] == ["hand_acc16_x", "hand_acc16_y", "hand_acc16_z"]
    assert raw["class_ids"][:4] == [1, 2, 3, 4] and raw["classes"][0] == "lying"
    pre = raw["preprocessing"]
    assert pre["dataset"] == "pamap2" and pre["window"] == 16 and pre["stride"] == 16
    assert pre["options"]["sensors"] == ["hand"] and pre["options"]["downsample"] == 1
    assert pre["source_rate_hz"] == 100.0 and pre["sample_rate_hz"] == 100.0
    assert len(raw["normalization"]["mean"]) == 3

    ckpt = load_checkpoint(tmp_path / "run" / "best.pt")
    model = model_from_checkpoint(ckpt)
    assert not model.training and model.config == ckpt["model"]
    reference = create_model(**ckpt["model"])
    reference.load_state_dict(ckpt["state_dict"])
    x = torch.randn(5, 1, 16, 3)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference.eval()(x), rtol=0, atol=0)


# --------------------------------------------------------------------------- determinism, resume
def test_same_seed_same_metrics(data, tmp_path):
    a, b = _fit(data, tmp_path / "a", epochs=3), _fit(data, tmp_path / "b", epochs=3)
    assert _values(_rows(tmp_path / "a")) == _values(_rows(tmp_path / "b"))
    assert a["test"] == b["test"]
    _fit(data, tmp_path / "c", epochs=3, seed=1)
    assert _values(_rows(tmp_path / "c")) != _values(_rows(tmp_path / "a"))


def test_resume_continues_the_same_curve(data, tmp_path):
    _fit(data, tmp_path / "straight", epochs=6, lr_step=2)
    _fit(data, tmp_path / "split", epochs=4, lr_step=2)
    fit(resume=tmp_path / "split" / "last.pt", epochs=6)       # everything else from the ckpt
    straight, split = _values(_rows(tmp_path / "straight")), _values(_rows(tmp_path / "split"))
    assert len(split) == 6
    np.testing.assert_allclose(np.array(split, float), np.array(straight, float), rtol=1e-6)
    assert load_checkpoint(tmp_path / "split" / "last.pt")["epoch"] == 6


def _next_lr(checkpoint: Path) -> float:
    """The learning rate of the epoch after the checkpoint's (its optimizer state)."""
    return load_checkpoint(checkpoint)["optimizer"]["param_groups"][0]["lr"]


def test_resume_with_more_epochs_rederives_the_automatic_lr_step(data, tmp_path):
    """lr_step 0 means epochs // 3: 6 epochs step every 2, a resume to 12 every 4 from then on
    (lr * 0.5 ** (epoch // 4)), through the scheduler's public API."""
    lr = FAST["lr"]
    _fit(data, tmp_path / "run", epochs=6)
    assert _next_lr(tmp_path / "run" / "last.pt") == pytest.approx(lr * 0.5 ** (6 // 2))
    lrs = []
    fit(resume=tmp_path / "run" / "last.pt", epochs=12,
        on_epoch=lambda row: lrs.append(_next_lr(tmp_path / "run" / "last.pt")))
    assert lrs == pytest.approx([lr * 0.5 ** (e // 4) for e in range(7, 13)])
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["scheduler"]["last_epoch"] == 12 and len(ckpt["history"]) == 12


def test_resume_from_best_pt_drops_the_later_epochs(data, tmp_path):
    """--resume best.pt of an earlier epoch than last.pt: metrics.csv is rewritten from its
    history and the run goes on from that epoch with its weights, learning rate and RNG, so the
    later epochs come out as they did the first time."""
    run = tmp_path / "run"
    _fit(data, run, epochs=2, lr_step=1, lr_gamma=0.9)
    shutil.copy(run / "last.pt", tmp_path / "epoch2.pt")
    fit(resume=run / "last.pt", epochs=4)
    first_time = _values(_rows(run))
    shutil.copy(tmp_path / "epoch2.pt", run / "best.pt")      # as if epoch 2 had been the best
    rows_seen = []
    fit(resume=run / "best.pt", epochs=4, on_epoch=lambda row: rows_seen.append(
        len(_rows(run))))
    assert rows_seen == [3, 4]                                # epochs 3 and 4 after 2 kept rows
    np.testing.assert_allclose(np.array(_values(_rows(run)), float),
                               np.array(first_time, float), rtol=1e-6)
    assert _next_lr(run / "last.pt") == pytest.approx(FAST["lr"] * 0.9 ** 4)


def test_ctrl_c_keeps_last_pt_and_resume_finishes_the_run(data, tiny_toml, tmp_path, run_cli,
                                                          monkeypatch):
    import har.train.loop

    run = tmp_path / "run"
    assert run_cli("train", "--data", data, "--config", tiny_toml, "--epochs", 4,
                   "--out", tmp_path / "straight")[0] == 0
    real = har.train.loop.single_sample_latency_ms
    calls = []

    def interrupt_in_epoch_3(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(har.train.loop, "single_sample_latency_ms", interrupt_in_epoch_3)
    code, out, err = run_cli("train", "--data", data, "--config", tiny_toml, "--epochs", 4,
                             "--out", run)
    assert code == 130
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"har train --resume {run / 'last.pt'}" in err and "epoch 3" in err
    assert load_checkpoint(run / "last.pt")["epoch"] == 2 and len(_rows(run)) == 2

    monkeypatch.setattr(har.train.loop, "single_sample_latency_ms", real)
    code, out, err = run_cli("train", "--resume", run / "last.pt")
    assert code == 0, err
    np.testing.assert_allclose(np.array(_values(_rows(run)), float),
                               np.array(_values(_rows(tmp_path / "straight")), float), rtol=1e-6)


def test_ctrl_c_while_saving_or_after_resuming_elsewhere(data, tmp_path, monkeypatch):
    """Ctrl-C during the save of epoch 2: last.pt still holds epoch 1, and the message says so.
    Resumed into another folder, that folder gets its own last.pt before the first epoch."""
    import har.train.loop
    from har.train import TrainingInterrupted

    straight = _fit(data, tmp_path / "straight", epochs=4)
    real_save = har.train.loop.save_checkpoint
    real_latency = har.train.loop.single_sample_latency_ms
    saves = []

    def interrupt_third_save(*args, **kwargs):          # epoch 0, epoch 1, epoch 2 <- here
        saves.append(1)
        if len(saves) == 3:
            raise KeyboardInterrupt
        return real_save(*args, **kwargs)

    monkeypatch.setattr(har.train.loop, "save_checkpoint", interrupt_third_save)
    with pytest.raises(TrainingInterrupted) as exc:
        _fit(data, tmp_path / "a", epochs=4)
    assert (exc.value.epoch, exc.value.interrupted_epoch) == (1, 2)
    assert load_checkpoint(tmp_path / "a" / "last.pt")["epoch"] == 1
    monkeypatch.setattr(har.train.loop, "save_checkpoint", real_save)

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(har.train.loop, "single_sample_latency_ms", interrupt)
    with pytest.raises(TrainingInterrupted) as exc:
        fit(resume=tmp_path / "a" / "last.pt", out=tmp_path / "b")
    assert exc.value.checkpoint == tmp_path / "b" / "last.pt" and exc.value.epoch == 1
    assert load_checkpoint(tmp_path / "b" / "last.pt")["epoch"] == 1
    monkeypatch.setattr(har.train.loop, "single_sample_latency_ms", real_latency)

    summary = fit(resume=tmp_path / "b" / "last.pt")
    np.testing.assert_allclose(np.array(_values(_rows(tmp_path / "b")), float),
                               np.array(_values(_rows(tmp_path / "straight")), float), rtol=1e-6)
    assert summary["best_epoch"] == straight["best_epoch"]
    assert load_checkpoint(tmp_path / "b" / "best.pt")["epoch"] == summary["best_epoch"]
    assert summary["test"] == pytest.approx(straight["test"], rel=1e-6)


def test_resume_refuses_changed_training_options(data, tmp_path):
    _fit(data, tmp_path / "run", epochs=1)
    with pytest.raises(HarError, match="--lr 0.5 differs"):
        fit(resume=tmp_path / "run" / "last.pt", lr=0.5, epochs=2)


# --------------------------------------------------------------------------- AMP, no val, stop
@pytest.mark.skipif(not cpu_bf16_supported(), reason="CPU without native bf16")
def test_amp_bf16_training_step_on_cpu(data, tmp_path):
    summary = _fit(data, tmp_path / "amp", epochs=1, amp=True)
    config = json.loads((tmp_path / "amp" / "config.json").read_text())
    assert config["device"]["amp"] == "bfloat16 autocast"
    assert np.isfinite(float(_rows(tmp_path / "amp")[0]["train_loss"]))
    state = load_checkpoint(tmp_path / "amp" / "last.pt")["state_dict"]
    assert all(t.dtype in (torch.float32, torch.int64) for t in state.values())  # fp32 master
    _fit(data, tmp_path / "fp32", epochs=1, amp=False)
    config = json.loads((tmp_path / "fp32" / "config.json").read_text())
    assert config["device"]["amp"] == "fp32" and summary["test"] is not None


def test_amp_on_a_cpu_without_bf16_is_a_har_error(monkeypatch):
    import har.device

    monkeypatch.setattr(har.device, "cpu_bf16_supported", lambda: False)
    with pytest.raises(HarError, match="--amp"):
        har.device.amp_dtype(torch.device("cpu"), True)
    assert har.device.amp_dtype(torch.device("cpu"), None) is None


def test_without_val_split_best_is_the_last_epoch(data, tmp_path):
    prep = _prepare(data.parent / "raw", tmp_path / "noval", val=(), test=(106,))
    notes = []
    summary = fit(prep, "resnet", out=tmp_path / "run", hparams=TINY, epochs=2, log=notes.append,
                  **FAST)
    assert any("no val split" in n for n in notes)
    rows = _rows(tmp_path / "run")
    assert rows[0]["val_f1_macro"] == "" and rows[0]["train_loss"] != ""
    assert summary["best_epoch"] == 2 and summary["best_val"] is None
    assert summary["test"]["windows"] == 40
    with pytest.raises(HarError, match="--early-stop needs a val split"):
        fit(prep, "resnet", out=tmp_path / "run2", hparams=TINY, epochs=2, early_stop=1, **FAST)


def test_early_stop_ends_the_run(data, tmp_path):
    summary = _fit(data, tmp_path / "run", epochs=30, lr=1e-9, early_stop=1)
    assert summary["stopped"] == "early_stop" and summary["epochs"] < 30
    assert len(_rows(tmp_path / "run")) == summary["epochs"]


# --------------------------------------------------------------------------- bad input
def _one_line_error(result, *needles):
    code, _, err = result
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("har") and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


def test_missing_or_invalid_prepared_folder(data, tmp_path, run_cli):
    _one_line_error(run_cli("train", "--data", tmp_path / "nope"), "does not exist",
                    "har prepare")
    (tmp_path / "empty").mkdir()
    _one_line_error(run_cli("train", "--data", tmp_path / "empty"), "meta.json")
    broken = tmp_path / "broken"
    shutil.copytree(data, broken)
    (broken / "x_train.npy").unlink()
    _one_line_error(run_cli("train", "--data", broken, "--out", tmp_path / "run"),
                    str(broken), "x_train.npy")
    (broken / "meta.json").write_text("{")
    _one_line_error(run_cli("train", "--data", broken, "--out", tmp_path / "run"),
                    "meta.json", "not valid JSON")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("split", ["val", "test"])
def test_val_or_test_labels_missing_from_train(tmp_path, run_cli, split):
    raw = tmp_path / "raw"
    for subject in (101, 102):
        _write_subject(raw, subject, (1, 2), seed=1)
    _write_subject(raw, 105, (1, 2, 5), seed=1)
    prep = _prepare(raw, tmp_path / "prep", val=(105,) if split == "val" else (),
                    test=(105,) if split == "test" else ())
    _one_line_error(run_cli("train", "--data", prep, "--epochs", 1, "--out", tmp_path / "run"),
                    f"{split} split", "'running'", "--val-subjects/--test-subjects")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args, needles", [
    (["--model", "transformer"], ["--model 'transformer' is unknown", *list_models()]),
    (["--epochs", "0"], ["--epochs 0", ">= 1"]),
    (["--epochs", "-3"], ["--epochs -3", ">= 1"]),
    (["--batch-size", "0"], ["--batch-size 0", ">= 1"]),
    (["--lr", "0"], ["--lr 0.0", "> 0"]),
    (["--lr", "-1"], ["--lr -1.0", "> 0"]),
    (["--lr", "nan"], ["--lr nan"]),
    (["--weight-decay", "-1"], ["--weight-decay -1.0", ">= 0"]),
    (["--device", "tpu"], ["--device"]),
])
def test_bad_options(data, tmp_path, run_cli, args, needles):
    _one_line_error(run_cli("train", "--data", data, "--out", tmp_path / "run", *args), *needles)
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_device_cuda_without_cuda(data, tmp_path, run_cli):
    _one_line_error(run_cli("train", "--data", data, "--device", "cuda", "--out", tmp_path / "r"),
                    "--device cuda", "--device cpu")


def test_out_folder_not_empty_is_refused(data, tmp_path, run_cli):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "x.txt").write_text("mine")
    _one_line_error(run_cli("train", "--data", data, "--out", tmp_path / "run"),
                    "not empty", "--resume")


def test_resume_from_another_model_or_input_shape(data, tiny_toml, tmp_path, run_cli):
    _fit(data, tmp_path / "run", epochs=1)
    last = tmp_path / "run" / "last.pt"
    _one_line_error(run_cli("train", "--resume", last, "--model", "cnn"), "'resnet'", "cnn")
    _one_line_error(run_cli("train", "--resume", last, "--data", data.parent / "prep8"),
                    "[1, 16, 3]", "[1, 8, 3]")


@pytest.mark.parametrize("kind", ["random_pt", "text", "module", "missing"])
def test_not_a_harkit_checkpoint(data, tmp_path, run_cli, kind):
    path = tmp_path / "model.pt"
    if kind == "random_pt":
        torch.save({"weights": torch.zeros(3)}, path)
    elif kind == "text":
        path.write_text("hello\n")
    elif kind == "module":
        torch.save(torch.nn.Linear(2, 2), path)             # a pickled object: not weights_only
    err = _one_line_error(run_cli("train", "--data", data, "--resume", path), str(path))
    assert ("does not exist" if kind == "missing" else "not a harkit checkpoint") in err


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(data, tiny_toml, tmp_path, run_cli,
                                                           monkeypatch, bad):
    real = torch.nn.CrossEntropyLoss.forward
    steps_per_epoch = 5                                    # 160 train windows / batch 32
    calls = []

    def poisoned(self, logits, target):
        calls.append(1)
        loss = real(self, logits, target)
        return loss * bad if len(calls) > steps_per_epoch else loss

    monkeypatch.setattr(torch.nn.CrossEntropyLoss, "forward", poisoned)
    run = tmp_path / "run"
    _one_line_error(run_cli("train", "--data", data, "--config", tiny_toml, "--epochs", 3,
                            "--out", run), "epoch 2: the training loss became", "--lr",
                    "keeps epoch 1")
    assert load_checkpoint(run / "last.pt")["epoch"] == 1
    assert load_checkpoint(run / "best.pt")["epoch"] == 1
    assert len(_rows(run)) == 1
    assert not (run / "summary.json").exists() and not (run / "curves.png").exists()


def test_class_weights_are_sklearn_balanced_and_train(data, tmp_path):
    from sklearn.utils.class_weight import compute_class_weight

    from har.train.loop import class_weights as _class_weights

    y = np.array([0, 0, 0, 1, 2, 2])
    weights = _class_weights(y, 4, "cpu").numpy()
    np.testing.assert_allclose(weights[:3], compute_class_weight("balanced", classes=np.arange(3),
                                                                 y=y), rtol=1e-6)
    assert weights[3] == 0.0                                # absent from train
    summary = _fit(data, tmp_path / "run", epochs=1, class_weights=True)
    assert summary["epochs"] == 1


def test_config_file_with_an_unknown_key(data, tmp_path, run_cli):
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nepochs = 1\nlearning_rate = 0.1\n")
    _one_line_error(run_cli("train", "--data", data, "--config", bad), "learning_rate",
                    "known keys")


def test_checkpoints_are_written_atomically(tmp_path, monkeypatch):
    """A save that fails half-way (error, Ctrl-C) leaves the previous file whole, no temp file."""
    path = tmp_path / "last.pt"
    ckpt = {"model": {"name": "resnet"}, "input_shape": [1, 16, 3], "classes": ["lying"],
            "channels": ["hand_acc16_x"], "state_dict": {"w": torch.zeros(3)}, "epoch": 1}
    save_checkpoint(path, ckpt)
    real = torch.save

    def half_then_interrupt(obj, fh, *args, **kwargs):
        real(obj, fh, *args, **kwargs)
        fh.truncate(fh.tell() // 2)
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", half_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {**ckpt, "epoch": 2})
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_without_matplotlib_training_ends_with_a_note(data, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)     # import fails
    notes = []
    summary = _fit(data, tmp_path / "run", epochs=1, log=notes.append)
    assert summary["epochs"] == 1 and (tmp_path / "run" / "summary.json").is_file()
    assert not (tmp_path / "run" / "curves.png").exists()
    assert any("pip install matplotlib" in n and f"har plot {tmp_path / 'run'}" in n
               for n in notes)


def test_a_model_toml_holds_only_what_differs(tmp_path, monkeypatch):
    """configs/<model>.toml overrides train.toml's keys and the builder's hyper-parameters for
    that model only; every other default stays train.toml's."""
    import harkit.config
    from har.train.options import defaults, model_overrides

    folder = tmp_path / "configs"
    folder.mkdir()
    shutil.copy(harkit.config.default_config_path("train"), folder / "train.toml")
    (folder / "cnn.toml").write_text("[train]\nlr = 0.1\n[model]\nwidths = [8, 8, 8, 8]\n")
    monkeypatch.setattr(harkit.config, "config_dir", lambda: folder)
    assert defaults("cnn")["lr"] == 0.1 and defaults("resnet")["lr"] == 5e-4
    assert defaults("cnn")["epochs"] == defaults("resnet")["epochs"] == 100
    assert model_overrides("cnn") == {"widths": [8, 8, 8, 8]} and model_overrides("resnet") == {}
