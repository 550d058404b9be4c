"""A study on a cluster: submitit jobs (local executor; SLURM through a stand-in sbatch),
torchrun data parallelism, and the per-representation lock that keeps two workers from
training one representation twice."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from click.testing import CliRunner

from conftest import tiny_study
from ssl_robustness.cli import cli
from ssl_robustness.config import StudyConfig
from ssl_robustness.errors import UserError
from ssl_robustness.lock import output_lock

pytest.importorskip("submitit")


def _raw(out: Path, **overrides) -> dict:
    """One supervised method, one epoch, deterministic views (full-image crops, no flips or
    colour): a study whose numbers depend only on the global batches, not on how many
    processes draw the augmentations (each process draws its own: engine/loop.py)."""
    settings = {
        "methods": [{"name": "supervised"}],
        "random_init": False,
        "pretrain.epochs": 1,
        "augmentation.crop_min_scale": 1.0,
        "augmentation.flip": False,
        "augmentation.color": False,
        "data.imbalance.n": 128,  # two batches of 64
        "evaluation.finetune.enabled": False,
        "evaluation.linear.enabled": False,
        "report.tsne": False,
        **overrides,
    }
    return tiny_study(out, **settings)


def _write(tmp_path: Path, name: str, **overrides) -> tuple[Path, StudyConfig]:
    raw = _raw(tmp_path / name, **overrides)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path, StudyConfig.model_validate(raw)


@pytest.fixture(scope="module")
def in_process(tmp_path_factory) -> StudyConfig:
    """The study run in this one process: the tables every other way must give."""
    from ssl_robustness.study import run_study

    _, cfg = _write(tmp_path_factory.mktemp("inprocess"), "inprocess")
    run_study(cfg, log=lambda _: None)
    return cfg


def _tables(cfg: StudyConfig, name: str) -> pd.DataFrame:
    return pd.read_csv(cfg.layout.table(name))


def _backbones(cfg: StudyConfig) -> dict[str, dict[str, torch.Tensor]]:
    reps = sorted(cfg.layout.root.glob("representations/*/backbone.pt"))
    return {p.parent.name: torch.load(p, weights_only=True) for p in reps}


def test_local_executor_jobs_give_the_in_process_tables(tmp_path, in_process):
    expected = in_process
    path, cfg = _write(tmp_path, "jobs")
    args = ["run", str(path), "--executor", "local", "--cpus-per-task", "1"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "0 done, 2 job(s) on local" in result.output
    assert f"{os.cpu_count()} job(s) at once" in result.output  # one core each
    # each representation ran in a job of its own: a log per job under <output_dir>/jobs
    logs = sorted((cfg.out / "jobs").glob("*_0_log.out"))
    assert len(logs) == 2
    for name in ("results", "per_class", "aggregate"):
        pd.testing.assert_frame_equal(_tables(cfg, name), _tables(expected, name))
    # resubmitted: everything is cached, no job at all
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0, again.output
    assert "2 done, 0 job(s) on local" in again.output
    assert len(sorted((cfg.out / "jobs").glob("*_0_log.out"))) == 2


def test_torchrun_two_processes_give_the_one_process_tables(tmp_path, in_process):
    expected = in_process
    path, cfg = _write(tmp_path, "ddp")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"]
    cmd += ["--standalone", "-m", "ssl_robustness.cli", "run", str(path)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "on 2 processes" in done.stdout
    assert done.stdout.count("report: ") == 1  # rank 0 alone writes and reports
    for name in ("results", "per_class"):
        pd.testing.assert_frame_equal(_tables(cfg, name), _tables(expected, name), atol=1e-6)
    # the same global batches and batch statistics: the same weights, up to float sums
    ours, theirs = _backbones(cfg), _backbones(expected)
    assert list(ours) == list(theirs) and len(ours) == 2
    for rep, state in ours.items():
        for key, value in state.items():
            torch.testing.assert_close(value, theirs[rep][key], atol=1e-5, rtol=0)


def test_a_job_of_two_tasks_trains_data_parallel(tmp_path, in_process):
    """submitit's multi-task job (as with --gpus-per-job 2): the tasks join one process
    group, train together, and rank 0 alone evaluates; the weights are the one-process ones."""
    from ssl_robustness.executors import ClusterOptions, RepresentationJob, make_executor
    from ssl_robustness.study import start_study

    _, cfg = _write(tmp_path, "tasks")
    _, _, specs = start_study(cfg, owner=True)
    executor = make_executor(cfg, ClusterOptions("local"))
    executor.update_parameters(tasks_per_node=2)  # on CPU: two processes, gloo
    job = executor.submit(RepresentationJob(cfg, specs[0].dirname))
    ranks = job.results()
    assert [r["main"] for r in ranks] == [True, False]
    assert [r["evaluations"] for r in ranks] == [1, 0]  # kNN, on rank 0 only
    assert "on 2 processes" in Path(job.paths.stdout).read_text()
    ours = _backbones(cfg)[specs[0].dirname]
    theirs = _backbones(in_process)[specs[0].dirname]
    for key, value in ours.items():
        torch.testing.assert_close(value, theirs[key], atol=1e-5, rtol=0)


def test_a_second_worker_waits_for_the_representation_and_reads_it_back(tmp_path):
    from ssl_robustness.representations import obtain_representation
    from ssl_robustness.study import run_specs, start_study

    _, cfg = _write(tmp_path, "lock")
    data, device, specs = start_study(cfg, owner=True)
    spec = specs[0]
    rep = spec.layout(cfg.layout)
    logged: list[str] = []
    box: dict = {}
    with output_lock(rep.path, "the first worker"):
        worker = threading.Thread(
            target=lambda: box.update(out=run_specs([spec], cfg, data, device, log=logged.append))
        )
        worker.start()
        deadline = time.monotonic() + 30
        while not any("waiting for" in line for line in logged) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any("the first worker" in line for line in logged), logged
        obtain_representation(spec, cfg.layout, data, device)  # the first worker trains it
        trained = rep.backbone.stat().st_mtime_ns
        assert worker.is_alive()  # still waiting for the lock
    worker.join(timeout=60)
    records, failures = box["out"]
    assert failures == [] and len(records) == 1  # kNN
    assert rep.backbone.stat().st_mtime_ns == trained  # read back, not trained again


def test_resubmitting_keeps_the_temp_files_of_jobs_still_running(tmp_path, monkeypatch):
    """A job of an earlier submission may still write: the submitting process, and an
    in-process run while a representation's lock is held elsewhere, remove only old temp
    files; an in-process run with nobody else at work removes every one."""
    from ssl_robustness import executors
    from ssl_robustness.study import start_study

    _, cfg = _write(tmp_path, "temps")
    rep = cfg.layout.representations / "supervised_balanced_s0-0123456789"
    rep.mkdir(parents=True)
    young, old = rep / ".checkpoint.pt.abcd1234.tmp", rep / ".metrics.json.abcd1234.tmp"

    def orphans() -> None:
        for path in (young, old):
            path.write_bytes(b"half")
        os.utime(old, (time.time() - 7200, time.time() - 7200))  # two hours: a killed run's

    orphans()
    monkeypatch.setattr(executors, "_run_local", lambda *a: executors.Submission({}))
    executors.submit_study(cfg, executors.ClusterOptions("local"), log=lambda _: None)
    assert young.exists() and not old.exists()
    orphans()
    with output_lock(rep, "a job of an earlier submission"):
        start_study(cfg, owner=True)
    assert young.exists() and not old.exists()
    orphans()
    start_study(cfg, owner=True)  # the lock is free: nobody else writes
    assert not young.exists() and not old.exists()


def test_slurm_jobs_and_a_report_job_after_them(tmp_path, monkeypatch):
    """A stand-in sbatch records each job script: a job per representation with the asked
    resources, and the report job depending on all of them."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    sbatch = bin_dir / "sbatch"
    sbatch.write_text(
        "#!/bin/sh\n"
        f'n=$(ls {scripts} | wc -l); cp "$1" {scripts}/job$((n + 100)).sh\n'
        'echo "Submitted batch job $((n + 100))"\n'
    )
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    path, cfg = _write(tmp_path, "slurm")
    args = ["run", str(path), "--executor", "slurm", "--partition", "gpu", "--time", "90"]
    args += ["--gpus-per-job", "4", "--nodes", "2", "--slurm-arg", "account=lab"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "job 100: supervised_balanced_s0" in result.output
    assert "job 102: tables and report, after the others" in result.output
    texts = [(scripts / f"job{i}.sh").read_text() for i in (100, 101, 102)]
    for text in texts[:2]:
        for line in ("--partition=gpu", "--time=90", "--nodes=2", "--gpus-per-node=4"):
            assert f"#SBATCH {line}" in text
        assert "#SBATCH --ntasks-per-node=4" in text and "#SBATCH --account=lab" in text
    report = texts[2]
    assert "#SBATCH --dependency=afterany:100:101" in report
    assert "#SBATCH --nodes=1" in report and "#SBATCH --ntasks-per-node=1" in report
    assert not cfg.layout.results.exists()  # nothing ran here


def test_local_jobs_at_once_fit_the_machine(monkeypatch):
    """Locally, each job gets GPUs of its own (or a --cpus-per-task share of the cores)."""
    from ssl_robustness.executors import ClusterOptions, local_slots

    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert local_slots(ClusterOptions("local")) == [()]
    assert local_slots(ClusterOptions("local", cpus_per_task=3)) == [(), ()]
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    assert local_slots(ClusterOptions("local", gpus_per_job=3)) == [(0, 1, 2), (3, 4, 5)]
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(UserError, match="--gpus-per-job 2: this machine has 1 GPU"):
        local_slots(ClusterOptions("local", gpus_per_job=2))


def test_a_preempted_job_is_requeued_as_it_is(tmp_path):
    """submitit calls checkpoint() on preemption or timeout: the same job, the same
    representation, resubmitted; its training then resumes from its own checkpoint."""
    from ssl_robustness.executors import RepresentationJob

    _, cfg = _write(tmp_path, "requeue")
    job = RepresentationJob(cfg, "supervised_balanced_s0-0123456789")
    again = job.checkpoint()
    assert again.function is job and again.args == () and again.kwargs == {}


def test_a_bad_slurm_arg_is_a_user_error(tmp_path):
    from ssl_robustness.executors import parse_slurm_args

    assert parse_slurm_args(["account=lab", "mail-type=END"]) == {
        "account": "lab",
        "mail_type": "END",
    }
    with pytest.raises(UserError, match="--slurm-arg 'account': expected KEY=VALUE"):
        parse_slurm_args(["account"])
    path, _ = _write(tmp_path, "bad")
    result = CliRunner().invoke(cli, ["run", str(path), "--executor", "slurm", "--slurm-arg", "x"])
    assert result.exit_code == 2 and "expected KEY=VALUE" in result.output


def test_a_failed_local_job_is_named_and_left_to_the_in_process_run(monkeypatch):
    """A job that raises does not stop the others; the CLI names it before retrying in-process."""
    from types import SimpleNamespace

    from ssl_robustness import cli as cli_module
    from ssl_robustness import executors

    class Job:
        def __init__(self, job_id: int, fails: bool) -> None:
            self.job_id, self.fails = job_id, fails

        def done(self) -> bool:
            return True

        def result(self) -> dict:
            if self.fails:
                raise RuntimeError("Traceback ...\nRuntimeError: loss is NaN")
            return {}

    submitted = []

    class Executor:
        def submit(self, job: object) -> Job:
            submitted.append(job.dirname)  # type: ignore[attr-defined]
            return Job(len(submitted), fails=job.dirname == "b")  # type: ignore[attr-defined]

    monkeypatch.setattr(executors, "make_executor", lambda *a, **k: Executor())
    todo = [SimpleNamespace(name=n, dirname=n) for n in ("a", "b", "c")]
    lines: list[str] = []
    opts = executors.ClusterOptions("local", cpus_per_task=1)
    submission = executors._run_local(None, opts, todo, lines.append, poll_s=0)
    assert submitted == ["a", "b", "c"] and submission.failed == ["b"]
    assert sorted(submission.jobs) == ["a", "b", "c"]
    assert "  job 2 (b) failed: RuntimeError: loss is NaN" in lines

    monkeypatch.setattr(executors, "submit_study", lambda *a, **k: submission)
    echoed: list[str] = []
    monkeypatch.setattr(cli_module.click, "echo", echoed.append)
    assert cli_module._run_jobs(None, opts) is False  # the tables are this process's to write
    assert echoed == [
        "1 job(s) failed (b): this process tries them again now, and the tables record any "
        "that fail again"
    ]
