"""What this CPU computes fast: bf16 matrix products in hardware (AMX tiles, Intel Sapphire
Rapids and later), where the teacher's forward runs 2.7–2.9× faster in bf16 and the
student's recurrent loop 2.1× (one thread), at no measurable cost (docs/speed.md). torch is
imported only when asked."""

from __future__ import annotations

import functools
import os


@functools.cache
def has_amx() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (AMX tiles)."""
    import torch

    try:
        return bool(torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):
        return False


#: what "auto" means can be set for every command at once: LTD_PRECISION=fp32 or bf16
ENV = "LTD_PRECISION"


def auto_precision(device: str = "cpu") -> str:
    """`bf16` on a CPU with AMX, else `fp32` (GPUs: fp32 unless asked, as before); the
    LTD_PRECISION environment variable, when set to fp32 or bf16, decides instead."""
    forced = os.environ.get(ENV, "").strip().lower()
    if forced in ("fp32", "bf16"):
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
    time, 6.1 → 5.6 s (docs/speed.md, session 10). False where there is no glibc."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
        return all([bool(mallopt(k, v)) for k, v in _HEAP.items()])
    except (OSError, AttributeError):
        return False
