"""The processes sharing one benchmark run: ``torchrun --nproc_per_node N -m benchmarks run ...`` starts N of them
into one run folder, and a plain ``python -m benchmarks run`` is one.

torchrun rather than ``accelerate launch``: it ships with torch, and a run asks no more of its launcher than
torch.distributed's rank and size and two collectives (process 0's plan handed to all, and a sum of finished images).
accelerate would add a config step and a wrapper around the same launcher, for nothing a run uses. The processes
talk over gloo on CPUs and GPUs alike: only a list of keys and a count pass between them, never a tensor on a GPU,
so NCCL would buy nothing.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


class Processes:
    """This process's place among those sharing a run; ``Processes()`` is a lone process, which needs no collectives."""

    def __init__(self, rank: int = 0, size: int = 1):
        self.rank, self.size = rank, size

    @property
    def main(self) -> bool:
        """Process 0 writes run.json, shows the progress, and scores and reports once every image is made."""
        return self.rank == 0

    def from_main(self, compute: Callable[[], T]) -> T:
        """`compute()`, run by process 0 alone and handed to every process: one plan, read from the run folder while
        no process is writing to it (the others wait here)."""
        if self.size == 1:
            return compute()
        box = [compute() if self.main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def total(self, count: int) -> int:
        """The sum of `count` over the processes; each must call this equally often."""
        if self.size == 1:
            return count
        tensor = torch.tensor([count], dtype=torch.int64)
        dist.all_reduce(tensor)
        return int(tensor.item())


@contextmanager
def launched_processes() -> Iterator[Processes]:
    """The processes torchrun started (its RANK, WORLD_SIZE and LOCAL_RANK), joined in a gloo group for the block;
    a lone process outside torchrun. Where there are GPUs each process takes the next one, round the GPUs again if
    there are more processes than GPUs."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        yield Processes()
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]) % torch.cuda.device_count())
    dist.init_process_group("gloo")
    try:
        yield Processes(dist.get_rank(), size)
    finally:
        dist.destroy_process_group()
