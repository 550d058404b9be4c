"""The `report` section: the confirmatory comparison, registered before any result, and what
the report draws."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import Strict

PLAIN_SL = "supervised"  # the label of the plain cross-entropy baseline (instance sampling)


class ConfirmatoryConfig(Strict):
    """The one comparison declared before the study runs: its SSL-vs-SL tests are one
    Holm-adjusted family; every other comparison is exploratory and says so. `run` writes it
    into registration.json before the first training, and the report reads it from there."""

    evaluation: str = "linear-balanced"
    """Evaluation whose gap is confirmatory (default Liu et al.'s linear probe on the balanced
    probe set)."""
    comparison: Literal["pretraining", "end-to-end", "fixed-representation"] = "pretraining"
    """Gap kind of the confirmatory comparison."""
    sl_comparator: str | None = None
    """The SL variant every SSL method is tested against, by its label in the tables
    (`supervised`, `supervised-balanced_softmax`, ...). None: the plain cross-entropy baseline
    `supervised` (the mission's SL baseline), or the only SL variant of a study that has one.
    Fixed before the results: the variant that happened to lose least is biased low by that
    choice."""
    against: Literal["one", "every"] = "one"
    """one: each SSL method against `sl_comparator`. every: does SSL lose less than every SL
    variant (an intersection-union test: it must beat each at the family's alpha; the combined
    p is the largest of them)."""


class ReportConfig(Strict):
    confirmatory: ConfirmatoryConfig = Field(default_factory=ConfirmatoryConfig)
    """The confirmatory comparison (one family of tests, Holm-adjusted); the rest is exploratory."""
    effect_of_interest: float = Field(5.0, gt=0, le=100)
    """Smallest difference of Δ between SSL and SL worth detecting, in points of Δ: `run --plan`
    says how many seeds detect it with 80% power, from the spread of earlier results."""
    equivalence_margin: float | None = Field(None, gt=0, le=100)
    """Margin δ (points of Δ) of an equivalence test (paired TOST): "SSL and SL lose the same
    within ±δ" only when it rejects. None: no equivalence words, only "no detectable
    difference"."""
    tsne: bool = True
    """Draw t-SNE maps of the cached test features (openTSNE, seeded): per method, its balanced
    and imbalanced representation of the first seed side by side."""
    tsne_max_points: int = Field(2000, ge=10)
    """Test images per t-SNE map at most (a seeded subsample above it)."""
