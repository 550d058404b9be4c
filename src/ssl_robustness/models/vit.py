"""Vision transformers imported from SSL checkpoints: a timm VisionTransformer built to the
structure the file's keys describe, at the file's own position-embedding grid (so the load is
exact), then resized to the study's input size by interpolating the position embeddings.

What a probe sees is the backbone's `features` choice:
- `cls`: the class token after the final norm (the default; what DINO, MoCo v3 and iBOT probe);
- `mean`: the mean of the patch tokens after the final norm (class and register tokens left
  out, as DINOv2's `x_norm_patchtokens`);
- `dino`: the linear-evaluation recipe of DINO and DINOv2: the class tokens of the last
  `DINO_LAST_BLOCKS` blocks (each through the final norm) concatenated with the mean patch
  token of the last block: (DINO_LAST_BLOCKS + 1) x dim features. (DINO itself used 4 blocks
  without the mean for ViT-S and 1 block with it for ViT-B; DINOv2 chooses among 1 or 4 blocks,
  with or without the mean, on validation; this is the largest of those, fixed.)

The position embeddings are resampled by timm's `resample_abs_pos_embed` (bicubic, antialiased),
close to but not bit-equal with DINOv2's own `interpolate_pos_encoding`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from ..errors import UserError

VIT_FEATURES = ("cls", "mean", "dino")
DINO_LAST_BLOCKS = 4  # DINO's ViT-S/16 linear eval (n_last_blocks 4); DINOv2's 4-block probe
LAYER_SCALE_INIT = 1e-5  # any value: layer-scale parameters are read from the file
# the sizes of the ViT papers, by embedding dimension
SIZE_NAMES = {192: "Ti", 384: "S", 768: "B", 1024: "L", 1280: "H", 1536: "g"}
# activation bytes one image may take in the feature pass (see `feature_batch`)
FEATURE_PASS_BUDGET = 2 * 1024**3


@dataclass(frozen=True)
class ViTArch:
    """The structure of a plain ViT (pre-norm blocks, GELU MLP, LayerNorm eps 1e-6), as read
    from a checkpoint's keys; `heads` is not in the weights (see vit_checkpoints.heads_for)."""

    patch: int
    dim: int
    depth: int
    heads: int
    mlp_hidden: int
    grid: int  # the position embeddings' grid: the size trained at is grid x patch
    registers: int = 0  # DINOv2's register tokens (no position embedding of their own)
    layer_scale: bool = False  # DINOv2's ls1/ls2 gammas
    qkv_bias: bool = True

    @property
    def trained_size(self) -> int:
        return self.grid * self.patch

    def words(self) -> str:
        """ "ViT-S/16, 12 blocks, dim 384" """
        size = SIZE_NAMES.get(self.dim)
        name = f"ViT-{size}/{self.patch}" if size else f"ViT/{self.patch}"
        return f"{name}, {self.depth} blocks, dim {self.dim}"

    def structure(self) -> str:
        extra = [f"{self.heads} heads", f"MLP {self.mlp_hidden}"]
        extra.append(
            f"position embeddings for {self.grid}x{self.grid} patches ({self.trained_size} px)"
        )
        if self.registers:
            extra.append(f"{self.registers} register tokens")
        if self.layer_scale:
            extra.append("layer-scale")
        return ", ".join(extra)

    def record(self) -> dict[str, Any]:
        return {"vit": asdict(self)}


def _timm() -> Any:
    try:
        import timm  # noqa: F401
        from timm.models.vision_transformer import VisionTransformer
    except ImportError:
        raise UserError(
            "vision transformers need timm: pip install 'ssl-robustness[timm]'"
        ) from None
    return VisionTransformer


def build_vit(arch: ViTArch) -> nn.Module:
    """The timm VisionTransformer of `arch` at its trained grid, without a classifier."""
    vision_transformer = _timm()
    return vision_transformer(
        img_size=arch.trained_size,
        patch_size=arch.patch,
        embed_dim=arch.dim,
        depth=arch.depth,
        num_heads=arch.heads,
        mlp_ratio=arch.mlp_hidden / arch.dim,
        qkv_bias=arch.qkv_bias,
        init_values=LAYER_SCALE_INIT if arch.layer_scale else None,
        reg_tokens=arch.registers,
        # with registers, the class token's position embedding is folded into the token
        # (vit_checkpoints.py) and the embeddings cover the patches only
        no_embed_class=arch.registers > 0,
        num_classes=0,
    )


