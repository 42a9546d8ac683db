"""CPU classes from mocked flags, and the training precision each one gets by default."""

from __future__ import annotations

import pytest
import torch

import har.cpu
import har.device
from har.cpu import cpu_class, default_amp, int8_saturates, isa_cap, reported_flags

SAPPHIRE_RAPIDS = "fpu sse4_2 avx avx2 fma avx512f avx512bw avx512_vnni avx512_bf16 amx_bf16 " \
                  "amx_tile amx_int8"
ZEN4 = "fpu sse4_2 avx avx2 fma avx512f avx512bw avx512_vnni avx512_bf16"
ICE_LAKE = "fpu sse4_2 avx avx2 fma avx512f avx512bw avx512_vnni"
ZEN3 = "fpu sse4_2 avx avx2 fma"
GRAVITON = "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics"


@pytest.mark.parametrize("flags,expected", [
    (SAPPHIRE_RAPIDS, "amx"), (ZEN4, "avx512_bf16"), (ICE_LAKE, "avx512"), (ZEN3, "avx2"),
    (GRAVITON, "baseline"), ("", "baseline")])
def test_class_from_flags(flags, expected):
    assert cpu_class(flags.split(), env={}) == expected


@pytest.mark.parametrize("cap,expected", [
    ("AVX2", "avx2"), ("avx512_core_bf16", "avx512_bf16"), ("AVX512_CORE", "avx512"),
    ("ALL", "amx"), ("not-an-isa", "amx")])
def test_onednn_isa_cap_lowers_the_class_never_raises_it(cap, expected):
    assert cpu_class(SAPPHIRE_RAPIDS.split(), env={"ONEDNN_MAX_CPU_ISA": cap}) == expected
    assert cpu_class(ZEN3.split(), env={"DNNL_MAX_CPU_ISA": cap}) == "avx2"
    assert isa_cap({}) is None


def _as_cpu(monkeypatch, flags: str, env=None):
    monkeypatch.setattr(har.cpu, "cpu_flags", lambda: frozenset(flags.split()))
    for name in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        monkeypatch.delenv(name, raising=False)
    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize("flags,env,expected", [
    (SAPPHIRE_RAPIDS, {}, torch.bfloat16),
    (ZEN4, {}, torch.bfloat16),
    (ICE_LAKE, {}, None),
    (ZEN3, {}, None),
    (GRAVITON, {}, None),
    (SAPPHIRE_RAPIDS, {"ONEDNN_MAX_CPU_ISA": "AVX2"}, None)])
def test_auto_precision_by_class(monkeypatch, flags, env, expected):
    if expected is not None and not torch.backends.mkldnn.is_available():
        pytest.skip("torch built without oneDNN")
    _as_cpu(monkeypatch, flags, env)
    assert har.device.amp_dtype(torch.device("cpu"), None) is expected
    assert default_amp() is (expected is not None)
    choice = har.device.precision_choice(torch.device("cpu"), None)
    assert choice["amp_option"] == "auto"
    assert choice["cpu_class"] == cpu_class(flags.split(), env=env)
    assert choice["cpu_flags"] == reported_flags(flags.split())


def test_asking_for_bf16_on_an_avx2_cpu_is_a_har_error(monkeypatch):
    _as_cpu(monkeypatch, ZEN3)
    with pytest.raises(har.device.HarError, match="--amp on the CPU needs native bfloat16"):
        har.device.amp_dtype(torch.device("cpu"), True)
    assert har.device.amp_dtype(torch.device("cpu"), False) is None
    assert har.device.precision_choice(torch.device("cpu"), False)["amp_option"] is False


def test_bf16_backend_is_offered_only_where_bf16_is_native(monkeypatch):
    from har.backends import available

    _as_cpu(monkeypatch, ZEN3)
    ok, skipped = available(["eager", "bf16"], torch.device("cpu"), explicit=False)
    assert ok == ["eager"] and skipped[0]["backend"] == "bf16"
    assert "no native bfloat16" in skipped[0]["reason"]
    if torch.backends.mkldnn.is_available():
        _as_cpu(monkeypatch, ZEN4)
        assert available(["bf16"], torch.device("cpu"), explicit=False)[0] == ["bf16"]


@pytest.mark.parametrize("flags,expected", [
    (SAPPHIRE_RAPIDS, False), (ZEN4, False), (ICE_LAKE, False), (ZEN3, True),
    ("fpu sse4_2 avx avx2 fma avx_vnni", False), (GRAVITON, False)])
def test_int8_uses_7_bit_weights_only_where_the_kernels_can_saturate(flags, expected):
    """AVX2 without VNNI sums u8 x s8 pairs in int16: int8 weights there are 7-bit."""
    assert int8_saturates(flags.split()) is expected
