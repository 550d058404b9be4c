"""The run directory's names are fixed: a run made by an earlier version keeps its caches."""

from pathlib import Path

from ssl_robustness.layout import TABLES, RepresentationLayout, RunLayout


def test_the_names_of_a_run_directory():
    run = RunLayout(Path("out"))
    rep = run.representation("simclr_balanced_s0-85692610c8")
    names = {
        run.config: "out/config.yaml",
        run.environment: "out/environment.json",
        run.failures: "out/failures.json",
        run.lock: "out/.ssl-robustness.lock",
        run.data.stats: "out/data/stats.json",
        run.data.manifest("split-test"): "out/data/manifests/split-test.csv",
        run.data.image_cache("abc", 16): "out/data/images-abc-16px.npy",
        run.data.class_counts_chart: "out/data/class_counts.png",
        run.results: "out/tables/results.csv",
        run.table("gaps", "parquet"): "out/tables/gaps.parquet",
        run.report_html: "out/report/report.html",
        run.summary: "out/report/summary.md",
        run.figures: "out/report/figures",
        rep.path: "out/representations/simclr_balanced_s0-85692610c8",
        rep.done: "out/representations/simclr_balanced_s0-85692610c8/representation.json",
        rep.backbone: "out/representations/simclr_balanced_s0-85692610c8/backbone.pt",
        rep.checkpoint: "out/representations/simclr_balanced_s0-85692610c8/train/checkpoint.pt",
        rep.test_features(): "out/representations/simclr_balanced_s0-85692610c8/features/test.npy",
    }
    assert [p.as_posix() for p in names] == list(names.values())
    assert TABLES == ("results", "per_class", "aggregate", "gaps", "gap_runs")
    ev = rep.evaluation("knn-k20-on-probe-balanced-1234abcd")
    assert ev.parent.name == "eval"
    assert RepresentationLayout.of_evaluation(ev) == rep
