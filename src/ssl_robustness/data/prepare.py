"""From a data config to everything a study trains and tests on, with manifests on disk."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import write_json
from ..cache_keys import image_cache_key, items_key
from ..config import DataConfig, EvaluationConfig
from ..errors import UserError
from ..layout import DataLayout
from .duplicates import DuplicateSet, describe, duplicate_lines, find_duplicates, to_drop
from .groups import assign_groups
from .images import BadImage, build_image_cache, meta_path
from .item_groups import item_groups, link_groups
from .labelled import LabelledSet
from .leakage import group_counts, leakage, leakage_line
from .manifest import count_stats, write_manifest
from .profiles import gini, imbalance_ratio
from .sources import listing_class_ids, read_source, select_classes
from .splits import make_splits, pool_counts_before_carving
from .subsets import (
    ClassOrder,
    SubsetPlan,
    draw,
    per_class_order,
    plan_subsets,
    resolve_class_order,
    worst_case_pool,
)
from .tradeoff import arm_usage, tradeoff_lines, tradeoff_rows, usage_lines
from .whole_groups import probe_in_whole_groups


@dataclass(frozen=True)
class SeedDraw:
    """The pretraining subsets of one study seed: nested per-class prefixes of one seeded order,
    and the head/medium/tail groups from its main imbalanced subset's counts."""

    seed: int
    plans: list[SubsetPlan]
    subsets: dict[str, np.ndarray]
    groups: np.ndarray
    group_rule: str

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
    """Decoded images plus every fixed index set of a study (val, test, the probe set) and the
    per-seed pretraining subsets (`draw(seed)`); indices point into `labels`."""

    class_names: list[str]
    items: list[str]
    labels: np.ndarray
    images: np.ndarray | None  # (N, S, S, 3) uint8, memory-mapped; None: listing only
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
    _draws: dict[int, SeedDraw] = field(default_factory=dict, repr=False)
    _sized: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    def images_at(self, size: int) -> np.ndarray:
        """The same images decoded at another input size (an imported backbone's own), cached
        on disk beside the study's."""
        if size == self.images.shape[1] or self.source is None:
            return self.images
        if size not in self._sized:
            self._sized[size], _ = build_image_cache(
                self.source,
                np.arange(len(self.source)),
                size,
                _image_cache_file(self.cfg, self.directory, self.source, size),
                skip_bad=self.cfg.skip_bad_images,
                workers=self.cfg.decode_workers,
                content_fingerprint=self.cfg.fingerprint == "content",
            )
        return self._sized[size]

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
        plans = _plan(data, order_seed=imb.seed + 1_000_003 * (seed + 1))
    if imb.resample_per_seed:
        order = per_class_order(
            data.labels, data.pretrain_pool, data.num_classes, [imb.seed, seed, 17], data.class_ids
        )
    else:  # the subsets are a prefix of the fixed order, the disjoint probe set its suffix
        order = [o[np.isin(o, data.pretrain_pool)] for o in data.pool_order]
    subsets = {p.name: draw(order, p.counts) for p in plans}
    main = next((p for p in plans if not p.balanced), plans[-1])
    g = data.cfg.groups
    rule, groups = assign_groups(main.counts, g.rule, g.many_above, g.few_below)
    return SeedDraw(seed, plans, subsets, groups, rule)


def _plan(data: StudyData, order_seed: int | None = None) -> list[SubsetPlan]:
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


def list_data(
    cfg: DataConfig, directory: Path, evaluation: EvaluationConfig | None = None
) -> StudyData:
    """The listing stage: labels, splits, probe set and subset plans, every feasibility check,
    and no image decoded (`run --plan`; `prepare_data` runs it before decoding). With
    `skip_bad_images`, the bad images an existing image cache records are left out, as
    `prepare_data` will leave them out."""
    listing = read_source(cfg)
    lset = select_classes(listing, cfg)
    cache_file = _image_cache_file(cfg, directory, lset)
    bad = _recorded_bad(cfg, directory, lset, cache_file)
    sets = _recorded_duplicates(cache_file, cfg) if cfg.duplicates.action != "report" else None
    if sets:  # as prepare_data will arrange them; without a record, as if there were none
        return _arrange_duplicates(lset, bad, sets, cfg, directory, evaluation, listing)
    return _arrange_without(lset, bad, cfg, directory, evaluation, listing)


