"""Reduced-precision forms of an inference model, in one place for ``har bench`` and
``har export``: static int8 ONNX (:func:`int8_onnx`) and a bf16 module (:func:`bf16_module`).

The int8 recipe (:data:`INT8_RECIPE`; the measurements behind it are in docs/BENCHMARKS.md,
issue 14): the model's own convolution graph is exported (not :mod:`har.fold`'s matmul form,
whose stacked conv + shortcut outputs share one activation scale), ONNX Runtime's
pre-processing folds each BatchNorm into its convolution, and ``quantize_static`` writes QDQ
int8 with per-output-channel weights and uint8 activations. Activation ranges are the
:data:`CALIBRATION_PERCENTILE` percentile of each tensor over
:data:`~har.bench.CALIBRATION_WINDOWS` training windows, not its min/max: a few extreme values
would otherwise stretch the range and coarsen every other step. The first stage (every
convolution at the first convolution's time resolution, where each sensor's raw range is still
distinct) and the classifier stay fp32. On the benchmark's converged ResNet this keeps 99.7-99.8
% of the fp32 answers, against 96.7 % for min/max with only the first convolution in fp32.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch
from torch import nn

from harkit.errors import HarError

CALIBRATION_BATCH = 32
#: Percentile of each activation tensor's values that sets its int8 range (and its mirror).
CALIBRATION_PERCENTILE = 99.9
INT8_RECIPE = ("static QDQ int8 of the conv graph, per-channel weights (7-bit on CPUs without "
               f"VNNI), {CALIBRATION_PERCENTILE:g}th-percentile calibration, first stage and "
               "classifier in fp32")


def int8_onnx(model: nn.Module, calibration: np.ndarray, input_name: str,
              metadata: Optional[Dict[str, str]] = None,
              reduce_range: Optional[bool] = None) -> bytes:
    """``model`` (fp32, eval) as static int8 ONNX (:data:`INT8_RECIPE`), calibrated on
    ``calibration`` windows ``[N, T, C]`` float32; ``metadata`` (JSON strings) becomes its
    ``metadata_props``, replacing the quantizer's. ``reduce_range`` (7-bit weights) defaults
    to :func:`har.cpu.int8_saturates`: what this CPU's int8 kernels need to be exact."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from har.cpu import int8_saturates
    from har.export import onnx_bytes, onnx_module

    if not len(calibration):
        raise HarError("int8 calibration needs at least one window; pass --data with a train "
                       "split")
    # Batches of one size (the percentile calibrator stacks them), every window used: the
    # largest batch of at most CALIBRATION_BATCH windows that divides N.
    batch = max(b for b in range(1, min(CALIBRATION_BATCH, len(calibration)) + 1)
                if len(calibration) % b == 0)
    windows = np.ascontiguousarray(calibration[:, None], dtype=np.float32)  # [N, 1, T, C]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(windows[i:i + batch] for i in range(0, len(windows), batch))

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {input_name: batch}

    with tempfile.TemporaryDirectory(prefix="harkit-int8-") as tmp, _quiet():
        raw, pre, dst = (Path(tmp) / n for n in ("fp32.onnx", "pre.onnx", "int8.onnx"))
        raw.write_bytes(onnx_bytes(onnx_module(model), torch.from_numpy(windows[:2])))
        quant_pre_process(str(raw), str(pre))   # BatchNorm folded into Conv, shapes inferred
        quantize_static(str(pre), str(dst), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8,
                        reduce_range=int8_saturates() if reduce_range is None else reduce_range,
                        calibrate_method=CalibrationMethod.Percentile,
                        extra_options={"CalibPercentile": CALIBRATION_PERCENTILE},
                        nodes_to_exclude=fp32_nodes(onnx.load(str(pre))))
        quantized = onnx.load(str(dst))
    del quantized.metadata_props[:]   # the quantizer's own notes; ours are JSON values
    for key, value in (metadata or {}).items():
        entry = quantized.metadata_props.add()
        entry.key, entry.value = key, value
    return quantized.SerializeToString()


def fp32_nodes(proto) -> List[str]:
    """The nodes kept in fp32: the first stage, i.e. every convolution whose output has the
    first convolution's time length (the first one alone when shapes are unknown), and the
    classifier (Gemm/MatMul after the last convolution: it decides the class)."""
    nodes = list(proto.graph.node)
    convs = [i for i, n in enumerate(nodes) if n.op_type == "Conv"]
    if not convs:
        return []
    steps = {v.name: _time_length(v) for v in list(proto.graph.value_info)
             + list(proto.graph.output)}
    first = steps.get(nodes[convs[0]].output[0])
    stage = [nodes[i].name for i in convs
             if i == convs[0] or (first and steps.get(nodes[i].output[0]) == first)]
    head = [n.name for n in nodes[convs[-1] + 1:] if n.op_type in ("Gemm", "MatMul")]
    return stage + head


def _time_length(value_info) -> Optional[int]:
    """Axis 2 (time) of a ``[B, channels, T, C]`` tensor's inferred shape, when known."""
    dims = value_info.type.tensor_type.shape.dim
    return int(dims[2].dim_value) if len(dims) == 4 and dims[2].dim_value > 0 else None


@contextlib.contextmanager
def _quiet():
    """The exporter's warnings, ONNX Runtime's quantizer advice (root logger) and its
    calibrator's progress lines (printed to stdout, where harkit's JSON output goes) silenced."""
    from har.export import quiet

    logging.disable(logging.WARNING)
    try:
        with quiet(), contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logging.disable(logging.NOTSET)


class _Bf16(nn.Module):
    """``module`` in bfloat16 behind an fp32 interface: windows cast in, logits cast out."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module.to(torch.bfloat16)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        return self.module(windows.to(torch.bfloat16)).float()


def bf16_module(module: nn.Module) -> nn.Module:
    """``module`` (an fp32 inference module, eval mode) computing in bfloat16, fp32 in and out."""
    return _Bf16(module).eval()
