"""Backbones that return pooled features and know their feature dimension.

All ResNets keep torchvision's key names (conv1, bn1, layer1..4), so a backbone saved here
loads into `torchvision.models.resnet18()` and an imported torchvision file loads here.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import resnet as tv_resnet

from ..config import BackboneConfig
from ..errors import UserError

SMALL_IMAGE_MAX = 64


class ResNet(tv_resnet.ResNet):
    """torchvision's ResNet with a configurable base width and an optional small-image stem
    (3x3 stride-1 conv, no max-pool), and no classifier: `forward` returns pooled features.

    `stem_padding` is the small stem's padding: 1 for ours, 2 for solo-learn's CIFAR stem.
    `width_per_group` 128 gives torchvision's wide_resnet50_2 / wide_resnet101_2."""

    def __init__(
        self,
        block: type[nn.Module],
        layers: list[int],
        width: int = 64,
        small_stem: bool = False,
        *,
        width_per_group: int = 64,
        stem_padding: int = 1,
    ) -> None:
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes, self.dilation, self.groups = width, 1, 1
        self.base_width = width_per_group
        if small_stem:
            self.conv1 = nn.Conv2d(
                3, width, kernel_size=3, stride=1, padding=stem_padding, bias=False
            )
            self.maxpool = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(block, width, layers[0])
        self.layer2 = self._make_layer(block, width * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(block, width * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(block, width * 8, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Identity()
        self.feature_dim = width * 8 * block.expansion  # type: ignore[attr-defined]
        self.arch = {
            "block": block.__name__,
            "layers": list(layers),
            "width": width,
            "small_stem": small_stem,
        }
        # recorded only when not the default, so older arch records stay valid as they are
        if width_per_group != 64:
            self.arch["width_per_group"] = width_per_group
        if small_stem and stem_padding != 1:
            self.arch["stem_padding"] = stem_padding
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


def timm_name_error(name: str) -> str:
    """Why `name` is not a timm model ('' when it is one), with the nearest names (difflib):
    an unknown name fails at validation, not when each representation starts training."""
    import difflib

    try:
        import timm
    except ImportError:
        return f"'timm:{name}' needs timm: pip install 'ssl-robustness[timm]'"
    if timm.is_model(name):
        return ""
    near = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.5)
    hint = f"nearest: {', '.join(near)}" if near else "see timm.list_models()"
    return f"timm has no model '{name}' ({hint})"


class TimmBackbone(nn.Module):
    """Any timm model by name, classifier removed (needs the `timm` extra)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        try:
            import timm
        except ImportError:
            raise UserError(
                f"backbone 'timm:{name}' needs timm: pip install 'ssl-robustness[timm]'"
            ) from None
        why = timm_name_error(name)
        if why:
            raise UserError(f"backbone 'timm:{name}': {why}")
        self.model = timm.create_model(name, pretrained=False, num_classes=0)
        self.feature_dim = int(self.model.num_features)
        self.arch = {"timm": name}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


ARCHS: dict[str, tuple[type[nn.Module], list[int], int]] = {
    "resnet18": (tv_resnet.BasicBlock, [2, 2, 2, 2], 64),
    "resnet34": (tv_resnet.BasicBlock, [3, 4, 6, 3], 64),
    "resnet50": (tv_resnet.Bottleneck, [3, 4, 6, 3], 64),
}

# torchvision's standard ResNets: (block, blocks per stage, width per group), smallest first
STANDARD_RESNETS: dict[str, tuple[type[nn.Module], list[int], int]] = {
    "resnet18": (tv_resnet.BasicBlock, [2, 2, 2, 2], 64),
    "resnet34": (tv_resnet.BasicBlock, [3, 4, 6, 3], 64),
    "resnet50": (tv_resnet.Bottleneck, [3, 4, 6, 3], 64),
    "resnet101": (tv_resnet.Bottleneck, [3, 4, 23, 3], 64),
    "resnet152": (tv_resnet.Bottleneck, [3, 8, 36, 3], 64),
    "wide_resnet50_2": (tv_resnet.Bottleneck, [3, 4, 6, 3], 128),
    "wide_resnet101_2": (tv_resnet.Bottleneck, [3, 4, 23, 3], 128),
}


def build_backbone(cfg: BackboneConfig, image_size: int) -> nn.Module:
    """The configured backbone; the small stem is chosen automatically for images <= 64 px."""
    small = cfg.small_stem if cfg.small_stem is not None else image_size <= SMALL_IMAGE_MAX
    if cfg.name.startswith("timm:"):
        return TimmBackbone(cfg.name.removeprefix("timm:"))
    if cfg.name == "resnet_tiny":
        if len(cfg.layers) != 4:
            raise UserError("backbone.layers: needs 4 block counts, e.g. [1, 1, 1, 1]")
        return ResNet(tv_resnet.BasicBlock, cfg.layers, cfg.width, small)
    block, layers, width = ARCHS[cfg.name]
    return ResNet(block, layers, width, small)


def backbone_from_arch(arch: dict) -> nn.Module:
    """Rebuild a backbone from the `arch` record saved beside its weights."""
    if "timm" in arch:
        return TimmBackbone(arch["timm"])
    block = {"BasicBlock": tv_resnet.BasicBlock, "Bottleneck": tv_resnet.Bottleneck}[arch["block"]]
    return ResNet(
        block,
        arch["layers"],
        arch["width"],
        arch["small_stem"],
        width_per_group=arch.get("width_per_group", 64),
        stem_padding=arch.get("stem_padding", 1),
    )
