"""A study on a cluster: one submitit job per representation, then the tables and report.

`run --executor slurm|local` hands each representation still to do (its training and its
evaluations) to a job of its own. The tables and the report are then the in-process `run`
that finds every representation cached: a final SLURM job depending on all the others, or,
with the local executor, the submitting process once its jobs have ended.

A job with several tasks (GPUs or nodes) joins a process group from submitit's
JobEnvironment and trains data-parallel (DDP), rank 0 writing. A job is Checkpointable: on
preemption or timeout submitit requeues the same call, and the training resumes from its own
checkpoint. Each representation is worked on under its directory's lock (study.py), so a
resubmitted study, or a job and a `run` on the same output directory, never train one
representation twice.
"""

from __future__ import annotations

import os
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import submitit

from .config import StudyConfig
from .errors import UserError

EXECUTORS = ("local", "slurm")
JOBS_DIR = "jobs"  # <output_dir>/jobs/<job id>_*: submitit's pickles, each job's logs
Log = Callable[[str], Any]


@dataclass
class ClusterOptions:
    """What each job asks the cluster for."""

    executor: str = "local"
    partition: str | None = None
    time_min: int = 240
    gpus_per_job: int = 0
    nodes: int = 1
    cpus_per_task: int | None = None
    slurm_args: dict[str, str] = field(default_factory=dict)

    @property
    def tasks_per_node(self) -> int:
        """One process per GPU (DDP); one process without GPUs."""
        return max(self.gpus_per_job, 1)


