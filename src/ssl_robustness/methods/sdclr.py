"""SDCLR (Jiang, Chen, Chen, Wang, ICML 2021, "Self-Damaging Contrastive Learning"): SimCLR
between the network and a magnitude-pruned copy of itself. Pruning forgets first what rests on
few images (the rare classes'), so the pruned branch disagrees most on them and the contrast
between the two branches weighs them up, without labels.

As in the paper's code (VITA-Group/SDCLR: prune/mask.py, prune/prune_simCLR.py,
models/resnet_prune_multibn.py): one view goes through the dense network, the other through the
pruned one; the pruned branch is the dense weights times a mask (gradients reach the dense
weights through it, the mask is never written into them); the mask keeps the weights of the
backbone's convolution and linear layers whose magnitude is at or above one threshold over
all of them, pruning the ceil(ratio x N) smallest of the N, recomputed at each epoch's start;
the pruned branch has batch-norm layers of its own (weights and statistics) in the backbone and
the projector. The cost over SimCLR: the same two forward passes (one a view), a mask product
per step and a sort of |w| per epoch.

At CPU widths the ratio is the paper's too, not scaled: 90% of a width-16 ResNet-10 leaves
30,609 of 306,096 weights, yet the trained pruned branch's features probe within 0.2 points of
the dense network's and 8 above random init (benchmarks/sdclr_pruned.py, benchmarks/README.md).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn
from torch.func import functional_call
from torch.nn.modules.batchnorm import _BatchNorm

from ..config import SDCLRConfig
from .augment import ViewSpec
from .base import StepContext, StepOutput
from .registry import register_method
from .simclr import SIMCLR_VIEW, SimCLR, nt_xent_terms

PRUNABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def prunable_weights(module: nn.Module) -> dict[str, nn.Parameter]:
    """The weights SDCLR prunes: those of every convolution and linear layer, by name."""
    return {
        f"{name}.weight": m.weight
        for name, m in module.named_modules()
        if isinstance(m, PRUNABLE) and isinstance(getattr(m, "weight", None), nn.Parameter)
    }


@torch.no_grad()
def magnitude_masks(weights: dict[str, torch.Tensor], ratio: float) -> dict[str, torch.Tensor]:
    """Global magnitude pruning: with k = ceil(ratio x N) of the N weights (the paper's code;
    the 1e-9 keeps 0.9 x 30 from rounding up to 28), every weight whose |w| is at least the
    (k+1)-th smallest |w| over all layers is kept (1.0), the others pruned (0.0). Ties at the
    threshold are kept, so at most k are pruned; each layer's sparsity is what the one
    threshold leaves of it, not `ratio`.

    >>> m = magnitude_masks({"a": torch.tensor([0.1, -0.4]), "b": torch.tensor([0.3, 0.2])}, 0.5)
    >>> m["a"].tolist(), m["b"].tolist()
    ([0.0, 1.0], [1.0, 0.0])
    """
    flat = torch.cat([w.detach().abs().flatten().float() for w in weights.values()])
    k = math.ceil(ratio * flat.numel() - 1e-9)
    if k <= 0:
        return {name: torch.ones_like(w) for name, w in weights.items()}
    threshold = flat.kthvalue(min(k, flat.numel() - 1) + 1).values
    return {n: (w.detach().abs().float() >= threshold).to(w.dtype) for n, w in weights.items()}


def _bn_key(name: str) -> str:
    return name.replace(".", "-")  # module names may not hold dots


@register_method(SDCLRConfig, views=(SIMCLR_VIEW, SIMCLR_VIEW), self_supervised=True)
class SDCLR(SimCLR):
    name = "sdclr"

    def __init__(
        self,
        backbone: nn.Module,
        cfg: SDCLRConfig,
        views: tuple[ViewSpec, ViewSpec] = (SIMCLR_VIEW, SIMCLR_VIEW),
    ) -> None:
        super().__init__(backbone, cfg, views)
        self.prune_ratio = cfg.prune_ratio
        # the pruned branch's own batch norm: copies of the dense branch's layers, trained too
        self.pruned_bn = nn.ModuleDict(
            {
                part: nn.ModuleDict(
                    {
                        _bn_key(name): copy.deepcopy(m)
                        for name, m in getattr(self, part).named_modules()
                        if isinstance(m, _BatchNorm)
                    }
                )
                for part in ("backbone", "projector")
            }
        )
        # masks: buffers so they follow the model to its device, not saved (begin_epoch
        # recomputes them from the saved weights, as the uninterrupted run did)
        self._masked = list(prunable_weights(self.backbone))
        for i, w in enumerate(prunable_weights(self.backbone).values()):
            self.register_buffer(f"mask{i}", torch.ones_like(w.detach()), persistent=False)
        self.prune()

    def masks(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, f"mask{i}") for i, name in enumerate(self._masked)}

    @torch.no_grad()
    def prune(self) -> None:
        """Mask the smallest `prune_ratio` of the backbone's current weights (dense kept)."""
        masks = magnitude_masks(prunable_weights(self.backbone), self.prune_ratio)
        for i, name in enumerate(self._masked):
            getattr(self, f"mask{i}").copy_(masks[name])

    def begin_epoch(self, epoch: int) -> None:
        self.prune()  # the paper re-prunes at every epoch's start

    def _pruned_bn_state(self, part: str) -> dict[str, torch.Tensor]:
        """The pruned branch's batch-norm parameters and statistics, under the dense layers'
        names (its running statistics are updated in place by the forward pass)."""
        state = {}
        for key, bn in self.pruned_bn[part].items():
            name = key.replace("-", ".")
            for attr, t in [*bn.named_parameters(), *bn.named_buffers()]:
                state[f"{name}.{attr}"] = t
        return state

    def pruned_embedding(self, x: torch.Tensor) -> torch.Tensor:
        """The projection of `x` by the pruned network (masked weights, its own batch norm)."""
        weights = prunable_weights(self.backbone)
        masked = {name: weights[name] * mask for name, mask in self.masks().items()}
        h = functional_call(self.backbone, {**masked, **self._pruned_bn_state("backbone")}, (x,))
        return functional_call(self.projector, self._pruned_bn_state("projector"), (h,))

    @torch.no_grad()
    def pruned_backbone(self) -> nn.Module:
        """A standalone copy of the pruned branch's backbone (the masked weights, its own batch
        norm), so its features can be probed like any backbone's (benchmarks/sdclr_pruned.py)."""
        pruned = copy.deepcopy(self.backbone)
        for name, mask in self.masks().items():
            pruned.get_parameter(name).mul_(mask)
        for key, bn in self.pruned_bn["backbone"].items():
            pruned.get_submodule(key.replace("-", ".")).load_state_dict(bn.state_dict())
        return pruned

    def forward(self, images: torch.Tensor, labels: torch.Tensor, ctx: StepContext) -> StepOutput:
        v1, v2 = self.two_views(images, ctx)
        z1 = self.projector(self.backbone(v1)).float()  # dense branch: its own BN batch
        z2 = self.pruned_embedding(v2).float()
        tau = self.temperature_at(ctx)
        loss, rows = nt_xent_terms(z1, z2, tau)
        n = len(z1)
        logs = {"temperature": tau} if self.schedule is not None else {}
        return StepOutput(loss, z1, logs=logs, losses=0.5 * (rows[:n] + rows[n:]))
