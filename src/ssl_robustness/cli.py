"""The `ssl-robustness` command line."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path
from typing import Any

import click

from .config import StudyConfig, load_config
from .cpu_threads import choose_cpu_threads
from .errors import UserError
from .layout import RunLayout
from .lock import output_lock
from .names import CHECKPOINT_FORMATS

CONFIG = click.argument("config", required=False, type=click.Path(path_type=Path))
OVERRIDES = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config value, e.g. --set data.image_size=32.",
)
WAIT = click.option(
    "--wait",
    is_flag=True,
    help="If another process is using the output directory, wait for it instead of failing.",
)


def REPRESENTATION(fn):  # noqa: N802 - used as a decorator, like CONFIG and OVERRIDES
    """--method/--subset/--seed: which representation of the study a command acts on."""
    fn = click.option("--seed", type=int, default=None, help="Seed (default: the first).")(fn)
    fn = click.option(
        "--subset", default=None, help="Subset name (default: the main imbalanced one)."
    )(fn)
    return click.option(
        "--method", required=True, help="Method label (e.g. mocov2), imported name, or random-init."
    )(fn)


def _load(config: Path | None, overrides: tuple[str, ...]) -> StudyConfig:
    """Read and validate the config; torch is not imported yet, so a typo fails in a blink
    (timm model names are checked against timm's list only when the config names one)."""
    cfg = load_config(config, overrides)
    _check_timm_names(cfg)
    return cfg


def _check_timm_names(cfg: StudyConfig) -> None:
    """An unknown `timm:<name>` is a config error naming the key and the nearest names, not a
    RuntimeError when each representation starts training."""
    named = [("backbone.name", cfg.backbone.name)] + [
        (f"imported.{i}.arch", imp.arch) for i, imp in enumerate(cfg.imported)
    ]
    named = [(key, v) for key, v in named if isinstance(v, str) and v.startswith("timm:")]
    if not named:
        return
    from .models.backbones import timm_name_error

    for key, value in named:
        why = timm_name_error(value.removeprefix("timm:"))
        if why:
            raise UserError(f"{key}: {why}")


def _check_output_dir(out: Path) -> None:
    """Refuse an output_dir that is a file or lies in a folder we cannot write, before any work."""
    existing = next(p for p in (out.absolute(), *out.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise UserError(f"output_dir: {existing} is a file, not a folder (output_dir: {out})")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(
            f"output_dir: cannot write into {existing} (permission denied); "
            "choose a writable output_dir"
        )


def _check_device(name: str) -> None:
    """A device this machine lacks fails at the start, not after data preparation."""
    if name not in ("cuda", "mps"):
        return
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        raise UserError(
            "device: 'cuda' asked for, but torch finds no CUDA device on this machine; "
            "use device: auto or cpu"
        )
    mps = getattr(torch.backends, "mps", None)
    if name == "mps" and not (mps is not None and mps.is_available()):
        raise UserError(
            "device: 'mps' asked for, but this machine has no MPS (Apple GPU) backend; "
            "use device: auto or cpu"
        )


def _hold_lock(out: Path, command: str, wait: bool) -> None:
    """Hold the output directory's lock until the command ends (see lock.py)."""
    click.get_current_context().with_resource(
        output_lock(
            out,
            command,
            wait=wait,
            on_wait=lambda who: click.echo(f"waiting for {who} to release {out} ...", err=True),
        )
    )


def CLUSTER(fn):  # noqa: N802 - used as a decorator, like CONFIG and OVERRIDES
    """`run`'s options for a study on a cluster (submitit jobs)."""
    options = [
        click.option(
            "--executor",
            type=click.Choice(["inprocess", "local", "slurm"]),
            default="inprocess",
            show_default=True,
            help="inprocess: train everything here (or under torchrun); local/slurm: one "
            "submitit job per representation, then the tables and report.",
        ),
        click.option("--partition", default=None, help="SLURM partition of the jobs."),
        click.option(
            "--time",
            "time_min",
            type=click.IntRange(min=1),
            default=240,
            show_default=True,
            help="Time limit of each job, in minutes (a preempted or timed-out job is "
            "requeued and resumes from its checkpoint).",
        ),
        click.option(
            "--gpus-per-job",
            type=click.IntRange(min=0),
            default=0,
            show_default=True,
            help="GPUs per node of each job; one process (DDP rank) per GPU.",
        ),
        click.option(
            "--nodes",
            type=click.IntRange(min=1),
            default=1,
            show_default=True,
            help="Nodes per job (DDP across them).",
        ),
        click.option(
            "--cpus-per-task",
            type=click.IntRange(min=1),
            default=None,
            help="CPUs per process of each job.",
        ),
        click.option(
            "--slurm-arg",
            "slurm_args",
            multiple=True,
            metavar="KEY=VALUE",
            help="Any other sbatch option, e.g. --slurm-arg account=myproject "
            "--slurm-arg qos=high (repeatable).",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _cluster_options(cluster: dict[str, Any]) -> Any:
    """The jobs' options, or None to run in this process (or under torchrun)."""
    if cluster["executor"] == "inprocess":
        return None
    try:
        from .executors import ClusterOptions, parse_slurm_args
    except ImportError as exc:
        raise UserError(
            f"--executor {cluster['executor']}: needs submitit ({exc}); "
            "pip install 'ssl-robustness[cluster]'"
        ) from None
    return ClusterOptions(
        executor=cluster["executor"],
        partition=cluster["partition"],
        time_min=cluster["time_min"],
        gpus_per_job=cluster["gpus_per_job"],
        nodes=cluster["nodes"],
        cpus_per_task=cluster["cpus_per_task"],
        slurm_args=parse_slurm_args(cluster["slurm_args"]),
    )


def _run_jobs(cfg: StudyConfig, opts: Any) -> bool:
    """Submit the study's jobs. True when the report is a SLURM job of its own (nothing left
    to do here); False once local jobs have ended: this process then writes the tables."""
    from .executors import submit_study

    submission = submit_study(cfg, opts, log=click.echo)
    if submission.report_job is not None:
        click.echo(f"report (when job {submission.report_job.job_id} ends): {cfg.layout.root}")
        return True
    if submission.failed:
        click.echo(
            f"{len(submission.failed)} job(s) failed ({', '.join(submission.failed)}): this "
            "process tries them again now, and the tables record any that fail again"
        )
    return False


# what prepare_data reads: when these differ, `data stats` would rewrite another study's data/
DATA_KEYS = ("data", "seeds", "evaluation.probe_set", "evaluation.probe_per_class")


def _refuse_other_study(cfg: StudyConfig) -> None:
    """`data stats` rewrites <output_dir>/data; never under a finished study (its tables are
    built from that data) made with other data settings."""
    saved = cfg.layout.config
    if not (saved.is_file() and cfg.layout.results.is_file()):
        return
    import yaml
    from pydantic import ValidationError

    old: Any = {}
    try:
        old = yaml.safe_load(saved.read_text(encoding="utf-8")) or {}
        old = StudyConfig.model_validate(old).model_dump(mode="json")
    except (OSError, ValueError, yaml.YAMLError, ValidationError):
        old = old if isinstance(old, dict) else {}  # compare what is there, raw
    new = cfg.model_dump(mode="json")
    differ = [k for k in DATA_KEYS if _get(old, k) != _get(new, k)]
    if differ:
        raise UserError(
            f"{cfg.out} holds a finished study ({saved}) whose {', '.join(differ)} differ "
            "from this config; data stats would overwrite that study's data/ (stats.json, "
            "manifests). "
            "Use the study's own config, or write elsewhere: --set output_dir=<another folder>"
        )


def _get(raw: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        raw = raw.get(part) if isinstance(raw, dict) else None
    return raw


def _finished_run_dir(ctx: click.Context, param: click.Parameter, run_dir: Path) -> Path:
    """`report` needs a finished study: refuse a folder without tables before any work."""
    run = RunLayout(run_dir)
    if not run.config.is_file():
        raise UserError(f"{run_dir}: no config.yaml; is this a study's output directory?")
    if run.results.is_file():
        return run_dir
    config = run.config
    hint = (
        f"the study has not finished: run it (ssl-robustness run {config}) to make them"
        if config.is_file()
        else "is this a study's output directory?"
    )
    raise UserError(f"{run_dir}: no tables/results.csv; {hint}")


class _Fault(click.ClickException):
    """A UserError (or a refused file operation) as click shows it: `error: ...`, exit 2."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


# file operations the OS refused for a reason the user can fix: no traceback for these
_USER_ERRNOS = {
    errno.EACCES,
    errno.EPERM,
    errno.EISDIR,
    errno.ENOTDIR,
    errno.EEXIST,
    errno.EROFS,
    errno.ENOSPC,
    errno.EDQUOT,
}


class _Cli(click.Group):
    """The command group; turns user errors into `error: ...` and exit 2 in every command."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UserError as exc:
            raise _Fault(str(exc)) from None
        except EOFError as exc:
            # click's main would turn it into Abort ("aborted", exit 130): a file that ended
            # early is no user's Ctrl-D; a reader that let it through is a bug, kept visible
            raise RuntimeError(f"unexpected end of a file: {exc}") from exc
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT) and exc.filename is None:
                raise _Fault(f"the disk is full ({exc.strerror}); free space and rerun") from None
            if exc.errno not in _USER_ERRNOS or exc.filename is None:
                raise
            target = exc.filename2 if exc.filename2 is not None else exc.filename
            raise _Fault(f"{target}: {exc.strerror}") from None


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ssl-robustness")
def cli() -> None:
    """Is self-supervised learning more robust to class imbalance than supervised learning,
    on your long-tailed images? Runs the comparison and writes the report."""


@cli.command()
@CONFIG
@OVERRIDES
@click.option(
    "--plan", is_flag=True, help="Print the runs, what is cached, and the work; run nothing."
)
@WAIT
@CLUSTER
def run(
    config: Path | None,
    overrides: tuple[str, ...],
    plan: bool,
    wait: bool,
    **cluster: Any,
) -> None:
    """Run a whole study from CONFIG (default: the built-in digits quick start).

    One run per output directory: a second `run` (or `data stats`) on it stops with an error
    naming the process that holds it, or waits for it with --wait.

    Launched by `torchrun --nproc-per-node N`, each representation trains data-parallel over
    the N processes (each takes batch_size / N), rank 0 evaluating and writing. With
    --executor slurm|local, each representation is a submitit job of its own (DDP over its
    GPUs), and the tables and report come last (see README, "On a cluster")."""
    cfg = _load(config, overrides)
    _check_output_dir(cfg.out)
    if plan:
        from .data.prepare import list_data
        from .engine.device import resolve_device
        from .plan import imported_costs, measure_throughput, plan_lines, plan_rows

        _check_device(cfg.device)
        from .data.sources.common import DownloadNeeded, no_downloads
        from .models.hub import missing_downloads

        needs = missing_downloads(cfg.imported)  # a plan downloads nothing: it says what
        for line in needs:
            click.echo(line)
        try:
            with no_downloads():
                data = list_data(cfg.data, cfg.layout.data.path, cfg.evaluation)  # decodes nothing
        except DownloadNeeded as exc:
            for d in exc.downloads:
                click.echo(d.need())
            click.echo(
                "the rest of the plan (runs, cache, work) needs the data: run it again once "
                "the files are in place"
            )
            return
        from .evaluation.run import check_evaluation_sizes

        check_evaluation_sizes(cfg.evaluation, data)
        from .registration import check_confirmatory

        check_confirmatory(cfg)
        from .representations import expand_representations
        from .study import size_notes

        specs = expand_representations(cfg, data)  # once, for every part of the plan
        device = resolve_device(cfg.device)
        speed = measure_throughput(cfg, device)  # a few steps, seconds
        imported = imported_costs(cfg, data, device, specs)  # each imported network, its own
        notes = size_notes(cfg, data, specs)
        for line in plan_lines(cfg, plan_rows(cfg, data, specs), speed, imported, notes):
            click.echo(line)
        from .data.stats import data_tradeoff
        from .data.subsets.tradeoff import arm_usage, tradeoff_lines, usage_lines

        used = usage_lines(arm_usage(data, cfg.seeds[0]))
        for line in used + tradeoff_lines(data_tradeoff(data)):
            click.echo(line)
        return
    _check_device(cfg.device)
    opts = _cluster_options(cluster)
    from .engine.distributed import init_from_env, is_distributed, is_main

    init_from_env()  # a process group when torchrun launched us
    if opts is not None and is_distributed():
        raise UserError("--executor: not under torchrun (a job trains DDP over its own GPUs)")
    if is_main():
        _hold_lock(cfg.out, "run", wait)
    if opts is not None and _run_jobs(cfg, opts):
        return
    from .study import run_study

    result = run_study(cfg, log=click.echo)
    if not is_main():
        return
    click.echo(f"report: {result.report}")
    click.echo(f"tables: {cfg.layout.tables}")
    from .report.headline import headline_lines

    for line in headline_lines(cfg.out):
        click.echo(line)
    if result.failures:
        raise UserError(failures_line(result.failures, result.report))


def failures_line(failures: list[dict[str, Any]], report: Any, named: int = 3) -> str:
    """One line naming each failure's cause (the first `named`, then a count): under a
    scheduler the last line is often all a user sees."""
    causes = []
    for f in failures[:named]:
        why = " ".join(str(f.get("error", "?")).split())
        why = why if len(why) <= 240 else why[:237] + "..."
        causes.append(f"{f.get('representation', '?')}: {why}")
    more = f"; and {len(failures) - named} more" if len(failures) > named else ""
    return f"{len(failures)} run(s) failed: " + "; ".join(causes) + f"{more}; see {report}"


@cli.command("config")
@click.option("--section", default=None, help="Only this section, e.g. data or data.imbalance.")
@click.option("--markdown", is_flag=True, help="The reference as Markdown (docs/config.md).")
def config_reference(section: str | None, markdown: bool) -> None:
    """Print every config key with its default and its meaning, as annotated YAML."""
    from .config_docs import config_markdown, config_yaml

    click.echo(config_markdown() if markdown else config_yaml(section), nl=False)


@cli.group()
def data() -> None:
    """Inspect the data a study would use."""


@data.command("stats")
@CONFIG
@OVERRIDES
@WAIT
def data_stats(config: Path | None, overrides: tuple[str, ...], wait: bool) -> None:
    """Per-class counts of every split and subset, groups, and a class-count chart.

    Writes stats.json, manifests and the chart under <output_dir>/data. If output_dir holds
    a finished study made with other data settings (data, seeds, evaluation.probe_set,
    evaluation.probe_per_class), it refuses rather than overwrite that study's files: use
    the study's own config, or --set output_dir=<another folder>. Waits for, or refuses
    (without --wait), an output directory another run is using."""
    cfg = _load(config, overrides)
    _check_output_dir(cfg.out)
    _hold_lock(cfg.out, "data stats", wait)
    _refuse_other_study(cfg)

    from .data.prepare import prepare_data
    from .data.stats import stats_lines
    from .report.plots import class_counts_figure, plt

    d = prepare_data(cfg.data, cfg.layout.data.path, cfg.evaluation, cfg.seeds)
    ref = d.draw(cfg.seeds[0])
    for line in stats_lines(d, cfg.seeds[0]):
        click.echo(line)
    fig = class_counts_figure(
        d.class_names,
        ref.counts(d.imbalanced_name, d.labels, d.num_classes),
        ref.tiers,
        f"{cfg.name}: {d.imbalanced_name}",
    )
    files = cfg.layout.data
    chart = files.class_counts_chart
    fig.savefig(chart, dpi=110)
    plt.close(fig)
    click.echo(f"manifests: {files.manifests}\nstats: {files.stats}\nchart: {chart}")


@cli.command()
@CONFIG
@OVERRIDES
@REPRESENTATION
def pretrain(
    config: Path | None,
    overrides: tuple[str, ...],
    method: str,
    subset: str | None,
    seed: int | None,
) -> None:
    """Train one representation of a study and save its backbone (torchvision key names).

    Launched by torchrun, it trains data-parallel (DDP) across the processes."""
    cfg = _load(config, overrides)
    _check_device(cfg.device)
    from .engine.distributed import init_from_env

    init_from_env()
    spec, data, device = _find_spec(cfg, method, subset, seed)
    from .representations import obtain_representation

    _, info = obtain_representation(spec, cfg.layout, data, device)
    click.echo(f"backbone: {spec.layout(cfg.layout).backbone}")
    click.echo(f"collapsed: {info.get('collapsed')}  collapse ratio: {info.get('collapse_ratio')}")


@cli.command()
@CONFIG
@OVERRIDES
@REPRESENTATION
def evaluate(
    config: Path | None,
    overrides: tuple[str, ...],
    method: str,
    subset: str | None,
    seed: int | None,
) -> None:
    """Run the configured evaluations of one representation (trained first if needed)."""
    cfg = _load(config, overrides)
    _check_device(cfg.device)
    spec, data, device = _find_spec(cfg, method, subset, seed)
    from .evaluation.outputs import read_predictions, saved_prediction_metrics
    from .study import run_representation

    tiers = data.draw(spec.seed).tiers
    for record in run_representation(spec, cfg.evaluation, cfg.layout, data, device):
        job, directory = record["job"], record["directory"]
        m, _ = saved_prediction_metrics(read_predictions(directory), tiers, data.num_classes)
        click.echo(
            f"{job.label:24s} top1 {m['top1']:.4f}  balanced {m['balanced_accuracy']:.4f}  "
            f"head {m['head']:.4f}  medium {m['medium']:.4f}  tail {m['tail']:.4f}"
        )


def _find_spec(cfg: StudyConfig, method: str, subset: str | None, seed: int | None):  # noqa: ANN202
    from .data.prepare import prepare_data
    from .engine.device import resolve_device
    from .representations import expand_representations

    data = prepare_data(cfg.data, cfg.layout.data.path, cfg.evaluation, cfg.seeds)
    from .evaluation.run import check_evaluation_sizes

    check_evaluation_sizes(cfg.evaluation, data)  # as `run` does, before any training
    seed = cfg.seeds[0] if seed is None else seed
    specs = expand_representations(cfg, data)
    want_subset = subset or data.imbalanced_name
    for s in specs:
        if s.method == method and s.seed == seed and s.subset in (want_subset, None):
            return s, data, resolve_device(cfg.device)
    known = sorted({f"{s.method} (subset {s.subset})" for s in specs})
    raise UserError(
        f"--method {method} --subset {want_subset} --seed {seed}: no such "
        f"representation in the study; known: {known}"
    )


@cli.command()
@click.argument(
    "run_dir",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    callback=_finished_run_dir,
)
def report(run_dir: Path) -> None:
    """Rebuild the HTML/Markdown report of a finished study from its run directory alone."""
    from .report.render import write_report

    click.echo(f"report: {write_report(run_dir)}")


@cli.group()
def checkpoint() -> None:
    """Inspect or convert imported checkpoint files."""


FORMAT = click.option(
    "--format",
    "fmt",
    default="auto",
    type=click.Choice(["auto", *CHECKPOINT_FORMATS]),
)


ARCH = click.option(
    "--arch",
    default=None,
    help="The network to build: a torchvision ResNet name (resnet18 ... wide_resnet101_2), "
    "resnet_tiny (the ResNet the keys describe) or timm:<name>. Default: the file's own arch "
    "field, else the standard ResNet the keys match.",
)


def _file_or_published(file: Path, fmt: str) -> tuple[Path, str]:
    """FILE, or the name of a published checkpoint (`imported[].weights`): fetched once into
    the cache and verified, read in its registered format unless --format says otherwise."""
    from .names import PUBLISHED_WEIGHTS

    name = str(file)
    if file.exists() or name not in PUBLISHED_WEIGHTS:
        return file, fmt
    from .models.hub import fetch, published

    return fetch(name), published(name).format if fmt == "auto" else fmt


@checkpoint.command("inspect")
@click.argument("file", type=click.Path(path_type=Path))
@FORMAT
@ARCH
def checkpoint_inspect(file: Path, fmt: str, arch: str | None) -> None:
    """Say what FILE (a path, or a published name such as mocov2_800ep) is and what would be
    loaded from it."""
    from .models.checkpoints import (
        KeyMismatch,
        arch_differences,
        backbone_from_report,
        check_arch_option,
        inspect_checkpoint,
    )

    file, fmt = _file_or_published(file, fmt)
    report = inspect_checkpoint(file, fmt)  # reads the file once
    check_arch_option(report, arch)  # an --arch that cannot be used is refused, not ignored
    click.echo(report.summary(arch))
    try:
        backbone_from_report(report, arch)
        click.echo("load:      ok (strict)")
    except UserError as exc:
        # every difference, not the first twenty: what the author needs to fix the file
        if isinstance(exc, KeyMismatch):
            every = exc.differences
            click.echo(f"load:      refused: {report.path}: {exc.counts}")
        else:
            every = arch_differences(report, arch) if arch else []
            click.echo(f"load:      refused: {exc}")
        if every:
            click.echo(f"differences from {arch or 'the network built'} ({len(every)}):")
            for line in every:
                click.echo(f"  {line}")
        sys.exit(2)


@checkpoint.command("export")
@click.argument("file", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@FORMAT
@ARCH
def checkpoint_export(file: Path, out: Path, fmt: str, arch: str | None) -> None:
    """Write FILE's backbone to OUT with torchvision key names (after a strict test load)."""
    from .models.checkpoints import (
        backbone_from_report,
        check_arch_option,
        export_backbone,
        inspect_checkpoint,
    )

    report = inspect_checkpoint(file, fmt)
    check_arch_option(report, arch)
    backbone_from_report(report, arch)  # the strict test load
    export_backbone(report, out)
    click.echo(f"wrote {out} ({len(report.state_dict)} tensors, format {report.format})")


TORCH_FREE_COMMANDS = ("config", "report")  # never start OpenMP: no thread choice to make


def main() -> None:
    words = [a for a in sys.argv[1:] if not a.startswith("-")]
    try:
        if not words or words[0] not in TORCH_FREE_COMMANDS:
            choose_cpu_threads()  # before torch starts its OpenMP runtime: cpu_threads.py says why
        cli.main(standalone_mode=False)
    except UserError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
