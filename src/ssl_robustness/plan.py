"""`run --plan`: what a study would run, what is cached, and its cost, without running it.

The cost is measured, not assumed: a few training steps of the configured backbone at the
configured batch and image size on the chosen device give image passes per second."""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .config import StudyConfig
from .cpu_threads import usable_cpus
from .data.study_data import StudyData
from .engine.batches import full_batches
from .engine.logger import duration
from .evaluation.cost import evaluation_passes, timed_call
from .evaluation.kinds import enabled_kinds, evaluation_specs
from .evaluation.outputs import METRICS_FILE
from .evaluation.registry import StudyInputs, kind_of_spec
from .evaluation.run import EvaluationJob, evaluation_jobs
from .layout import RunLayout
from .methods import views_per_step
from .names import SSL_IMAGENET
from .report.cost import cost_lines, cost_rows
from .report.planning import seeds_needed_lines
from .representations import RepresentationSpec, expand_representations, representation_status

if TYPE_CHECKING:
    import torch

    from .evaluation.cost import ModelSpeed

MEASURE_STEPS = 5  # timed training steps, after MEASURE_WARMUP untimed ones
MEASURE_WARMUP = 2
SLOW_STEP_S = 5.0  # a warm-up step slower than this: time one step only
# at most, on a CPU (images/s barely depends on the batch there), so that --plan takes seconds
# even for a ResNet-50 at 224 px
CPU_MEASURE_BATCH = {64: 64, 1024: 8}  # image size up to: batch


@dataclass(frozen=True)
class PlanRow:
    representation: str
    scenario: str
    subset: str
    seed: int
    status: str  # done | partial | todo
    evaluations: int
    image_passes: int  # pretraining views x epochs x images, plus fine-tuning
    images: int = 0  # training images the fits will see (no views; full batches only)
    key: str = ""  # the representation's directory name
    # images through the frozen backbone in its evaluations: feature passes (probe set or
    # subset, val, test) and fine-tuning's val/test predictions (evaluation/cost.py)
    frozen_passes: int = 0
    # what is left of `image_passes`: None reads as all of it, or none once done; a done
    # representation may still have evaluations to run (interrupted, or a kind added)
    passes_left: int | None = None
    evaluations_left: int | None = None

    @property
    def left(self) -> int:
        """Image passes of training and fine-tuning still to run."""
        if self.passes_left is not None:
            return self.passes_left
        return 0 if self.status == "done" else self.image_passes


def plan_rows(
    cfg: StudyConfig, data: StudyData, specs: list[RepresentationSpec] | None = None
) -> list[PlanRow]:
    """One row per representation (all of the study's, or `specs`): what it is, whether it is
    cached, and its work in image passes (pretraining views per step x epochs x images, plus
    fine-tuning)."""
    rows = []
    evals = evaluation_specs(cfg.evaluation)
    for spec in expand_representations(cfg, data) if specs is None else specs:
        jobs = evaluation_jobs(evals, data, spec.seed, spec.subset)
        status = representation_status(spec, cfg.out)
        left = jobs if status != "done" else _evaluations_left(cfg, data, spec)
        ft_work, ft_images = _fit_work(jobs)
        ft_left, _ = _fit_work(left)
        frozen, _ = evaluation_passes(left, data)
        work = images = 0
        if spec.subset is not None and spec.method_config is not None:
            assert spec.train is not None
            size = len(data.draw(spec.seed).subsets[spec.subset])
            # a SAM step is two forward/backward passes over the same views
            sam_passes = 2 if spec.method_config.sam is not None else 1
            work = sam_passes * views_per_step(spec.method_config) * spec.train.epochs * size
            images = spec.train.epochs * full_batches(size, spec.train.batch_size)
        rows.append(
            PlanRow(
                spec.name,
                spec.scenario,
                spec.subset or "-",
                spec.seed,
                status,
                len(jobs),
                work + ft_work,
                images + ft_images,
                spec.dirname,
                frozen,
                (0 if status == "done" else work) + ft_left,
                len(left),
            )
        )
    return rows


