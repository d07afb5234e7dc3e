"""Data-parallel training with torch.distributed: the process group `torchrun` describes.

`torchrun --nproc-per-node N grec train ...` (and the pods of a Kubeflow Trainer TrainJob, whose
torch plugin sets the PET_* variables torchrun reads) starts N copies of the command with RANK,
WORLD_SIZE and LOCAL_RANK set. `world()` joins them into one process group (gloo on CPU, nccl on
GPU); without those variables it is the one-process world and nothing is initialized.

How the training loop uses it (grec.train.fit): every rank draws the same epoch order and makes
only every size-th batch of it (`batches(..., shard=(rank, size))`: streamed, a rank encodes only
the impressions its batches hold), DistributedDataParallel averages the gradients, `together` stops
every rank at the same step, and rank 0 scores the validation split and broadcasts what it decided.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def world() -> World:
    """The process group of this run, joined on first call (gloo, or nccl when CUDA is there)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World()
    current = World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(current.local_rank)
        dist.init_process_group(backend=backend)
        atexit.register(_leave)
    return current


def _leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def device(world: World, requested: torch.device) -> torch.device:
    """A rank's device: its own GPU (LOCAL_RANK) when training on CUDA."""
    if world.distributed and requested.type == "cuda":
        return torch.device("cuda", world.local_rank)
    return requested


def together(items: Iterable, world: World, device: torch.device) -> Iterator:
    """Items while every rank still has one: the ranks' shares of an epoch differ by at most one
    batch, and a collective step must be taken by all of them."""
    iterator = iter(items)
    while True:
        item = next(iterator, None)
        if world.distributed:
            have = torch.tensor([item is not None], dtype=torch.int32, device=device)
            dist.all_reduce(have, op=dist.ReduceOp.MIN)
            if not have.item():
                return
        elif item is None:
            return
        yield item


def broadcast(value, world: World):
    """Rank 0's `value` on every rank (any picklable object)."""
    if not world.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
