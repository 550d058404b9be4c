"""Import SSL backbones from the checkpoint formats of the main codebases, strictly.

A checkpoint file is untrusted input: it is read with `torch.load(weights_only=True)`, which
refuses pickled code. Keys are mapped to torchvision names, the projection/classifier heads
are dropped, and the load is strict: any missing or unexpected key refuses the file.
"""

from __future__ import annotations

import pickle
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import UserError
from .backbones import ResNet, TimmBackbone

FORMATS = ("torchvision", "timm", "moco", "simsiam", "lightning", "mmselfsup", "vissl")
FORMAT_PREFIX = {
    "moco": "encoder_q.",
    "simsiam": "encoder.",
    "lightning": "backbone.",
    "mmselfsup": "backbone.",
    "vissl": "_feature_blocks.",
    "torchvision": "",
    "timm": "",
}
HEAD_PREFIXES = ("fc.", "head.", "classifier.")
# an nn.Sequential of torchvision ResNet children (lightly's usual backbone)
_CHILD_NAMES = {
    "0": "conv1",
    "1": "bn1",
    "4": "layer1",
    "5": "layer2",
    "6": "layer3",
    "7": "layer4",
}


@dataclass
class ImportReport:
    path: str
    format: str
    state_dict: dict[str, torch.Tensor]
    dropped: list[str] = field(default_factory=list)
    arch: dict[str, Any] | None = None

    def summary(self) -> str:
        groups = Counter(k.split(".")[0] for k in self.dropped)
        dropped = ", ".join(f"{k}.* ({n})" for k, n in sorted(groups.items())) or "none"
        n = sum(v.numel() for v in self.state_dict.values())
        return "\n".join(
            [
                f"file:      {self.path}",
                f"format:    {self.format}",
                f"arch:      {self.arch}",
                f"backbone:  {len(self.state_dict)} tensors, {n:,} values (torchvision key names)",
                f"dropped:   {dropped}",
            ]
        )


def read_checkpoint(path: Path) -> Any:
    """torch.load with weights_only=True and clear messages for refused or broken files."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint file not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        blocked = [line for line in str(exc).splitlines() if "GLOBAL" in line]
        if blocked:
            raise UserError(
                f"{path}: refused: the file holds Python objects beyond tensors and plain "
                f"data, which could run code when loaded (weights_only=True). If you trust "
                f"it, re-save just its state_dict. Detail: {blocked[0].strip()[:200]}"
            ) from None
        raise UserError(
            f"{path}: cannot read checkpoint (truncated or not a PyTorch file): "
            f"{str(exc).splitlines()[-1][:200]}"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise UserError(
            f"{path}: cannot read checkpoint (truncated or not a PyTorch file): {str(exc)[:200]}"
        ) from None


def _tensor_dict(obj: Any) -> dict[str, torch.Tensor] | None:
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    return None


def detect_format(obj: Any) -> tuple[str, dict[str, torch.Tensor]]:
    """(format, raw state dict with any `module.` prefix removed)."""
    if isinstance(obj, dict) and "classy_state_dict" in obj:
        try:
            trunk = obj["classy_state_dict"]["base_model"]["model"]["trunk"]
        except (KeyError, TypeError):
            raise UserError("VISSL file without classy_state_dict.base_model.model.trunk") from None
        return "vissl", dict(trunk)
    sd = None
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state"):
            sd = sd or _tensor_dict(obj.get(key))
    sd = sd or _tensor_dict(obj)
    if sd is None:
        raise UserError(
            "no state dict of tensors found (looked at state_dict, model and the top level)"
        )
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    keys = list(sd)
    if any(k.startswith("encoder_q.") for k in keys):
        return "moco", sd
    if any(k.startswith("encoder.") for k in keys):
        return "simsiam", sd
    if any(k.startswith("backbone.") for k in keys):
        lightning = isinstance(obj, dict) and (
            "pytorch-lightning_version" in obj or "global_step" in obj
        )
        return ("lightning" if lightning or "meta" not in obj else "mmselfsup"), sd
    if any(k.startswith("_feature_blocks.") for k in keys):
        return "vissl", sd
    return "torchvision", sd


def to_backbone_keys(
    fmt: str, sd: dict[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Keep the backbone's tensors under torchvision names; return (kept, dropped keys)."""
    prefix = FORMAT_PREFIX[fmt]
    kept, dropped = {}, []
    for k, v in sd.items():
        if prefix and not k.startswith(prefix):
            dropped.append(k)
            continue
        name = k.removeprefix(prefix)
        name = _children_to_names(name)
        if name.startswith(HEAD_PREFIXES):
            dropped.append(k)
        else:
            kept[name] = v
    return kept, dropped


