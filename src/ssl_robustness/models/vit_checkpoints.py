"""Vision-transformer checkpoints of the SSL codebases, read as published into timm's ViT.

Layouts read (after any DDP `module.` prefix is removed):
- `dino`: DINO's backbone files, a bare state dict of timm's key names; or a full training
  checkpoint, `teacher`/`student` state dicts with `backbone.` prefixes and DINO heads: the
  teacher is read (what DINO evaluates and releases), the student and the heads are dropped;
- `ibot`: iBOT's backbone files (`state_dict`, timm's key names) or its full checkpoints (as
  DINO's; a patch head `head.last_layer2` or a `masked_embed` token names them iBOT);
- `dinov2`: torch.hub's DINOv2 files: bare, with layer-scale gammas (`ls1.gamma`), an unused
  `mask_token` (dropped) and, for the `_reg` models, `register_tokens`; with registers the class
  token's position embedding is added to the class token and the embeddings kept for patches
  only (the same network: registers carry no position embedding);
- `mae`: MAE's `model` state dict; a full one's decoder (`decoder_*`, `mask_token`) is dropped;
- `mocov3`: MoCo v3's `state_dict` with `module.base_encoder.` (its MLP `head` dropped, the
  momentum encoder and predictor too).

The structure is read from the keys, except the number of attention heads, which no weight
holds: dim / 64 as in every ViT above, but 12 for MoCo v3's ViT-S (its `vit_small`). Files are
read with `weights_only=True` (checkpoints.read_checkpoint) and loaded strictly
(checkpoints.strict_load): a missing or unexpected key refuses the file, listing the keys.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import UserError
from ..names import VIT_FORMATS
from .vit import ViTArch, ViTBackbone, build_vit

# the layouts a file may have, and the formats that may read each
PLAIN, TRAINING, BASE_ENCODER = "plain", "teacher/student", "base_encoder"
READS = {
    PLAIN: ("dino", "ibot", "dinov2", "mae", "timm"),
    TRAINING: ("dino", "ibot"),
    BASE_ENCODER: ("mocov3",),
}
WHO = {"dino": "DINO", "ibot": "iBOT", "dinov2": "DINOv2", "mae": "MAE", "mocov3": "MoCo v3"}
# not part of the encoder: heads, MAE's decoder, the mask tokens of masked-image modelling
DROPPED = ("head.", "decoder_", "mask_token", "masked_embed")
STANDARD_DEPTH = {192: 12, 384: 12, 768: 12, 1024: 24, 1280: 32, 1536: 40}
# heads of the standard sizes (Ti, S, B, L, H, g): not dim / 64 for ViT-H/14 (16) and g (24)
STANDARD_HEADS = {192: 3, 384: 6, 768: 12, 1024: 16, 1280: 16, 1536: 24}
MOCOV3_SMALL_HEADS = 12  # moco-v3's vits.py: vit_small has num_heads=12, not DeiT's 6


@dataclass
class ViTReport:
    """What a ViT checkpoint holds (checkpoints.ImportReport's fields, for a ViT)."""

    path: str
    format: str
    state_dict: dict[str, torch.Tensor]  # timm key names
    vit: ViTArch
    role: str  # "DINO teacher", "MoCo v3 base encoder", ...
    dropped: list[str] = field(default_factory=list)
    file_arch: str | dict[str, Any] | None = None

    @property
    def arch(self) -> dict[str, Any]:
        return self.vit.record()

    def words(self) -> str:
        """ "ViT-S/16, 12 blocks, dim 384, DINO teacher" """
        return f"{self.vit.words()}, {self.role}"

    def summary(self, arch: str | None = None) -> str:
        groups = Counter(k.split(".")[0] for k in self.dropped)
        dropped = ", ".join(f"{k}.* ({n})" for k, n in sorted(groups.items())) or "none"
        n = sum(v.numel() for v in self.state_dict.values())
        asked = f" (built as {arch})" if arch else ""
        return "\n".join(
            [
                f"file:      {self.path}",
                f"format:    {self.format}",
                f"arch:      {self.words()}{asked}",
                f"structure: {self.vit.structure()}",
                "input:     ImageNet mean/std normalisation (as all these codebases evaluate); "
                "image_size sets the size, the position embeddings are interpolated",
                f"backbone:  {len(self.state_dict)} tensors, {n:,} values (timm key names)",
                f"dropped:   {dropped}",
            ]
        )


def _tensors(obj: Any) -> dict[str, torch.Tensor] | None:
    """A dict of tensors under parameter names, any `module.` prefix removed; None otherwise
    (the ResNet reader then names what is wrong, e.g. integer keys)."""
    if not isinstance(obj, dict) or not obj:
        return None
    if all(isinstance(v, torch.Tensor) for v in obj.values()) and all(
        isinstance(k, str) for k in obj
    ):
        return {k.removeprefix("module."): v for k, v in obj.items()}
    return None


def _is_vit(sd: dict[str, torch.Tensor]) -> bool:
    return {"cls_token", "pos_embed", "patch_embed.proj.weight"} <= set(sd)


def _split(sd: dict[str, torch.Tensor], prefix: str) -> tuple[dict[str, torch.Tensor], list[str]]:
    """(tensors under `prefix` without it, the other keys)."""
    kept = {k.removeprefix(prefix): v for k, v in sd.items() if k.startswith(prefix)}
    return kept, [k for k in sd if not k.startswith(prefix)]


def find_layout(obj: Any) -> tuple[str, str, dict[str, torch.Tensor], list[str]] | None:
    """(layout, the format it looks like, the encoder's raw tensors, dropped keys), or None
    when the file holds no ViT."""
    if isinstance(obj, dict) and _tensors(obj.get("teacher")) is not None:
        teacher = _tensors(obj["teacher"]) or {}
        kept, other = _split(teacher, "backbone.")
        if not _is_vit(kept):
            return None
        student = _tensors(obj.get("student")) or {}
        ibot = "head.last_layer2.weight" in teacher or any("masked_embed" in k for k in teacher)
        dropped = [f"teacher.{k}" for k in other] + [f"student.{k}" for k in student]
        return TRAINING, "ibot" if ibot else "dino", kept, dropped
    container, sd = None, None
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if sd is None and (sd := _tensors(obj.get(key))) is not None:
                container = key
    sd = sd if sd is not None else _tensors(obj)
    if sd is None:
        return None
    if any(k.startswith("base_encoder.") for k in sd):
        kept, other = _split(sd, "base_encoder.")
        return (BASE_ENCODER, "mocov3", kept, other) if _is_vit(kept) else None
    if not _is_vit(sd):
        return None
    if "register_tokens" in sd or "blocks.0.ls1.gamma" in sd:
        fmt = "dinov2"
    elif container == "model" or any(k.startswith("decoder_") for k in sd):
        fmt = "mae"
    elif container == "state_dict" or "masked_embed" in sd:
        fmt = "ibot"
    else:
        fmt = "dino"
    return PLAIN, fmt, sd, []


def role_of(fmt: str, layout: str, raw: dict[str, torch.Tensor], detected: str, asked: bool) -> str:
    """The file's part in its codebase, in words (a plain layout found by `auto` is named by
    its layout, not by a codebase the keys cannot tell apart)."""
    if fmt == "timm":
        return "bare timm state dict"
    who = WHO[fmt]
    if layout == TRAINING:
        return f"{who} teacher (of a full training checkpoint)"
    if layout == BASE_ENCODER:
        return "MoCo v3 base encoder"
    if fmt == "dinov2":
        # torch.hub's `register_tokens`, or timm's `reg_token` (an exported file)
        hub_regs = raw.get("register_tokens")
        regs = hub_regs if hub_regs is not None else raw.get("reg_token")
        layout = "timm layout" if "reg_token" in raw else "torch.hub layout"
        return f"DINOv2 ({layout}" + (f", {regs.shape[1]} registers)" if regs is not None else ")")
    if fmt == "mae":
        full = any(k.startswith("decoder_") for k in raw)
        return "MAE encoder" + (" (decoder dropped)" if full else "")
    if not asked:
        where = "under state_dict" if fmt == "ibot" else "bare"
        return f"plain ViT keys {where} (the layout of {who}'s backbone files)"
    return f"{who} backbone"


def read_vit(obj: Any, path: Path, fmt: str = "auto") -> ViTReport | None:
    """The ViT a loaded checkpoint holds, under timm's key names; None when it holds none."""
    found = find_layout(obj)
    if found is None:
        if fmt in VIT_FORMATS:
            raise UserError(f"{path}: no vision-transformer weights found for format {fmt}")
        return None
    layout, detected, raw, dropped = found
    asked = fmt != "auto"
    if not asked:
        fmt = detected
    if fmt not in READS[layout]:
        if fmt not in (*VIT_FORMATS, "timm"):
            raise UserError(f"{path}: holds a vision transformer ({WHO[detected]}), not {fmt}")
        raise UserError(f"{path}: looks like {WHO[detected]} ({layout} layout), not {fmt}")
    kept = {}
    for k, v in raw.items():
        if k.startswith(DROPPED):
            dropped.append(k)
        else:
            kept[k] = v
    if "register_tokens" in kept:
        kept = _fold_registers(kept)
    file_arch = obj.get("arch") if isinstance(obj, dict) else None
    file_arch = file_arch if isinstance(file_arch, (str, dict)) else None
    arch = infer_vit_arch(kept, path, fmt, file_arch)
    role = role_of(fmt, layout, raw, detected, asked)
    return ViTReport(str(path), fmt, kept, arch, role, sorted(dropped), file_arch)


def _fold_registers(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """DINOv2 with registers to timm's layout: registers as `reg_token`, the class token's
    position embedding added to it, the position embeddings of the patches kept."""
    out = dict(sd)
    pos = out.pop("pos_embed")
    out["reg_token"] = out.pop("register_tokens")
    out["cls_token"] = out["cls_token"] + pos[:, :1]
    out["pos_embed"] = pos[:, 1:]
    return out


def heads_for(dim: int, fmt: str, file_arch: Any) -> int:
    """Attention heads (not in the weights): the standard size's (MoCo v3's ViT-S has 12),
    else dim / 64, the head width of every standard ViT but H and g.

    >>> heads_for(1280, "mae", None), heads_for(384, "mocov3", None), heads_for(128, "dino", None)
    (16, 12, 2)
    """
    if fmt == "mocov3" and (dim == 384 or file_arch == "vit_small"):
        return MOCOV3_SMALL_HEADS
    return STANDARD_HEADS.get(dim, max(1, dim // 64))


def infer_vit_arch(
    sd: dict[str, torch.Tensor], path: Path, fmt: str, file_arch: Any = None
) -> ViTArch:
    """The structure the keys describe; a standard size with blocks missing is refused."""
    proj = sd["patch_embed.proj.weight"]
    if proj.ndim != 4 or proj.shape[-1] != proj.shape[-2]:
        raise UserError(f"{path}: patch_embed.proj.weight has shape {tuple(proj.shape)}")
    dim, patch = int(proj.shape[0]), int(proj.shape[-1])
    blocks = sorted({int(m.group(1)) for k in sd if (m := re.match(r"blocks\.(\d+)\.", k))})
    if not blocks:
        raise UserError(f"{path}: a ViT without blocks.*")
    depth = blocks[-1] + 1
    absent = sorted(set(range(depth)) - set(blocks))
    standard = STANDARD_DEPTH.get(dim)
    if standard is not None and depth < standard:
        absent += list(range(depth, standard))
    if absent:
        raise UserError(
            f"{path}: refusing a partial load: blocks {absent} missing (dim {dim} is a "
            f"{standard or depth}-block ViT): no blocks.{absent[0]}.* keys"
        )
    fc1 = sd.get("blocks.0.mlp.fc1.weight")
    if fc1 is None:
        raise UserError(f"{path}: no blocks.0.mlp.fc1.weight: not a plain-MLP ViT (SwiGLU?)")
    registers = int(sd["reg_token"].shape[1]) if "reg_token" in sd else 0
    positions = int(sd["pos_embed"].shape[1]) - (0 if registers else 1)
    grid = math.isqrt(max(positions, 0))
    if grid * grid != positions or grid == 0:
        raise UserError(
            f"{path}: pos_embed {tuple(sd['pos_embed'].shape)} is no square grid of patches"
        )
    return ViTArch(
        patch=patch,
        dim=dim,
        depth=depth,
        heads=heads_for(dim, fmt, file_arch),
        mlp_hidden=int(fc1.shape[0]),
        grid=grid,
        registers=registers,
        layer_scale="blocks.0.ls1.gamma" in sd,
        qkv_bias="blocks.0.attn.qkv.bias" in sd,
    )


def vit_model(report: ViTReport, arch: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """(the unloaded timm ViT to load the report's tensors into, its arch record): the
    structure the keys describe, checked against `arch` ("ViT-S/16" as the registry names it,
    "ViT-S/16, 12 blocks, dim 384"), or timm's model `timm:<name>`."""
    path = report.path
    if arch is None or arch.startswith("ViT"):
        words = report.vit.words()
        if arch and arch not in (words, words.split(",")[0]):
            raise UserError(f"{path}: holds a {report.vit.words()}, not {arch}")
        return build_vit(report.vit), report.vit.record()
    if arch.startswith("timm:"):
        name = arch.removeprefix("timm:")
        from .backbones import timm_name_error

        why = timm_name_error(name)  # needs timm, and a name it has (nearest names, else)
        if why:
            raise UserError(f"arch '{arch}': {why}")
        import timm

        return timm.create_model(name, pretrained=False, num_classes=0), {"timm": name}
    raise UserError(f"{path}: holds a vision transformer ({report.vit.words()}), not {arch}")


def vit_backbone(
    model: nn.Module, record: dict[str, Any], report: ViTReport, features: str = "cls"
) -> ViTBackbone:
    return ViTBackbone(model, record, report.vit.patch, features)