def prepare_data(
    cfg: DataConfig,
    directory: Path,
    evaluation: EvaluationConfig | None = None,
    seeds: list[int] | None = None,
) -> StudyData:
    """Load and check the listing (fails in a second if a class cannot meet the splits, probe
    set or subsets), then decode (cached); write the manifests and stats of the given study
    seeds (default [0])."""
    listing = read_source(cfg)
    lset = select_classes(listing, cfg)
    cache_file = _image_cache_file(cfg, directory, lset)
    recorded = _recorded_bad(cfg, directory, lset, cache_file)
    data = _arrange_without(lset, recorded, cfg, directory, evaluation, listing)
    directory.mkdir(parents=True, exist_ok=True)
    images, bad_records = build_image_cache(
        lset,
        np.arange(len(lset)),
        cfg.image_size,
        cache_file,
        skip_bad=cfg.skip_bad_images,
        workers=cfg.decode_workers,
        content_fingerprint=cfg.fingerprint == "content",
    )
    if bad_records != recorded:  # the cache was (re)built: its own bad images
        data = _arrange_without(lset, bad_records, cfg, directory, evaluation, listing)
    cache = images
    if bad_records:
        images = images[np.flatnonzero(_kept(lset, bad_records))]
    data.images = images
    data = _with_duplicates(data, cache, lset, bad_records, cache_file, evaluation, listing)
    write_data_manifests(data, seeds or [0])
    return data


def _with_duplicates(
    data: StudyData,
    cache: np.ndarray,
    lset: LabelledSet,
    bad: list[BadImage],
    cache_file: Path,
    evaluation: EvaluationConfig | None,
    listing: LabelledSet,
) -> StudyData:
    """Find the duplicates among the decoded images (or take those recorded beside the cache),
    drop or link them as data.duplicates.action says, and describe where they ended up."""
    cfg, source = data.cfg, data.source
    assert source is not None and data.images is not None
    sets = _recorded_duplicates(cache_file, cfg)
    if sets is None:
        sets = find_duplicates(data.images, source, cfg.duplicates)
        _record_duplicates(cache_file, cfg, sets)
    if sets and cfg.duplicates.action != "report":
        data = _arrange_duplicates(lset, bad, sets, cfg, data.directory, evaluation, listing)
        data.images = cache[np.flatnonzero(_kept(lset, bad + _drops(lset, sets, cfg)))]
    label_of = {
        item: lset.class_names[int(y)] for item, y in zip(lset.items, lset.labels, strict=True)
    }
    data.duplicates = describe(sets, _where(data), label_of)
    return data


def _drops(lset: LabelledSet, sets: list[DuplicateSet], cfg: DataConfig) -> list[BadImage]:
    """action drop: the duplicates left out, as indices into `lset` with why."""
    if cfg.duplicates.action != "drop":
        return []
    label_of = {item: str(y) for item, y in zip(lset.items, lset.labels, strict=True)}
    index = {item: i for i, item in enumerate(lset.items)}
    # a copy skipped as a bad image is already out; the set's other copies still count
    kept = [replace(s, items=tuple(i for i in s.items if i in index)) for s in sets]
    why = to_drop([s for s in kept if len(s.items) > 1], label_of)
    return [BadImage(index[item], message) for item, message in sorted(why.items())]


