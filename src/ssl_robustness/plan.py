"""`run --plan`: what a study would run, what is cached, and a rough cost, without running it."""

from __future__ import annotations

from dataclasses import dataclass

from .config import StudyConfig
from .data.prepare import StudyData
from .evaluation.run import evaluation_jobs, evaluation_specs
from .methods import views_per_step
from .representations import expand_representations, representation_status

# image passes per second on 2 CPU cores for resnet_tiny at width 16 and 16 px, measured on
# the quick start; cost grows about with pixels x width^2
CPU_PASSES_PER_S = 2000.0


@dataclass(frozen=True)
class PlanRow:
    representation: str
    scenario: str
    subset: str
    seed: int
    status: str  # done | partial | todo
    evaluations: int
    image_passes: int  # pretraining views x epochs x images, plus fine-tuning


def plan_rows(cfg: StudyConfig, data: StudyData) -> list[PlanRow]:
    """One row per representation: what it is, whether it is cached, and its work in image
    passes (pretraining views per step x epochs x images, plus fine-tuning)."""
    rows = []
    evals = evaluation_specs(cfg.evaluation)
    for spec in expand_representations(cfg, data):
        jobs = evaluation_jobs(evals, data, spec.seed, spec.subset)
        ft_work = sum(
            j.spec.settings["epochs"] * len(j.indices)
            for j in jobs
            if j.spec.kind not in ("linear", "knn")
        )
        work = 0
        if spec.subset is not None and spec.method_config is not None:
            assert spec.train is not None
            size = len(data.draw(spec.seed).subsets[spec.subset])
            work = views_per_step(spec.method_config) * spec.train.epochs * size
        rows.append(
            PlanRow(
                spec.name,
                spec.scenario,
                spec.subset or "-",
                spec.seed,
                representation_status(spec, cfg.out),
                len(jobs),
                work + ft_work,
            )
        )
    return rows


def cpu_estimate(cfg: StudyConfig, passes: int) -> str:
    """A rough CPU training time for `passes` image passes (resnet_tiny only)."""
    if cfg.backbone.name != "resnet_tiny":
        return " (full-size backbone: plan for a GPU)"
    scale = (cfg.data.image_size / 16) ** 2 * (cfg.backbone.width / 16) ** 2
    minutes = passes * scale / CPU_PASSES_PER_S / 60
    return f" (roughly {minutes:.0f} min of training on 2 CPU cores, evaluation extra)"


def plan_lines(cfg: StudyConfig, rows: list[PlanRow]) -> list[str]:
    """The plan as `run --plan` prints it: a table, then the work left."""
    lines = [
        f"{'representation':40s} {'scenario':14s} {'seed':>4s} {'status':8s} {'image passes':>12s}"
    ]
    for r in rows:
        lines.append(
            f"{r.representation:40s} {r.scenario:14s} {r.seed:4d} "
            f"{r.status:8s} {r.image_passes:12,d}"
        )
    todo = [r for r in rows if r.status != "done"]
    passes = sum(r.image_passes for r in todo)
    lines.append(
        f"{len(rows)} representations, {len(rows) - len(todo)} cached; "
        f"{passes:,} image passes to go{cpu_estimate(cfg, passes)}"
    )
    return lines
