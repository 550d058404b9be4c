"""Process-group helpers that degrade to no-ops on one process (no process group needed)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..errors import UserError

_local_depth = 0  # > 0 while `local_only` is active: this process acts alone
TIMEOUT_ENV = "SSL_ROBUSTNESS_DIST_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 24 * 3600  # rank 0 may wait hours for another worker's lock


def is_distributed() -> bool:
    if _local_depth > 0:
        return False
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def group_rank() -> int:
    """This process's rank in the process group, even inside `local_only` (0 without one)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    """The process that writes results, tables and reports (rank 0 of the group)."""
    return group_rank() == 0


def barrier() -> None:
    """Wait for every process of the group (a no-op on one process or inside `local_only`)."""
    if is_distributed():
        dist.barrier()


@contextlib.contextmanager
def local_only() -> Iterator[None]:
    """Run the body as a process of its own (rank 0 of 1): evaluations on rank 0 train and
    gather nothing across processes while the others wait or have left."""
    global _local_depth
    _local_depth += 1
    try:
        yield
    finally:
        _local_depth -= 1


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


def gather_objects(obj: Any) -> list[Any]:
    """`obj` of every process, in rank order (picklable objects; [obj] on one process)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


@torch.no_grad()
def all_finite(value: torch.Tensor) -> bool:
    """Whether `value` is finite on every process: one all-reduce per call under a process
    group, so every process learns of one process's NaN at the same step (and all raise
    together instead of the others waiting in DDP's all-reduce)."""
    finite = bool(torch.isfinite(value).all())
    if not is_distributed():
        return finite
    flag = torch.tensor([1.0 if finite else 0.0], device=value.device)
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item() > 0)


def collective_timeout() -> timedelta:
    """How long a collective (a barrier included) may wait: long by default, since rank 0
    waits in `flock` for another worker's representation lock, or prepares the data, while
    the others sit in a barrier; SSL_ROBUSTNESS_DIST_TIMEOUT_S (seconds) overrides it."""
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return timedelta(seconds=DEFAULT_TIMEOUT_S)
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < 1e9:
        raise UserError(f"{TIMEOUT_ENV}={raw!r}: expected a positive number of seconds")
    return timedelta(seconds=seconds)


def init_from_env() -> bool:
    """Join the process group torchrun describes in the environment; False when not launched so."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return is_distributed()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend, timeout=collective_timeout())
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return True


def init_process_group(
    rank: int, world: int, local_rank: int, master_addr: str, master_port: int
) -> bool:
    """Join a process group described explicitly (a submitit multi-task job); False alone."""
    if world <= 1 or dist.is_initialized():
        return is_distributed()
    os.environ.update(
        MASTER_ADDR=master_addr,
        MASTER_PORT=str(master_port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(local_rank),
    )
    return init_from_env()


class _SumOverProcesses(torch.autograd.Function):
    """All-reduce (sum) whose gradient is the all-reduced gradient: each process's inputs
    get the gradient of the sum of every process's loss, as one process holding all."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class GlobalBatchNorm(_BatchNorm):
    """Batch norm whose statistics cover the global batch on any device (gloo on CPU too:
    torch's SyncBatchNorm runs on GPUs only). Sums and squared sums are all-reduced with
    autograd, so gradients match one process holding the whole batch. Alone (one process,
    `local_only`, eval mode) it is plain batch norm."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and is_distributed()):
            return super().forward(x)
        dims = [d for d in range(x.dim()) if d != 1]
        count = x.new_tensor([x.numel() / x.shape[1]])
        local = torch.cat([x.sum(dims), (x * x).sum(dims), count])
        total = _SumOverProcesses.apply(local)
        c = x.shape[1]
        n = total[2 * c]
        mean, var = total[:c] / n, (total[c : 2 * c] / n - (total[:c] / n) ** 2).clamp(min=0)
        if self.track_running_stats and self.running_mean is not None:
            self._update_running(mean.detach(), var.detach(), n.detach())
        shape = [1, c] + [1] * (x.dim() - 2)
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y

    @torch.no_grad()
    def _update_running(self, mean: torch.Tensor, var: torch.Tensor, n: torch.Tensor) -> None:
        assert self.running_mean is not None and self.running_var is not None
        assert self.num_batches_tracked is not None
        self.num_batches_tracked.add_(1)
        m = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        unbiased = var * n / (n - 1).clamp(min=1)
        self.running_mean.mul_(1 - m).add_(mean, alpha=m)
        self.running_var.mul_(1 - m).add_(unbiased, alpha=m)


def sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Batch statistics over the global batch: SyncBatchNorm on GPUs, `GlobalBatchNorm`
    elsewhere (the same parameters and buffers; the layers are changed in place)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for m in model.modules():
        if type(m) in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d):
            m.__class__ = GlobalBatchNorm
    return model
