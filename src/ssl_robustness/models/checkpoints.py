"""Import SSL backbones from the checkpoint formats of the main codebases, strictly.

A checkpoint file is untrusted input: it is read with `torch.load(weights_only=True)`, which
refuses pickled code. Keys are mapped to torchvision names, the projection/classifier heads
are dropped, and the load is strict: any missing or unexpected key refuses the file.

The network built is never guessed from whichever keys happen to be present: the file's own
`arch` field (MoCo's "resnet50", or our arch record) or the caller's `arch` names it, else the
keys are matched against torchvision's standard ResNets. A file whose keys are a standard
ResNet's less some (a ResNet-18 without `layer4.1.*`) is refused with the missing keys listed,
not loaded as a smaller network. A 3x3 `conv1` is solo-learn's CIFAR stem (stride 1,
padding 2, no max-pool), and that is the stem built.
"""

from __future__ import annotations

import argparse
import contextlib
import pickle
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..atomic import pickled_code_detail
from ..errors import UserError
from ..names import RESNET_FORMATS
from .backbones import STANDARD_RESNETS, TimmBackbone, backbone_from_arch
from .vit_checkpoints import ViTReport, read_vit, vit_backbone, vit_model

FORMAT_PREFIX = {  # the backbone's key prefix in each of names.RESNET_FORMATS
    "moco": "encoder_q.",
    "simsiam": "encoder.",
    "lightning": "backbone.",
    "mmselfsup": "backbone.",
    "vissl": "_feature_blocks.",
    "torchvision": "",
    "timm": "",
}
assert set(FORMAT_PREFIX) == set(RESNET_FORMATS), "a format without its prefix"
# heads, dropped: classifiers, and SwAV's projection head and prototypes (its published file is
# a torchvision ResNet-50's keys plus these)
HEAD_PREFIXES = ("fc.", "head.", "classifier.", "projection_head.", "prototypes.")
# `arch` values that are not torchvision names: build the ResNet the keys describe
CUSTOM_ARCH = "resnet_tiny"
SOLO_CIFAR_STEM_PADDING = 2
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
    arch: dict[str, Any] | None = None  # the ResNet structure the keys describe
    file_arch: str | dict[str, Any] | None = None  # the file's own `arch` field, if any

    def summary(self, arch: str | None = None) -> str:
        groups = Counter(k.split(".")[0] for k in self.dropped)
        dropped = ", ".join(f"{k}.* ({n})" for k, n in sorted(groups.items())) or "none"
        n = sum(v.numel() for v in self.state_dict.values())
        lines = [
            f"file:      {self.path}",
            f"format:    {self.format}",
            f"arch:      {arch_in_words(self, arch)}",
        ]
        if self.arch is not None:
            lines.append(f"structure: {describe_structure(self.arch)}")
        lines += [
            f"backbone:  {len(self.state_dict)} tensors, {n:,} values (torchvision key names)",
            f"dropped:   {dropped}",
        ]
        return "\n".join(lines)


