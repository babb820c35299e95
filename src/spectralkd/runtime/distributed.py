"""Process-group setup for ``torchrun`` (gloo on CPU, nccl on GPU) and small collective helpers."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as td

from spectralkd.runtime.device import pick_device


@dataclass
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device_request: str = "auto") -> DistEnv:
    """Join the process group when started by ``torchrun`` (WORLD_SIZE > 1); otherwise a single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_request, local_rank)
    if world_size > 1 and not td.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        td.init_process_group(backend=backend)
    return DistEnv(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def barrier() -> None:
    if td.is_available() and td.is_initialized():
        td.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum over processes, in place; identity in a single process."""
    if td.is_available() and td.is_initialized():
        td.all_reduce(tensor, op=td.ReduceOp.SUM)
    return tensor


def broadcast_object(obj, src: int = 0):
    if td.is_available() and td.is_initialized():
        box = [obj]
        td.broadcast_object_list(box, src=src)
        return box[0]
    return obj


def cleanup() -> None:
    if td.is_available() and td.is_initialized():
        td.destroy_process_group()
