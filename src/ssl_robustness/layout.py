"""The run directory's layout, in one place: whatever reads or writes a run asks these for
its paths, and nothing else spells a file or folder name of a run.

    <output_dir>/
      config.yaml  environment.json  failures.json
      data/           stats.json, manifests/<name>.csv, images-<listing>-<size>px.npy, ...
      representations/<name>-<key>/
        representation.json (written last: done)  backbone.pt
        train/checkpoint.pt  features/<name>.npy  eval/<evaluation>-on-<set>-<key>/
      tables/<table>.csv|.parquet
      report/report.html  summary.md  tests.csv  figures/

The names are fixed: a run made by an earlier version keeps its caches.

>>> run = RunLayout(Path("runs/quickstart"))
>>> knn = run.representation("simclr_balanced_s0-85692610c8").evaluation("knn-k20-on-x-1")
>>> knn.as_posix()
'runs/quickstart/representations/simclr_balanced_s0-85692610c8/eval/knn-k20-on-x-1'
>>> RepresentationLayout.of_evaluation(knn).name
'simclr_balanced_s0-85692610c8'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

LOCK_FILE = ".ssl-robustness.lock"
CHECKPOINT_FILE = "checkpoint.pt"  # the training loop's resumable state, in its run folder
TABLES = ("results", "per_class", "aggregate", "gaps", "gap_runs")  # tables/<name>.csv|.parquet


def table_file(tables_dir: Path, name: str, ext: str = "csv") -> Path:
    """tables/<name>.<ext> (ext: csv or parquet)."""
    return Path(tables_dir) / f"{name}.{ext}"


@dataclass(frozen=True)
class DataLayout:
    """<output_dir>/data: the prepared data of a study."""

    path: Path

    @property
    def stats(self) -> Path:
        return self.path / "stats.json"

    @property
    def manifests(self) -> Path:
        return self.path / "manifests"

    def manifest(self, name: str) -> Path:
        """e.g. `split-test`, `probe-balanced`, a subset's manifest."""
        return self.manifests / f"{name}.csv"

    def image_cache(self, listing: str, size: int) -> Path:
        return self.path / f"images-{listing}-{size}px.npy"

    @property
    def class_counts_chart(self) -> Path:
        return self.path / "class_counts.png"


@dataclass(frozen=True)
class RepresentationLayout:
    """<output_dir>/representations/<name>-<key>: one backbone and its evaluations."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def done(self) -> Path:
        return self.path / "representation.json"

    @property
    def backbone(self) -> Path:
        return self.path / "backbone.pt"

    @property
    def train(self) -> Path:
        return self.path / "train"

    @property
    def checkpoint(self) -> Path:
        return self.train / CHECKPOINT_FILE

    @property
    def features(self) -> Path:
        return self.path / "features"

    def test_features(self) -> Path:
        return self.features / "test.npy"

    def evaluation(self, dirname: str) -> Path:
        return self.path / "eval" / dirname

    @classmethod
    def of_evaluation(cls, eval_dir: Path) -> RepresentationLayout:
        """The representation an evaluation directory belongs to."""
        return cls(Path(eval_dir).parent.parent)


@dataclass(frozen=True)
class RunLayout:
    """<output_dir>: one study's run."""

    root: Path

    @property
    def lock(self) -> Path:
        """The lock file of the one process using the run (lock.py)."""
        return self.root / LOCK_FILE

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def environment(self) -> Path:
        return self.root / "environment.json"

    @property
    def failures(self) -> Path:
        return self.root / "failures.json"

    @property
    def registration(self) -> Path:
        """The confirmatory test as registered before the first training (registration.py)."""
        return self.root / "registration.json"

    @property
    def data(self) -> DataLayout:
        return DataLayout(self.root / "data")

    @property
    def representations(self) -> Path:
        return self.root / "representations"

    def representation(self, dirname: str) -> RepresentationLayout:
        """`dirname`: `<name>-<key>` (a representation spec's `dirname`)."""
        return RepresentationLayout(self.representations / dirname)

    @property
    def tables(self) -> Path:
        return self.root / "tables"

    def table(self, name: str, ext: str = "csv") -> Path:
        return table_file(self.tables, name, ext)

    @property
    def results(self) -> Path:
        """tables/results.csv: present once a study has finished."""
        return self.table("results")

    @property
    def report(self) -> Path:
        return self.root / "report"

    @property
    def report_html(self) -> Path:
        return self.report / "report.html"

    @property
    def summary(self) -> Path:
        return self.report / "summary.md"

    @property
    def tests(self) -> Path:
        """Every paired test of the verdict: family, p, adjusted p, interval, words."""
        return self.report / "tests.csv"

    @property
    def figures(self) -> Path:
        return self.report / "figures"