class ViTBackbone(nn.Module):
    """A timm ViT returning the chosen features; `arch` is its record, `input_size` the image
    size its position embeddings are laid out for."""

    def __init__(
        self, model: nn.Module, arch: dict[str, Any], patch: int, features: str = "cls"
    ) -> None:
        super().__init__()
        self.model = model
        self.arch = arch
        self.patch = patch
        self.depth = len(model.blocks)
        self.last_blocks = min(DINO_LAST_BLOCKS, self.depth)
        self.choose(features)

    def choose(self, features: str) -> None:
        """Which features `forward` returns (the module docstring lists them)."""
        if features not in VIT_FEATURES:
            raise UserError(f"features: unknown '{features}' (one of {', '.join(VIT_FEATURES)})")
        self.features = features
        dim = int(self.model.embed_dim)
        self.feature_dim = dim * (self.last_blocks + 1) if features == "dino" else dim

    @property
    def input_size(self) -> int:
        return int(self.model.patch_embed.img_size[0])

    @property
    def tokens(self) -> int:
        """Tokens per image at the input size: patches plus class and register tokens."""
        return int(self.model.patch_embed.num_patches) + int(self.model.num_prefix_tokens)

    def set_input_size(self, size: int) -> None:
        """Lay the position embeddings out for `size` px (bicubic interpolation of the grid)."""
        if size % self.patch:
            lower = size // self.patch * self.patch
            raise UserError(
                f"image_size {size} is not a multiple of the patch size {self.patch}: use "
                f"{lower or self.patch} or {lower + self.patch}"
            )
        if size == self.input_size:
            return
        m = self.model
        if hasattr(m, "set_input_size"):  # timm >= 1.0
            m.set_input_size(img_size=(size, size))
            return
        from timm.layers import resample_abs_pos_embed

        grid = size // self.patch
        prefix = 0 if m.no_embed_class else m.num_prefix_tokens
        m.pos_embed = nn.Parameter(
            resample_abs_pos_embed(m.pos_embed.data, (grid, grid), num_prefix_tokens=prefix)
        )
        m.patch_embed.img_size = (size, size)
        m.patch_embed.grid_size = (grid, grid)
        m.patch_embed.num_patches = grid * grid

    def token_layers(self, x: torch.Tensor, last: int) -> list[torch.Tensor]:
        """The tokens of the last `last` blocks, each through the final norm."""
        m = self.model
        x = m.patch_embed(x)
        x = m._pos_embed(x)
        x = getattr(m, "patch_drop", nn.Identity())(x)
        x = m.norm_pre(x)
        out = []
        for i, block in enumerate(m.blocks):
            x = block(x)
            if i >= self.depth - last:
                out.append(m.norm(x))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        prefix = int(self.model.num_prefix_tokens)
        if self.features == "dino":
            layers = self.token_layers(x, self.last_blocks)
            parts = [t[:, 0] for t in layers] + [layers[-1][:, prefix:].mean(1)]
            return torch.cat(parts, dim=-1)
        tokens = self.model.forward_features(x)
        return tokens[:, 0] if self.features == "cls" else tokens[:, prefix:].mean(1)

    def feature_batch(self, budget: int = FEATURE_PASS_BUDGET, most: int = 512) -> int:
        """Images per batch of the feature pass so that its activations stay near `budget`
        bytes: per image about 16 float32 tensors of tokens x dim (the MLP's 4x hidden among
        them) plus one heads x tokens^2 attention map. For ViT-B/16 at 224 px that is 11.0 MiB
        and 185 images; measured on a CPU, a batch's peak memory rose by 11.9 MiB per image
        (batches of 4 and 16, float32), so about 2.2 GiB at 185, the weights apart."""
        n, dim = self.tokens, int(self.model.embed_dim)
        heads = int(self.model.blocks[0].attn.num_heads)
        per_image = 4 * (16 * n * dim + heads * n * n)
        if self.features == "dino":
            per_image += 4 * self.last_blocks * n * dim
        return max(1, min(most, budget // per_image))

    def layer_groups(self, layer_decay: float, weight_decay: float) -> list[dict]:
        """Parameter groups of layer-wise learning-rate decay (BEiT, MAE, iBOT fine-tuning):
        block i's rate is scaled by layer_decay^(depth - i), the embeddings' by
        layer_decay^(depth + 1), the final norm's by 1; biases, norms, tokens and position
        embeddings without weight decay."""
        groups: dict[tuple[int, bool], list[nn.Parameter]] = {}
        for name, p in self.model.named_parameters():
            if not p.requires_grad:
                continue
            if name.startswith("blocks."):
                layer = int(name.split(".")[1]) + 1
            elif name.startswith(("cls_token", "reg_token", "pos_embed", "patch_embed")):
                layer = 0
            else:
                layer = self.depth + 1
            no_decay = p.ndim == 1 or name in ("cls_token", "reg_token", "pos_embed")
            no_decay = no_decay or name.endswith(".gamma")
            groups.setdefault((layer, no_decay), []).append(p)
        return [
            {
                "params": params,
                "lr_mult": layer_decay ** (self.depth + 1 - layer),
                "weight_decay": 0.0 if no_decay else weight_decay,
            }
            for (layer, no_decay), params in sorted(groups.items())
        ]
