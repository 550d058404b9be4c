"""The confirmatory test the report makes: the one registered before the results
(registration.json), never a config edited after they were seen; and the verdict's first line,
which says what was registered, when, and what differs in what is reported."""

from __future__ import annotations

from typing import Any

from . import verdict as V
from .rundir import RunDir

FIELDS = ("evaluation", "comparison", "sl_comparator", "against")


def confirmatory_choice(run: RunDir) -> V.Confirmatory:
    """The registered confirmatory test; a run made before registration existed: its config."""
    reg = run.registration
    if isinstance(reg, dict) and isinstance(reg.get("confirmatory"), dict):
        block = reg["confirmatory"]
        subsets = block.get("subsets")
        return V.Confirmatory(
            evaluation=str(block.get("evaluation", V.HEADLINE[0])),
            comparison=str(block.get("comparison", V.HEADLINE[1])),
            sl_comparator=block.get("sl_comparator"),
            against=str(block.get("against", "one")),
            subsets=tuple(subsets) if isinstance(subsets, list) and subsets else None,
            equivalence_margin=reg.get("equivalence_margin_points"),
        )
    return _from_config(run)


def _from_config(run: RunDir) -> V.Confirmatory:
    chosen = run.report_setting("confirmatory", None) or {}
    return V.Confirmatory(
        evaluation=str(chosen.get("evaluation", V.HEADLINE[0])),
        comparison=str(chosen.get("comparison", V.HEADLINE[1])),
        sl_comparator=chosen.get("sl_comparator"),
        against=str(chosen.get("against", "one")),
        equivalence_margin=run.report_setting("equivalence_margin", None),
    )


def _describe(c: V.Confirmatory) -> str:
    against = "every SL variant" if c.against == "every" else (c.sl_comparator or "plain SL")
    return f"{c.evaluation}, {c.comparison} gap, against {against}"


def _seeds(seeds: list[Any]) -> str:
    return ", ".join(str(s) for s in seeds) or "none"


def _present_seeds(run: RunDir) -> set[int] | None:
    res = run.results
    if "seed" not in res or "status" not in res:
        return None
    ok = res[res["status"].astype(str) == "ok"]
    return {int(s) for s in ok["seed"].dropna()}


def registration_line(run: RunDir) -> tuple[str, bool]:
    """The verdict's first line, and whether it reports a departure from the registration
    (another confirmatory block in the config, seeds added after results existed, or a
    registration made after results existed, or none at all)."""
    reg = run.registration
    if not isinstance(reg, dict):
        return (
            "Not registered: this run has no registration.json (made before registration "
            "existed), so the confirmatory test is read from its config, which could have been "
            "edited after the results were seen.",
            True,
        )
    registered = confirmatory_choice(run)
    configured = _from_config(run)
    when = str(reg.get("registered_at", "?"))
    before = bool(reg.get("before_any_result", False))
    departures = []
    if not before:
        departures.append("the registration was written when results already existed")
    config_now = {f: getattr(configured, f) for f in FIELDS}
    config_now["sl_comparator"] = config_now["sl_comparator"] or registered.sl_comparator
    if any(config_now[f] != getattr(registered, f) for f in FIELDS):
        departures.append(
            f"the config now says {_describe(V.Confirmatory(**config_now))}; the registered "
            "test is reported as confirmatory and the config's choice is exploratory"
        )
    seeds = list(reg.get("seeds", []))
    for a in reg.get("amendments", []):
        after = bool(a.get("results_existed"))
        if "seeds" in a and after:
            added = [s for s in a["seeds"] if s not in seeds]
            dropped = [s for s in seeds if s not in a["seeds"]]
            if added:
                departures.append(
                    f"seeds {_seeds(added)} were added on {a.get('at', '?')} after results "
                    "existed (adding seeds after seeing results inflates the false-positive "
                    "rate)"
                )
            if dropped:
                departures.append(
                    f"seeds {_seeds(dropped)} were dropped on {a.get('at', '?')} after results "
                    "existed (the test then runs on the seeds kept)"
                )
            seeds = list(a["seeds"])
        elif "seeds" in a:
            seeds = list(a["seeds"])
        if after and "config_hash" in a:
            departures.append(
                f"the config changed on {a.get('at', '?')} after results existed (hash "
                f"{a['config_hash']})"
            )
        if after and "equivalence_margin_points" in a:
            departures.append(
                f"the equivalence margin was changed to {a['equivalence_margin_points']} after "
                "results existed; the registered one is used"
            )
    margin_now = run.report_setting("equivalence_margin", None)
    if margin_now != reg.get("equivalence_margin_points") and run.config:
        departures.append(
            f"the config's equivalence margin is {margin_now}, the registered one "
            f"{reg.get('equivalence_margin_points')} is used"
        )
    absent = _absent_subsets(run, registered)
    if absent:
        departures.append(
            f"registered arm{'s' if len(absent) > 1 else ''} {', '.join(absent)} "
            f"{'have' if len(absent) > 1 else 'has'} no gap in these tables"
        )
    present = _present_seeds(run)
    missing = [s for s in seeds if present is not None and s not in present]
    if missing:
        departures.append(
            f"registered seed{'s' if len(missing) > 1 else ''} {_seeds(missing)} "
            f"{'have' if len(missing) > 1 else 'has'} no results in these tables"
        )
    head = (
        f"Registered {'before any result' if before else 'after results existed'} ({when}): "
        f"{_describe(registered)}, Δ in {_metric(reg)}, "
        f"alpha {reg.get('alpha', V.ALPHA)}, seeds {_seeds(list(reg.get('seeds', [])))}"
    )
    if not departures:
        return f"{head}; reported as registered.", False
    return f"{head}; reported with departures: {'; '.join(departures)}.", True


def _absent_subsets(run: RunDir, c: V.Confirmatory) -> list[str]:
    runs = run.tables.get("gap_runs")
    if runs is None or runs.empty or c.subsets is None or "subset" not in runs:
        return []
    mine = runs[runs["evaluation"] == c.evaluation] if "evaluation" in runs else runs
    have = set(mine["subset"].astype(str))
    return [s for s in c.subsets if s not in have]


def _metric(reg: dict[str, Any]) -> str:
    metric = str(reg.get("confirmatory", {}).get("metric", "top1"))
    return {"top1": "top-1", "balanced_accuracy": "balanced accuracy"}.get(metric, metric)
