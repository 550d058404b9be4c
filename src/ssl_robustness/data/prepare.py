"""From a data config to everything a study trains and tests on, with manifests on disk."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import write_json
from ..config import DataConfig, EvaluationConfig, config_hash
from ..errors import UserError
from .groups import assign_groups
from .images import build_image_cache
from .labelled import LabelledSet
from .manifest import count_stats, write_manifest
from .sources import load_source
from .splits import make_splits
from .subsets import SubsetPlan, draw, per_class_order, plan_subsets


@dataclass
class StudyData:
    """Decoded images plus every index set a study needs (indices into `labels`)."""

    class_names: list[str]
    items: list[str]
    labels: np.ndarray
    images: np.ndarray  # (N, S, S, 3) uint8, memory-mapped
    split: np.ndarray
    plans: list[SubsetPlan]
    subsets: dict[str, np.ndarray]
    probe_balanced: np.ndarray
    groups: np.ndarray
    group_rule: str
    directory: Path
    bad_images: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def indices(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.split == split)

    @property
    def balanced_name(self) -> str:
        return self.plans[0].name

    @property
    def imbalanced_name(self) -> str:
        """The main imbalanced subset: fine-tuning and the imbalanced probe train on it."""
        return self.plans[1].name

    def train_counts(self) -> np.ndarray:
        return np.bincount(
            self.labels[self.subsets[self.imbalanced_name]], minlength=self.num_classes
        )


def data_key(cfg: DataConfig) -> str:
    return config_hash(
        cfg.model_dump(
            mode="json", include={"source", "root", "list", "image_size", "skip_bad_images"}
        )
    )


def prepare_data(
    cfg: DataConfig,
    directory: Path,
    evaluation: EvaluationConfig | None = None,
) -> StudyData:
    """Load, decode (cached), split, draw subsets and groups; write manifests and stats."""
    directory.mkdir(parents=True, exist_ok=True)
    lset = load_source(cfg)
    all_idx = np.arange(len(lset))
    # keyed by the item list too: adding or removing an image file makes a new cache
    listing = config_hash({"data": data_key(cfg), "items": lset.items})
    cache_file = directory / f"images-{listing}-{cfg.image_size}px.npy"
    images, bad_records = build_image_cache(
        lset,
        all_idx,
        cfg.image_size,
        cache_file,
        skip_bad=cfg.skip_bad_images,
        workers=cfg.decode_workers,
    )
    bad = [b.message for b in bad_records]
    if bad_records:  # dropped by index: never by parsing paths out of messages
        keep = np.ones(len(lset), dtype=bool)
        keep[[b.index for b in bad_records]] = False
        lset = _subset_lset(lset, keep)
        images = images[np.flatnonzero(keep)]
    split = make_splits(lset, cfg.split)
    pool = np.flatnonzero(split == "train")
    pool_counts = lset.class_counts(split == "train")
    empty = np.flatnonzero(pool_counts == 0)
    if len(empty):
        raise UserError(f"data: class '{lset.class_names[empty[0]]}' has no training images")
    plans = plan_subsets(pool_counts, cfg.imbalance, lset.class_names)
    order = per_class_order(lset.labels, pool, lset.num_classes, cfg.imbalance.seed)
    subsets = {p.name: draw(order, p.counts) for p in plans}
    per_class = int(pool_counts.min())
    if evaluation is not None and evaluation.probe_per_class is not None:
        if evaluation.probe_per_class > per_class:
            raise UserError(
                f"evaluation.probe_per_class: {evaluation.probe_per_class} exceeds the "
                f"smallest class's training pool ({per_class})"
            )
        per_class = evaluation.probe_per_class
    probe = draw(order, np.full(lset.num_classes, per_class))
    main_counts = plans[1].counts
    rule, groups = assign_groups(
        main_counts, cfg.groups.rule, cfg.groups.many_above, cfg.groups.few_below
    )
    data = StudyData(
        lset.class_names,
        lset.items,
        lset.labels,
        images,
        split,
        plans,
        subsets,
        probe,
        groups,
        rule,
        directory,
        bad,
    )
    write_data_manifests(data)
    return data


def _subset_lset(lset: LabelledSet, keep: np.ndarray) -> LabelledSet:
    idx = np.flatnonzero(keep)
    return LabelledSet(
        [lset.items[i] for i in idx],
        lset.labels[idx],
        lset.class_names,
        lset.root,
        None if lset.pixels is None else lset.pixels[idx],
        None if lset.official_split is None else lset.official_split[idx],
    )


def write_data_manifests(data: StudyData) -> None:
    out = data.directory / "manifests"
    sets = {f"split-{s}": (data.indices(s), s, "") for s in ("train", "val", "test")}
    sets.update({f"subset-{k}": (v, "train", k) for k, v in data.subsets.items()})
    sets["probe-balanced"] = (data.probe_balanced, "train", "probe-balanced")
    for name, (idx, split, subset) in sets.items():
        write_manifest(
            out / f"{name}.csv",
            [data.items[i] for i in idx],
            data.labels[idx],
            data.class_names,
            split,
            subset,
        )
    stats = {
        "classes": data.class_names,
        "splits": {
            s: count_stats(np.bincount(data.labels[data.indices(s)], minlength=data.num_classes))
            for s in ("train", "val", "test")
            if len(data.indices(s))
        },
        "subsets": {
            p.name: {"level": p.level, "balanced": p.balanced, **count_stats(p.counts)}
            for p in data.plans
        },
        "probe_balanced": count_stats(
            np.bincount(data.labels[data.probe_balanced], minlength=data.num_classes)
        ),
        "groups": {
            "rule": data.group_rule,
            "from_subset": data.imbalanced_name,
            "per_class": [str(g) for g in data.groups],
            "members": {
                g: [data.class_names[i] for i in np.flatnonzero(data.groups == g)]
                for g in ("head", "medium", "tail")
            },
        },
        "bad_images": {"count": len(data.bad_images), "items": data.bad_images},
    }
    write_json(data.directory / "stats.json", stats)
