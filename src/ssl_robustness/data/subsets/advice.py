"""What to do when a natural/power profile is bounded by its smallest classes: the
`data.classes.min_count` settings that use more of the pool, each with the n it gives,
computed from the listing (nothing decoded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...config import DataConfig, EvaluationConfig
from ...errors import UserError
from ..arrange import arrange
from ..listing.classes import select_classes
from ..listing.labelled import LabelledSet
from ..split.feasibility import pool_counts_before_carving
from ..study_data import StudyData

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
        for k, kept, n in min_count_options(
            data.split_counts("train"), data.cfg, data.listing, data.directory, data.evaluation
        )
        if n > n_now
    ]
    if not options:
        return []
    per_class = int(data.base_plans[0].counts.min())
    return [
        f"{imb.profile}: n={n_now:,} is bounded by {data.num_classes} classes x the smallest "
        f"class ({per_class} per class in the balanced set). Keeping fewer classes gives a "
        "larger n (each n below is what the default probe set leaves; setting "
        "data.imbalance.n instead takes images from the probe set):",
        *options,
    ]


def _option_line(k: int, kept: int, classes: int, n: int, pool: int) -> str:
    return (
        f"  data.classes.min_count: {k} keeps {kept} of {classes} classes, "
        f"n = {n:,} ({n / pool:.0%} of the pool)"
    )


def min_count_options(
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


def with_ways_out(
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
        for k, kept, n in min_count_options(pool_counts, cfg, listing, directory, evaluation)
    ]
    if not options:
        return err
    return UserError(f"{err}; or keep fewer classes:\n" + "\n".join(options))
