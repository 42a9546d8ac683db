"""`har bench`, its backends and BatchNorm folding: every backend that can run here, agreement
with fp32 eager, the --json schema, and each bad input as one line + exit code 2.

A tiny prepared set (3 channels, 16-step windows, subjects 101-102 train / 105 val) and a tiny
ResNet checkpoint (widths 8, 8; BatchNorm statistics randomized so folding is exercised); one
thread, a few runs and short throughput timing keep the file fast. No timed assertions.
"""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest
import torch

import har.bench
from data_prep import load_prepare_config, load_prepared, prepare
from data_prep.datasets import pamap2
from har import backends
from har.checkpoint import save_checkpoint
from har.device import cpu_bf16_supported
from har.fold import fold_model
from har.models import create_model
from harkit.errors import HarError
from tests.conftest import activity_blocks, write_dat

WINDOW, CHANNELS = 16, 3
TINY = {"blocks": [1, 1], "widths": [8, 8]}
FAST = ["--runs", "4", "--warmup", "1", "--batch-sizes", "1,4", "--threads", "1", "--no-compile"]
FP32 = ("eager", "optimized", "onnx", "cuda")


def _has_onnx() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


SKIPS = {
    "bf16": (not cpu_bf16_supported(), "this CPU has no native bfloat16 (AMX / AVX-512 BF16)"),
    "onnx": (not _has_onnx(), "onnx/onnxruntime not installed (pip install 'harkit[onnx]')"),
    "int8": (not _has_onnx(), "onnx/onnxruntime not installed (pip install 'harkit[onnx]')"),
    "cuda": (not torch.cuda.is_available(), "no CUDA device"),
    "cuda-fp16": (not torch.cuda.is_available(), "no CUDA device"),
}