def _fit_work(jobs: list[EvaluationJob]) -> tuple[int, int]:
    """(image passes, training images in full batches) of the jobs that train (fine-tuning)."""
    fits = [(j, f) for j in jobs if (f := kind_of_spec(j.spec).fit(j.spec.settings))]
    passes = sum(f.epochs * len(j.indices) for j, f in fits)
    images = sum(f.epochs * full_batches(len(j.indices), f.batch_size) for j, f in fits)
    return passes, images


def _evaluations_left(
    cfg: StudyConfig, data: StudyData, spec: RepresentationSpec
) -> list[EvaluationJob]:
    """A finished representation's evaluations without their metrics yet (a run interrupted
    between them, or a kind added since), keyed as the run keys them (with the study's
    augmentation); an imported one's are priced apart (`imported_costs`): none here."""
    if spec.imported is not None:
        return []
    rep_dir = spec.layout(RunLayout(cfg.out)).path
    specs = evaluation_specs(cfg.evaluation, spec.augmentation)
    jobs = evaluation_jobs(specs, data, spec.seed, spec.subset)
    return [j for j in jobs if not (j.directory(rep_dir, data) / METRICS_FILE).exists()]


def study_work(
    cfg: StudyConfig, data: StudyData, specs: list[RepresentationSpec]
) -> dict[str, tuple[float, float]]:
    """(image passes, training images) left per representation, for the study's time left
    in the log (engine/logger.py); a cached representation has none."""
    return {
        r.key: (0.0, 0.0) if r.status == "done" else (float(r.image_passes), float(r.images))
        for r in plan_rows(cfg, data, specs)
    }


@dataclass(frozen=True)
class Throughput:
    """Image passes per second of one training step, measured here."""

    passes_per_s: float
    backbone: str
    batch: int
    image_size: int
    device: str
    steps: int = MEASURE_STEPS
    warmup: int = MEASURE_WARMUP
    configured_batch: int | None = None  # the config's, where the measure used fewer
    slowest_per_s: float | None = None  # of the timed steps: the range an estimate spans
    fastest_per_s: float | None = None
    load: str = ""  # on a CPU: how busy the cores were while it measured
    forward_per_s: float | None = None  # no-grad forward passes (eval mode), for evaluation

    def how(self) -> str:
        steps = (
            f"the median of {self.steps} training steps" if self.steps > 1 else "1 training step"
        )
        if self.forward_per_s:
            steps += (
                f" and of {self.steps} forward passes" if self.steps > 1 else " and 1 forward pass"
            )
        batch = f"batch {self.batch}"
        if self.configured_batch not in (None, self.batch):
            batch += f" (the configured {self.configured_batch}, capped on a CPU for speed)"
        return (
            f"measured: {steps} of {self.backbone} at {batch}, "
            f"{self.image_size} px on {self.device}, after {self.warmup} warm-up{self.load}"
        )


def cpu_load_note(before: float, after: float, cpus: int) -> str:
    """What the cores were doing while a CPU step was timed: the 1-minute load average (it
    counts our own threads too) against the CPUs this process may use. A load above them means
    other work shared the cores, and the estimate is that slow only while it lasts.

    >>> cpu_load_note(0.4, 1.9, 2)
    '; load average 1.9 on 2 usable CPU(s)'
    >>> cpu_load_note(3.0, 4.5, 2)[:61]
    '; load average 4.5 on 2 usable CPU(s): the cores were busy wi'
    """
    load = max(before, after)
    note = f"; load average {load:.1f} on {cpus} usable CPU(s)"
    if load > cpus + 0.5:
        note += (
            ": the cores were busy with other work while it measured, so this estimate is "
            "slower than an idle machine's"
        )
    return note


