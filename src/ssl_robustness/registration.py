"""The confirmatory test, registered before any result exists.

`run` writes `registration.json` into the run directory before its first training: which
evaluation, gap kind, imbalanced arms, measure and metric are confirmatory, the SL comparator,
alpha, the seeds, the near-floor rule, the effect of interest and the equivalence margin, with
the config's hash. The report reads the test from there, never from a config that may have been
edited after the results were seen. A later `run` on the same directory never rewrites it: it
appends what changed (seeds added, another confirmatory block) as an amendment, which the
verdict's first line then states."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .atomic import read_json, write_json
from .cache_keys import config_hash
from .config import StudyConfig
from .config.report import PLAIN_SL
from .errors import UserError
from .evaluation.kinds import evaluation_specs
from .layout import RepresentationLayout, RunLayout
from .methods import is_self_supervised
from .report.floor import NEAR_FLOOR_POINTS, NEAR_FLOOR_RULE
from .report.paired import ALPHA, MIN_SEEDS_FOR_WORDS

if TYPE_CHECKING:
    from .data.study_data import StudyData

FORMAT = 1
# what each adaptation gives a gap of (evaluation/run.py, `evaluation_jobs`)
COMPARISONS = {
    "balanced": ("pretraining",),
    "own": ("end-to-end", "fixed-representation"),
    "imbalanced": (),
}


def sl_labels(cfg: StudyConfig) -> list[str]:
    """The SL variants of the study, by their label in the tables."""
    return [m.label for m in cfg.methods if not is_self_supervised(m)]


def comparator(cfg: StudyConfig) -> str | None:
    """The registered SL comparator: the one named, else the plain CE baseline, else the only
    SL variant; None when the study trains no SL arm. A named variant the study does not train,
    or several variants and no plain baseline, is an error that lists the study's variants."""
    labels = sl_labels(cfg)
    chosen = cfg.report.confirmatory.sl_comparator
    key = "report.confirmatory.sl_comparator"
    if chosen is not None:
        if chosen not in labels:
            raise UserError(
                f"{key}: {chosen!r} is not an SL variant of this study; its SL variants are "
                f"{labels or 'none'}"
            )
        return chosen
    if not labels:
        return None
    if PLAIN_SL in labels:
        return PLAIN_SL
    if len(labels) == 1:
        return labels[0]
    raise UserError(
        f"{key}: this study trains no plain '{PLAIN_SL}' baseline and several SL variants "
        f"{labels}; name the one every SSL method is tested against (or set "
        "report.confirmatory.against: every)"
    )


def check_confirmatory(cfg: StudyConfig) -> None:
    """Refuse, before any training, a confirmatory block the study cannot test: an evaluation
    it does not run, a gap kind that evaluation does not give, an SL comparator it lacks. A
    study that leaves the block at its default and runs no linear probe on the balanced probe
    set has no confirmatory test; the report then calls every comparison exploratory."""
    block = cfg.report.confirmatory
    specs = {s.name: s for s in evaluation_specs(cfg.evaluation, cfg.augmentation)}
    declared = "confirmatory" in cfg.report.model_fields_set
    if block.evaluation not in specs and not declared:
        comparator(cfg)  # the default names an evaluation this study does not run: no test
        return
    if block.evaluation not in specs:
        raise UserError(
            f"report.confirmatory.evaluation: {block.evaluation!r} is not an evaluation of this "
            f"study; its evaluations are {sorted(specs)}"
        )
    gives = COMPARISONS[specs[block.evaluation].adapt]
    if block.comparison not in gives:
        raise UserError(
            f"report.confirmatory.comparison: {block.evaluation} adapts on "
            f"{specs[block.evaluation].adapt!r} and gives "
            f"{' or '.join(gives) + ' gaps' if gives else 'no gap (a cross-scenario evaluation)'}"
            f", not {block.comparison!r}"
        )
    comparator(cfg)


def confirmatory_block(cfg: StudyConfig, data: StudyData) -> dict[str, Any]:
    """The registered test: everything that decides its words, resolved for this data."""
    block = cfg.report.confirmatory
    return {
        "evaluation": block.evaluation,
        "comparison": block.comparison,
        "subsets": [p.name for p in data.plans if p.matched and not p.balanced],
        "measure": "rel_gap",
        "metric": "top1" if data.test_balanced else "balanced_accuracy",
        "sl_comparator": comparator(cfg),
        "against": block.against,
    }


def registration(cfg: StudyConfig, data: StudyData, *, results_existed: bool) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "registered_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "before_any_result": not results_existed,
        "config_hash": config_hash(_study_part(cfg)),
        "confirmatory": confirmatory_block(cfg, data),
        "alpha": ALPHA,
        "min_seeds_for_words": MIN_SEEDS_FOR_WORDS,
        "seeds": list(cfg.seeds),
        "near_floor_rule": {"arm": "balanced", "margin_points": NEAR_FLOOR_POINTS},
        "near_floor_text": NEAR_FLOOR_RULE,
        "effect_of_interest_points": cfg.report.effect_of_interest,
        "equivalence_margin_points": cfg.report.equivalence_margin,
        "amendments": [],
    }


def register(cfg: StudyConfig, data: StudyData) -> dict[str, Any]:
    """Write registration.json before the first training (rewritten while no result exists);
    once results exist, keep it and append what differs (seeds, the confirmatory block, the
    margins, the config) as an amendment."""
    run = cfg.layout
    existed = results_exist(run)
    new = registration(cfg, data, results_existed=existed)
    if not run.registration.exists() or not existed:
        # before any result a registration may still be changed: the new one replaces it
        write_json(run.registration, new)
        return new
    try:
        old = read_json(run.registration)
    except ValueError as exc:
        raise UserError(
            f"{run.registration}: not valid JSON ({exc}); it records the confirmatory test "
            "registered before the results: restore it, or delete it to register anew (the "
            "report then says the registration came after results existed)"
        ) from None
    change = amendment(old, new)
    if change:
        old.setdefault("amendments", []).append(
            {"at": new["registered_at"], "results_existed": existed, **change}
        )
        write_json(run.registration, old)
    return old


def amendment(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """What `new` changes of the registration `old` (and its amendments so far)."""
    latest = dict(old)
    for a in old.get("amendments", []):
        latest.update({k: v for k, v in a.items() if k not in ("at", "results_existed")})
    keys = (
        "confirmatory",
        "seeds",
        "effect_of_interest_points",
        "equivalence_margin_points",
        "config_hash",
    )
    return {k: new[k] for k in keys if latest.get(k) != new[k]}


def results_exist(run: RunLayout) -> bool:
    """Whether any representation of this run directory has finished already."""
    root = run.representations
    if not root.is_dir():
        return False
    return any(RepresentationLayout(d).done.exists() for d in root.iterdir() if d.is_dir())


def _study_part(cfg: StudyConfig) -> dict[str, Any]:
    """The config without where it is written: the same study in another folder hashes alike."""
    dumped = cfg.model_dump(mode="json")
    dumped.pop("output_dir", None)
    return dumped
