"""Running under `torchrun`: rank and world size from the environment, the process group,
and the few collectives teacher-embed and train need.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK in each worker (and MASTER_ADDR/MASTER_PORT
for the rendezvous); with WORLD_SIZE > 1 the commands split their work across the ranks.
Without those variables, or with WORLD_SIZE 1, every helper here is a no-op, so the same
code runs as one ordinary process.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from ltd_bert.common.errors import InputError, LtdError

log = logging.getLogger(__name__)

# Ranks may wait long for each other (teacher-embed: the slowest rank's share; train: rank 0
# evaluating or saving), so collectives get far more than torch's default 30 minutes.
DEFAULT_TIMEOUT = timedelta(hours=2)


def rank() -> int:
    """This process's global rank (0 outside torchrun)."""
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    """The number of processes (1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def local_rank() -> int:
    """This process's rank on its machine: the GPU it uses (0 outside torchrun)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_distributed() -> bool:
    """Launched by torchrun (RANK, WORLD_SIZE, LOCAL_RANK set) with more than one process."""
    env = os.environ
    return all(k in env for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK")) and world_size() > 1


def is_main() -> bool:
    """Rank 0, the process that writes shared outputs (always true outside torchrun)."""
    return rank() == 0


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def resolve_device(device: str) -> str:
    """`auto` → `cuda:LOCAL_RANK` when CUDA is available, else `cpu`; a bare `cuda` under
    torchrun → `cuda:LOCAL_RANK` (one GPU per process); anything else unchanged."""
    if device == "auto":
        return f"cuda:{local_rank()}" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and is_distributed():
        return f"cuda:{local_rank()}"
    return device


def backend_for(device: str | torch.device) -> str:
    """nccl for CUDA devices, gloo for the CPU."""
    return "nccl" if str(device).startswith("cuda") else "gloo"


def init(
    device: str | torch.device = "cpu",
    backend: str | None = None,
    timeout: timedelta = DEFAULT_TIMEOUT,
) -> bool:
    """Join the process group if launched by torchrun and not joined yet; True if this
    call joined it (the caller then leaves it with `cleanup`)."""
    if not is_distributed() or is_initialized():
        return False
    if not dist.is_available():
        raise InputError("this torch build has no torch.distributed; run without torchrun")
    backend = backend or backend_for(device)
    if backend == "nccl":
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend=backend, timeout=timeout)
    log.debug("rank %d of %d joined the %s process group", rank(), world_size(), backend)
    return True


def cleanup() -> None:
    if is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def process_group(
    device: str | torch.device = "cpu",
    backend: str | None = None,
    timeout: timedelta = DEFAULT_TIMEOUT,
) -> Iterator[bool]:
    """`with process_group(): ...`: joined inside (under torchrun), left at the end if this
    block joined it. Yields whether the run is distributed."""
    joined = init(device, backend, timeout)
    try:
        yield is_initialized()
    except BaseException:
        if joined:  # no barrier: the other ranks may never get there
            cleanup()
        raise
    if joined:
        # all ranks leave together: one tearing gloo down while another still writes its
        # output made that one abort at exit now and then (SIGABRT, "terminate called")
        barrier()
        cleanup()


@contextlib.contextmanager
def _collective(what: str) -> Iterator[None]:
    """A failed collective almost always means another rank died: say so in one line."""
    try:
        yield
    except RuntimeError as exc:  # gloo: "Connection closed by peer", timeouts, ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LtdError(
            f"rank {rank()}: {what} failed, another rank probably stopped first (its error "
            f"is above): {first[:160]}"
        ) from None


def barrier() -> None:
    """Wait for every rank (no-op outside a process group)."""
    if not is_initialized():
        return
    with _collective("waiting for the other ranks"):
        if dist.get_backend() == "nccl":
            dist.barrier(device_ids=[local_rank()])
        else:
            dist.barrier()


def gather(obj: Any) -> list[Any]:
    """Every rank's `obj` (picklable), in rank order, on every rank; `[obj]` alone."""
    if not is_initialized():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    with _collective("gathering from the other ranks"):
        dist.all_gather_object(out, obj)
    return out


def broadcast(obj: Any, src: int = 0) -> Any:
    """Rank `src`'s `obj` on every rank; `obj` itself outside a process group."""
    if not is_initialized():
        return obj
    box = [obj]
    with _collective(f"sharing rank {src}'s data"):
        dist.broadcast_object_list(box, src=src)
    return box[0]


def part_path(output: str | Path, rank_: int, world: int) -> Path:
    """The file rank `rank_` of `world` writes for OUTPUT: `teacher.rank0-of-2.h5`."""
    output = Path(output)
    return output.with_name(f"{output.stem}.rank{rank_}-of-{world}{output.suffix or '.h5'}")