def read_checkpoint(path: Path) -> Any:
    """torch.load with weights_only=True and clear messages for refused or broken files."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint file not found")
    _refuse_non_checkpoint(path)
    try:
        # DINO's and iBOT's full checkpoints hold their argparse options: plain values (torch
        # < 2.5 has no safe_globals and refuses them as pickled code)
        allow = getattr(torch.serialization, "safe_globals", None)
        with allow([argparse.Namespace]) if allow else contextlib.nullcontext():
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = pickled_code_detail(exc)
        if detail:
            raise UserError(
                f"{path}: carries pickled code; refused: weights_only load. If you trust the "
                f"file, re-save just its state_dict. Detail: {detail}"
            ) from None
        raise UserError(
            f"{path}: cannot read checkpoint (truncated or not a PyTorch file): "
            f"{str(exc).splitlines()[-1][:200]}"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any other file unpickles into any error
        # (a text file named .pth: `KeyError: 101`); an untrusted file is refused, not a bug
        raise UserError(
            f"{path}: cannot read checkpoint (truncated or not a PyTorch file): "
            f"{type(exc).__name__}: {str(exc)[:200]}"
        ) from None


# what torch.save writes first: a zip archive (since torch 1.6) or a pickle (protocol 2+)
CHECKPOINT_STARTS = (b"PK\x03\x04", b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


def _refuse_non_checkpoint(path: Path) -> None:
    """A file torch.save cannot have written (a config, a text file) is named as such
    before torch.load answers with its own boilerplate."""
    with path.open("rb") as f:
        head = f.read(16)
    if not head.startswith(CHECKPOINT_STARTS):
        raise UserError(
            f"{path}: cannot read checkpoint (truncated or not a PyTorch file): not a "
            f"checkpoint file (torch.save writes a zip archive or a pickle; this file begins "
            f"{head!r})"
        )


def _tensor_dict(obj: Any) -> dict[str, torch.Tensor] | None:
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        odd = [k for k in obj if not isinstance(k, str)]
        if odd:
            raise UserError(
                f"a dict of tensors keyed by {odd[0]!r} ({type(odd[0]).__name__}): a state "
                "dict's keys are parameter names"
            )
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
    """Block type, blocks per stage, base width and stem of a torchvision-keyed ResNet.

    A 3x3 conv1 is taken as solo-learn's CIFAR stem (stride 1, padding 2, no max-pool)."""
    if "conv1.weight" not in sd:
        raise UserError("cannot infer the architecture: no conv1.weight (set the arch explicitly)")
    conv1 = sd["conv1.weight"]
    if conv1.ndim != 4:
        raise UserError(
            f"conv1.weight has shape {tuple(conv1.shape)}, not a convolution's "
            "(out, in, h, w): not a ResNet's first layer"
        )
    width = int(conv1.shape[0])
    bottleneck = any(k.startswith("layer1.0.conv3.") for k in sd)
    layers = []
    for stage in range(1, 5):
        blocks = {int(m.group(1)) for k in sd if (m := re.match(rf"layer{stage}\.(\d+)\.", k))}
        layers.append(max(blocks) + 1 if blocks else 0)
    arch: dict[str, Any] = {
        "block": "Bottleneck" if bottleneck else "BasicBlock",
        "layers": layers,
        "width": width,
        "small_stem": conv1.shape[-1] == 3,
    }
    inner = sd.get("layer1.0.conv1.weight")
    if bottleneck and inner is not None and int(inner.shape[0]) != width:
        arch["width_per_group"] = int(inner.shape[0]) * 64 // width
    if arch["small_stem"]:
        arch["stem_padding"] = SOLO_CIFAR_STEM_PADDING
    return arch


def describe_structure(arch: dict[str, Any]) -> str:
    """An arch record in words: block, blocks per stage, widths and stem."""
    if "timm" in arch:
        return f"timm model {arch['timm']}"
    wide = f", width per group {arch['width_per_group']}" if "width_per_group" in arch else ""
    if arch.get("small_stem"):
        pad = arch.get("stem_padding", 1)
        who = " (solo-learn CIFAR)" if pad == SOLO_CIFAR_STEM_PADDING else ""
        stem = f"3x3 stem{who}: stride 1, padding {pad}, no max-pool"
    else:
        stem = "ImageNet stem: 7x7 conv stride 2, 3x3 max-pool"
    return f"{arch['block']} {arch['layers']}, width {arch['width']}{wide}; {stem}"


def match_standard(arch: dict[str, Any]) -> tuple[str | None, str | None]:
    """(the standard ResNet the structure is, the smallest one it is a truncated copy of)."""
    if arch.get("width") != 64:
        return None, None
    same_kind = [
        (name, layers)
        for name, (block, layers, per_group) in STANDARD_RESNETS.items()
        if block.__name__ == arch["block"] and per_group == arch.get("width_per_group", 64)
    ]
    for name, layers in same_kind:
        if layers == arch["layers"]:
            return name, None
    for name, layers in same_kind:
        if all(a <= b for a, b in zip(arch["layers"], layers, strict=True)):
            return None, name
    return None, None


def standard_arch(name: str, stem_from: dict[str, Any]) -> dict[str, Any]:
    """The arch record of torchvision's `name`, with the stem found in the file."""
    block, layers, per_group = STANDARD_RESNETS[name]
    arch: dict[str, Any] = {
        "block": block.__name__,
        "layers": list(layers),
        "width": 64,
        "small_stem": bool(stem_from.get("small_stem")),
    }
    if per_group != 64:
        arch["width_per_group"] = per_group
    if arch["small_stem"]:
        arch["stem_padding"] = stem_from.get("stem_padding", 1)
    return arch


