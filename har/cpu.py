"""What this CPU computes fast: its class, from its flags, and the defaults that follow.

======================  ===================================  ===============================
class                   needs (``/proc/cpuinfo`` flags)      examples
======================  ===================================  ===============================
``amx``                 ``amx_tile`` + ``amx_bf16``          Intel Sapphire Rapids and later
``avx512_bf16``         ``avx512_bf16`` (no AMX)             AMD Zen 4/5, Intel Cooper Lake
``avx512``              ``avx512f`` + ``avx512bw``           Intel Skylake-SP .. Ice Lake
``avx2``                ``avx2`` + ``fma``                   most laptops, AMD Zen 1-3
``baseline``            none of these                        ARM, older x86
======================  ===================================  ===============================

The first two have native bf16 arithmetic (oneDNN's AMX tiles or ``vdpbf16ps``), so bf16
autocast is their training default (:func:`default_amp`); on the others bf16 is emulated and
slower than fp32. oneDNN's ISA cap (``ONEDNN_MAX_CPU_ISA``, or the older ``DNNL_MAX_CPU_ISA``)
lowers the class as it lowers what oneDNN runs, so ``ONEDNN_MAX_CPU_ISA=AVX2 har train ...`` on
any newer CPU trains as an AVX2 CPU would (benchmarks/train_bench.py uses this). The figures
behind each default are in docs/BENCHMARKS.md. This module imports no torch.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import FrozenSet, Iterable, Mapping, Optional

#: Fastest first.
CLASSES = ("amx", "avx512_bf16", "avx512", "avx2", "baseline")
NATIVE_BF16 = ("amx", "avx512_bf16")
#: Flags reported by ``har bench`` and ``config.json`` (the ones that decide a class or int8).
REPORTED_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni",
                  "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
#: oneDNN ISA cap (lower case, as ONEDNN_MAX_CPU_ISA spells it in any case) -> highest class.
_ISA_CAPS = {
    "sse41": "baseline", "avx": "baseline", "avx2": "avx2", "avx2_vnni": "avx2",
    "avx2_vnni_2": "avx2", "avx512_core": "avx512", "avx512_core_vnni": "avx512",
    "avx512_core_bf16": "avx512_bf16", "avx512_core_fp16": "avx512_bf16",
    "avx10_1_512": "avx512_bf16", "avx512_core_amx": "amx", "avx512_core_amx_fp16": "amx",
    "avx10_1_512_amx": "amx", "avx10_1_512_amx_fp16": "amx", "all": "amx",
}


@lru_cache(maxsize=1)
def cpu_flags() -> FrozenSet[str]:
    """This CPU's feature flags (Linux ``/proc/cpuinfo``); empty where that is unreadable."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith(("flags", "Features")):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_class(flags: Optional[Iterable[str]] = None,
              env: Optional[Mapping[str, str]] = None) -> str:
    """The class of a CPU with ``flags`` (default: this one's), capped by oneDNN's ISA limit in
    ``env`` (default: ``os.environ``); one of :data:`CLASSES`."""
    have = frozenset(cpu_flags() if flags is None else flags)
    if {"amx_tile", "amx_bf16"} <= have:
        found = "amx"
    elif "avx512_bf16" in have:
        found = "avx512_bf16"
    elif {"avx512f", "avx512bw"} <= have:
        found = "avx512"
    elif {"avx2", "fma"} <= have:
        found = "avx2"
    else:
        found = "baseline"
    cap = isa_cap(env)
    if cap is not None and CLASSES.index(cap) > CLASSES.index(found):
        return cap
    return found


def isa_cap(env: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """The class oneDNN's ``ONEDNN_MAX_CPU_ISA`` (or ``DNNL_MAX_CPU_ISA``) allows at most;
    None when unset or not a known ISA name."""
    env = os.environ if env is None else env
    value = env.get("ONEDNN_MAX_CPU_ISA") or env.get("DNNL_MAX_CPU_ISA")
    return _ISA_CAPS.get(value.strip().lower()) if value else None


def native_bf16(cls: Optional[str] = None) -> bool:
    """Whether class ``cls`` (default: this CPU's) computes bf16 natively."""
    return (cls or cpu_class()) in NATIVE_BF16


def default_amp(cls: Optional[str] = None) -> bool:
    """The CPU training default for ``--amp auto``: bf16 autocast on the native-bf16 classes
    (AMX: 3x the fp32 windows/s; AVX-512 BF16: see docs/BENCHMARKS.md), fp32 elsewhere."""
    return native_bf16(cls)


def int8_saturates(flags: Optional[Iterable[str]] = None) -> bool:
    """Whether ONNX Runtime's int8 kernels can saturate on this CPU (or ``flags``): x86 without
    a VNNI dot product (AVX512-VNNI, AVX-VNNI) multiplies uint8 activations by int8 weights in
    pairs summed into int16 (``vpmaddubsw``), which 8-bit weights can overflow and 7-bit ones
    (ONNX Runtime's ``reduce_range``) cannot."""
    have = frozenset(cpu_flags() if flags is None else flags)
    return "avx2" in have and not have & {"avx512_vnni", "avx_vnni"}


def reported_flags(flags: Optional[Iterable[str]] = None) -> list:
    """The :data:`REPORTED_FLAGS` this CPU (or ``flags``) has, in that order."""
    have = frozenset(cpu_flags() if flags is None else flags)
    return [f for f in REPORTED_FLAGS if f in have]
