"""``har export``: a checkpoint as a self-describing ONNX or TorchScript file, validated.

The exported graph is the checkpoint's model in inference form (BatchNorm folded, see
:mod:`har.fold`; models without a folded form are exported as they are). It maps windows
``[batch, 1, T, C]`` float32 -- normalized as the ``normalization`` metadata says -- to logits
``[batch, classes]``. Before anything is written, its outputs on sample windows are compared
with the checkpoint's PyTorch model; a difference above tolerance is a HarError. The file is
written atomically (temp file beside it + rename).

Metadata (:func:`export_metadata`; read back with :func:`read_metadata`): ``harkit_format``,
``harkit_format_version``, ``harkit_version``, ``model`` (name + hyper-parameters),
``input_shape`` ``[1, T, C]``, ``classes``, ``class_ids``, ``channels``, ``normalization``
(``applied``, ``mean``, ``std``), ``window``, ``stride``, ``sample_rate_hz``, ``preprocessing``,
``input``/``output`` names.
ONNX keeps each as a ``metadata_props`` entry whose value is JSON (``json.loads`` every value);
TorchScript keeps the whole dict as the extra file ``harkit.json``.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from pathlib import Path
from typing import Any, Dict

import numpy as np
import torch
from torch import nn

from har.fold import fold_model
from harkit import __version__
from harkit.errors import HarError
from harkit.files import write_atomic

FORMATS = ("onnx", "torchscript")
INPUT_NAME, OUTPUT_NAME = "windows", "logits"
EXPORT_FORMAT, EXPORT_FORMAT_VERSION = "harkit.export", 1
TORCHSCRIPT_METADATA = "harkit.json"
ONNX_OPSET = 17
ONNX_EXTRA = "pip install 'harkit[onnx]'"


def require_onnx(what: str) -> None:
    """HarError naming the extra unless ``onnx`` and ``onnxruntime`` import."""
    missing = []
    for module in ("onnx", "onnxruntime"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise HarError(f"{what} needs {' and '.join(missing)}, which is not installed; "
                       f"{ONNX_EXTRA}")


def inference_module(model: nn.Module) -> nn.Module:
    """``model`` with BatchNorm folded when it has a folded form, else ``model`` (eval mode)."""
    folded = fold_model(model)
    return folded if folded is not None else model.eval()


@contextlib.contextmanager
def quiet():
    """Silence torch's deprecation and tracer chatter (legacy ONNX exporter, torch.jit)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def onnx_bytes(module: nn.Module, example: torch.Tensor) -> bytes:
    """``module`` as an ONNX model (opset 17, float32, dynamic batch axis), serialized.

    ``example`` is a float32 ``[B, 1, T, C]`` batch on the module's device; T and C are fixed.
    """
    buffer = io.BytesIO()
    with quiet(), torch.no_grad():
        torch.onnx.export(module, (example,), buffer, input_names=[INPUT_NAME],
                          output_names=[OUTPUT_NAME], opset_version=ONNX_OPSET, dynamo=False,
                          dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
    return buffer.getvalue()


def torchscript_module(module: nn.Module, example: torch.Tensor) -> torch.jit.ScriptModule:
    """``module`` traced on ``example`` and frozen (weights inlined as constants)."""
    with quiet(), torch.no_grad():
        return torch.jit.freeze(torch.jit.trace(module.eval(), example))


def export_metadata(ckpt: Dict[str, Any]) -> Dict[str, Any]:
    """What a deployed model needs to know, from a checkpoint (plain JSON values)."""
    pre = ckpt.get("preprocessing") or {}
    return {
        "harkit_format": EXPORT_FORMAT, "harkit_format_version": EXPORT_FORMAT_VERSION,
        "harkit_version": __version__,
        "model": ckpt["model"], "input_shape": list(ckpt["input_shape"]),
        "input": INPUT_NAME, "output": OUTPUT_NAME,
        "classes": list(ckpt["classes"]), "class_ids": list(ckpt.get("class_ids") or []),
        "channels": list(ckpt["channels"]), "normalization": ckpt.get("normalization"),
        "window": pre.get("window", ckpt["input_shape"][1]), "stride": pre.get("stride"),
        "sample_rate_hz": pre.get("sample_rate_hz"), "preprocessing": pre,
    }


def export(checkpoint, fmt: str, out, *, force: bool = False, windows: int = 8,
           seed: int = 0) -> Dict[str, Any]:
    """Export ``checkpoint`` (a path) to ``out`` as ``fmt`` (``onnx`` or ``torchscript``).

    Validates on ``windows`` random N(0, 1) windows (and on one window alone) against the
    checkpoint's PyTorch model before writing. Returns ``path``, ``format``, ``bytes``,
    ``max_abs_diff`` (logits), ``tolerance``, ``metadata``.
    """
    from har.checkpoint import load_checkpoint, model_from_checkpoint

    if fmt not in FORMATS:
        raise HarError(f"--format {fmt!r} is invalid; choose one of {', '.join(FORMATS)}")
    out = Path(out)
    if out.is_dir():
        raise HarError(f"--out {out} is a folder; pass a file name such as "
                       f"{out / ('model.' + fmt)}")
    if out.exists() and not force:
        raise HarError(f"--out {out} already exists; pass --force to replace it")
    if fmt == "onnx":
        require_onnx("--format onnx")
    ckpt = load_checkpoint(checkpoint)
    model = model_from_checkpoint(ckpt)
    metadata = export_metadata(ckpt)
    _, steps, channels = ckpt["input_shape"]
    gen = torch.Generator().manual_seed(seed)
    samples = torch.randn(max(int(windows), 2), 1, steps, channels, generator=gen)
    with torch.no_grad():
        reference = model(samples).numpy()
    module = inference_module(model)
    if fmt == "onnx":
        payload, outputs = _onnx_payload(module, samples, metadata)
    else:
        payload, outputs = _torchscript_payload(module, samples, metadata)
    diff = max(float(np.abs(o - r).max()) for o, r in zip(outputs, (reference, reference[:1])))
    tolerance = 1e-3 * max(1.0, float(np.abs(reference).max()))
    if not diff <= tolerance:
        raise HarError(f"export: the {fmt} model's logits differ from PyTorch's by {diff:.3g} "
                       f"(tolerance {tolerance:.3g}) on sample windows, so nothing was written; "
                       "report this as a bug, or try --format "
                       f"{'torchscript' if fmt == 'onnx' else 'onnx'}")
    write_atomic(out, payload)
    return {"path": str(out), "format": fmt, "bytes": len(payload), "max_abs_diff": diff,
            "tolerance": tolerance, "metadata": metadata}


def _onnx_payload(module, samples, metadata):
    """Serialized ONNX with metadata_props, and its ONNX Runtime outputs (batch, then 1 window)."""
    import onnx
    import onnxruntime as ort

    proto = onnx.load_from_string(onnx_bytes(module, samples[:2]))
    proto.doc_string = (f"harkit {metadata['model']['name']}: {INPUT_NAME} float32 [batch, 1, "
                        f"{metadata['input_shape'][1]}, {metadata['input_shape'][2]}] -> "
                        f"{OUTPUT_NAME} [batch, {len(metadata['classes'])}]")
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    payload = proto.SerializeToString()
    session = ort.InferenceSession(payload, providers=["CPUExecutionProvider"])
    outputs = [session.run(None, {INPUT_NAME: s.numpy()})[0] for s in (samples, samples[:1])]
    return payload, outputs


def _torchscript_payload(module, samples, metadata):
    """Serialized frozen TorchScript with ``harkit.json``, and the reloaded module's outputs."""
    buffer = io.BytesIO()
    with quiet():
        torch.jit.save(torchscript_module(module, samples[:2]), buffer,
                       _extra_files={TORCHSCRIPT_METADATA: json.dumps(metadata)})
        payload = buffer.getvalue()
        loaded = torch.jit.load(io.BytesIO(payload), map_location="cpu")
    with torch.no_grad():
        outputs = [loaded(s).numpy() for s in (samples, samples[:1])]
    return payload, outputs


def read_metadata(path) -> Dict[str, Any]:
    """The metadata dict of a file written by :func:`export` (ONNX or TorchScript)."""
    path = Path(path)
    if not path.is_file():
        raise HarError(f"{path} does not exist; pass a file written by 'har export'")
    if path.read_bytes()[:2] == b"PK":  # TorchScript files are zip archives
        extra = {TORCHSCRIPT_METADATA: ""}
        with quiet():
            torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
        return json.loads(extra[TORCHSCRIPT_METADATA] or "{}")
    require_onnx("reading an ONNX file")
    import onnx

    props = onnx.load(str(path), load_external_data=False).metadata_props
    return {p.key: json.loads(p.value) for p in props}