def measure_throughput(cfg: StudyConfig, device: torch.device) -> Throughput:
    """Time MEASURE_STEPS forward-backward-update steps of the configured backbone on random
    images of the configured batch (at most CPU_MEASURE_BATCH on a CPU) and size, one step
    only when a warm-up step is slower than SLOW_STEP_S: seconds, no data decoded."""
    import torch

    from .engine.device import autocast, prepare_model, to_memory_format
    from .models.backbones import build_backbone

    size = cfg.data.image_size
    batch = cfg.pretrain.batch_size
    if device.type == "cpu":
        batch = min(batch, next(b for s, b in CPU_MEASURE_BATCH.items() if size <= s))
    torch.manual_seed(0)
    net = prepare_model(build_backbone(cfg.backbone, size), device)  # as training lays it out
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    x = to_memory_format(torch.randn(batch, 3, size, size, device=device))

    def train_step() -> None:
        with autocast(device):
            loss = net(x).float().pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def forward() -> None:  # as the feature pass of the linear probe and kNN runs
        with torch.no_grad(), autocast(device):
            net(x)

    def step() -> float:
        return timed_call(train_step, device)

    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    warm = [step() for _ in range(MEASURE_WARMUP)]
    steps = MEASURE_STEPS if max(warm) < SLOW_STEP_S else 1  # --plan stays quick
    timed = [max(step(), 1e-9) for _ in range(steps)]
    step_s = statistics.median(timed)  # robust to a stall
    net.eval()
    timed_call(forward, device)  # one warm-up
    forward_s = statistics.median(timed_call(forward, device) for _ in range(steps))
    return Throughput(
        batch / step_s,
        cfg.backbone.name,
        batch,
        size,
        str(device),
        steps,
        configured_batch=cfg.pretrain.batch_size,
        slowest_per_s=batch / max(timed),
        fastest_per_s=batch / min(timed),
        load=(
            cpu_load_note(load_before, os.getloadavg()[0], usable_cpus())
            if device.type == "cpu" and hasattr(os, "getloadavg")
            else ""
        ),
        forward_per_s=batch / max(forward_s, 1e-9),
    )


def cost_line(passes: int, speed: Throughput | None, frozen: int = 0) -> str:
    """The work left in time at the measured speed: training steps, then the evaluations'
    frozen passes at the measured forward speed (the probes' fits are not timed: on features,
    they are small beside the passes)."""
    if speed is None or passes + frozen == 0:
        return ""
    spread = ""
    if speed.slowest_per_s and speed.fastest_per_s and speed.steps > 1:
        low, high = passes / speed.fastest_per_s, passes / speed.slowest_per_s
        spread = f" ({duration(low)} to {duration(high)} at the fastest and slowest timed step)"
    evaluation = ""
    if frozen and speed.forward_per_s:
        evaluation = (
            f"; evaluation: {frozen:,} frozen image passes (features, fine-tuning's "
            f"predictions), about {duration(frozen / speed.forward_per_s)} at "
            f"{speed.forward_per_s:,.0f} images/s; not timed: the probes' fits, kNN search, "
            "decoding batches, t-SNE and the report"
        )
    elif frozen:
        evaluation = f"; evaluation: {frozen:,} frozen image passes, not timed"
    return (
        f": about {duration(passes / speed.passes_per_s)} of training{spread} at "
        f"{speed.passes_per_s:,.0f} image passes/s{evaluation} ({speed.how()})"
    )


@dataclass(frozen=True)
class ImportedCost:
    """The evaluations left of one `imported` entry over all seeds, in passes of its own
    network (evaluation/cost.py), at that network's measured speed."""

    name: str
    frozen: int  # images through the frozen backbone: feature pass, fine-tuning's predictions
    trained: int  # images through fine-tuning's training steps
    speed: ModelSpeed

    def line(self) -> str:
        took = duration(self.speed.seconds(self.frozen, self.trained))
        return (
            f"{SSL_IMAGENET} {self.name}: {self.frozen:,} frozen and {self.trained:,} "
            f"fine-tuning image passes to go: about {took} ({self.speed.how()})"
        )


def imported_costs(
    cfg: StudyConfig,
    data: StudyData,
    device: torch.device,
    specs: list[RepresentationSpec] | None = None,
) -> list[ImportedCost]:
    """Per `imported` entry with work left: its evaluations' passes, priced by timing its own
    architecture (random weights, nothing downloaded) at its image size on `device`."""
    from .evaluation.cost import evaluation_passes, measure_speed
    from .models.hub import imported_architecture

    evals = evaluation_specs(cfg.evaluation)
    specs = expand_representations(cfg, data) if specs is None else specs
    costs = []
    for imp in cfg.imported:
        todo = [
            s
            for s in specs
            if s.scenario == SSL_IMAGENET
            and s.method == imp.name
            and representation_status(s, cfg.out) != "done"
        ]
        if not todo:
            continue
        passes = [evaluation_passes(evaluation_jobs(evals, data, s.seed, None), data) for s in todo]
        net, words = imported_architecture(imp)
        speed = measure_speed(net, imp.image_size, device, f"{words} at {imp.image_size} px")
        costs.append(ImportedCost(imp.name, *map(sum, zip(*passes, strict=True)), speed))
    return costs