def _arrange_duplicates(
    lset: LabelledSet,
    bad: list[BadImage],
    sets: list[DuplicateSet],
    cfg: DataConfig,
    directory: Path,
    evaluation: EvaluationConfig | None,
    listing: LabelledSet,
) -> StudyData:
    """The arrangement with data.duplicates.action applied: drop, or group (one split each)."""
    drops = _drops(lset, sets, cfg)
    linked = sets if cfg.duplicates.action == "group" else None
    data = _arrange_without(lset, bad + drops, cfg, directory, evaluation, listing, linked)
    data.bad_images = [b.message for b in bad]
    data.dropped = [b.message for b in drops]
    return data


def _where(data: StudyData) -> dict[str, str]:
    """Each item's place: pool (pretraining), probe set, val or test."""
    place = np.array(data.split, dtype=object)
    place[place == "train"] = "pool"
    place[data.probe_balanced] = "probe set"
    return dict(zip(data.items, place.tolist(), strict=True))


def _duplicates_record(cache_file: Path) -> Path:
    return cache_file.with_suffix(".duplicates.json")


def _recorded_duplicates(cache_file: Path, cfg: DataConfig) -> list[DuplicateSet] | None:
    """The sets found in this very cache (its SHA-256) with these settings, else None."""
    try:
        record = json.loads(_duplicates_record(cache_file).read_text())
        meta = json.loads(meta_path(cache_file).read_text())
        if record["cache_sha256"] != meta["sha256"] or record["settings"] != _dup_settings(cfg):
            return None
        return [DuplicateSet(str(s["kind"]), tuple(s["items"])) for s in record["sets"]]
    except (OSError, KeyError, TypeError, ValueError):
        return None


def _record_duplicates(cache_file: Path, cfg: DataConfig, sets: list[DuplicateSet]) -> None:
    try:
        sha = json.loads(meta_path(cache_file).read_text())["sha256"]
    except (OSError, KeyError, TypeError, ValueError):
        return
    write_json(
        _duplicates_record(cache_file),
        {
            "cache_sha256": sha,
            "settings": _dup_settings(cfg),
            "sets": [{"kind": s.kind, "items": list(s.items)} for s in sets],
        },
    )


def _dup_settings(cfg: DataConfig) -> dict[str, Any]:
    d = cfg.duplicates
    return {"near": d.near, "near_threshold": d.near_threshold if d.near else None}


def _image_cache_file(
    cfg: DataConfig, directory: Path, lset: LabelledSet, size: int | None = None
) -> Path:
    """The decoded images of `lset` at `size` (default `cfg.image_size`); keyed by the item
    list too: adding or removing an image file makes a new cache."""
    return DataLayout(directory).image_cache(
        image_cache_key(cfg, lset.items), size or cfg.image_size
    )


def _recorded_bad(
    cfg: DataConfig, directory: Path, lset: LabelledSet, cache_file: Path | None = None
) -> list[BadImage]:
    """With `skip_bad_images`, the bad images the existing image cache (`cache_file`, worked
    out here if not given) records, none without a readable record of `lset`'s length: the
    listing then drops what decoding will. Not verified here; `build_image_cache` does that."""
    if not cfg.skip_bad_images:
        return []
    cache_file = cache_file or _image_cache_file(cfg, directory, lset)
    try:  # read quietly: a damaged record is `build_image_cache`'s to report
        meta = json.loads(meta_path(cache_file).read_text())
        if meta["inputs"]["count"] != len(lset):
            return []
        bad = [BadImage(int(b["index"]), str(b["message"])) for b in meta["bad"]]
    except (OSError, KeyError, TypeError, ValueError):
        return []
    return bad if all(0 <= b.index < len(lset) for b in bad) else []


def _kept(lset: LabelledSet, bad: list[BadImage]) -> np.ndarray:
    keep = np.ones(len(lset), dtype=bool)
    keep[[b.index for b in bad]] = False  # dropped by index: never by parsing paths
    return keep


