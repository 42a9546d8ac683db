"""Where training runs and in which precision: ``--device auto|cpu|cuda`` and ``--amp``.

* ``resolve_device("auto")`` is CUDA when available, else the CPU; ``"cuda"`` without CUDA is a
  :class:`~harkit.errors.HarError`.
* Mixed precision (:func:`amp_dtype`): on CUDA on by default -- bfloat16 autocast where the GPU
  supports it (no gradient scaler needed), else float16 autocast with a ``GradScaler``. On the CPU
  ``--amp`` means bfloat16 autocast, which needs AVX-512 BF16 or AMX (fast bf16 matmuls through
  oneDNN); it is the CPU default by CPU class (:func:`cpu_amp_default`, :mod:`har.cpu`).
"""

from __future__ import annotations

import contextlib
import platform
from typing import Optional

import torch

from har import cpu
from harkit.errors import HarError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> ``cuda`` if available else ``cpu``; ``cuda`` without CUDA -> HarError."""
    if name not in DEVICES:
        raise HarError(f"--device {name!r} is invalid; choose one of {', '.join(DEVICES)}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise HarError("--device cuda: no CUDA device is available to this torch "
                       f"({torch.__version__}); use --device cpu or install a CUDA build of torch")
    return torch.device(name)


def cpu_bf16_supported() -> bool:
    """True when oneDNN computes bf16 natively on this CPU (class ``amx`` or ``avx512_bf16``,
    :mod:`har.cpu`, within any ``ONEDNN_MAX_CPU_ISA`` cap)."""
    return torch.backends.mkldnn.is_available() and cpu.native_bf16()


def cpu_amp_default() -> bool:
    """``--amp auto`` on the CPU: bf16 autocast where :func:`har.cpu.default_amp` says so for
    this CPU's class (the measurements are in docs/BENCHMARKS.md), else fp32."""
    return cpu_bf16_supported() and cpu.default_amp()


def amp_dtype(device: torch.device, amp: Optional[bool] = None) -> Optional[torch.dtype]:
    """Autocast dtype for ``device`` (None: full fp32). ``amp=None`` picks the default:
    on for CUDA; on the CPU on where :func:`cpu_amp_default`, else off.
    ``amp=True`` on a CPU without native bf16 -> HarError."""
    if device.type == "cuda":
        if amp is False:
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type != "cpu":
        if amp:
            raise HarError(f"--amp is not supported on {device.type}; pass --no-amp")
        return None
    if amp is None:
        return torch.bfloat16 if cpu_amp_default() else None
    if amp and not cpu_bf16_supported():
        raise HarError("--amp on the CPU needs native bfloat16 (AMX or AVX-512 BF16), which this "
                       "CPU lacks; pass --no-amp (or train on a CUDA device)")
    return torch.bfloat16 if amp else None


def precision_choice(device: torch.device, amp: Optional[bool]) -> dict:
    """Why the run trains in its precision, for config.json: ``amp`` as asked (``"auto"``,
    true, false) and, on the CPU, the class (:mod:`har.cpu`) and flags that decide ``auto``."""
    choice = {"amp_option": "auto" if amp is None else bool(amp)}
    if device.type == "cpu":
        choice.update(cpu_class=cpu.cpu_class(), cpu_flags=cpu.reported_flags(),
                      onednn_isa_cap=cpu.isa_cap())
    return choice


def autocast(device: torch.device, dtype: Optional[torch.dtype]):
    """``torch.autocast`` for ``dtype``, or a no-op context when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device, dtype: Optional[torch.dtype]) -> torch.amp.GradScaler:
    """A ``GradScaler`` enabled only for float16 autocast on CUDA (bf16 needs none)."""
    return torch.amp.GradScaler(device.type, enabled=(dtype == torch.float16
                                                      and device.type == "cuda"))


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels on ``device`` (CUDA), so wall-clock timings are real."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    """Human-readable name: the GPU model, or the CPU model from /proc/cpuinfo."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
