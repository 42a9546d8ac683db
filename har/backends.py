"""Inference backends for ``har bench``: the same trained model, run different ways.

Each backend is a ``check`` (raises :class:`~harkit.errors.HarError` naming the extra to install or
the device that is missing) and a ``prepare(model, setup) -> Runner``. A :class:`Runner` maps
windows ``[B, 1, T, C]`` float32 in host memory to logits ``[B, classes]`` float32 in host
memory, so its time includes any cast and any host <-> GPU copy a real caller would pay.

========== ====== ======== ==================================================================
backend    device dtype    how
========== ====== ======== ==================================================================
eager      device fp32     the model as trained (``--device``)
optimized  device fp32     BatchNorm folded (:mod:`har.fold`), then ``torch.compile`` with
                           frozen weights (``Setup.compile``), else traced + frozen TorchScript
                           (+ ``optimize_for_inference``'s oneDNN weight prepacking on CPU)
bf16       device bf16     the folded model in bfloat16 (oneDNN AMX / AVX-512 BF16 on CPU),
                           compiled or frozen as ``optimized``
onnx       cpu    fp32     ONNX Runtime, all graph optimizations (BatchNorm folded into the
                           convolutions at load; extra ``harkit[onnx]``)
int8       cpu    int8     ONNX Runtime static QDQ quantization (:mod:`har.lowp`'s recipe),
                           calibrated on training windows (VNNI / AMX int8 kernels)
cuda       cuda   fp32     the folded model on the GPU
cuda-fp16  cuda   fp16     the folded model in float16 on the GPU
========== ====== ======== ==================================================================
"""

from __future__ import annotations

import contextlib
import copy
import io
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import nn

from har.device import cpu_bf16_supported
from har.export import (
    INPUT_NAME,
    inference_module,
    onnx_bytes,
    onnx_module,
    quiet,
    require_onnx,
)
from har.lowp import INT8_RECIPE, int8_onnx
from harkit.errors import HarError


@dataclass
class Setup:
    """What every backend's ``prepare`` gets: ``device`` for the torch backends, ``threads`` for
    ONNX Runtime, ``example`` ``[1, 1, T, C]`` float32 (CPU) and ``calibration`` windows
    ``[N, T, C]`` float32 for ``int8`` with a note on where they come from."""

    device: torch.device
    threads: int
    example: torch.Tensor
    calibration: np.ndarray
    calibration_note: str = ""
    compile: bool = False      # optimized/bf16: try torch.compile (Inductor, weights frozen)


@dataclass
class Runner:
    """A prepared backend: ``run([B, 1, T, C] float32, host) -> [B, classes] float32, host``."""

    name: str
    device: str
    precision: str
    engine: str
    run: Callable[[torch.Tensor], torch.Tensor]
    size_bytes: int
    notes: List[str] = field(default_factory=list)

    def __call__(self, windows: torch.Tensor) -> torch.Tensor:
        return self.run(windows)


# --------------------------------------------------------------------------- checks
def _no_check(device: torch.device) -> None:
    pass


def _check_bf16(device: torch.device) -> None:
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise HarError("--backend bf16: this GPU has no bfloat16 support; use --backend cuda-fp16")
    if device.type == "cpu" and not cpu_bf16_supported():
        raise HarError("--backend bf16: this CPU has no native bfloat16 (AMX or AVX-512 BF16), "
                       "where bf16 is slower than fp32; use --backend optimized or int8")


def _check_onnx(device: torch.device) -> None:
    require_onnx("--backend onnx/int8")


def _check_cuda(device: torch.device) -> None:
    if not torch.cuda.is_available():
        raise HarError(f"--backend cuda/cuda-fp16: no CUDA device is available to this torch "
                       f"({torch.__version__}); use a CPU backend or install a CUDA build of torch")


# --------------------------------------------------------------------------- helpers
def _torch_runner(name: str, module, device: torch.device, dtype: torch.dtype, engine: str,
                  size_bytes: int, notes: Optional[List[str]] = None) -> Runner:
    def run(windows: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return module(windows.to(device=device, dtype=dtype)).float().cpu()

    precision = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
    return Runner(name, device.type, precision, engine, run, size_bytes, notes or [])


def _tensor_bytes(module: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()])