def parse_slurm_args(items: tuple[str, ...] | list[str]) -> dict[str, str]:
    """`--slurm-arg key=value` pairs (sbatch options submitit passes on as they are)."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--slurm-arg {item!r}: expected KEY=VALUE, e.g. account=myproject")
        out[key.strip().replace("-", "_")] = value.strip()
    return out


def jobs_folder(cfg: StudyConfig) -> Path:
    return cfg.out / JOBS_DIR


def make_executor(
    cfg: StudyConfig,
    opts: ClusterOptions,
    *,
    final: bool = False,
    visible_gpus: tuple[int, ...] = (),
) -> Any:
    """A submitit executor writing under <output_dir>/jobs; `final`: the one-process report
    job (one GPU at most: it only evaluates what a failed job left undone)."""
    if opts.executor not in EXECUTORS:
        raise UserError(f"--executor {opts.executor!r}: choose one of {', '.join(EXECUTORS)}")
    executor = submitit.AutoExecutor(folder=jobs_folder(cfg), cluster=opts.executor)
    gpus = min(opts.gpus_per_job, 1) if final else opts.gpus_per_job
    params: dict[str, Any] = {
        "name": f"{cfg.name}-report" if final else cfg.name,
        "timeout_min": opts.time_min,
        "nodes": 1 if final else opts.nodes,
        "tasks_per_node": 1 if final else opts.tasks_per_node,
    }
    if gpus:
        params["gpus_per_node"] = gpus
    if visible_gpus:  # local: which of the machine's GPUs this job gets
        params["local_visible_gpus"] = list(visible_gpus)
    if opts.cpus_per_task is not None:
        params["cpus_per_task"] = opts.cpus_per_task
    if opts.executor == "slurm":
        if opts.partition:
            params["slurm_partition"] = opts.partition
        if opts.slurm_args:
            params["slurm_additional_parameters"] = dict(opts.slurm_args)
    executor.update_parameters(**params)
    return executor


def join_job_group() -> bool:
    """In a multi-task submitit job, join the job's process group (rank 0's node hosts it).
    False in a one-task job."""
    from .engine.distributed import init_process_group

    env = submitit.JobEnvironment()
    if env.num_tasks <= 1:
        return False
    host = "127.0.0.1" if env.name() == "local" else env.hostnames[0]
    port = 20000 + zlib.crc32(str(env.job_id).encode()) % 20000  # one port per job
    return init_process_group(env.global_rank, env.num_tasks, env.local_rank, host, port)


class RepresentationJob(submitit.helpers.Checkpointable):
    """One representation of a study, trained and evaluated in a job. Requeued as it is on
    preemption (Checkpointable's default): the training resumes from its checkpoint."""

    def __init__(self, cfg: StudyConfig, dirname: str) -> None:
        self.cfg, self.dirname = cfg, dirname

    def __call__(self) -> dict[str, Any]:
        from .engine.distributed import is_main
        from .study import run_specs, start_study

        join_job_group()
        data, device, specs = start_study(self.cfg, owner=False)
        spec = next((s for s in specs if s.dirname == self.dirname), None)
        if spec is None:
            raise RuntimeError(f"{self.dirname}: no such representation in the study any more")
        records, failures = run_specs([spec], self.cfg, data, device)
        if failures:
            raise RuntimeError(f"{spec.name}: {failures[0]['error']}")
        return {"representation": spec.name, "evaluations": len(records), "main": is_main()}


class ReportJob(submitit.helpers.Checkpointable):
    """The final job: the in-process study, which finds the representations cached (and does
    what a failed job left), then writes the tables and the report."""

    def __init__(self, cfg: StudyConfig) -> None:
        self.cfg = cfg

    def __call__(self) -> str:
        from .lock import output_lock
        from .study import run_study

        with output_lock(self.cfg.out, "run (report job)", wait=True):
            result = run_study(self.cfg)
        return str(result.report)


@dataclass
class Submission:
    """The jobs of a study; `report_job` only on SLURM (None: the local jobs have ended, the
    tables and report are to be written in-process)."""

    jobs: dict[str, Any]  # representation name -> submitit job
    report_job: Any | None = None
    failed: list[str] = field(default_factory=list)  # local jobs that raised


def submit_study(cfg: StudyConfig, opts: ClusterOptions, *, log: Log = print) -> Submission:
    """Prepare the data once, here, then hand each representation still to do to a job: on
    SLURM all at once, with the report job depending on them; locally as many at once as the
    machine's GPUs (or CPUs) hold, waiting for them. The caller holds the run's lock."""
    from .representations import representation_status
    from .study import start_study

    # an earlier submission's jobs may still run: their fresh temp files are kept
    _, _, specs = start_study(cfg, owner=True, jobs_may_run=True)
    todo = [s for s in specs if representation_status(s, cfg.out) != "done"]
    log(
        f"study '{cfg.name}': {len(specs)} representations, {len(specs) - len(todo)} done, "
        f"{len(todo)} job(s) on {opts.executor} (logs: {jobs_folder(cfg)})"
    )
    if opts.executor != "slurm":
        return _run_local(cfg, opts, todo, log)
    executor = make_executor(cfg, opts)
    jobs = {s.name: executor.submit(RepresentationJob(cfg, s.dirname)) for s in todo}
    for name, job in jobs.items():
        log(f"  job {job.job_id}: {name}")
    final = make_executor(cfg, opts, final=True)
    if jobs:
        ids = ":".join(str(j.job_id) for j in jobs.values())
        extra = {**opts.slurm_args, "dependency": f"afterany:{ids}"}
        final.update_parameters(slurm_additional_parameters=extra)
    report_job = final.submit(ReportJob(cfg))
    log(f"  job {report_job.job_id}: tables and report, after the others")
    return Submission(jobs, report_job)


def local_slots(opts: ClusterOptions) -> list[tuple[int, ...]]:
    """The GPUs of each job this machine runs at once (empty tuples: CPU jobs, one per
    `--cpus-per-task` share of the cores; one at a time without it)."""
    if opts.gpus_per_job:
        import torch

        total = torch.cuda.device_count()
        if total < opts.gpus_per_job:
            raise UserError(f"--gpus-per-job {opts.gpus_per_job}: this machine has {total} GPU(s)")
        n = opts.gpus_per_job
        return [tuple(range(i * n, (i + 1) * n)) for i in range(total // n)]
    cpus = os.cpu_count() or 1
    return [()] * max(1, cpus // (opts.cpus_per_task or cpus))


def _run_local(
    cfg: StudyConfig, opts: ClusterOptions, todo: list[Any], log: Log, poll_s: float = 0.5
) -> Submission:
    """Run the jobs as processes of this machine, each on GPUs of its own, at most
    `len(local_slots(opts))` at once; a failed job is logged (the in-process run afterwards
    retries it and records the failure in the tables)."""
    free = local_slots(opts)
    log(f"  {len(free)} job(s) at once")
    pending, running = list(todo), {}
    submission = Submission({})
    while pending or running:
        while pending and free:
            spec, gpus = pending.pop(0), free.pop(0)
            job = make_executor(cfg, opts, visible_gpus=gpus).submit(
                RepresentationJob(cfg, spec.dirname)
            )
            submission.jobs[spec.name], running[job.job_id] = job, (job, spec.name, gpus)
            log(f"  job {job.job_id}: {spec.name}" + (f" on GPUs {list(gpus)}" if gpus else ""))
        time.sleep(poll_s)
        for job_id, (job, name, gpus) in list(running.items()):
            if not job.done():
                continue
            del running[job_id]
            free.append(gpus)
            try:
                job.result()
            except Exception as exc:  # noqa: BLE001 - a failed job is reported, not fatal
                submission.failed.append(name)
                lines = str(exc).strip().splitlines()
                log(f"  job {job.job_id} ({name}) failed: {lines[-1] if lines else exc}")
    return submission
