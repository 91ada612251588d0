"""What this CPU computes fast: bf16 matrix products in hardware (AMX tiles, Intel Sapphire
Rapids and later; AVX512-BF16 dot products), where the teacher's forward runs 2.7–2.9× faster
in bf16 on AMX and the student's recurrent loop 2.1× (one thread), at no measurable cost
(docs/speed.md). Elsewhere (AVX2 or plain AVX-512) bf16 is emulated: slower than fp32, and
oneDNN has no bf16 LSTM to train with at all, so bf16 is refused there (`require_bf16`).

The hardware is read from cpuid through torch; the limits a process is given on top of it
are honoured as the libraries honour them: `ONEDNN_MAX_CPU_ISA` (or `DNNL_MAX_CPU_ISA`),
`ATEN_CPU_CAPABILITY` and `MKL_ENABLE_INSTRUCTIONS`. That is also how an AVX2-only CPU is
imitated on a larger one (`ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2
ATEN_CPU_CAPABILITY=avx2`). torch is imported only when asked."""

from __future__ import annotations

import functools
import os

from ltd_bert.common.errors import LtdError

#: oneDNN's instruction set levels, lowest first (its `ONEDNN_MAX_CPU_ISA` values; the
#: AVX10 names are the later spellings of the AVX512_CORE_FP16 and AMX levels)
ONEDNN_LEVELS = (
    "SSE41",
    "AVX",
    "AVX2",
    "AVX2_VNNI",
    "AVX2_VNNI_2",
    "AVX512_CORE",
    "AVX512_CORE_VNNI",
    "AVX512_CORE_BF16",
    "AVX512_CORE_FP16",
    "AVX512_CORE_AMX",
    "AVX512_CORE_AMX_FP16",
)
_ONEDNN_ALIASES = {
    "AVX10_1_512": "AVX512_CORE_FP16",
    "AVX10_1_512_AMX": "AVX512_CORE_AMX",
    "AVX10_1_512_AMX_FP16": "AVX512_CORE_AMX_FP16",
}
#: the lowest oneDNN level each feature needs
_NEEDS = {
    "avx2": "AVX2",
    "avx512": "AVX512_CORE",
    "avx512_bf16": "AVX512_CORE_BF16",
    "amx": "AVX512_CORE_AMX",
}
#: the features ATEN_CPU_CAPABILITY and MKL_ENABLE_INSTRUCTIONS leave, by their value's start
_CAPS = (("avx512", 4), ("avx2", 1), ("avx", 0), ("sse", 0), ("default", 0))
FEATURES = ("avx2", "avx512", "avx512_bf16", "amx")


class PrecisionError(LtdError):
    """bf16 asked for where the CPU would only emulate it."""


def _hardware() -> dict[str, bool]:
    import torch

    probes = {
        "avx2": "_is_avx2_supported",
        "avx512": "_is_avx512_supported",
        "avx512_bf16": "_is_avx512_bf16_supported",
        "amx": "_is_amx_tile_supported",
    }
    found = {}
    for name, probe in probes.items():
        try:
            found[name] = bool(getattr(torch.cpu, probe)())
        except (AttributeError, RuntimeError):
            found[name] = False
    return found


def env_limits() -> tuple[int, list[str]]:
    """How many of `FEATURES` (from the first) the environment leaves this process, and the
    variables that set that limit (`NAME=value`)."""
    allowed, why = len(FEATURES), []
    for var in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        value = os.environ.get(var, "").strip().upper()
        level = _ONEDNN_ALIASES.get(value, value)
        if level in ONEDNN_LEVELS:
            rank = ONEDNN_LEVELS.index(level)
            n = sum(rank >= ONEDNN_LEVELS.index(_NEEDS[f]) for f in FEATURES)
            if n < allowed:
                allowed, why = n, [*why, f"{var}={value}"]
            break  # oneDNN reads the first one set
    for var in ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS"):
        raw = os.environ.get(var, "").strip()
        n = next((n for start, n in _CAPS if raw.lower().startswith(start)), None) if raw else None
        if n is not None and n < len(FEATURES):
            allowed = min(allowed, n)
            why.append(f"{var}={raw}")
    return allowed, why