def _inference_copy(model: nn.Module, device: torch.device, dtype: torch.dtype
                    ) -> Tuple[nn.Module, str]:
    """The folded model (or a copy of ``model``) on ``device`` in ``dtype``, and its description."""
    module = inference_module(model)
    folded = module is not model
    module = (module if folded else copy.deepcopy(model)).to(device=device, dtype=dtype).eval()
    return module, "BN folded" if folded else "not foldable"


def _freeze(module: nn.Module, example: torch.Tensor, optimize: bool) -> Tuple[object, str]:
    """Trace + freeze ``module`` (+ ``optimize_for_inference``); the module itself when this
    torch cannot (TorchScript is deprecated), with the engine's name."""
    try:
        with quiet(), torch.no_grad():
            frozen = torch.jit.freeze(torch.jit.trace(module, example))
            if optimize:
                frozen = torch.jit.optimize_for_inference(frozen)
            frozen(example)
            frozen(example)  # the profiling executor optimizes on the second call
        return frozen, "frozen TorchScript" + (" + oneDNN prepack" if optimize else "")
    except Exception:  # noqa: BLE001 -- any failure falls back to the eager module
        return module, "eager (TorchScript unavailable)"


def _compile(module: nn.Module, example: torch.Tensor, autotune: bool) -> Tuple[object, str]:
    """``torch.compile`` (Inductor) with the weights frozen into the graph: oneDNN prepacked
    matmuls with their bias, ReLU and residual adds fused.

    One window at a time (the latency that matters for streaming) runs a graph specialized to
    batch 1; with ``autotune`` its matmul kernels are chosen by measuring the candidates
    (``max-autotune``: about 20 % faster in bf16 here, half a minute to compile the first time,
    then cached on disk). Other batch sizes share one graph with a dynamic batch axis.
    Compiled and checked on ``example`` here. Returns a callable that keeps the freezing
    setting for later compiles, or None when this machine cannot compile (no C++ compiler, an
    unsupported torch)."""
    try:
        with quiet():                   # these imports warn that torch.jit is deprecated
            import torch._inductor.config as inductor_config
            import torch.utils.mkldnn  # noqa: F401 -- imported by freezing, defines ScriptModules

        single = torch.compile(module, dynamic=False,
                               mode="max-autotune-no-cudagraphs" if autotune else None)
        batched = torch.compile(copy.deepcopy(module), dynamic=True)

        def call(windows: torch.Tensor) -> torch.Tensor:
            with inductor_config.patch(freezing=True), quiet():   # a new shape compiles
                return (single if windows.shape[0] == 1 else batched)(windows)

        with _silenced(), torch.inference_mode():    # autotuning prints its measurements
            call(example)
            call(example)
        return call, ("torch.compile (Inductor, frozen weights"
                      + (", autotuned for one window)" if autotune else ")"))
    except Exception:  # noqa: BLE001 -- any failure falls back to TorchScript
        return None, ""


@contextlib.contextmanager
def _silenced():
    """Discard what is printed to stdout/stderr (Python-level) inside the block."""
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        yield


def _compile_or_freeze(module: nn.Module, example: torch.Tensor, setup: Setup,
                       optimize: bool, autotune: bool = False) -> Tuple[object, str]:
    """The fastest inference graph this machine builds: compiled when ``setup.compile`` and
    possible, else traced + frozen TorchScript."""
    if setup.compile:
        compiled, engine = _compile(module, example, autotune)
        if compiled is not None:
            return compiled, engine
    return _freeze(module, example, optimize)


# --------------------------------------------------------------------------- prepare
def _eager(model: nn.Module, setup: Setup) -> Runner:
    module = model if next(model.parameters()).device == setup.device else \
        copy.deepcopy(model).to(setup.device)
    return _torch_runner("eager", module.eval(), setup.device, torch.float32,
                         "PyTorch eager", _tensor_bytes(module))


def _optimized(model: nn.Module, setup: Setup) -> Runner:
    module, how = _inference_copy(model, setup.device, torch.float32)
    example = setup.example.to(setup.device)
    frozen, engine = _compile_or_freeze(module, example, setup,
                                        optimize=setup.device.type == "cpu")
    return _torch_runner("optimized", frozen, setup.device, torch.float32, f"{engine}, {how}",
                         _tensor_bytes(module))


