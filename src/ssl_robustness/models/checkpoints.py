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
# heads, dropped: classifiers, SwAV's projection head and prototypes (its published file is
# a torchvision ResNet-50's keys plus these), and the projectors and predictors of SSL methods
HEAD_PREFIXES = (
    "fc.",
    "head.",
    "classifier.",
    "projection_head.",
    "projector.",
    "predictor.",
    "prototypes.",
)
# module names of timm's own networks (ConvNeXt, RegNet, EfficientNet, ViT ...): keys with
# them may be a timm model's, worth an `arch: timm:<name>`; a plain custom CNN's never are
TIMM_MODULES = ("stem.", "stages.", "conv_stem.", "conv_head.", "patch_embed.")
SHOWN_LAYERS = 16  # layers listed of an unknown architecture
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
        n = sum(v.numel() for v in self.state_dict.values())
        unknown = self.arch is None and not (arch or "").startswith("timm:")
        fmt = self.format
        if unknown and not FORMAT_PREFIX[fmt]:  # nothing in the keys named a codebase
            fmt = "none recognised (keys without a codebase's prefix, read as they are)"
        lines = [
            f"file:      {self.path}",
            f"format:    {fmt}",
            f"arch:      {arch_in_words(self, arch)}",
        ]
        if self.arch is not None:
            lines.append(f"structure: {describe_structure(self.arch)}")
        if unknown:
            lines += [
                f"layers:    {layer_shapes(self.state_dict)}",
                f"tensors:   {len(self.state_dict)}, {n:,} values (heads apart)",
            ]
        else:
            lines.append(
                f"backbone:  {len(self.state_dict)} tensors, {n:,} values (torchvision key names)"
            )
        lines.append(f"dropped:   {dropped_in_words(self.dropped)}")
        return "\n".join(lines)


def dropped_in_words(dropped: list[str]) -> str:
    """The dropped keys by module, heads named as such: "projection_head.* (4 tensors: a
    projection head, not part of the backbone)"."""
    groups = Counter(k.split(".")[0] for k in dropped)
    parts = []
    for name, n in sorted(groups.items()):
        what = HEAD_WORDS.get(name)
        parts.append(f"{name}.* ({n} tensors: {what})" if what else f"{name}.* ({n})")
    return ", ".join(parts) or "none"


HEAD_WORDS = {
    "fc": "a classifier",
    "head": "a head",
    "classifier": "a classifier",
    "projection_head": "a projection head, not part of the backbone",
    "projector": "a projection head, not part of the backbone",
    "predictor": "a predictor head, not part of the backbone",
    "prototypes": "SwAV's prototypes",
}


def layer_shapes(sd: dict[str, torch.Tensor], shown: int = SHOWN_LAYERS) -> str:
    """Each module's weight shape in file order ("conv1 (32, 3, 3, 3), bn1 (32,)"): what an
    unknown architecture holds, for its author to recognise."""
    modules: dict[str, tuple[int, ...]] = {}
    for k, v in sd.items():
        module, _, leaf = k.rpartition(".")
        module = module or k
        if module not in modules or leaf == "weight":
            modules[module] = tuple(v.shape)
    words = [f"{m} {shape}" for m, shape in modules.items()]
    more = f", ... and {len(words) - shown} more" if len(words) > shown else ""
    return ", ".join(words[:shown]) + more


def unknown_architecture(report: ImportReport) -> str:
    """Why a file is no network this tool can build, with its layers, and the way out that can
    fit (a timm name only where something in the file points at timm)."""
    return (
        "an architecture this tool does not know (not a ResNet: no conv1 with layer1..layer4 "
        "residual blocks; not a vision transformer: no cls_token, pos_embed and "
        f"patch_embed); layers found: {layer_shapes(report.state_dict)}. {_way_out(report)}"
    )