def _children_to_names(key: str) -> str:
    head, _, rest = key.partition(".")
    if head in _CHILD_NAMES and rest:
        return f"{_CHILD_NAMES[head]}.{rest}"
    return key


def infer_resnet_arch(sd: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Block type, blocks per stage, base width and stem of a torchvision-keyed ResNet."""
    if "conv1.weight" not in sd:
        raise UserError("cannot infer the architecture: no conv1.weight (set the arch explicitly)")
    conv1 = sd["conv1.weight"]
    bottleneck = any(k.startswith("layer1.0.conv3.") for k in sd)
    layers = []
    for stage in range(1, 5):
        blocks = {int(m.group(1)) for k in sd if (m := re.match(rf"layer{stage}\.(\d+)\.", k))}
        layers.append(max(blocks) + 1 if blocks else 0)
    return {
        "block": "Bottleneck" if bottleneck else "BasicBlock",
        "layers": layers,
        "width": int(conv1.shape[0]),
        "small_stem": conv1.shape[-1] == 3,
    }


def inspect_checkpoint(path: Path, fmt: str = "auto") -> ImportReport:
    obj = read_checkpoint(path)
    detected, raw = detect_format(obj)
    if fmt not in ("auto", detected) and not (fmt == "timm" and detected == "torchvision"):
        raise UserError(f"{path}: looks like {detected}, not {fmt} (keys: {list(raw)[:5]})")
    fmt = detected if fmt == "auto" else fmt
    kept, dropped = to_backbone_keys(fmt, raw)
    if not kept:
        raise UserError(f"{path}: no backbone tensors found for format {fmt}")
    report = ImportReport(str(path), fmt, kept, dropped)
    if "conv1.weight" in kept:
        report.arch = infer_resnet_arch(kept)
    return report


def load_backbone(
    path: Path, fmt: str = "auto", arch: str | None = None
) -> tuple[nn.Module, ImportReport]:
    """Build the backbone the file describes and load it strictly."""
    report = inspect_checkpoint(path, fmt)
    return backbone_from_report(report, arch), report


def backbone_from_report(report: ImportReport, arch: str | None = None) -> nn.Module:
    """The backbone an inspected file describes, loaded strictly (refuses partial loads)."""
    path = Path(report.path)
    if arch and arch.startswith("timm:"):
        model: nn.Module = TimmBackbone(arch.removeprefix("timm:"))
        strict_load(model.model, report.state_dict, path, allow_missing_head=True)
        return model
    if report.arch is None:
        raise UserError(f"{path}: not a ResNet; set arch: timm:<name> for other models")
    from torchvision.models import resnet as tv

    a = report.arch
    if arch in ("resnet18", "resnet50") and (a["block"] == "Bottleneck") != (arch == "resnet50"):
        raise UserError(f"{path}: holds a {a['block']} ResNet {a['layers']}, not {arch}")
    block = tv.Bottleneck if a["block"] == "Bottleneck" else tv.BasicBlock
    model = ResNet(block, a["layers"], a["width"], a["small_stem"])
    strict_load(model, report.state_dict, path)
    return model


def strict_load(
    model: nn.Module, sd: dict[str, torch.Tensor], path: Path, allow_missing_head: bool = False
) -> None:
    own = model.state_dict()
    shape_errors = [
        f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in sd.items()
        if k in own and own[k].shape != v.shape
    ]
    if shape_errors:
        raise UserError(
            f"{path}: wrong architecture, shapes differ:\n  " + "\n  ".join(shape_errors[:10])
        )
    missing = [k for k in own if k not in sd and not k.endswith("num_batches_tracked")]
    if allow_missing_head:
        missing = [k for k in missing if not k.startswith(HEAD_PREFIXES)]
    unexpected = [k for k in sd if k not in own]
    if missing or unexpected:
        raise UserError(
            f"{path}: refusing a partial load: {len(missing)} missing key(s) "
            f"{missing[:10]}, {len(unexpected)} unexpected key(s) {unexpected[:10]}"
        )
    model.load_state_dict(sd, strict=False)


def export_backbone(report: ImportReport, out: Path) -> None:
    """Write the backbone's tensors under torchvision key names (a plain state dict)."""
    from ..atomic import save_torch

    save_torch(out, report.state_dict)
