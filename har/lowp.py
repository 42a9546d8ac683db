"""Reduced-precision forms of an inference model, in one place for ``har bench`` and
``har export``: static int8 ONNX (:func:`int8_onnx`) and a bf16 module (:func:`bf16_module`).

The int8 recipe (:data:`INT8_RECIPE`; the measurements behind it are in docs/BENCHMARKS.md,
issue 14): the model's own convolution graph is exported (not :mod:`har.fold`'s matmul form,
whose stacked conv + shortcut outputs share one activation scale), ONNX Runtime's
pre-processing folds each BatchNorm into its convolution, and ``quantize_static`` writes QDQ
int8 with per-output-channel weights and uint8 activations whose ranges are the min/max over
:data:`~har.bench.CALIBRATION_WINDOWS` training windows; the first convolution and the
classifier stay fp32 (together they cost little and changed the most answers).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch
from torch import nn

CALIBRATION_BATCH = 32
INT8_RECIPE = ("static QDQ int8 of the conv graph, per-channel weights, min/max calibration, "
               "first conv and classifier in fp32")


def int8_onnx(model: nn.Module, calibration: np.ndarray, input_name: str,
              metadata: Optional[Dict[str, str]] = None) -> bytes:
    """``model`` (fp32, eval) as static int8 ONNX (:data:`INT8_RECIPE`), calibrated on
    ``calibration`` windows ``[N, T, C]`` float32; ``metadata`` (JSON strings) becomes its
    ``metadata_props``, replacing the quantizer's."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from har.export import onnx_bytes, onnx_module

    windows = np.ascontiguousarray(calibration[:, None], dtype=np.float32)  # [N, 1, T, C]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(windows[i:i + CALIBRATION_BATCH]
                                for i in range(0, len(windows), CALIBRATION_BATCH))

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {input_name: batch}

    with tempfile.TemporaryDirectory(prefix="harkit-int8-") as tmp, _quiet():
        raw, pre, dst = (Path(tmp) / n for n in ("fp32.onnx", "pre.onnx", "int8.onnx"))
        raw.write_bytes(onnx_bytes(onnx_module(model), torch.from_numpy(windows[:2])))
        quant_pre_process(str(raw), str(pre))   # BatchNorm folded into Conv, shapes inferred
        quantize_static(str(pre), str(dst), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                        nodes_to_exclude=_fp32_nodes(onnx.load(str(pre))))
        quantized = onnx.load(str(dst))
    del quantized.metadata_props[:]   # the quantizer's own notes; ours are JSON values
    for key, value in (metadata or {}).items():
        entry = quantized.metadata_props.add()
        entry.key, entry.value = key, value
    return quantized.SerializeToString()


def _fp32_nodes(proto) -> List[str]:
    """The nodes kept in fp32: the first convolution (it sees every sensor's range at once)
    and the classifier (Gemm/MatMul after the last convolution: it decides the class)."""
    nodes = list(proto.graph.node)
    convs = [i for i, n in enumerate(nodes) if n.op_type == "Conv"]
    if not convs:
        return []
    head = [n.name for n in nodes[convs[-1] + 1:] if n.op_type in ("Gemm", "MatMul")]
    return [nodes[convs[0]].name] + head


@contextlib.contextmanager
def _quiet():
    """The exporter's warnings and ONNX Runtime's quantizer advice (root logger) silenced."""
    from har.export import quiet

    logging.disable(logging.WARNING)
    try:
        with quiet():
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