def _way_out(report: ImportReport) -> str:
    """What can load the file: timm, when its arch field or its module names are timm's;
    else the networks this tool builds."""
    fa = report.file_arch if isinstance(report.file_arch, str) else None
    if fa and not fa.startswith("timm:"):
        from .backbones import timm_name_error

        why = timm_name_error(fa)
        if not why:
            return f"Its arch field names timm's model '{fa}': set arch: timm:{fa}"
        with contextlib.suppress(ImportError):
            import timm

            family = timm.list_models(f"{fa}*")[:5]
            if family:
                return (
                    f"Its arch field says '{fa}': if it is timm's, set arch: timm:<name> "
                    f"(timm has {', '.join(family)} ...)"
                )
    if any(k.startswith(TIMM_MODULES) for k in report.state_dict):
        return "Its module names are timm's: if it is a timm model, set arch: timm:<its name>"
    return (
        "This tool builds torchvision-style ResNets (any depth and width), the vision "
        "transformers of DINO, DINOv2, MAE, MoCo v3 and iBOT, and timm models by name; this "
        "file is none of them, so it cannot be imported as it is"
    )


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
    if arch.get("width") != 64 or len(arch.get("layers") or []) != 4:
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
    if isinstance(wanted, str) and wanted in STANDARD_RESNETS and report.arch is None:
        return f"{wanted} ({source}); the keys describe an architecture this tool does not know"
    if report.arch is None:
        return "an architecture this tool does not know (see layers; load says more)"
    if isinstance(wanted, dict):
        why = _bad_arch_record(wanted) if _complete(wanted) else "incomplete"
        if why:
            return f"the file's arch record {wanted} is unusable ({why}); see load"
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
        keys = f"; its keys describe {describe_structure(report.arch)}" if report.arch else ""
        if not _complete(wanted):
            raise UserError(f"{path}: the file's arch record is incomplete: {wanted}{keys}")
        why = _bad_arch_record(wanted)
        if why:
            raise UserError(f"{path}: the file's arch record {wanted}: {why}{keys}")
        return wanted
    if report.arch is None:
        if isinstance(wanted, str) and wanted in STANDARD_RESNETS:
            return standard_arch(wanted, {})  # built as asked: the strict load lists the keys
        raise UserError(f"{path}: {unknown_architecture(report)}")
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


def _complete(arch: dict[str, Any]) -> bool:
    return {"block", "layers", "width", "small_stem"} <= set(arch)


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


def check_arch_option(report: ImportReport | ViTReport, arch: str | None) -> None:
    """Refuse an `--arch` that cannot be what is built from this file, before anything is
    said about it: an unknown timm name (with the nearest names, as the config says), a
    ResNet name for a vision transformer, resnet_tiny for keys that describe no ResNet."""
    if not arch:
        return
    path = report.path
    if arch.startswith("timm:"):
        name = arch.removeprefix("timm:")
        if not name:
            raise UserError("--arch timm: needs a model name (timm:resnet50)")
        from .backbones import timm_name_error

        why = timm_name_error(name)
        if why:
            raise UserError(f"--arch: {why}")
        return
    if isinstance(report, ViTReport):
        if not arch.startswith("ViT"):
            short = report.vit.words().split(",")[0]
            raise UserError(
                f"--arch {arch}: {path} holds a vision transformer ({report.vit.words()}); "
                f"--arch takes its size ({short}) or timm:<name>"
            )
        return
    if arch.startswith("ViT"):
        raise UserError(f"--arch {arch}: {path} holds no vision transformer")
    if arch == CUSTOM_ARCH:
        if report.arch is None:
            raise UserError(
                f"--arch {CUSTOM_ARCH} builds the ResNet the file's keys describe, and "
                f"{path}'s describe none: {unknown_architecture(report)}"
            )
        return
    if arch not in STANDARD_RESNETS:
        names = ", ".join([*STANDARD_RESNETS, CUSTOM_ARCH])
        raise UserError(
            f"--arch: unknown '{arch}' (one of {names}; ViT-<size>/<patch> for a vision "
            "transformer; or timm:<name>)"
        )


