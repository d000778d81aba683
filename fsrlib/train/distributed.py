"""Process-group setup and the deterministic, resumable data order.

Launch several processes with ``torchrun --nproc_per_node N ...``: :func:`init_distributed`
reads ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` and joins the group (``nccl`` on CUDA,
``gloo`` on CPU). A single process needs no launcher.

Data order (:class:`ShardedBatchSampler`): epoch ``e`` visits
``randperm(n, seed=mix(seed, e))``; global batch ``i`` of the epoch is
``perm[i*B:(i+1)*B]`` (B = the global batch), the last partial batch is dropped, and rank
``r`` of ``W`` takes the positions ``r, r+W, r+2W, ...`` of that global batch. So

- the order is a pure function of ``(seed, epoch)``: iteration ``it`` always sees the
  same global batch, whatever happened before (a resumed run just starts at ``it``);
- the union of the ranks' batches at iteration ``it`` is exactly the single-process
  batch at ``it`` (a DDP run sees the same data as a single-process run of the same
  global batch size, like ``DistributedSampler`` without its padding).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
import torch.distributed as dist


def mix_seed(*ints: int) -> int:
    """A well-mixed 63-bit seed from integers (numpy ``SeedSequence``)."""
    return int(np.random.SeedSequence([int(i) & 0xFFFFFFFF for i in ints]).generate_state(2, dtype=np.uint64)[0]
               >> np.uint64(1))


def generator(*ints: int, device: str | torch.device = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(mix_seed(*ints))


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str | None = None, backend: str | None = None) -> DistInfo:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1); pick the device.

    ``device``: ``None`` = ``cuda:LOCAL_RANK`` if CUDA is available, else CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        backend = backend or ("nccl" if dev.type == "cuda" else "gloo")
        dist.init_process_group(backend=backend)
    if dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
    return DistInfo(rank, world, local, dev)


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    if is_dist():
        dist.barrier()


def all_gather_object(obj) -> list:
    if not is_dist():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj, src: int = 0):
    if not is_dist():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    if not is_dist():
        return t
    t = t.clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t / dist.get_world_size()


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    return torch.randperm(n, generator=generator(seed, 0x5EED, epoch))


class ShardedBatchSampler:
    """Batch sampler starting at iteration ``start_iter`` (see the module doc): infinite, or
    up to the end of that iteration's epoch with ``epoch_end=True``.

    Yields lists of dataset indices of length ``batch_size // world_size`` for this rank."""

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1,
                 start_iter: int = 0, shuffle: bool = True, epoch_end: bool = False):
        if batch_size % world_size:
            raise ValueError(f"batch_size {batch_size} is not divisible by the world size {world_size}")
        if n < batch_size:
            raise ValueError(f"the dataset has {n} items, fewer than one batch of {batch_size}")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world = rank, world_size
        self.start_iter, self.shuffle, self.epoch_end = int(start_iter), shuffle, epoch_end
        self.batches_per_epoch = n // batch_size
        self._cache: tuple[int, torch.Tensor] | None = None

    def position(self, it: int) -> tuple[int, int]:
        """(epoch, batch index in the epoch) of iteration ``it``."""
        return divmod(int(it), self.batches_per_epoch)

    def _perm(self, epoch: int) -> torch.Tensor:
        if self._cache is None or self._cache[0] != epoch:
            perm = epoch_permutation(self.n, self.seed, epoch) if self.shuffle else torch.arange(self.n)
            self._cache = (epoch, perm)
        return self._cache[1]

    def global_batch(self, it: int) -> list[int]:
        epoch, b = self.position(it)
        return self._perm(epoch)[b * self.batch_size:(b + 1) * self.batch_size].tolist()

    def local_batch(self, it: int) -> list[int]:
        return self.global_batch(it)[self.rank::self.world]

    def __iter__(self) -> Iterator[list[int]]:
        it = self.start_iter
        first_epoch = self.position(it)[0]
        while not (self.epoch_end and self.position(it)[0] != first_epoch):
            yield self.local_batch(it)
            it += 1