def randomize_batchnorm(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial running statistics and affine parameters, as after training."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=gen) * 0.4 - 0.2)
    return model.eval()


def make_prepared(root):
    """A prepared folder: 3 hand acc16 channels, 16-step windows, 4 separable activities."""
    for subject in (101, 102, 105):
        ts, act = activity_blocks([(a, 160) for a in (1, 2, 3, 4)])
        rng = np.random.default_rng(subject)
        sig = rng.normal(size=(ts.size, pamap2.NUM_COLUMNS)).round(4)
        cols = [pamap2.COLUMN_INDEX[f"hand_acc16_{a}"] for a in "xyz"]
        for i in range(4):
            sig[i * 160:(i + 1) * 160, cols] += [i * 1.5, -i, (i % 2) * 2.0]
        write_dat(root / f"raw/Protocol/subject{subject}.dat", ts, act, signal=sig)
    cfg = {"out": str(root / "prepared"), "sensors": ["hand"], "modalities": ["acc16"],
           "downsample": 1, "window": WINDOW, "overlap": 0.0, "val_subjects": [105],
           "test_subjects": []}
    prepare(root / "raw", load_prepare_config(None, cfg), use_cache=False)
    return root / "prepared"


def make_checkpoint(path, prepared, name="resnet", hparams=None):
    """A harkit checkpoint of a tiny model (random weights) for ``prepared``'s windows."""
    data = load_prepared(prepared)
    torch.manual_seed(0)
    model = randomize_batchnorm(create_model(name, data.window, len(data.channels),
                                             len(data.class_names), **(hparams or TINY)))
    save_checkpoint(path, {
        "model": model.config, "input_shape": [1, data.window, len(data.channels)],
        "classes": data.class_names, "class_ids": [c["id"] for c in data.meta["classes"]],
        "channels": data.channels, "normalization": data.meta["normalization"],
        "preprocessing": {"window": data.window, "stride": data.meta["stride"],
                          "sample_rate_hz": data.meta["sample_rate_hz"]},
        "state_dict": model.state_dict()})
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(prepared folder, checkpoint path)."""
    root = tmp_path_factory.mktemp("bench")
    prepared = make_prepared(root)
    return prepared, make_checkpoint(root / "best.pt", prepared)


@pytest.fixture(autouse=True)
def _short_timing(monkeypatch):
    monkeypatch.setattr(har.bench, "THROUGHPUT_MIN_S", 0.01)
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


# --------------------------------------------------------------------------- folding
@pytest.mark.parametrize("name,hparams", [("resnet", TINY), ("resnet", {"blocks": [2, 1],
                                          "widths": [8, 16]}), ("cnn", TINY)])
def test_folded_model_computes_the_same_logits(name, hparams):
    model = randomize_batchnorm(create_model(name, 17, 5, 4, **hparams))
    folded = fold_model(model)
    x = torch.randn(6, 1, 17, 5)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-5)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())


def test_models_without_a_folded_form_are_left_alone():
    assert fold_model(create_model("deepconvlstm", 20, 3, 4)) is None


# --------------------------------------------------------------------------- backends
def _tiny_backend(name, windows, seed, compile=False):
    """(runner of backend ``name`` for a tiny ResNet, its fp32 eager logits on ``windows``
    random windows, the windows); skips when this machine lacks the backend."""
    skip, reason = SKIPS.get(name, (False, ""))
    if skip:
        pytest.skip(reason)
    model = randomize_batchnorm(create_model("resnet", WINDOW, CHANNELS, 4, **TINY))
    x = torch.randn(windows, 1, WINDOW, CHANNELS, generator=torch.Generator().manual_seed(seed))
    setup = backends.Setup(torch.device("cpu"), 1, x[:1], x[:, 0].numpy(), "test windows",
                           compile=compile)
    runner = backends.prepare(name, model, setup)
    with torch.no_grad():
        return runner, model(x), x


@pytest.mark.parametrize("name", backends.backend_names())
def test_each_backend_matches_fp32_eager(name):
    runner, reference, x = _tiny_backend(name, 8, seed=1)
    out = runner(x)
    assert out.dtype == torch.float32 and out.shape == (8, 4) and out.device.type == "cpu"
    assert runner(x[:1]).shape == (1, 4)
    scale = float(reference.abs().max())
    tolerance = 1e-4 * max(1.0, scale) if name in FP32 else 0.1 * max(1.0, scale)
    assert float((out - reference).abs().max()) <= tolerance
    assert runner.size_bytes > 0 and runner.precision in ("fp32", "bf16", "fp16", "int8")


@pytest.mark.parametrize("name", ["optimized", "bf16"])
def test_compiled_backends_match_fp32_eager_at_every_batch_size(name):
    runner, reference, x = _tiny_backend(name, 5, seed=2, compile=True)
    if not runner.engine.startswith("torch.compile"):
        pytest.skip(f"torch.compile unavailable here; {name} fell back to {runner.engine}")
    scale = max(1.0, float(reference.abs().max()))
    tolerance = 1e-4 * scale if name in FP32 else 0.1 * scale
    for batch in (x[:1], x):                   # a second shape compiles again, still frozen
        assert float((runner(batch) - reference[:len(batch)]).abs().max()) <= tolerance


def test_optimized_backend_takes_models_without_a_folded_form():
    model = create_model("deepconvlstm", 20, 3, 4).eval()
    x = torch.randn(3, 1, 20, 3)
    setup = backends.Setup(torch.device("cpu"), 1, x[:1], x[:, 0].numpy())
    runner = backends.prepare("optimized", model, setup)
    with torch.no_grad():
        torch.testing.assert_close(runner(x), model(x), rtol=1e-4, atol=1e-5)
    assert "not foldable" in runner.engine


def test_all_resolves_to_every_backend_and_lists_are_kept_in_order():
    assert backends.resolve_backends("all") == backends.backend_names()
    assert backends.resolve_backends("onnx, eager,onnx") == ["onnx", "eager"]
    with pytest.raises(HarError, match="choose one of eager, optimized, bf16, onnx, int8"):
        backends.resolve_backends("tensorrt")


# --------------------------------------------------------------------------- run()
def test_run_with_checkpoint_and_data_reports_agreement_per_backend(tiny):
    prepared, ckpt = tiny
    result = har.bench.run(checkpoint=ckpt, data=prepared, runs=4, warmup=1, threads=1,
                           batch_sizes=[1, 4], compile=False)
    rows = {r["backend"]: r for r in result["backends"]}
    assert "eager" in rows and "optimized" in rows
    assert result["agreement_on"]["split"] == "val" and result["agreement_on"]["windows"] > 0
    assert rows["eager"]["agreement_top1"] == 100.0 and rows["eager"]["max_abs_logit_diff"] == 0
    for name, row in rows.items():
        assert 0.0 <= row["agreement_top1"] <= 100.0 and math.isfinite(row["max_abs_logit_diff"])
        if name in FP32:
            assert row["agreement_top1"] == 100.0 and row["max_abs_logit_diff"] < 1e-3
    stream = result["stream"]
    assert stream["source"] == "checkpoint" and stream["stride"] == WINDOW
    assert stream["windows_per_s"] == pytest.approx(100.0 / WINDOW, rel=1e-3)
    if not torch.cuda.is_available():
        assert {s["backend"] for s in result["skipped"]} >= {"cuda", "cuda-fp16"}
    assert result["macs"] > 0 and result["parameters"] > 0
    assert result["best"] in rows


def test_random_model_without_data_has_no_agreement_and_an_assumed_stream():
    result = har.bench.run("resnet", window=WINDOW, channels=CHANNELS, classes=4,
                           backend="eager,optimized", runs=3, warmup=0, threads=1,
                           batch_sizes=[2], compile=False)
    assert [r["backend"] for r in result["backends"]] == ["eager", "optimized"]
    assert result["weights"] == "random" and result["agreement_on"] is None
    assert result["backends"][1]["agreement_top1"] is None
    assert result["stream"]["source"] == "assumed"
    assert result["stream"]["stride"] == WINDOW // 2
    assert result["backends"][1]["speedup_vs_eager"] > 0


# --------------------------------------------------------------------------- CLI and JSON
def test_cli_prints_a_table_and_writes_the_documented_json(tiny, run_cli, tmp_path):
    prepared, ckpt = tiny
    out = tmp_path / "bench.json"
    code, stdout, stderr = run_cli("bench", "--checkpoint", ckpt, "--data", prepared,
                                   "--json", out, *FAST)
    assert code == 0, stderr
    assert "p50 ms" in stdout and "real-time budget" in stdout and f"wrote {out}" in stdout
    result = json.loads(out.read_text())
    for key, kind in [("format", str), ("format_version", int), ("harkit_version", str),
                      ("created_at", str), ("model", dict), ("weights", str), ("data", str),
                      ("input_shape", list), ("parameters", int), ("macs", int),
                      ("gflop_per_window", float), ("stream", dict), ("agreement_on", dict),
                      ("machine", dict), ("settings", dict), ("backends", list),
                      ("skipped", list), ("best", str)]:
        assert isinstance(result[key], kind), key
    assert result["format"] == "harkit.bench" and result["settings"]["runs"] == 4
    assert set(result["stream"]) == {"sample_rate_hz", "stride", "windows_per_s",
                                     "window_interval_ms", "source"}
    for key in ("cpu", "cpu_class", "cpu_flags", "threads", "load_avg_before",
                "load_avg_after", "torch"):
        assert key in result["machine"]
    assert isinstance(result["reference_macro_f1"], float)
    rec = result["recommended"]
    assert rec["backend"] in [r["backend"] for r in result["backends"]]
    assert f"recommended on this machine: {rec['backend']}" in stdout
    for row in result["backends"]:
        assert row["backend"] in backends.backend_names()
        assert set(row["latency_ms"]) == {"p50", "p90", "p99", "mean", "min"}
        assert row["latency_ms"]["p50"] <= row["latency_ms"]["p99"]
        assert set(row["throughput"]) == {"1", "4"}
        assert all(v > 0 for v in row["throughput"].values())
        for key in ("device", "precision", "engine", "notes", "timed_runs",
                    "single_window_per_s", "gflops", "gflops_best_batch", "headroom",
                    "speedup_vs_eager", "model_mb", "peak_memory_mb", "agreement_top1",
                    "max_abs_logit_diff", "macro_f1", "macro_f1_change", "prepare_s"):
            assert key in row, key
        assert row["macro_f1_change"] == pytest.approx(
            row["macro_f1"] - result["reference_macro_f1"], abs=2e-5)
        assert row["timed_runs"] == 4
    for skip in result["skipped"]:
        assert set(skip) == {"backend", "reason"}


# --------------------------------------------------------------------------- bad input
def _one_line_error(code, stderr, *needles):
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_unknown_backend_lists_the_choices(run_cli):
    code, _, err = run_cli("bench", "--backend", "tensorrt", *FAST)
    _one_line_error(code, err, "'tensorrt'", "eager, optimized, bf16, onnx, int8, cuda, cuda-fp16")


@pytest.mark.parametrize("backend", ["onnx", "int8"])
def test_backend_without_its_package_names_the_extra(run_cli, monkeypatch, backend):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    code, _, err = run_cli("bench", "--model", "resnet", "--window", WINDOW, "--channels",
                           CHANNELS, "--backend", backend, *FAST)
    _one_line_error(code, err, "onnxruntime", "pip install 'harkit[onnx]'")


def test_all_skips_a_backend_whose_package_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    result = har.bench.run("resnet", window=WINDOW, channels=CHANNELS, classes=4, runs=2,
                           warmup=0, threads=1, batch_sizes=[1], compile=False)
    skipped = {s["backend"]: s["reason"] for s in result["skipped"]}
    assert "harkit[onnx]" in skipped["onnx"] and "int8" in skipped
    assert "onnx" not in {r["backend"] for r in result["backends"]}


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
@pytest.mark.parametrize("backend", ["cuda", "cuda-fp16"])
def test_cuda_backend_without_a_gpu_is_one_line(run_cli, backend):
    code, _, err = run_cli("bench", "--backend", backend, *FAST)
    _one_line_error(code, err, "no CUDA device")


def test_corrupt_and_foreign_checkpoints_are_one_line(run_cli, tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00not a checkpoint" * 10)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    for path in (corrupt, foreign, tmp_path / "missing.pt"):
        code, _, err = run_cli("bench", "--checkpoint", path, *FAST)
        _one_line_error(code, err, str(path))


@pytest.mark.parametrize("args,needle", [
    (["--runs", "0"], "--runs 0"),
    (["--runs", "-5"], "--runs -5"),
    (["--batch-sizes", "0"], "--batch-sizes"),
    (["--batch-sizes", "1,-4"], "--batch-sizes"),
    (["--batch-sizes", "a,b"], "--batch-sizes"),
    (["--threads", "0"], "--threads 0"),
])
def test_bad_counts_are_one_line(run_cli, args, needle):
    code, _, err = run_cli("bench", "--model", "resnet", *FAST, *args)
    _one_line_error(code, err, needle)


def test_a_window_the_model_cannot_take_names_window_and_the_minimum(run_cli):
    code, _, err = run_cli("bench", "--model", "deepconvlstm", "--window", "10", *FAST)
    _one_line_error(code, err, "--window 10", "at least 17 steps")
    code, _, err = run_cli("bench", "--model", "resnet", "--window", "0", *FAST)
    _one_line_error(code, err, "--window 0", ">= 1")


def test_checkpoint_with_shape_options_or_other_data_is_one_line(tiny, run_cli, tmp_path):
    prepared, ckpt = tiny
    code, _, err = run_cli("bench", "--checkpoint", ckpt, "--window", "32", *FAST)
    _one_line_error(code, err, "--window", "--checkpoint")
    other = make_checkpoint(tmp_path / "other.pt", prepared)
    payload = torch.load(other, weights_only=True)
    payload["input_shape"] = [1, 2 * WINDOW, CHANNELS]
    payload["model"]["window_steps"] = 2 * WINDOW
    torch.save(payload, other)
    code, _, err = run_cli("bench", "--checkpoint", other, "--data", prepared, *FAST)
    _one_line_error(code, err, "--data", "prepared folder it was trained on")


def test_unknown_model_is_one_line(run_cli):
    code, _, err = run_cli("bench", "--model", "transformer", *FAST)
    _one_line_error(code, err, "'transformer'", "resnet")


def _rec_row(name, precision, p50, agreement):
    return {"backend": name, "precision": precision, "latency_ms": {"p50": p50},
            "agreement_top1": agreement}


def test_recommendation_is_the_fastest_backend_that_keeps_the_answers():
    from har.bench import recommend

    rows = [_rec_row("eager", "fp32", 8.0, 100.0), _rec_row("bf16", "bf16", 1.7, 99.6),
            _rec_row("onnx", "fp32", 6.0, 100.0), _rec_row("int8", "int8", 1.5, 96.0)]
    chosen = recommend(rows)
    assert chosen["backend"] == "bf16" and chosen["export_format"] == "torchscript-bf16"
    assert "below the agreement target: int8" in chosen["why"]
    rows[1]["agreement_top1"] = 99.4          # bf16 now changes too many answers
    assert recommend(rows)["backend"] == "onnx"
    assert recommend(rows)["export_format"] == "onnx"
    # without --data nothing is measured: only fp32 backends qualify
    unmeasured = [dict(r, agreement_top1=None) for r in rows]
    chosen = recommend(unmeasured)
    assert chosen["backend"] == "onnx" and "pass --data" in chosen["why"]
    assert recommend([]) is None
