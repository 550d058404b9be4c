"""Process-group helpers that degrade to no-ops on one process (no process group needed)."""

from __future__ import annotations

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate `x` from every process along dim 0, gradients flowing back to each part."""
    if not is_distributed():
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x), dim=0)


@torch.no_grad()
def gather(x: torch.Tensor) -> torch.Tensor:
    """Concatenate `x` from every process along dim 0 (no gradient)."""
    if not is_distributed():
        return x
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


@torch.no_grad()
def broadcast(x: torch.Tensor, src: int = 0) -> torch.Tensor:
    """`x` as process `src` holds it, on every process (MoCo's shuffle permutation)."""
    if is_distributed():
        dist.broadcast(x, src)
    return x


@torch.no_grad()
def shuffled_slice(x: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """This process's share of the global batch taken in `perm` order (shuffle-BN's input).

    Every process passes the same equal-sized `x` shape and the same `perm` over the
    world_size() * len(x) gathered samples; on one process this is `x[perm]`.
    """
    everyone = gather(x)
    return everyone[perm.view(world_size(), -1)[rank()]]


@torch.no_grad()
def unshuffled_slice(y: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """Undo `shuffled_slice`: row i of the result belongs to row i of this process's `x`."""
    everyone = gather(y)[torch.argsort(perm)]
    return everyone.view(world_size(), len(y), *y.shape[1:])[rank()]


def init_from_env() -> bool:
    """Join the process group torchrun describes in the environment; False when not launched so."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return is_distributed()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend)
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return True
