"""Projection and prediction heads shared by the SSL methods."""

from __future__ import annotations

from torch import nn


def mlp(
    in_dim: int,
    hidden_dim: int,
    out_dim: int,
    *,
    layers: int = 2,
    bn_hidden: bool = True,
    bn_last: bool = False,
) -> nn.Sequential:
    """Linear(-BN)-ReLU blocks then a Linear; `bn_last` adds SimSiam's affine-free output BN.

    >>> import torch
    >>> mlp(512, 2048, 128)(torch.randn(4, 512)).shape
    torch.Size([4, 128])
    """
    mods: list[nn.Module] = []
    dim = in_dim
    for _ in range(layers - 1):
        mods.append(nn.Linear(dim, hidden_dim, bias=not bn_hidden))
        if bn_hidden:
            mods.append(nn.BatchNorm1d(hidden_dim))
        mods.append(nn.ReLU(inplace=True))
        dim = hidden_dim
    mods.append(nn.Linear(dim, out_dim, bias=not bn_last))
    if bn_last:
        mods.append(nn.BatchNorm1d(out_dim, affine=False))
    return nn.Sequential(*mods)