def _arrange_without(
    lset: LabelledSet,
    bad: list[BadImage],
    cfg: DataConfig,
    directory: Path,
    evaluation: EvaluationConfig | None,
    listing: LabelledSet,
    linked: list[DuplicateSet] | None = None,
) -> StudyData:
    """`arrange` the listing less its bad images; a natural/power plan the smallest classes
    cannot meet says which class filters can."""
    if bad:
        lset = _subset_lset(lset, _kept(lset, bad))
    try:
        return arrange(
            lset,
            cfg,
            directory,
            evaluation,
            listing=listing,
            bad=[b.message for b in bad],
            linked=linked,
        )
    except UserError as err:
        raise _with_ways_out(err, cfg, lset, listing, directory, evaluation) from None


def arrange(
    lset: LabelledSet,
    cfg: DataConfig,
    directory: Path,
    evaluation: EvaluationConfig | None = None,
    *,
    listing: LabelledSet | None = None,
    bad: list[str] | None = None,
    linked: list[DuplicateSet] | None = None,
) -> StudyData:
    """Split, carve the probe set and plan the subsets of a listing (no images); `linked`:
    sets of items kept in one split (data.duplicates.action: group)."""
    class_ids = listing_class_ids(lset, listing)
    groups = link_groups(item_groups(lset, cfg), lset, [s.items for s in linked or []])
    apart = cfg.group_by is not None and not cfg.group_by.keep_together and not linked
    together = None if apart else groups
    split = make_splits(lset, cfg.split, class_ids, together)
    pool = np.flatnonzero(split == "train")
    pool_counts = lset.class_counts(split == "train")
    empty = np.flatnonzero(pool_counts == 0)
    if len(empty):
        raise UserError(f"data: class '{lset.class_names[empty[0]]}' has no training images")
    pool_order = per_class_order(lset.labels, pool, lset.num_classes, cfg.imbalance.seed, class_ids)
    protocol = evaluation.probe_set if evaluation is not None else "disjoint"
    asked = evaluation.probe_per_class if evaluation is not None else None
    probe = carve_probe(
        pool_order, pool_counts, cfg, protocol, asked, lset.class_names, together, class_ids
    )
    if together is not None and protocol == "disjoint":  # the probe set at each order's tail
        pool_order = [
            np.concatenate([o[~np.isin(o, probe)], o[np.isin(o, probe)]]) for o in pool_order
        ]
    pretrain_pool = pool if protocol == "pool" else np.setdiff1d(pool, probe)
    data = StudyData(
        class_names=lset.class_names,
        items=lset.items,
        labels=lset.labels,
        images=None,
        split=split,
        probe_balanced=probe,
        probe_protocol=protocol,
        directory=directory,
        cfg=cfg,
        pretrain_pool=pretrain_pool,
        pool_order=pool_order,
        base_plans=[],
        bad_images=bad or [],
        class_ids=class_ids,
        source=lset,
        listing=listing,
        evaluation=evaluation,
        item_group=groups,
    )
    data.base_plans = _plan(data)
    return data


