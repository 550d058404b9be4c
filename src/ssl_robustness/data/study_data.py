"""A study's data as every stage reads it: the listing's fixed index sets (splits, probe set,
the pretraining pool) and the pretraining subsets each study seed draws from them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..cache_keys import items_key
from ..config import DataConfig, EvaluationConfig
from .listing.labelled import LabelledSet
from .store.image_store import ImageStore
from .subsets.plans import (
    ClassOrder,
    SubsetPlan,
    draw,
    per_class_order,
    plan_subsets,
    resolve_class_order,
    worst_case_pool,
)
from .subsets.tiers import assign_tiers


@dataclass(frozen=True)
class SeedDraw:
    """The pretraining subsets of one study seed: nested per-class prefixes of one seeded order,
    and the head/medium/tail tiers from its main imbalanced subset's counts."""

    seed: int
    plans: list[SubsetPlan]
    subsets: dict[str, np.ndarray]
    tiers: np.ndarray  # each class's frequency tier (head/medium/tail)
    tier_rule: str

    @property
    def balanced_name(self) -> str:
        return self.plans[0].name

    @property
    def imbalanced_name(self) -> str:
        """The main imbalanced subset: the cross-scenario evaluations adapt on it."""
        return self.plans[1].name

    @property
    def matched_plans(self) -> list[SubsetPlan]:
        return [p for p in self.plans if p.matched]

    def counts(self, subset: str, labels: np.ndarray, num_classes: int) -> np.ndarray:
        return np.bincount(labels[self.subsets[subset]], minlength=num_classes)


@dataclass
class StudyData:
    """Every fixed index set of a study (val, test, the probe set) and the per-seed pretraining
    subsets (`draw(seed)`); indices point into `labels`. The pixels are `store`'s job."""

    class_names: list[str]
    items: list[str]
    labels: np.ndarray
    split: np.ndarray
    probe_balanced: np.ndarray
    probe_protocol: str
    directory: Path
    cfg: DataConfig
    pretrain_pool: np.ndarray  # the train pool less a disjoint probe set
    pool_order: list[np.ndarray]  # per class, the fixed seeded order of the train pool
    base_plans: list[SubsetPlan]
    bad_images: list[str] = field(default_factory=list)
    class_ids: np.ndarray | None = None  # each class's index in the unfiltered listing
    source: LabelledSet | None = field(default=None, repr=False)
    listing: LabelledSet | None = field(default=None, repr=False)  # before the class filters
    evaluation: EvaluationConfig | None = field(default=None, repr=False)
    item_group: np.ndarray | None = None  # each item's data.group_by id; None: not set
    duplicates: dict[str, Any] | None = None  # what data.duplicates found (prepare_data only)
    dropped: list[str] = field(default_factory=list)  # duplicates left out, and why
    store: ImageStore | None = field(default=None, repr=False)  # None: listing only
    _draws: dict[int, SeedDraw] = field(default_factory=dict, repr=False)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def indices(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.split == split)

    def class_counts(self, idx: np.ndarray) -> np.ndarray:
        """Images per class among `idx`."""
        return np.bincount(self.labels[idx], minlength=self.num_classes)

    def items_key(self, idx: np.ndarray) -> str:
        """A hash of the items (and labels) an index set holds: keys runs by their images."""
        return items_key([self.items[i] for i in idx], self.labels[idx].tolist())

    def split_counts(self, split: str) -> np.ndarray:
        return self.class_counts(self.indices(split))

    @property
    def class_order(self) -> ClassOrder:
        """Which classes are rare, resolved against the train pool's class sizes (before a
        probe set is carved from it, which takes the same number from every class)."""
        return resolve_class_order(self.cfg.imbalance, self.split_counts("train"))

    @property
    def test_balanced(self) -> bool:
        counts = self.split_counts("test")
        return bool(counts.min() == counts.max())

    def draw(self, seed: int) -> SeedDraw:
        """The subsets of study seed `seed` (cached; a pure function of the config and seed)."""
        if seed not in self._draws:
            self._draws[seed] = _draw_for_seed(self, seed)
        return self._draws[seed]

    @property
    def reference(self) -> SeedDraw:
        """The draw of seed 0 of the subset sampling: names, and counts when they are fixed."""
        return self.draw(0)

    @property
    def plans(self) -> list[SubsetPlan]:
        return self.reference.plans

    @property
    def balanced_name(self) -> str:
        return self.reference.balanced_name

    @property
    def imbalanced_name(self) -> str:
        return self.reference.imbalanced_name


def _draw_for_seed(data: StudyData, seed: int) -> SeedDraw:
    imb = data.cfg.imbalance
    plans = data.base_plans
    if data.class_order.per_seed:
        plans = subset_plans(data, order_seed=imb.seed + 1_000_003 * (seed + 1))
    if imb.resample_per_seed:
        order = per_class_order(
            data.labels, data.pretrain_pool, data.num_classes, [imb.seed, seed, 17], data.class_ids
        )
    else:  # the subsets are a prefix of the fixed order, the disjoint probe set its suffix
        order = [o[np.isin(o, data.pretrain_pool)] for o in data.pool_order]
    subsets = {p.name: draw(order, p.counts) for p in plans}
    main = next((p for p in plans if not p.balanced), plans[-1])
    t = data.cfg.tiers
    rule, tiers = assign_tiers(main.counts, t.rule, t.many_above, t.few_below)
    return SeedDraw(seed, plans, subsets, tiers, rule)


def subset_plans(data: StudyData, order_seed: int | None = None) -> list[SubsetPlan]:
    pool_counts = data.split_counts("train")
    pretrain_counts = data.class_counts(data.pretrain_pool)
    if data.class_order.per_seed:  # the same n and counts by rank in every seed's order
        pretrain_counts = worst_case_pool(pretrain_counts)
    return plan_subsets(
        pretrain_counts,
        data.cfg.imbalance,
        data.class_names,
        natural_counts=pool_counts,
        order_seed=order_seed,
    )
