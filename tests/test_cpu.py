"""`common/cpu.py`: which bf16 products this CPU has, within the limits the environment sets,
and bf16 refused in one line where it would only be emulated."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from conftest import SAMPLE_SENTENCES, assert_one_error

from ltd_bert.cli import cli
from ltd_bert.common import cpu

pytestmark = pytest.mark.precision

LIMITS = (
    "ONEDNN_MAX_CPU_ISA",
    "DNNL_MAX_CPU_ISA",
    "ATEN_CPU_CAPABILITY",
    "MKL_ENABLE_INSTRUCTIONS",
)


@pytest.fixture
def every_feature(monkeypatch):
    """A CPU with everything (AMX), no limits set; `cpu_features` read afresh."""
    for var in LIMITS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(cpu, "_hardware", lambda: dict.fromkeys(cpu.FEATURES, True))
    cpu.cpu_features.cache_clear()
    yield monkeypatch
    cpu.cpu_features.cache_clear()


@pytest.mark.parametrize(
    ("env", "left", "native"),
    [
        ({}, ["avx2", "avx512", "avx512_bf16", "amx"], True),
        ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, ["avx2"], False),
        ({"ONEDNN_MAX_CPU_ISA": "avx512_core"}, ["avx2", "avx512"], False),
        ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}, ["avx2", "avx512", "avx512_bf16"], True),
        ({"ONEDNN_MAX_CPU_ISA": "AVX10_1_512_AMX"}, ["avx2", "avx512", "avx512_bf16", "amx"], True),
        ({"DNNL_MAX_CPU_ISA": "AVX2_VNNI"}, ["avx2"], False),
        ({"ONEDNN_MAX_CPU_ISA": "ALL"}, ["avx2", "avx512", "avx512_bf16", "amx"], True),
        ({"ATEN_CPU_CAPABILITY": "avx2"}, ["avx2"], False),
        ({"ATEN_CPU_CAPABILITY": "default"}, [], False),
        ({"ATEN_CPU_CAPABILITY": "avx512"}, ["avx2", "avx512", "avx512_bf16", "amx"], True),
        ({"MKL_ENABLE_INSTRUCTIONS": "AVX2"}, ["avx2"], False),
        ({"MKL_ENABLE_INSTRUCTIONS": "AVX512_E1"}, ["avx2", "avx512", "avx512_bf16", "amx"], True),
    ],
)
def test_the_environment_limits_the_features(every_feature, env, left, native):
    for var, value in env.items():
        every_feature.setenv(var, value)
    assert [f for f, on in cpu.cpu_features().items() if on] == left
    assert cpu.native_bf16() is native and cpu.has_amx() is ("amx" in left)
    line = cpu.features_line()
    assert line.startswith("CPU features: AMX ") and ("limited by" in line) is (len(left) < 4)


def test_the_avx2_imitation(every_feature):
    for var, value in (
        ("ONEDNN_MAX_CPU_ISA", "AVX2"),
        ("MKL_ENABLE_INSTRUCTIONS", "AVX2"),
        ("ATEN_CPU_CAPABILITY", "avx2"),
    ):
        every_feature.setenv(var, value)
    every_feature.delenv(cpu.ENV, raising=False)
    assert not cpu.native_bf16() and cpu.auto_precision() == "fp32"
    with pytest.raises(cpu.PrecisionError, match="limited by ONEDNN_MAX_CPU_ISA=AVX2"):
        cpu.require_bf16()
    cpu.require_bf16(device="cuda:0")  # a GPU's bf16 is its own
    every_feature.setenv(cpu.ENV, "bf16")
    with pytest.raises(cpu.PrecisionError, match="^LTD_PRECISION=bf16: this CPU"):
        cpu.auto_precision()


@pytest.fixture
def not_native(monkeypatch):
    monkeypatch.setattr(cpu, "native_bf16", lambda: False)


def test_encode_refuses_bf16_in_one_line(not_native, tmp_path):
    for runtime in ("auto", "torch", "numpy"):
        result = CliRunner().invoke(
            cli,
            ["encode", str(SAMPLE_SENTENCES), "-o", str(tmp_path / "v.npy")]
            + ["-m", "zh-tiny", "--precision", "bf16", "--runtime", runtime],
        )
        assert_one_error(result, "--precision bf16: this CPU does not multiply bf16 natively")
    assert not (tmp_path / "v.npy").exists()


def test_teacher_embed_refuses_bf16_in_one_line(not_native, tiny_bert, tmp_path):
    out = tmp_path / "t.h5"
    result = CliRunner().invoke(
        cli,
        ["teacher-embed", "-i", str(SAMPLE_SENTENCES), "--idf", "jieba", "-o", str(out), "-q"]
        + ["--teacher", str(tiny_bert), "--precision", "bf16"],
    )
    assert_one_error(result, "--precision bf16: this CPU does not multiply bf16 natively")
    assert not out.exists()


def test_help_says_what_bf16_does_without_native_products():
    for command in (["train"], ["teacher-embed"], ["encode"]):
        result = CliRunner().invoke(cli, [*command, "--help"])
        assert result.exit_code == 0
        text = " ".join(result.output.split()).replace("one- line", "one-line")
        assert "refused with a one-line error" in text, command