def carve_probe(
    pool_order: list[np.ndarray],
    pool_counts: np.ndarray,
    cfg: DataConfig,
    protocol: str,
    asked: int | None,
    class_names: list[str],
    groups: np.ndarray | None = None,
    class_ids: np.ndarray | None = None,
) -> np.ndarray:
    """The balanced labelled set of the probes, `asked` (or the largest allowed) per class;
    with `groups` (disjoint protocol) in whole groups, none shared with the pretraining pool.

    disjoint: the tail of each class's fixed order, kept out of every pretraining subset, so
    both arms are probed on images neither has seen. pool: Liu et al.'s protocol, a prefix of
    the same order (it overlaps the subsets).
    """
    min_pool = int(pool_counts.min())
    if protocol == "pool":
        per_class = asked or min_pool
        if per_class > min_pool:
            raise UserError(
                f"evaluation.probe_per_class: {per_class} exceeds the smallest class's training "
                f"pool ({min_pool})"
            )
        return draw(pool_order, np.full(len(pool_counts), per_class))
    imb = cfg.imbalance
    if imb.n is not None or imb.n_max is not None:
        # the subsets' size is fixed: the probe set gets what they leave; where each seed
        # draws which classes are rare, any class may be the head in some seed
        per_seed = resolve_class_order(imb, pool_counts).per_seed
        planned = worst_case_pool(pool_counts) if per_seed else pool_counts
        plans = [p for p in plan_subsets(planned, imb, class_names) if p.matched]
        need = np.max([p.counts for p in plans], axis=0)
        if per_seed:
            need = np.full_like(need, need.max())
        spare = pool_counts - need
        largest = int(spare.min())
        per_class = asked or largest
        limits = spare
        tight = class_names[int(np.argmin(spare))]
        if per_class > largest or per_class < 1:
            raise UserError(
                f"evaluation.probe_per_class: {per_class} images per class cannot be disjoint "
                f"from the pretraining subsets (class '{tight}' has {int(pool_counts.min())}.."
                f"{int(pool_counts.max())} in its pool and the subsets need "
                f"{int(need[np.argmin(spare)])}); the largest disjoint size is {max(largest, 0)}. "
                "Lower data.imbalance.n, or set evaluation.probe_set: pool (Liu et al.'s "
                "overlapping protocol)" + _default_probe_note(asked, "what the subsets leave")
            )
    else:
        # the subsets' size follows from the pool: by default half of the smallest class
        # goes to the probe set, the rest to pretraining
        per_class = asked or max(min_pool // 2, 1)
        limits = pool_counts - 1
        if per_class >= min_pool:
            raise UserError(
                f"evaluation.probe_per_class: {per_class} leaves class "
                f"'{class_names[int(np.argmin(pool_counts))]}' ({min_pool} training images) "
                f"nothing to pretrain on; the largest disjoint size is {min_pool - 1}"
                + _default_probe_note(asked)
            )
    if groups is not None:
        ids = np.arange(len(pool_order)) if class_ids is None else class_ids
        return probe_in_whole_groups(
            pool_order, groups, per_class, limits, bool(asked), class_names, imb.seed, ids
        )
    return np.sort(np.concatenate([o[len(o) - per_class :] for o in pool_order]))


def _default_probe_note(asked: int | None, default: str = "half the smallest class's pool") -> str:
    """An error about a probe size the user never set says where it came from and the way out."""
    if asked:
        return ""
    return (
        f". evaluation.probe_per_class is not set: its default is {default}; "
        "drop the smallest classes with data.classes.min_count (see `data stats`), or set "
        "evaluation.probe_set: pool"
    )


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


def interval_covers(data: StudyData) -> str:
    """What varies across study seeds: the sentence the report puts beside every interval."""
    imb = data.cfg.imbalance
    parts = ["the initialisation and training randomness"]
    if imb.resample_per_seed:
        parts.append("which images each pretraining subset draws from the pool")
    if data.class_order.per_seed:
        parts.append("which classes are rare")
    fixed = "val, test and the probe set are fixed"
    if not imb.resample_per_seed:
        fixed = "the subsets, " + fixed
    return f"95% intervals over seeds cover {', '.join(parts)}; {fixed}."


def write_data_manifests(data: StudyData, seeds: list[int]) -> None:
    """One manifest per split, per seed's subset and for the probe set; stats.json."""
    layout = DataLayout(data.directory)
    sets = {f"split-{s}": (data.indices(s), s, "") for s in ("train", "val", "test")}
    for seed in seeds:
        for name, idx in data.draw(seed).subsets.items():
            sets[f"subset-{name}-s{seed}"] = (idx, "train", name)
    sets["probe-balanced"] = (data.probe_balanced, "train", "probe-balanced")
    for name, (idx, split, subset) in sets.items():
        write_manifest(
            layout.manifest(name),
            [data.items[i] for i in idx],
            data.labels[idx],
            data.class_names,
            split,
            subset,
        )
    for old in layout.manifests.glob("*.csv"):  # an earlier setting's subsets or seeds
        if old.stem not in sets:
            old.unlink()
    write_json(layout.stats, data_stats(data, seeds))


def _counts(data: StudyData, idx: np.ndarray) -> dict[str, Any]:
    counts = data.class_counts(idx)
    return {**count_stats(counts), "counts": [int(x) for x in counts]}


def stats_lines(data: StudyData, seed: int) -> list[str]:
    """`data stats` as printed: per-class counts of every split and subset (of `seed`'s
    draw) with the class's group, totals, each subset's imbalance, and the groups' rule."""
    ref = data.draw(seed)
    names = [p.name for p in ref.plans]
    w = max(24, *(len(n) for n in data.class_names))  # never cut: distinct names print apart
    lines = [
        f"{'class':{w}s} {'pool':>6s} {'val':>5s} {'test':>5s} "
        + " ".join(f"{n[:12]:>12s}" for n in names)
        + "  group"
    ]
    pool, val, test = (data.split_counts(s) for s in ("train", "val", "test"))
    for c, name in enumerate(data.class_names):
        lines.append(
            f"{name:{w}s} {pool[c]:6d} {val[c]:5d} {test[c]:5d} "
            + " ".join(f"{int(p.counts[c]):12d}" for p in ref.plans)
            + f"  {ref.groups[c]}"
        )
    lines.append(
        f"{'total':{w}s} {pool.sum():6d} {val.sum():5d} {test.sum():5d} "
        + " ".join(f"{p.size:12d}" for p in ref.plans)
    )
    lines.append(_seed_note(data, seed))
    pool = len(data.indices("train"))
    for p in ref.plans:
        lines.append(
            f"{p.name}: n={p.size} ({p.size / pool:.1%} of the train pool), imbalance ratio "
            f"{imbalance_ratio(p.counts):.4f}, Gini {_no_minus_zero(gini(p.counts), 3)}"
        )
    lines += ways_out_lines(data)
    probe = data.class_counts(data.probe_balanced)
    where = "disjoint from every subset" if data.probe_protocol == "disjoint" else "overlapping"
    lines.append(
        f"probe set ({data.probe_protocol}): {int(probe.sum())} images, {int(probe.max())} per "
        f"class, {where}"
    )
    test = data.split_counts("test")
    lines.append(
        "test split: balanced"
        if data.test_balanced
        else f"test split: NOT balanced ({int(test.min())}..{int(test.max())} per class); "
        "the verdict uses balanced accuracy"
    )
    lines.append(
        f"groups: rule '{ref.group_rule}' from {data.imbalanced_name}; "
        f"bad images skipped: {len(data.bad_images)}"
    )
    lines += item_group_lines(data, seed)
    lines += duplicate_lines(data.duplicates, data.cfg.duplicates.action)
    lines += usage_lines(arm_usage(data, seed))
    lines += tradeoff_lines(data_tradeoff(data))
    if data.dropped:
        lines.append(f"duplicates dropped: {len(data.dropped)} images (see stats.json)")
    return lines


def _no_minus_zero(x: float, digits: int) -> str:
    """`x` to `digits` places, never "-0.000" (a balanced set's Gini is 0, not below)."""
    text = f"{x:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def _seed_note(data: StudyData, seed: int) -> str:
    """Which seed's subsets the table shows, and whether other seeds draw others."""
    shown = f"subsets shown: study seed {seed}'s draw"
    if data.class_order.per_seed:
        return f"{shown} (each seed draws its own images and its own rare classes)"
    if data.cfg.imbalance.resample_per_seed:
        return f"{shown} (each seed draws its own images; the counts per class are the same)"
    return f"{shown} (the same images in every seed)"


def item_group_lines(data: StudyData, seed: int) -> list[str]:
    """data.group_by groups per split and the leakage line."""
    leak = leakage_of(data, seed)
    if data.item_group is None:
        return [leakage_line(None, seed)]
    n = group_counts(data.item_group, _group_sets(data))
    gb = data.cfg.group_by
    how = "kept together" if gb is not None and gb.keep_together else "measured only"
    return [
        f"data.group_by groups ({how}): "
        + ", ".join(f"{name} {count}" for name, count in n.items()),
        leakage_line(leak, seed),
    ]


def _group_sets(data: StudyData) -> dict[str, np.ndarray]:
    return {
        "pool": data.indices("train"),
        "val": data.indices("val"),
        "test": data.indices("test"),
        "probe set": data.probe_balanced,
    }


def leakage_of(data: StudyData, seed: int) -> dict[str, Any] | None:
    """Test images sharing a data.group_by group with the pool, probe set and seed's subsets."""
    if data.item_group is None:
        return None
    return leakage(
        data.item_group,
        data.indices("test"),
        data.indices("train"),
        data.probe_balanced,
        data.draw(seed).subsets,
    )


WAYS_OUT_QUANTILES = (0.1, 0.25, 0.5)  # drop about this share of the classes, smallest first


def ways_out_lines(data: StudyData) -> list[str]:
    """With a natural/power profile the matched n is bounded by classes x the smallest class:
    a few `data.classes.min_count` settings that use more of the pool, each with the n it
    gives, computed from the listing (nothing decoded)."""
    imb = data.cfg.imbalance
    if imb.profile not in ("natural", "power") or imb.n is not None or data.listing is None:
        return []
    pool = len(data.indices("train"))
    n_now = data.base_plans[0].size
    options = [
        _option_line(k, kept, data.num_classes, n, pool)
        for k, kept, n in _min_count_options(
            data.split_counts("train"), data.cfg, data.listing, data.directory, data.evaluation
        )
        if n > n_now
    ]
    if not options:
        return []
    per_class = int(data.base_plans[0].counts.min())
    return [
        f"{imb.profile}: n={n_now:,} is bounded by {data.num_classes} classes x the smallest "
        f"class ({per_class} per class in the balanced set); ways out (n as the default "
        "probe set leaves it; a set data.imbalance.n takes images from the probe set):",
        *options,
    ]


def _option_line(k: int, kept: int, classes: int, n: int, pool: int) -> str:
    return (
        f"  data.classes.min_count: {k} keeps {kept} of {classes} classes, "
        f"n = {n:,} ({n / pool:.0%} of the pool)"
    )


def _min_count_options(
    pool_counts: np.ndarray,
    cfg: DataConfig,
    listing: LabelledSet,
    directory: Path,
    evaluation: EvaluationConfig | None,
) -> list[tuple[int, int, int]]:
    """(min_count, classes kept, matched n) for the thresholds that drop about 10%, 25% and
    50% of the classes, smallest pools first; thresholds the data cannot meet are left out."""
    counts = np.sort(pool_counts)
    thresholds = sorted(
        {int(counts[int(q * len(counts))]) for q in WAYS_OUT_QUANTILES} - {int(counts[0])}
    )
    out = []
    for k in thresholds:
        floor = max(k, cfg.classes.min_count or 0)
        option_cfg = cfg.model_copy(
            update={"classes": cfg.classes.model_copy(update={"min_count": floor})}
        )
        try:
            lset = select_classes(listing, option_cfg)
            option = arrange(lset, option_cfg, directory, evaluation, listing=listing)
        except UserError:
            continue
        out.append((floor, option.num_classes, option.base_plans[0].size))
    return out


def _with_ways_out(
    err: UserError,
    cfg: DataConfig,
    lset: LabelledSet,
    listing: LabelledSet,
    directory: Path,
    evaluation: EvaluationConfig | None,
) -> UserError:
    """A natural/power plan the smallest classes cannot meet: the error, plus the class
    filters that can (computed from the listing)."""
    if cfg.imbalance.profile not in ("natural", "power") or not str(err).startswith(
        "data.imbalance"
    ):
        return err
    pool_counts = pool_counts_before_carving(lset, cfg.split)
    pool = int(pool_counts.sum())
    options = [
        _option_line(k, kept, lset.num_classes, n, pool)
        for k, kept, n in _min_count_options(pool_counts, cfg, listing, directory, evaluation)
    ]
    if not options:
        return err
    return UserError(f"{err}; or keep fewer classes:\n" + "\n".join(options))


def data_stats(data: StudyData, seeds: list[int]) -> dict[str, Any]:
    ref = data.draw(seeds[0])
    overlap = {
        str(seed): {
            name: data.class_counts(idx[np.isin(idx, data.probe_balanced)]).tolist()
            for name, idx in data.draw(seed).subsets.items()
        }
        for seed in seeds
    }
    return {
        "classes": data.class_names,
        "splits": {
            s: _counts(data, data.indices(s))
            for s in ("train", "val", "test")
            if len(data.indices(s))
        },
        "test_balanced": data.test_balanced,
        "pretrain_pool": _counts(data, data.pretrain_pool),
        "subsets": {
            p.name: {
                "level": p.level,
                "balanced": p.balanced,
                "matched": p.matched,
                **_counts(data, ref.subsets[p.name]),
            }
            for p in ref.plans
        },
        "probe_balanced": {
            "protocol": data.probe_protocol,
            "per_class": int(np.bincount(data.labels[data.probe_balanced]).max()),
            **{k: v for k, v in _counts(data, data.probe_balanced).items() if k != "per_class"},
        },
        "probe_overlap": overlap,
        "groups": _groups(data, ref),
        "seeds": {
            str(seed): {
                "subsets": {
                    n: _counts(data, i)["counts"] for n, i in data.draw(seed).subsets.items()
                },
                "groups": _groups(data, data.draw(seed)),
            }
            for seed in seeds
        },
        "interval_covers": interval_covers(data),
        "class_order": {
            "order": data.class_order.order,
            "per_seed": data.class_order.per_seed,
            "why": data.class_order.why,
        },
        "bad_images": {"count": len(data.bad_images), "items": data.bad_images},
        **_item_group_stats(data, seeds),
    }


def data_tradeoff(data: StudyData) -> list[dict[str, Any]]:
    """The trade-off table's rows (tradeoff.py), with the class filters' options from here."""
    return tradeoff_rows(
        data,
        lambda: _min_count_options(
            data.split_counts("train"), data.cfg, data.listing, data.directory, data.evaluation
        ),
    )


def _item_group_stats(data: StudyData, seeds: list[int]) -> dict[str, Any]:
    """stats.json's data.group_by entries; none without group_by (the file stays as it was)."""
    out: dict[str, Any] = {"usage": arm_usage(data, seeds[0]), "tradeoff": data_tradeoff(data)}
    if data.duplicates is not None:
        out["duplicates"] = {**data.duplicates, "action": data.cfg.duplicates.action}
        out["duplicates"]["dropped"] = data.dropped
    if data.item_group is not None:
        out["item_groups"] = group_counts(data.item_group, _group_sets(data))
        out["leakage"] = {str(seed): leakage_of(data, seed) for seed in seeds}
    return out


def _groups(data: StudyData, d: SeedDraw) -> dict[str, Any]:
    return {
        "rule": d.group_rule,
        "from_subset": d.imbalanced_name,
        "per_class": [str(g) for g in d.groups],
        "members": {
            g: [data.class_names[i] for i in np.flatnonzero(d.groups == g)]
            for g in ("head", "medium", "tail")
        },
    }
