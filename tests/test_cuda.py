"""CUDA-only checks: AMP in bf16 and in fp16 with a GradScaler, CUDA RNG state in checkpoints
(resume continues the curve), the fp32 scores of an AMP run, and DDP over NCCL (2 GPUs). They
skip without a GPU (CI has none); ``benchmarks/gpu_check.sh`` runs them where there is one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.test_cv import TINY, _prepare

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]
REPO = Path(__file__).resolve().parents[1]
FAST = {"epochs": 2, "batch_size": 32, "lr": 0.01, "seed": 0, "device": "cuda"}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cuda")
    return _prepare(root / "raw", root / "prep")


def _losses(run: Path):
    lines = (run / "metrics.csv").read_text().splitlines()[1:]
    return [float(line.split(",")[1]) for line in lines]


def test_bf16_autocast_trains_and_scores_in_fp32(data, tmp_path):
    from har.evaluate import evaluate
    from har.train import fit

    if not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    summary = fit(data, "resnet", out=tmp_path / "run", hparams=TINY, amp=True, **FAST)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["device"]["type"] == "cuda" and config["device"]["amp"] == "bfloat16 autocast"
    assert all(np.isfinite(_losses(tmp_path / "run")))
    report = evaluate(tmp_path / "run" / "best.pt", data, "test", device=torch.device("cuda"))
    assert report["overall"]["f1_macro"] == pytest.approx(summary["test"]["f1_macro"], abs=1e-9)


def test_fp16_autocast_uses_a_grad_scaler(data, tmp_path, monkeypatch):
    """A GPU without bf16 trains in fp16 with a GradScaler, whose state the checkpoint keeps."""
    from har.checkpoint import load_checkpoint
    from har.train import fit

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    fit(data, "resnet", out=tmp_path / "run", hparams=TINY, amp=True, **FAST)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["device"]["amp"] == "float16 autocast"
    scaler = load_checkpoint(tmp_path / "run" / "last.pt")["scaler"]
    assert scaler and scaler["scale"] > 0
    assert all(np.isfinite(_losses(tmp_path / "run")))


def test_resume_restores_the_cuda_rng_and_continues_the_curve(data, tmp_path):
    from har.checkpoint import load_checkpoint
    from har.train import fit

    fit(data, "resnet", out=tmp_path / "straight", hparams=TINY, amp=False,
        **{**FAST, "epochs": 3})
    fit(data, "resnet", out=tmp_path / "split", hparams=TINY, amp=False, **FAST)
    assert len(load_checkpoint(tmp_path / "split" / "last.pt")["rng"]["cuda"]) == \
        torch.cuda.device_count()
    fit(resume=tmp_path / "split" / "last.pt", epochs=3)
    np.testing.assert_allclose(_losses(tmp_path / "split"), _losses(tmp_path / "straight"),
                               rtol=1e-3)      # cuDNN's kernels are not bit-deterministic


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="NCCL DDP needs 2 GPUs")
def test_two_gpus_over_nccl_train_as_one(data, tmp_path):
    from har.train import fit

    fit(data, "resnet", out=tmp_path / "one", hparams=TINY, amp=False, **FAST)
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(f"[model]\nblocks = {TINY['blocks']}\nwidths = {TINY['widths']}\n")
    done = subprocess.run(
        [sys.executable, "-m", "har", "train", "--data", str(data), "--config", str(cfg),
         "--model", "resnet", "--epochs", "2", "--batch-size", "32", "--lr", "0.01",
         "--device", "cuda", "--no-amp", "--nproc", "2", "--out", str(tmp_path / "two")],
        cwd=REPO, capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    assert "2 processes (NCCL" in done.stdout
    np.testing.assert_allclose(_losses(tmp_path / "two"), _losses(tmp_path / "one"), rtol=1e-3)