@functools.cache
def cpu_features() -> dict[str, bool]:
    """`FEATURES` this process can use: the CPU's (cpuid, through torch), less what the
    environment variables above turn off."""
    hardware = _hardware()
    allowed, _ = env_limits()
    return {f: hardware[f] and i < allowed for i, f in enumerate(FEATURES)}


def features_line() -> str:
    """The features seen, for a table's heading: `AMX yes · AVX-512 yes (BF16 yes) · AVX2
    yes`, and the environment variables that limit them."""
    f = cpu_features()
    yes = lambda k: "yes" if f[k] else "no"  # noqa: E731
    line = (
        f"CPU features: AMX {yes('amx')} · AVX-512 {yes('avx512')} "
        f"(BF16 {yes('avx512_bf16')}) · AVX2 {yes('avx2')}"
    )
    _, why = env_limits()
    return line + (f" (limited by {', '.join(why)})" if why else "")


def has_amx() -> bool:
    """Whether this process multiplies bf16 matrices in AMX tiles."""
    return cpu_features()["amx"]


def native_bf16() -> bool:
    """Whether this process multiplies bf16 in hardware: AMX tiles or AVX512-BF16."""
    f = cpu_features()
    return f["amx"] or f["avx512_bf16"]


def require_bf16(what: str = "--precision bf16", device: str = "cpu") -> None:
    """Raise `PrecisionError` (one line, naming `what`) when bf16 is asked for on a CPU
    that would only emulate it; GPUs and CPUs with native bf16 pass."""
    if not str(device).startswith("cpu") or native_bf16():
        return
    _, why = env_limits()
    seen = "AVX-512 without BF16, no AMX" if cpu_features()["avx512"] else "no AVX-512 or AMX"
    limits = f"; limited by {', '.join(why)}" if why else ""
    raise PrecisionError(
        f"{what}: this CPU does not multiply bf16 natively ({seen}{limits}), so bf16 would "
        "be emulated, slower than fp32; use fp32, or auto (bf16 only where it is native)"
    )


#: what "auto" means can be set for every command at once: LTD_PRECISION=fp32 or bf16
ENV = "LTD_PRECISION"


def forced_precision() -> str | None:
    """What LTD_PRECISION makes of "auto": fp32 or bf16, else None (unset or other)."""
    forced = os.environ.get(ENV, "").strip().lower()
    return forced if forced in ("fp32", "bf16") else None


def auto_precision(device: str = "cpu") -> str:
    """`bf16` on a CPU with AMX, else `fp32` (GPUs: fp32 unless asked, as before); the
    LTD_PRECISION environment variable, when set to fp32 or bf16, decides instead (bf16 on
    a CPU without native bf16: `PrecisionError`)."""
    forced = forced_precision()
    if forced == "bf16":
        require_bf16(f"{ENV}=bf16", device)
    if forced:
        return forced
    return "bf16" if str(device).startswith("cpu") and has_amx() else "fp32"


#: glibc's mallopt parameters (malloc.h) and what `hold_heap` sets them to
_HEAP = {
    -3: 32 << 20,  # M_MMAP_THRESHOLD: blocks up to 32 MB from the heap, not a mmap each
    -1: 256 << 20,  # M_TRIM_THRESHOLD: give memory back only past 256 MB free at the top
    -2: 64 << 20,  # M_TOP_PAD: grow the heap 64 MB at a time
}


def hold_heap() -> bool:
    """Ask glibc to serve the recurrent loop's per-step buffers (a few hundred KB to a few
    MB, freed at once) from a heap it keeps, instead of mapping, faulting in and returning
    memory at every step: `ltd encode` of 50,000 lines in one process, 1.2 → 0.7 s of system
    time, 6.1 → 5.6 s (docs/research-record-2026.md). False where there is no glibc."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
        return all([bool(mallopt(k, v)) for k, v in _HEAP.items()])
    except (OSError, AttributeError):
        return False