def arch_in_words(report: ImportReport, arch: str | None = None) -> str:
    """What the file is, named: "resnet50", "resnet18 (the file's arch field)", ..."""
    wanted, source = _wanted_arch(report, arch)
    if isinstance(wanted, str) and wanted.startswith("timm:"):
        return f"{wanted} ({source})"
    if report.arch is None:
        return "not a ResNet (set arch: timm:<name> for other models)"
    if isinstance(wanted, dict):
        name = match_standard(wanted)[0] or "custom ResNet"
        return f"{name} ({source}: {describe_structure(wanted)})"
    if wanted == CUSTOM_ARCH:
        return f"custom ResNet ({source})"
    if wanted in STANDARD_RESNETS:
        return f"{wanted} ({source})"
    name, truncated_of = match_standard(report.arch)
    if name:
        return name
    if truncated_of:
        return f"{truncated_of} with blocks missing (refused: see load)"
    return "custom ResNet (not a torchvision architecture)"


def _wanted_arch(report: ImportReport, arch: str | None) -> tuple[str | dict | None, str]:
    """The architecture asked for: the caller's `arch`, else the file's own field."""
    if arch:
        return arch, "as asked"
    fa = report.file_arch
    if isinstance(fa, dict) or (
        isinstance(fa, str) and (fa in STANDARD_RESNETS or fa.startswith("timm:"))
    ):
        return fa, "the file's arch field"
    return None, "from the keys"


def resolve_arch(report: ImportReport, arch: str | None = None) -> dict[str, Any]:
    """The arch record to build: named by `arch` or the file, else a standard ResNet the keys
    match exactly; a standard one with blocks missing is refused, listing the missing keys."""
    path = Path(report.path)
    wanted, _ = _wanted_arch(report, arch)
    if isinstance(wanted, dict):
        if not {"block", "layers", "width", "small_stem"} <= set(wanted):
            raise UserError(f"{path}: the file's arch record is incomplete: {wanted}")
        why = _bad_arch_record(wanted)
        if why:
            raise UserError(f"{path}: the file's arch record {wanted}: {why}")
        return wanted
    if report.arch is None:
        raise UserError(f"{path}: not a ResNet; set arch: timm:<name> for other models")
    if wanted == CUSTOM_ARCH:
        return report.arch
    if wanted is not None and wanted not in STANDARD_RESNETS:
        names = ", ".join([*STANDARD_RESNETS, CUSTOM_ARCH])
        raise UserError(f"arch: unknown '{wanted}' (one of {names}, or timm:<name>)")
    name = wanted or match_standard(report.arch)[0]
    if name is None:
        truncated_of = match_standard(report.arch)[1]
        if truncated_of is None:
            return report.arch  # not a torchvision architecture: a custom width or depth
        missing = _missing_keys(standard_arch(truncated_of, report.arch), report.state_dict)
        more = f" ... and {len(missing) - 30} more" if len(missing) > 30 else ""
        raise UserError(
            f"{path}: a {truncated_of} with {len(missing)} key(s) missing (blocks per stage "
            f"{report.arch['layers']}, {truncated_of} has {STANDARD_RESNETS[truncated_of][1]}): "
            f"{missing[:30]}{more}. If it really is a smaller custom ResNet, set arch: "
            f"{CUSTOM_ARCH}"
        )
    a = report.arch
    block, _, per_group = STANDARD_RESNETS[name]
    if (
        a["block"] != block.__name__
        or a["width"] != 64
        or a.get("width_per_group", 64) != per_group
    ):
        raise UserError(f"{path}: holds a {describe_structure(a)}, not {name}")
    return standard_arch(name, a)


