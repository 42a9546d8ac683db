"""Where training runs and in which precision: ``--device auto|cpu|cuda`` and ``--amp``.

* ``resolve_device("auto")`` is CUDA when available, else the CPU; ``"cuda"`` without CUDA is a
  :class:`~harkit.errors.HarError`.
* Mixed precision (:func:`amp_dtype`): on CUDA on by default -- bfloat16 autocast where the GPU
  supports it (no gradient scaler needed), else float16 autocast with a ``GradScaler``. On the CPU
  ``--amp`` means bfloat16 autocast, which needs AVX-512 BF16 or AMX (fast bf16 matmuls through
  oneDNN); it is the CPU default where the CPU has AMX (:func:`cpu_amp_default`).
"""

from __future__ import annotations

import contextlib
import platform
from typing import Optional

import torch

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
    """True when the CPU has native bf16 arithmetic (AMX tiles or AVX-512 BF16) via oneDNN."""
    if not torch.backends.mkldnn.is_available():
        return False
    checks = [getattr(torch.cpu, n, None)
              for n in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
    return any(check() for check in checks if check is not None)


def cpu_amp_default() -> bool:
    """bf16 autocast is the CPU default only with AMX tiles, where it was measured to train the
    seed ResNet ~3x faster than fp32 with loss curves equal within tolerance
    (docs/BENCHMARKS.md); AVX-512 BF16 alone is allowed with ``--amp`` but not assumed faster."""
    check = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(check is not None and check() and cpu_bf16_supported())


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
