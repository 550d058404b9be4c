"""The `report` section: the confirmatory comparison and what the report draws."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    Field,
)

from .base import Strict


class ConfirmatoryConfig(Strict):
    """The one comparison declared before the study runs: its SSL-vs-SL tests are one
    Holm-adjusted family; every other comparison is exploratory and says so."""

    evaluation: str = "linear-balanced"
    """Evaluation whose gap is confirmatory (default Liu et al.'s linear probe on the balanced
    probe set)."""
    comparison: Literal["pretraining", "end-to-end", "fixed-representation"] = "pretraining"
    """Gap kind of the confirmatory comparison."""


class ReportConfig(Strict):
    confirmatory: ConfirmatoryConfig = Field(default_factory=ConfirmatoryConfig)
    """The confirmatory comparison (one family of tests, Holm-adjusted); the rest is exploratory."""
    tsne: bool = True
    """Draw t-SNE maps of the cached test features (openTSNE, seeded): per method, its balanced
    and imbalanced representation of the first seed side by side."""
    tsne_max_points: int = Field(2000, ge=10)
    """Test images per t-SNE map at most (a seeded subsample above it)."""