def arch_differences(report: ImportReport | ViTReport, arch: str) -> list[str]:
    """Every key in which the file and the network `arch` names differ (mis-shaped, missing,
    unexpected), one a line: what `checkpoint inspect --arch` lists when the load is refused."""
    allow_head = arch.startswith("timm:") or isinstance(report, ViTReport)
    if isinstance(report, ViTReport):
        model = vit_model(report, arch)[0]
    elif arch.startswith("timm:"):
        model = TimmBackbone(arch.removeprefix("timm:")).model
    else:
        model = backbone_from_arch(
            report.arch if arch == CUSTOM_ARCH else standard_arch(arch, report.arch or {})
        )
    return difference_lines(model.state_dict(), report.state_dict, allow_head)


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


class KeyMismatch(UserError):
    """A strict load refused: the file's keys and the network's differ. Holds every
    difference (the message lists the first ones), for `checkpoint inspect` to list all."""

    def __init__(self, message: str, differences: list[str], counts: str) -> None:
        super().__init__(message)
        self.differences = differences
        self.counts = counts  # "3 mis-shaped, 95 missing and 7 unexpected key(s)"


def key_differences(
    own: dict[str, torch.Tensor], sd: dict[str, torch.Tensor], allow_missing_head: bool = False
) -> tuple[list[str], list[str], list[str]]:
    """(keys of different shape, keys the file lacks, keys the network lacks)."""
    mis_shaped = [k for k, v in sd.items() if k in own and own[k].shape != v.shape]
    missing = [k for k in own if k not in sd and not k.endswith("num_batches_tracked")]
    if allow_missing_head:
        missing = [k for k in missing if not k.startswith(HEAD_PREFIXES)]
    unexpected = [k for k in sd if k not in own]
    return mis_shaped, missing, unexpected


def difference_lines(
    own: dict[str, torch.Tensor], sd: dict[str, torch.Tensor], allow_missing_head: bool = False
) -> list[str]:
    """Every difference, one a line: mis-shaped, missing, unexpected."""
    mis_shaped, missing, unexpected = key_differences(own, sd, allow_missing_head)
    return (
        [
            f"mis-shaped {k}: file {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
            for k in mis_shaped
        ]
        + [f"missing    {k} {tuple(own[k].shape)}" for k in missing]
        + [f"unexpected {k} {tuple(sd[k].shape)}" for k in unexpected]
    )


def strict_load(
    model: nn.Module, sd: dict[str, torch.Tensor], path: Path, allow_missing_head: bool = False
) -> None:
    own = model.state_dict()
    mis_shaped, missing, unexpected = key_differences(own, sd, allow_missing_head)
    every = difference_lines(own, sd, allow_missing_head)
    counts = (
        f"{len(mis_shaped)} mis-shaped, {len(missing)} missing and {len(unexpected)} "
        "unexpected key(s)"
    )
    partial = (
        f"refusing a partial load: {len(missing)} missing key(s) "
        f"{missing[:20]}, {len(unexpected)} unexpected key(s) {unexpected[:20]}"
    )
    if mis_shaped:
        shapes = [
            f"{k}: file {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}" for k in mis_shaped
        ]
        also = f"\nand {partial}" if missing or unexpected else ""
        raise KeyMismatch(
            f"{path}: wrong architecture, shapes differ:\n  " + "\n  ".join(shapes[:10]) + also,
            every,
            counts,
        )
    if missing or unexpected:
        raise KeyMismatch(f"{path}: {partial}", every, counts)
    broken = [
        k for k, v in sd.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())
    ]
    if broken:
        raise UserError(
            f"{path}: {len(broken)} tensor(s) hold NaN or infinite values: {broken[:10]}; "
            "refused (a diverged or damaged training)"
        )
    model.load_state_dict(sd, strict=False)


def export_backbone(report: ImportReport, out: Path) -> None:
    """Write the backbone's tensors under torchvision key names (a plain state dict)."""
    from ..atomic import save_torch

    save_torch(out, report.state_dict)
