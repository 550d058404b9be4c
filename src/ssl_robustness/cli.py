"""The `ssl-robustness` command line."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import numpy as np

from .config import StudyConfig, load_config
from .errors import UserError

CONFIG = click.argument("config", required=False, type=click.Path(path_type=Path))
OVERRIDES = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config value, e.g. --set data.image_size=32.",
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
    return load_config(config, overrides)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
def run(config: Path | None, overrides: tuple[str, ...], plan: bool) -> None:
    """Run a whole study from CONFIG (default: the built-in digits quick start)."""
    from .data.prepare import prepare_data
    from .study import plan_rows, run_study

    cfg = _load(config, overrides)
    if plan:
        data = prepare_data(cfg.data, cfg.out / "data", cfg.evaluation)
        rows = plan_rows(cfg, data)
        click.echo(
            f"{'representation':40s} {'scenario':14s} {'seed':>4s} {'status':8s} "
            f"{'image passes':>12s}"
        )
        for r in rows:
            click.echo(
                f"{r['representation']:40s} {r['scenario']:14s} {r['seed']:4d} "
                f"{r['status']:8s} {r['image_passes']:12,d}"
            )
        todo = [r for r in rows if r["status"] != "done"]
        passes = sum(r["image_passes"] for r in todo)
        click.echo(
            f"{len(rows)} representations, {len(rows) - len(todo)} cached; "
            f"{passes:,} image passes to go{_cpu_estimate(cfg, passes)}"
        )
        return
    result = run_study(cfg, log=click.echo)
    click.echo(f"report: {result.report}")
    click.echo(f"tables: {cfg.out / 'tables'}")
    from .report.html import headline, headline_evaluation

    for line in headline(result.tables, headline_evaluation(result.tables)):
        click.echo(line.replace("**", ""))
    if result.failures:
        raise UserError(f"{len(result.failures)} run(s) failed; see {result.report}")


# image passes per second on 2 CPU cores for resnet_tiny at width 16 and 16 px, measured on
# the quick start; cost grows about with pixels x width^2
_CPU_PASSES_PER_S = 2000.0


def _cpu_estimate(cfg: StudyConfig, passes: int) -> str:
    if cfg.backbone.name != "resnet_tiny":
        return " (full-size backbone: plan for a GPU)"
    scale = (cfg.data.image_size / 16) ** 2 * (cfg.backbone.width / 16) ** 2
    minutes = passes * scale / _CPU_PASSES_PER_S / 60
    return f" (roughly {minutes:.0f} min of training on 2 CPU cores, evaluation extra)"


@cli.group()
def data() -> None:
    """Inspect the data a study would use."""


@data.command("stats")
@CONFIG
@OVERRIDES
def data_stats(config: Path | None, overrides: tuple[str, ...]) -> None:
    """Per-class counts of every split and subset, groups, and a class-count chart."""
    from .data.prepare import prepare_data
    from .data.profiles import gini
    from .report.plots import class_counts_figure, plt

    cfg = _load(config, overrides)
    d = prepare_data(cfg.data, cfg.out / "data", cfg.evaluation)
    names = [p.name for p in d.plans]
    header = (
        f"{'class':24s} {'pool':>6s} {'val':>5s} {'test':>5s} "
        + " ".join(f"{n[:12]:>12s}" for n in names)
        + "  group"
    )
    click.echo(header)
    pool, val, test = (
        np.bincount(d.labels[d.indices(s)], minlength=d.num_classes)
        for s in ("train", "val", "test")
    )
    for c, name in enumerate(d.class_names):
        click.echo(
            f"{name[:24]:24s} {pool[c]:6d} {val[c]:5d} {test[c]:5d} "
            + " ".join(f"{int(p.counts[c]):12d}" for p in d.plans)
            + f"  {d.groups[c]}"
        )
    click.echo(
        f"{'total':24s} {pool.sum():6d} {val.sum():5d} {test.sum():5d} "
        + " ".join(f"{p.size:12d}" for p in d.plans)
    )
    for p in d.plans:
        ratio = p.counts.min() / p.counts.max()
        click.echo(f"{p.name}: n={p.size}, imbalance ratio {ratio:.4f}, Gini {gini(p.counts):.3f}")
    click.echo(
        f"groups: rule '{d.group_rule}' from {d.imbalanced_name}; "
        f"bad images skipped: {len(d.bad_images)}"
    )
    fig = class_counts_figure(
        d.class_names, d.train_counts(), d.groups, f"{cfg.name}: {d.imbalanced_name}"
    )
    chart = d.directory / "class_counts.png"
    fig.savefig(chart, dpi=110)
    plt.close(fig)
    click.echo(
        f"manifests: {d.directory / 'manifests'}\nstats: {d.directory / 'stats.json'}\n"
        f"chart: {chart}"
    )


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
    from .engine.distributed import init_from_env

    cfg = _load(config, overrides)
    init_from_env()
    spec, data, device = _find_spec(cfg, method, subset, seed)
    from .representations import obtain_representation

    _, info = obtain_representation(spec, cfg, data, device)
    click.echo(f"backbone: {spec.directory(cfg.out) / 'backbone.pt'}")
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
    spec, data, device = _find_spec(cfg, method, subset, seed)
    from .evaluation.run import evaluate_representation
    from .representations import obtain_representation

    backbone, _ = obtain_representation(spec, cfg, data, device)
    for ev, result in evaluate_representation(
        backbone, data, cfg.evaluation, spec.directory(cfg.out), spec.seed, device, cfg.augmentation
    ):
        m = result["metrics"]
        click.echo(
            f"{ev.name:20s} top1 {m['top1']:.4f}  balanced {m['balanced_accuracy']:.4f}  "
            f"head {m['head']:.4f}  medium {m['medium']:.4f}  tail {m['tail']:.4f}"
        )


def _find_spec(cfg: StudyConfig, method: str, subset: str | None, seed: int | None):  # noqa: ANN202
    from .data.prepare import prepare_data
    from .engine.device import resolve_device
    from .representations import expand_representations

    data = prepare_data(cfg.data, cfg.out / "data", cfg.evaluation)
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
@click.argument("run_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
def report(run_dir: Path) -> None:
    """Rebuild the HTML/Markdown report of a finished study from its tables."""
    from .atomic import read_json
    from .data.prepare import prepare_data
    from .report.html import write_report
    from .report.tables import load_tables

    config = run_dir / "config.yaml"
    if not config.exists():
        raise UserError(f"{run_dir}: no config.yaml; is this a study's output directory?")
    cfg = load_config(config)
    cfg.output_dir = run_dir
    data = prepare_data(cfg.data, run_dir / "data", cfg.evaluation)
    tables = load_tables(run_dir / "tables")
    failures = read_json(run_dir / "failures.json") if (run_dir / "failures.json").exists() else []
    click.echo(f"report: {write_report(run_dir, cfg, data, tables, failures)}")


@cli.group()
def checkpoint() -> None:
    """Inspect or convert imported checkpoint files."""


FORMAT = click.option(
    "--format",
    "fmt",
    default="auto",
    type=click.Choice(
        ["auto", "torchvision", "timm", "moco", "simsiam", "lightning", "mmselfsup", "vissl"]
    ),
)


ARCH = click.option(
    "--arch",
    default=None,
    help="The network to build: a torchvision ResNet name (resnet18 ... wide_resnet101_2), "
    "resnet_tiny (the ResNet the keys describe) or timm:<name>. Default: the file's own arch "
    "field, else the standard ResNet the keys match.",
)


@checkpoint.command("inspect")
@click.argument("file", type=click.Path(path_type=Path))
@FORMAT
@ARCH
def checkpoint_inspect(file: Path, fmt: str, arch: str | None) -> None:
    """Say what FILE is and what would be loaded from it."""
    from .models.checkpoints import backbone_from_report, inspect_checkpoint

    report = inspect_checkpoint(file, fmt)  # reads the file once
    click.echo(report.summary(arch))
    try:
        backbone_from_report(report, arch)
        click.echo("load:      ok (strict)")
    except UserError as exc:
        click.echo(f"load:      refused: {exc}")
        sys.exit(2)


@checkpoint.command("export")
@click.argument("file", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@FORMAT
@ARCH
def checkpoint_export(file: Path, out: Path, fmt: str, arch: str | None) -> None:
    """Write FILE's backbone to OUT with torchvision key names (after a strict test load)."""
    from .models.checkpoints import export_backbone, load_backbone

    _, report = load_backbone(file, fmt, arch)
    export_backbone(report, out)
    click.echo(f"wrote {out} ({len(report.state_dict)} tensors, format {report.format})")


def main() -> None:
    try:
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
