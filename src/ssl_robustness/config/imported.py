"""The `imported` section: SSL backbones pretrained elsewhere (scenario SSL-ImageNet)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from ..names import CHECKPOINT_FORMATS, PUBLISHED_WEIGHTS
from .base import OmitsUnset, Strict

IMPORT_ARCHS = ("resnet18", "resnet50")  # what models.checkpoints can check a file against


class ImportedConfig(Strict, OmitsUnset):
    """An SSL backbone pretrained elsewhere (scenario SSL-ImageNet)."""

    name: str
    """Label of the imported representation in the tables and the report."""
    path: Path | None = None
    """The checkpoint file; give exactly one of path and weights."""
    weights: str | None = None
    """A published ImageNet checkpoint by name (ResNet-50s: mocov2_800ep, simsiam_100ep_256bs,
    byol_200ep, swav_800ep, dino_resnet50, barlowtwins_resnet50; vision transformers: dino_vits16,
    dino_vitb16, dinov2_vits14, dinov2_vitb14, dinov2_vits14_reg, dinov2_vitb14_reg, mae_vitb16,
    mocov3_vits, mocov3_vitb, ibot_vits16, ibot_vitb16): downloaded once into
    $SSL_ROBUSTNESS_CACHE (else torch.hub's checkpoints folder) and checksum-verified on every
    use; its format and arch come with the name."""
    format: Literal[("auto", *CHECKPOINT_FORMATS)] = "auto"  # type: ignore[valid-type]
    """Checkpoint format; auto: detected from the file's keys (or the published one's)."""
    arch: str | None = None
    """resnet18, resnet50 or timm:<name>; None: inferred from the keys (or the published one's)."""
    image_size: int = Field(224, ge=8, le=1024)
    """The input size the weights were trained at: its own decoded cache, never the study's (tiny)
    image size, which would leave an ImageNet stem a 1x1 map. A vision transformer's must be a
    multiple of its patch size (16; DINOv2's 14): its position embeddings are interpolated from
    the grid it was trained at."""
    features: Literal["cls", "mean", "dino"] | None = None
    """What a probe sees of a vision transformer. cls (also None): the class token after the final
    norm; mean: the mean of the patch tokens; dino: DINO's linear-evaluation recipe, the class
    tokens of the last 4 blocks and the mean patch token concatenated (5 x dim). Part of the
    representation's identity; ResNets give their pooled features (leave it unset)."""

    omit_when_none: ClassVar[tuple[str, ...]] = ("weights", "path", "features")

    @field_validator("features")
    @classmethod
    def _default_features(cls, v: str | None) -> str | None:
        return None if v == "cls" else v  # the default, keyed as if unset

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, v: str | None) -> str | None:
        if v is None or v in IMPORT_ARCHS or (v.startswith("timm:") and v != "timm:"):
            return v
        raise ValueError(f"must be one of {', '.join(IMPORT_ARCHS)} or timm:<model name>")

    @field_validator("path")
    @classmethod
    def _exists(cls, v: Path | None) -> Path | None:
        if v is not None and not v.exists():
            raise ValueError(f"file does not exist: {v}")
        return v

    @field_validator("weights")
    @classmethod
    def _published(cls, v: str | None) -> str | None:
        if v is None or v in PUBLISHED_WEIGHTS:
            return v
        raise ValueError(f"unknown '{v}' (known: {', '.join(PUBLISHED_WEIGHTS)})")

    @model_validator(mode="after")
    def _one_source(self) -> ImportedConfig:
        if (self.path is None) == (self.weights is None):
            raise ValueError("give exactly one of path (a file) and weights (a published name)")
        return self