def _bf16(model: nn.Module, setup: Setup) -> Runner:
    module, how = _inference_copy(model, setup.device, torch.bfloat16)
    example = setup.example.to(setup.device, torch.bfloat16)
    frozen, engine = _compile_or_freeze(module, example, setup, optimize=False,
                                        autotune=setup.device.type == "cpu")
    return _torch_runner("bf16", frozen, setup.device, torch.bfloat16, f"{engine}, {how}",
                         _tensor_bytes(module))


def _session(payload: bytes, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(payload, options, providers=["CPUExecutionProvider"])


def _ort_runner(name: str, payload: bytes, setup: Setup, precision: str, engine: str,
                notes: Optional[List[str]] = None) -> Runner:
    import onnxruntime as ort

    session = _session(payload, setup.threads)

    def run(windows: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(windows.numpy(), dtype=np.float32)
        return torch.from_numpy(session.run(None, {INPUT_NAME: array})[0])

    return Runner(name, "cpu", precision, f"ONNX Runtime {ort.__version__} {engine}", run,
                  len(payload), notes or [])


def _onnx(model: nn.Module, setup: Setup) -> Runner:
    payload = onnx_bytes(onnx_module(model), setup.example.repeat(2, 1, 1, 1))
    return _ort_runner("onnx", payload, setup, "fp32",
                       "(CPU, graph optimizations), BN folded by ONNX Runtime")


def _int8(model: nn.Module, setup: Setup) -> Runner:
    quantized = int8_onnx(model, setup.calibration, INPUT_NAME)
    return _ort_runner("int8", quantized, setup, "int8", f"(CPU, {INT8_RECIPE})",
                       [setup.calibration_note])


def _cuda(model: nn.Module, setup: Setup, dtype: torch.dtype, name: str) -> Runner:
    device = torch.device("cuda")
    module, how = _inference_copy(model, device, dtype)
    return _torch_runner(name, module, device, dtype, f"PyTorch CUDA, {how}",
                         _tensor_bytes(module))


@dataclass(frozen=True)
class Backend:
    """A backend's name, what it needs (``check``) and how to build its runner (``prepare``)."""

    name: str
    check: Callable[[torch.device], None]
    prepare: Callable[[nn.Module, Setup], Runner]


BACKENDS: Dict[str, Backend] = {b.name: b for b in (
    Backend("eager", _no_check, _eager),
    Backend("optimized", _no_check, _optimized),
    Backend("bf16", _check_bf16, _bf16),
    Backend("onnx", _check_onnx, _onnx),
    Backend("int8", _check_onnx, _int8),
    Backend("cuda", _check_cuda, lambda m, s: _cuda(m, s, torch.float32, "cuda")),
    Backend("cuda-fp16", _check_cuda, lambda m, s: _cuda(m, s, torch.float16, "cuda-fp16")),
)}


def backend_names() -> List[str]:
    """Every backend, in the order ``--backend all`` runs them."""
    return list(BACKENDS)


def resolve_backends(spec: str) -> List[str]:
    """``"all"`` or comma-separated names -> names; HarError listing the choices otherwise."""
    names = [s.strip() for s in str(spec).split(",") if s.strip()]
    if names == ["all"]:
        return backend_names()
    unknown = [n for n in names if n not in BACKENDS]
    if unknown or not names:
        raise HarError(f"--backend {unknown[0] if unknown else spec!r} is unknown; choose one of "
                       f"{', '.join(backend_names())} or all (or a comma-separated list)")
    return list(dict.fromkeys(names))


def available(names: List[str], device: torch.device, explicit: bool
              ) -> Tuple[List[str], List[Dict[str, str]]]:
    """The runnable subset of ``names`` and ``[{"backend", "reason"}]`` for the others;
    ``explicit`` (names the user listed) raises the first HarError instead of skipping."""
    ok, skipped = [], []
    for name in names:
        try:
            BACKENDS[name].check(device)
        except HarError as exc:
            if explicit:
                raise
            skipped.append({"backend": name, "reason": str(exc)})
        else:
            ok.append(name)
    return ok, skipped


def prepare(name: str, model: nn.Module, setup: Setup) -> Runner:
    """Build backend ``name``'s runner for ``model`` (fp32, eval mode)."""
    return BACKENDS[name].prepare(model, setup)
