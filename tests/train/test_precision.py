"""precision.py: `precision: auto` and the warning for bf16 on a CPU without bf16 units."""

import pytest

from effnet_lightning.train.precision import cpu_has_native_bf16, resolve_precision


def test_auto_is_32_true_on_cpu():
    assert resolve_precision("auto", "cpu").precision == "32-true"
    assert resolve_precision("auto", "cpu").warning is None


@pytest.mark.parametrize("bf16, expected", [(True, "bf16-mixed"), (False, "16-mixed")])
def test_auto_on_cuda_follows_bf16_support(bf16, expected):
    for accelerator in ("cuda", "gpu"):
        assert resolve_precision("auto", accelerator, cuda_bf16=bf16).precision == expected


@pytest.mark.parametrize("requested", ["bf16-mixed", "bf16-true", "bf16"])
def test_explicit_bf16_on_cpu_without_bf16_warns_how_much_slower(requested):
    resolved = resolve_precision(requested, "cpu", cpu_bf16=False)
    assert resolved.precision == requested
    assert "about 17x slower than 32-true" in resolved.warning
    assert resolve_precision(requested, "cpu", cpu_bf16=True).warning is None


def test_explicit_choices_pass_through():
    assert resolve_precision("16-mixed", "cuda", cuda_bf16=True).precision == "16-mixed"
    assert resolve_precision(32, "cpu").precision == "32"
    assert resolve_precision("bf16-mixed", "cuda", cuda_bf16=True).warning is None


def test_cpu_bf16_flags_from_cpuinfo(tmp_path):
    with_amx = tmp_path / "amx"
    with_amx.write_text("flags\t\t: fpu sse2 avx512f amx_bf16 amx_tile\n")
    without = tmp_path / "plain"
    without.write_text("flags\t\t: fpu sse2 avx2\n")
    assert cpu_has_native_bf16(with_amx) and not cpu_has_native_bf16(without)
    assert not cpu_has_native_bf16(tmp_path / "missing")