def batch_note(who: str, batch: int, n: int) -> str:
    """A batch larger than its subset, said as what happens: the loader cuts it to the subset,
    so each epoch is one step of all of it (a researcher's expectation; not refused)."""
    return f"{who}: batch {batch} > {n} images: one batch of {n} per epoch"


def batch_notes(cfg: StudyConfig, data: StudyData, specs: list[RepresentationSpec]) -> list[str]:
    """Every pretraining and fine-tuning batch larger than the subset it draws from (said on
    the plan, before training and in the report)."""
    notes: dict[str, str] = {}
    for spec in specs:
        if spec.train is None or spec.subset is None:
            continue
        n = len(data.draw(spec.seed).subsets[spec.subset])
        if spec.train.batch_size > n:
            who = f"{spec.method} on {spec.subset}"
            notes.setdefault(who, batch_note(who, spec.train.batch_size, n))
    for settings, kind in enabled_kinds(cfg.evaluation):
        fit = kind.fit(settings)
        if fit is None or all(s.adapt == "balanced" for s in kind.specs(settings, StudyInputs())):
            continue  # the probe set's size is checked where it is carved
        for seed in cfg.seeds:
            for name, idx in data.draw(seed).subsets.items():
                if fit.batch_size > len(idx):
                    who = f"evaluation.{settings.kind} on {name}"
                    notes.setdefault(who, batch_note(who, fit.batch_size, len(idx)))
    return list(notes.values())


def _evals_left(rows: list[PlanRow]) -> str:
    """', N evaluations of cached ones to run' where a cached representation has some left."""
    n = sum(r.evaluations_left or 0 for r in rows if r.status == "done")
    return f", {n} evaluation{'s' * (n != 1)} of cached ones to run" if n else ""


def plan_lines(
    cfg: StudyConfig,
    rows: list[PlanRow],
    speed: Throughput | None = None,
    imported: list[ImportedCost] | None = None,
    notes: list[str] | None = None,
) -> list[str]:
    """The plan as `run --plan` prints it: a table, then the work left and its time; with
    `imported`, the SSL-ImageNet representations are priced by their own networks; `notes`
    (batches above their subset, what runs without a validation split) after the table."""
    lines = [
        f"{'representation':40s} {'scenario':14s} {'seed':>4s} {'status':8s} {'image passes':>12s}"
    ]
    for r in rows:
        lines.append(
            f"{r.representation:40s} {r.scenario:14s} {r.seed:4d} "
            f"{r.status:8s} {r.image_passes:12,d}"
        )
    lines += [f"note: {note}" for note in notes or []]
    lines += seeds_needed_lines(cfg.out, cfg.report.effect_of_interest)
    names = [s.name for s in evaluation_specs(cfg.evaluation)]
    lines.append(f"evaluations of every representation: {', '.join(names) or 'none'}")
    todo = [r for r in rows if r.status != "done"]
    # imported representations still to run are priced by their own networks (below)
    priced = [
        r for r in rows if not (imported and r.scenario == SSL_IMAGENET and r.status != "done")
    ]
    passes = sum(r.left for r in priced)
    frozen = sum(r.frozen_passes for r in priced)
    apart = f" ({SSL_IMAGENET} apart, below)" if imported else ""
    lines.append(
        f"{len(rows)} representations, {len(rows) - len(todo)} cached{_evals_left(rows)}; "
        f"{passes:,} image passes to go{apart}{cost_line(passes, speed, frozen)}"
    )
    lines += [c.line() for c in imported or []]
    spent = cost_lines(cost_rows(cfg.out))
    if spent:  # a resumed or re-run study: what its finished phases took
        lines += ["wall time recorded so far, by phase:", *(f"  {x}" for x in spent)]
    return lines
