"""``har export``: a checkpoint as a self-describing ONNX or TorchScript file, validated.

The exported graph is the checkpoint's model in inference form: for TorchScript with BatchNorm
folded (:mod:`har.fold`; models without a folded form are exported as they are), for ONNX the
model's own graph, whose BatchNorm ONNX Runtime folds at load (:func:`onnx_module`). It maps windows
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
import copy
import io
import json
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import numpy as np
import torch
from torch import nn

from har.fold import fold_model
from har.formats import CHOICES, FORMATS, SUFFIXES
from harkit import __version__
from harkit.errors import HarError
from harkit.files import write_atomic

PRECISIONS = {"onnx": "fp32", "torchscript": "fp32", "onnx-int8": "int8",
              "torchscript-bf16": "bf16"}
AUTO_RUNS = 60   # single windows timed per backend by --format auto
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


def onnx_module(model: nn.Module) -> nn.Module:
    """What is exported to ONNX: the model's own graph in eval mode (a copy, fp32, CPU), not
    :mod:`har.fold`'s matmul form. ONNX Runtime folds each BatchNorm into its convolution
    when it loads the file, and its convolutions are faster than the matmul form's
    (docs/BENCHMARKS.md, issue 14); int8 quantization needs the separate activations too."""
    return copy.deepcopy(model).cpu().float().eval()


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


def export(checkpoint, fmt: str = "onnx", out=None, *, force: bool = False, windows: int = 8,
           seed: int = 0, data=None, log: Optional[Callable[[str], None]] = None
           ) -> Dict[str, Any]:
    """Export ``checkpoint`` (a path) to ``out`` (default: beside it, :data:`SUFFIXES`) as
    ``fmt``: one of :data:`FORMATS`, or ``auto`` (:func:`choose_format`: what ``har bench``
    recommends for this machine).

    fp32 formats are validated on ``windows`` random N(0, 1) windows (and on one window alone)
    against the checkpoint's PyTorch model: logits within 1e-3 of their scale. Reduced
    precisions (``onnx-int8``, ``torchscript-bf16``) need real windows, from ``data`` (a
    prepared folder; default: the one the checkpoint was trained on, if it is still there):
    int8 is calibrated on its train split, and both must agree with the fp32 model on the
    top-1 class of >= ``AGREEMENT_TARGET`` % of its val windows. Nothing is written when a
    check fails. Returns ``path``, ``format``, ``bytes``, ``metadata`` and ``max_abs_diff`` +
    ``tolerance`` or ``agreement``; with ``auto`` also ``recommended`` (the bench's choice).
    """
    from har.checkpoint import load_checkpoint

    log = log or (lambda line: None)
    recommended = None
    if fmt == "auto":
        recommended = choose_format(checkpoint, data, seed, log)
        fmt = recommended["export_format"]
    if fmt not in FORMATS:
        raise HarError(f"--format {fmt!r} is invalid; choose one of {', '.join(CHOICES)}")
    out = Path(checkpoint).with_suffix(SUFFIXES[fmt]) if out is None else Path(out)
    if out.is_dir():
        raise HarError(f"--out {out} is a folder; pass a file name such as "
                       f"{out / ('model' + SUFFIXES[fmt])}")
    if out.exists() and not force:
        raise HarError(f"--out {out} already exists; pass --force to replace it")
    if fmt.startswith("onnx"):
        require_onnx(f"--format {fmt}")
    ckpt = load_checkpoint(checkpoint)
    metadata = {**export_metadata(ckpt), "precision": PRECISIONS[fmt]}
    if fmt in ("onnx", "torchscript"):
        report = _export_fp32(ckpt, fmt, metadata, windows, seed)
    else:
        report = _export_reduced(checkpoint, ckpt, fmt, metadata, data, seed)
    payload = report.pop("payload")
    write_atomic(out, payload)
    return {"path": str(out), "format": fmt, "bytes": len(payload), **report,
            "metadata": metadata, "recommended": recommended}


def _export_fp32(ckpt, fmt, metadata, windows, seed) -> Dict[str, Any]:
    from har.checkpoint import model_from_checkpoint

    model = model_from_checkpoint(ckpt)
    _, steps, channels = ckpt["input_shape"]
    gen = torch.Generator().manual_seed(seed)
    samples = torch.randn(max(int(windows), 2), 1, steps, channels, generator=gen)
    with torch.no_grad():
        reference = model(samples).numpy()
    if fmt == "onnx":
        payload, outputs = _onnx_payload(onnx_module(model), samples, metadata)
    else:
        payload, outputs = _torchscript_payload(inference_module(model), samples, metadata)
    diff = max(float(np.abs(o - r).max()) for o, r in zip(outputs, (reference, reference[:1])))
    tolerance = 1e-3 * max(1.0, float(np.abs(reference).max()))
    if not diff <= tolerance:
        raise HarError(f"export: the {fmt} model's logits differ from PyTorch's by {diff:.3g} "
                       f"(tolerance {tolerance:.3g}) on sample windows, so nothing was written; "
                       "report this as a bug, or try --format "
                       f"{'torchscript' if fmt == 'onnx' else 'onnx'}")
    return {"payload": payload, "max_abs_diff": diff, "tolerance": tolerance}


def _export_reduced(checkpoint, ckpt, fmt, metadata, data, seed) -> Dict[str, Any]:
    """int8 ONNX or bf16 TorchScript, checked by top-1 agreement on real windows."""
    from har.bench import AGREEMENT_TARGET, Subject
    from har.lowp import INT8_RECIPE, bf16_module, int8_onnx

    data = _windows_folder(ckpt, data, fmt)
    subject = Subject(None, checkpoint, data, None, None, None, seed)
    if fmt == "onnx-int8":
        import onnxruntime as ort

        payload = int8_onnx(subject.net, subject.calibration, INPUT_NAME,
                            {k: json.dumps(v) for k, v in metadata.items()})
        session = ort.InferenceSession(payload, providers=["CPUExecutionProvider"])

        def run(x):
            return torch.from_numpy(session.run(None, {INPUT_NAME: x.numpy()})[0])
        how = f"{INT8_RECIPE}; {subject.calibration_note}"
    else:
        buffer = io.BytesIO()
        with quiet():
            torch.jit.save(torchscript_module(bf16_module(inference_module(subject.net)),
                                              subject.example), buffer,
                           _extra_files={TORCHSCRIPT_METADATA: json.dumps(metadata)})
        payload = buffer.getvalue()
        with quiet():
            loaded = torch.jit.load(io.BytesIO(payload), map_location="cpu")

        def run(x):
            with torch.no_grad():
                return loaded(x)
        how = "bfloat16 weights and activations, float32 in and out"
    agreement = {**subject.agreement(run), **subject.agreement_on, "how": how}
    if agreement["agreement_top1"] < AGREEMENT_TARGET:
        raise HarError(f"export: the {fmt} model agrees with the fp32 model on the top-1 class "
                       f"of {agreement['agreement_top1']:.2f} % of {agreement['windows']} "
                       f"{agreement['split']} windows of {data} (target {AGREEMENT_TARGET:g} %), "
                       "so nothing was written; use --format onnx or torchscript (fp32)")
    return {"payload": payload, "agreement": agreement}


def _windows_folder(ckpt, data, fmt) -> Path:
    """The prepared folder that supplies calibration and agreement windows: ``data``, else the
    checkpoint's training data when it still exists; HarError otherwise."""
    if data is not None:
        return Path(data)
    trained_on = (ckpt.get("training") or {}).get("data")
    if trained_on and (Path(trained_on) / "meta.json").is_file():
        return Path(trained_on)
    raise HarError(f"--format {fmt} needs real windows (calibration and the agreement check), "
                   f"and the checkpoint's training data {trained_on or '(unrecorded)'} is not "
                   "there; pass --data PREPARED_FOLDER")


def choose_format(checkpoint, data=None, seed: int = 0,
                  log: Optional[Callable[[str], None]] = None) -> Dict[str, Any]:
    """What ``har bench`` recommends for ``checkpoint`` on this machine's CPU, among the
    backends with a file format: timed (``AUTO_RUNS`` single windows each) and, with real
    windows (``data`` or the checkpoint's training data), checked for agreement. Returns the
    bench's ``recommended`` dict (``backend``, ``export_format``, ``why``)."""
    from har import bench
    from har.backends import available
    from har.checkpoint import load_checkpoint

    ckpt = load_checkpoint(checkpoint)
    try:
        data = _windows_folder(ckpt, data, "auto")
    except HarError:
        data = None   # fp32 backends only
    names = [n for n, f in bench.EXPORT_FORMATS.items() if f and not n.startswith("cuda")]
    names, _ = available(names, torch.device("cpu"), explicit=False)   # no onnx: no int8
    # compile=False: the torchscript formats are frozen TorchScript, so time that
    result = bench.run(checkpoint=checkpoint, data=data, backend=",".join(names),
                       batch_sizes=(1,), runs=AUTO_RUNS, device="cpu", seed=seed,
                       compile=False, log=log)
    chosen = result["recommended"]
    if chosen is None or chosen["export_format"] is None:
        raise HarError("--format auto: no backend qualified on this machine; pass --format onnx "
                       "or torchscript")
    return chosen


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
