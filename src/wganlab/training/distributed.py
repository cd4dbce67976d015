"""Data-parallel training under ``torchrun``: the process group from torchrun's environment.

``torchrun --nproc_per_node=N -m wganlab train ...`` sets RANK, LOCAL_RANK, WORLD_SIZE and
the rendezvous address; :func:`process_group` joins the group for the duration of a run
(gloo on CPU, NCCL on CUDA) and leaves it through a barrier, because a rank that destroys
the group while another still talks to it sometimes aborts at exit.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from datetime import timedelta


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def local_rank() -> int:
    """This process's index on its machine under torchrun (``LOCAL_RANK``), else 0."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def local_device(device: str) -> str:
    """Under torchrun, a bare ``cuda`` means this rank's GPU, ``cuda:LOCAL_RANK``."""
    if device == "cuda" and launched_by_torchrun():
        return f"cuda:{local_rank()}"
    return device


@contextmanager
def process_group(device: str, timeout_seconds: float = 600.0):
    """Joins torchrun's process group when launched by it; otherwise does nothing."""
    if not launched_by_torchrun():
        yield
        return
    import torch
    import torch.distributed as dist

    backend = "nccl" if device.startswith("cuda") else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_seconds))
    try:
        yield
        dist.barrier()
    finally:
        dist.destroy_process_group()


def broadcast_from_rank0(value):
    """Rank 0's ``value`` on every rank (a run folder name chosen once)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def rank_and_world_size() -> tuple[int, int]:
    """(rank, world size) of an initialised torch.distributed group, else (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def rank() -> int:
    return rank_and_world_size()[0]
