"""Shuffle-BN for MoCo on one process: split batch norm over sub-batches, keys shuffled.

When queries and keys are batch-normalised over the same samples, the batch statistics
carry a signature of the batch that the positive key shares with its query and the queue's
negatives do not, and the model can match on it instead of learning features (He et al.
2020, section 3.3). On several processes MoCo shuffles the keys' samples across processes;
on one process the official CIFAR-10 demo emulates that by normalising in sub-batches and
giving the key encoder a shuffled batch. Both are here, without replacing any module: the
BN layers are only redirected while an encoder runs, so state dicts and exports are unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from itertools import accumulate

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

MAX_DRAWS = 32  # permutations tried before the deterministic fallback (tiny batches only)


def split_sizes(n: int, splits: int) -> list[int]:
    """Sizes of the in-order sub-batches: `splits` of them, or fewer so each has >= 2 samples
    (training-mode BN over one sample is undefined); they differ by at most one.

    >>> split_sizes(10, 4), split_sizes(5, 8), split_sizes(1, 8)
    ([3, 3, 2, 2], [3, 2], [1])
    """
    parts = max(1, min(splits, n // 2))
    base, extra = divmod(n, parts)
    return [base + 1] * extra + [base] * (parts - extra)


def _bounds(sizes: list[int]) -> list[tuple[int, int]]:
    ends = list(accumulate(sizes))
    return list(zip([0, *ends[:-1]], ends, strict=True))


def _repeats_a_sub_batch(perm: list[int], sizes: list[int]) -> bool:
    """Whether some shuffled sub-batch holds exactly the samples of some in-order one."""
    groups = _bounds(sizes)
    ordered = {frozenset(range(a, b)) for a, b in groups}
    return any(frozenset(perm[a:b]) in ordered for a, b in groups)


def key_permutation(sizes: list[int], generator: torch.Generator) -> torch.Tensor:
    """A random order of the batch whose sub-batches (of `sizes`, in that order) never
    equal an in-order sub-batch as sets, so no key is normalised with its query's companions
    alone. Redraws the rare colliding permutation (only likely for sub-batches of 2 or 3);
    a rotation by one sample is the fallback, which straddles every boundary."""
    n = sum(sizes)
    perm = torch.randperm(n, generator=generator)
    if len(sizes) < 2:
        return perm
    for _ in range(MAX_DRAWS):
        if not _repeats_a_sub_batch(perm.tolist(), sizes):
            return perm
        perm = torch.randperm(n, generator=generator)
    return torch.roll(torch.arange(n), 1)


def _split_forward(bn: _BatchNorm, splits: int, x: torch.Tensor) -> torch.Tensor:
    """`bn` on `x` with statistics per in-order sub-batch, on this process only.

    Running statistics move as if each sub-batch updated its own copy, then the copies are
    averaged (the demo's SplitBatchNorm); a SyncBatchNorm layer is kept local too.
    """
    bn._check_input_dim(x)
    if not bn.training and bn.running_mean is not None:
        return F.batch_norm(
            x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps
        )
    factor = 0.0
    if bn.training and bn.track_running_stats and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
    update = bn.training and bn.running_mean is not None
    outs, means, variances = [], [], []
    for part in torch.split(x, split_sizes(len(x), splits)):
        mean = bn.running_mean.clone() if update else None
        var = bn.running_var.clone() if update else None
        outs.append(F.batch_norm(part, mean, var, bn.weight, bn.bias, True, factor, bn.eps))
        means.append(mean)
        variances.append(var)
    if update:
        with torch.no_grad():
            bn.running_mean.copy_(torch.stack(means).mean(0))
            bn.running_var.copy_(torch.stack(variances).mean(0))
    return outs[0] if len(outs) == 1 else torch.cat(outs)


@contextmanager
def split_batchnorm(module: nn.Module, splits: int) -> Iterator[None]:
    """While active, every BN layer in `module` normalises each in-order sub-batch of
    `split_sizes(len(batch), splits)` separately, with this process's samples only
    (`splits=1`: plain local BN, which also keeps a converted SyncBatchNorm local)."""
    layers = [m for m in module.modules() if isinstance(m, _BatchNorm)]
    for bn in layers:
        bn.forward = partial(_split_forward, bn, splits)  # type: ignore[method-assign]
    try:
        yield
    finally:
        for bn in layers:
            del bn.forward
