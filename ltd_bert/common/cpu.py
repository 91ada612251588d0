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