def _bad_arch_record(arch: dict[str, Any]) -> str:
    """What makes an arch record unbuildable ('' when nothing): checked before building."""
    if arch["block"] not in ("BasicBlock", "Bottleneck"):
        return f"unknown block {arch['block']!r} (BasicBlock or Bottleneck)"
    layers = arch["layers"]
    if not (
        isinstance(layers, list)
        and len(layers) == 4
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in layers)
    ):
        return f"layers must be 4 block counts >= 1, got {layers!r}"
    for key in ("width", "width_per_group", "stem_padding"):
        v = arch.get(key, 1)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            return f"{key} must be a positive integer, got {v!r}"
    if not isinstance(arch["small_stem"], bool):
        return f"small_stem must be true or false, got {arch['small_stem']!r}"
    return ""


def _missing_keys(arch: dict[str, Any], sd: dict[str, torch.Tensor]) -> list[str]:
    own = backbone_from_arch(arch).state_dict()
    return [k for k in own if k not in sd and not k.endswith("num_batches_tracked")]


def inspect_checkpoint(path: Path, fmt: str = "auto") -> ImportReport | ViTReport:
    obj = read_checkpoint(path)
    vit = read_vit(obj, path, fmt)  # a vision transformer (vit_checkpoints.py), else None
    if vit is not None:
        return vit
    try:
        detected, raw = detect_format(obj)
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None
    # formats with one key prefix read alike (lightning/mmselfsup: a file's `meta` field may go)
    if fmt not in ("auto", detected) and FORMAT_PREFIX[fmt] != FORMAT_PREFIX[detected]:
        raise UserError(f"{path}: looks like {detected}, not {fmt} (keys: {list(raw)[:5]})")
    fmt = detected if fmt == "auto" else fmt
    kept, dropped = to_backbone_keys(fmt, raw)
    if not kept:
        raise UserError(f"{path}: no backbone tensors found for format {fmt}")
    report = ImportReport(str(path), fmt, kept, dropped)
    if isinstance(obj, dict) and isinstance(obj.get("arch"), (str, dict)):
        report.file_arch = obj["arch"]
    # a ResNet has residual blocks: conv1 alone (a VGG's first layer, `0.weight` read as a
    # lightly child) is another network, never "a resnet18 with 99 keys missing"
    if "conv1.weight" in kept and any(re.match(r"layer[1-4]\.\d+\.", k) for k in kept):
        try:
            report.arch = infer_resnet_arch(kept)
        except UserError as exc:
            raise UserError(f"{path}: {exc}") from None
    return report


def load_backbone(
    path: Path, fmt: str = "auto", arch: str | None = None
) -> tuple[nn.Module, ImportReport | ViTReport]:
    """Build the backbone the file describes and load it strictly."""
    report = inspect_checkpoint(path, fmt)
    return backbone_from_report(report, arch), report


def backbone_from_report(report: ImportReport | ViTReport, arch: str | None = None) -> nn.Module:
    """The backbone an inspected file describes, loaded strictly (refuses partial loads)."""
    path = Path(report.path)
    if isinstance(report, ViTReport):
        vit, record = vit_model(report, arch)
        strict_load(vit, report.state_dict, path, allow_missing_head=True)
        return vit_backbone(vit, record, report)
    wanted, _ = _wanted_arch(report, arch)
    if isinstance(wanted, str) and wanted.startswith("timm:"):
        model: nn.Module = TimmBackbone(wanted.removeprefix("timm:"))
        strict_load(model.model, report.state_dict, path, allow_missing_head=True)
        return model
    model = backbone_from_arch(resolve_arch(report, arch))
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
    broken = [
        k for k, v in sd.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())
    ]
    if broken:
        raise UserError(
            f"{path}: {len(broken)} tensor(s) hold NaN or infinite values: {broken[:10]}; "
            "refused (a diverged or damaged training)"
        )
    missing = [k for k in own if k not in sd and not k.endswith("num_batches_tracked")]
    if allow_missing_head:
        missing = [k for k in missing if not k.startswith(HEAD_PREFIXES)]
    unexpected = [k for k in sd if k not in own]
    if missing or unexpected:
        raise UserError(
            f"{path}: refusing a partial load: {len(missing)} missing key(s) "
            f"{missing[:20]}, {len(unexpected)} unexpected key(s) {unexpected[:20]}"
        )
    model.load_state_dict(sd, strict=False)


def export_backbone(report: ImportReport, out: Path) -> None:
    """Write the backbone's tensors under torchvision key names (a plain state dict)."""
    from ..atomic import save_torch

    save_torch(out, report.state_dict)
