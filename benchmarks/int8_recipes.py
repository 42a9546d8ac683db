"""Static int8 recipes for ONNX Runtime, compared on a trained checkpoint's val windows.

For each recipe: top-1 agreement with the fp32 model (%), macro F1 and its change vs fp32, and
the p50 of one window (ms, 100 calls after 10, 2 threads). The graphs:

* ``conv``: the model's own graph, BatchNorm folded into Conv by ONNX Runtime's
  pre-processing (what ``har bench``'s ``int8`` and ``har export --format onnx-int8`` use);
* ``matmul``: :mod:`har.fold`'s inference form, each block's conv and shortcut as one matmul
  (what the ``int8`` backend quantized before issue 14).

Recipes (``--recipes``, comma-separated ``GRAPH:CALIBRATION:WINDOWS[:OPTIONS]``, OPTIONS joined
by ``+``), e.g. ``conv:minmax:1024``, ``matmul:minmax:128``, ``conv:percentile:128:stage+p99.9``
(harkit's recipe, ``har/lowp.py``). Options: ``ends`` (first conv and classifier kept in fp32),
``stage`` (the first stage, as ``har.lowp`` finds it, and the classifier in fp32), ``lastN``
(also the last N convolutions in fp32), ``pX`` (percentile X, default 99.999), ``rr`` (7-bit
weights, ONNX Runtime's ``reduce_range``), ``seedN`` (calibration draw), ``s8`` (int8 symmetric
activations), ``convs`` (only Conv and Gemm quantized, not Add), ``val`` (calibration windows
drawn from the val windows scored on: a diagnostic of the train/val range mismatch, not a
recipe, since it leaks). Calibration windows are drawn from the train split (seed 0 unless
``seedN``).

    python benchmarks/int8_recipes.py --checkpoint bench/run/best.pt --data bench/prep
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_prep.store import load_prepared  # noqa: E402
from har.checkpoint import load_checkpoint, model_from_checkpoint  # noqa: E402
from har.export import INPUT_NAME, inference_module, onnx_bytes, onnx_module  # noqa: E402
from har.metrics import classification_scores  # noqa: E402

DEFAULT = "matmul:minmax:128,matmul:minmax:1024,conv:minmax:128,conv:minmax:1024"


def quantize(payload: bytes, graph: str, method: str, windows: np.ndarray, options) -> bytes:
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from har.lowp import fp32_nodes

    batches = [windows[i:i + 32] for i in range(0, len(windows) // 32 * 32 or len(windows), 32)]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(batches)

        def get_next(self):
            b = next(self.it, None)
            return None if b is None else {INPUT_NAME: b}

    with tempfile.TemporaryDirectory() as tmp:
        src, pre, dst = (Path(tmp) / n for n in ("a.onnx", "b.onnx", "c.onnx"))
        src.write_bytes(payload)
        if graph == "conv":
            quant_pre_process(str(src), str(pre))
            src = pre
        proto = onnx.load(str(src))
        nodes = list(proto.graph.node)
        convs = [n.name for n in nodes if n.op_type in ("Conv", "MatMul")]
        exclude = []
        if "ends" in options:
            exclude = convs[:1] + [n.name for n in nodes if n.op_type == "Gemm"]
        if "stage" in options:
            exclude = fp32_nodes(proto)
        last = [int(o[4:]) for o in options if o.startswith("last")]
        if last:
            exclude += convs[-last[0]:]
        extra = {"ActivationSymmetric": True} if "s8" in options else {}
        percentile = [float(o[1:]) for o in options if o.startswith("p")]
        if method == "percentile" and percentile:
            extra["CalibPercentile"] = percentile[0]
        quantize_static(
            str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QInt8 if "s8" in options else QuantType.QUInt8,
            weight_type=QuantType.QInt8, nodes_to_exclude=exclude, reduce_range="rr" in options,
            op_types_to_quantize=["Conv", "Gemm", "MatMul"] if "convs" in options else None,
            extra_options=extra,
            calibrate_method={"minmax": CalibrationMethod.MinMax,
                              "percentile": CalibrationMethod.Percentile,
                              "entropy": CalibrationMethod.Entropy}[method])
        return dst.read_bytes()


def evaluate(payload: bytes, x: np.ndarray, y: np.ndarray, reference: np.ndarray):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    session = ort.InferenceSession(payload, so, providers=["CPUExecutionProvider"])
    pred = np.concatenate([session.run(None, {INPUT_NAME: x[i:i + 256]})[0]
                           for i in range(0, len(x), 256)]).argmax(1)
    one = x[:1]
    for _ in range(10):
        session.run(None, {INPUT_NAME: one})
    times = []
    for _ in range(100):
        start = time.perf_counter()
        session.run(None, {INPUT_NAME: one})
        times.append(time.perf_counter() - start)
    f1 = classification_scores(y, pred)["f1_macro"]
    return 100.0 * float((pred == reference).mean()), f1, 1000.0 * float(np.median(times))


def main() -> None:
    import logging

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--recipes", default=DEFAULT)
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    torch.set_num_threads(2)
    model = model_from_checkpoint(load_checkpoint(args.checkpoint), torch.device("cpu")).eval()
    prepared = load_prepared(args.data, mmap=True)
    x = np.array(prepared.splits["val"].x, dtype=np.float32)[:, None]
    y = np.asarray(prepared.splits["val"].y)
    train = prepared.splits["train"].x
    with torch.no_grad():
        reference = torch.cat([model(torch.from_numpy(x[i:i + 256]))
                               for i in range(0, len(x), 256)]).numpy().argmax(1)
    fp32_f1 = classification_scores(y, reference)["f1_macro"]
    example = torch.from_numpy(x[:2])
    graphs = {"conv": onnx_bytes(onnx_module(model), example),
              "matmul": onnx_bytes(inference_module(model), example)}
    print(f"{len(x)} val windows, fp32 macro F1 {fp32_f1:.4f}")
    print(f"{'recipe':<28} {'agree %':>8} {'macro F1':>9} {'dF1':>8} {'p50 ms':>7} {'calib s':>8}")
    for graph in graphs:
        agree, f1, ms = evaluate(graphs[graph], x, y, reference)
        print(f"{graph + ':fp32':<28} {agree:8.2f} {f1:9.4f} {f1 - fp32_f1:+8.4f} {ms:7.2f}")
    for recipe in args.recipes.split(","):
        graph, method, count, *option = recipe.split(":")
        options = option[0].split("+") if option else []
        source = x[:, 0] if "val" in options else train
        seeds = [int(o[4:]) for o in options if o.startswith("seed")]
        rng = np.random.default_rng(seeds[0] if seeds else 0)
        pick = np.sort(rng.choice(len(source), min(int(count), len(source)), replace=False))
        windows = np.asarray(source[pick], dtype=np.float32)[:, None]
        start = time.perf_counter()
        payload = quantize(graphs[graph], graph, method, windows, options)
        took = time.perf_counter() - start
        agree, f1, ms = evaluate(payload, x, y, reference)
        print(f"{recipe:<28} {agree:8.2f} {f1:9.4f} {f1 - fp32_f1:+8.4f} {ms:7.2f} {took:8.1f}",
              flush=True)


if __name__ == "__main__":
    main()
