"""Training on several processes (DistributedDataParallel, gloo on the CPU, 2 processes of 1
thread): the same steps as one process on the same global batch, scores gathered, checkpoints
interchangeable both ways, resume, a dying rank, and the helpers' contracts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from har.train import distributed
from har.train.distributed import World
from tests.test_cv import TINY, _prepare

REPO = Path(__file__).resolve().parents[1]
COMMON = ["--model", "resnet", "--batch-size", "32", "--lr", "0.01", "--threads", "1",
          "--no-amp", "--seed", "0"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ddp")
    return _prepare(root / "raw", root / "prep")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "tiny.toml"
    path.write_text(f"[model]\nblocks = {TINY['blocks']}\nwidths = {TINY['widths']}\n")
    return path


def har(*args, env=None, timeout=180):
    """``python -m har ARGS`` in a fresh process: (exit code, stdout, stderr)."""
    done = subprocess.run([sys.executable, "-m", "har", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    return done.returncode, done.stdout, done.stderr


def metrics(run: Path):
    lines = (run / "metrics.csv").read_text().splitlines()
    head = lines[0].split(",")
    return [dict(zip(head, line.split(","))) for line in lines[1:]]


def weights(run: Path, name: str = "last.pt"):
    """The state_dict without the biases of convolutions followed by BatchNorm and BatchNorm's
    running means: those biases get no gradient (BatchNorm removes them) but rounding noise,
    which Adam turns into steps, so they differ between any two summation orders."""
    import torch

    state = torch.load(run / name, weights_only=True)["state_dict"]
    noise = ("conv1.bias", "conv2.bias", "shortcut.0.bias", "running_mean")
    return {k: v for k, v in state.items() if not k.endswith(noise)}


def test_two_processes_train_as_one_and_checkpoints_interchange(data, tiny, tmp_path):
    from har.evaluate import evaluate
    from har.train import fit

    one, two = tmp_path / "one", tmp_path / "two"
    fit(data, "resnet", out=one, hparams=TINY, epochs=2, batch_size=32, lr=0.01, threads=1,
        amp=False, seed=0)
    code, out, err = har("train", "--data", data, "--config", tiny, "--epochs", 2, *COMMON,
                         "--nproc", 2, "--out", two)
    assert code == 0, err
    assert "2 processes (gloo, synchronised BatchNorm statistics): global batch 32, 16 windows" \
        in out and out.count("best epoch") == 1                     # rank 0 alone prints
    # Each step is the single-process step on the same global batch: the same losses, weights.
    a, b = metrics(one), metrics(two)
    np.testing.assert_allclose([float(r["train_loss"]) for r in b],
                               [float(r["train_loss"]) for r in a], rtol=1e-5)
    wa, wb = weights(one), weights(two)
    for key in wa:
        np.testing.assert_allclose(wb[key].float().numpy(), wa[key].float().numpy(), atol=1e-5,
                                   err_msg=key)
    # Val scored on both ranks' shares and gathered = a single process scoring the weights.
    best = json.loads((two / "summary.json").read_text())
    report = evaluate(two / "best.pt", data, "val")
    assert report["overall"]["f1_macro"] == pytest.approx(best["best_val"]["f1_macro"],
                                                          abs=1e-9)
    # The other way: a single-process checkpoint resumed by 2 processes continues its curve.
    code, _, err = har("train", "--resume", one / "last.pt", "--epochs", 3, "--threads", 1,
                       "--nproc", 2)
    assert code == 0, err
    fit(resume=two / "last.pt", epochs=3, threads=1)             # and DDP's in one process
    assert [r["epoch"] for r in metrics(one)] == [r["epoch"] for r in metrics(two)] == \
        ["1", "2", "3"]
    np.testing.assert_allclose(float(metrics(one)[2]["train_loss"]),
                               float(metrics(two)[2]["train_loss"]), rtol=1e-4)


def test_a_dying_rank_ends_the_job_with_one_line(data, tiny, tmp_path):
    code, _, err = har("train", "--data", data, "--config", tiny, "--epochs", 3, *COMMON,
                       "--nproc", 2, "--out", tmp_path / "run",
                       env={distributed.FAULT_ENV: "1:2"}, timeout=120)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1, err
    assert "rank 1 ended with exit code 17" in lines[0] and "--resume" in lines[0]
    import torch

    assert torch.load(tmp_path / "run" / "last.pt", weights_only=True)["epoch"] == 1


def test_bad_input_under_two_processes_is_said_once(tmp_path):
    code, _, err = har("train", "--data", tmp_path / "nowhere", "--epochs", 1, "--nproc", 2)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and "does not exist" in lines[0], err


def test_shares_cover_a_batch_in_order():
    for n in (1, 7, 32, 33):
        for size in (1, 2, 3, 4):
            parts = [range(n)[distributed.share(n, World(r, size))] for r in range(size)]
            assert [i for p in parts for i in p] == list(range(n))
            assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_world_from_torchrun_environment():
    assert distributed.world({}) == World()
    w = distributed.world({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1",
                           "LOCAL_WORLD_SIZE": "2"})
    assert (w.rank, w.size, w.local_rank, w.local_size, w.main) == (3, 4, 1, 2, False)
    assert distributed.threads_per_process(w, cores=8) == 4
    from harkit.errors import HarError

    with pytest.raises(HarError, match="WORLD_SIZE"):
        distributed.world({"RANK": "4", "WORLD_SIZE": "4"})


def test_cross_validation_under_torchrun_trains_each_fold_together(data, tiny, tmp_path):
    """``torchrun -m har cv``: every fold one DDP training; rank 0 alone writes and prints."""
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "-m", "har",
         "cv", str(data), "--folds", "2", "--epochs", "1", *COMMON[2:], "--config", str(tiny),
         "--out", str(tmp_path / "cv")], cwd=REPO, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("2-fold macro F1") == 1
    rows = (tmp_path / "cv" / "cv.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:3]] == ["fold-1", "fold-2"]


@pytest.mark.parametrize("channels_last,affine,dtype,rtol", [
    (True, True, "float64", 1e-9), (False, True, "float64", 1e-9),
    (False, False, "float64", 1e-9), (True, True, "bfloat16", 2e-2)])
def test_global_batchnorm_matches_batchnorm_in_a_group_of_one(tmp_path, channels_last, affine,
                                                              dtype, rtol):
    """--sync-bn on CPUs: outputs, input and parameter gradients and running statistics equal
    torch's BatchNorm2d in either memory layout: in fp64, so any formula slip shows, and for
    bf16 activations with fp32 parameters (bf16 autocast)."""
    import torch
    import torch.distributed as dist

    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    low = dtype == "bfloat16"
    param = torch.float32 if low else torch.float64
    x = (torch.randn(6, 5, 7, 3, dtype=param) * 3 + 2).to(getattr(torch, dtype),
                                                          memory_format=fmt)
    g = torch.randn(6, 5, 7, 3, dtype=param).to(x.dtype)
    ref = torch.nn.BatchNorm2d(5, affine=affine).to(param)
    if affine:
        with torch.no_grad():
            ref.weight.uniform_(0.5, 1.5)
            ref.bias.uniform_(-1, 1)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/store", rank=0,
                            world_size=1)
    try:
        ours = distributed.sync_batchnorm(torch.nn.Sequential(ref), torch.device("cpu"))[0]
        assert type(ours).__name__ == "GlobalBatchNorm"
        results = []
        for module in (torch.nn.BatchNorm2d(5, affine=affine).to(param), ours):
            module.load_state_dict(ref.state_dict())
            xi = x.clone().requires_grad_(True)
            out = module(xi)
            out.backward(g)
            grads = [xi.grad] + ([module.weight.grad, module.bias.grad] if affine else [])
            results.append([out, *grads, module.running_mean, module.running_var])
    finally:
        dist.destroy_process_group()
    for expected, got in zip(*results):
        assert got.dtype == expected.dtype
        np.testing.assert_allclose(got.detach().double().numpy(),
                                   expected.detach().double().numpy(), rtol=rtol, atol=rtol / 100)
