"""A line per epoch in a log (no TTY), with the study's time left; `--plan` measures its speed."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torchvision.models.resnet import BasicBlock

from conftest import tiny_study
from ssl_robustness import plan
from ssl_robustness.cli import cli
from ssl_robustness.config import (
    OptimizerConfig,
    StudyConfig,
    SupervisedConfig,
    TrainConfig,
    validate_config,
)
from ssl_robustness.data.sources.digits import load_digits
from ssl_robustness.data.store.images import resize_pixels
from ssl_robustness.engine import logger
from ssl_robustness.engine.batches import ArrayBatches
from ssl_robustness.engine.loop import fit
from ssl_robustness.methods import build_method
from ssl_robustness.models.backbones import ResNet
from ssl_robustness.plan import PlanRow, Throughput, measure_throughput, plan_lines
from ssl_robustness.study import run_specs, start_study

CPU = torch.device("cpu")
LINE = re.compile(
    r"^(?P<what>.+) epoch (?P<epoch>\d+)/(?P<epochs>\d+): loss (?P<loss>[\d.]+), "
    r"(?P<ips>[\d,]+) images/s, left (?P<left>.+)$"
)


class Clock:
    """The progress estimates' clock, moved by the test."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _fit(tmp_path, on_epoch_end=None, desc="train"):  # noqa: ANN001, ANN202
    """Two epochs of supervised training on 64 digits at 8 px: 2 steps of 32 images each."""
    lset = load_digits()
    idx = np.arange(0, 1797, 7)[:64]
    images, labels = resize_pixels(lset.pixels[idx], 8), lset.labels[idx]
    torch.manual_seed(0)
    backbone = ResNet(BasicBlock, [1, 1, 1, 1], width=8, small_stem=True)
    method = build_method(
        SupervisedConfig(),
        backbone,
        num_classes=10,
        class_counts=np.bincount(labels, minlength=10),
        train_size=len(labels),
    )
    batches = ArrayBatches(images, labels, np.arange(len(labels)), 32, CPU)
    train = TrainConfig(
        epochs=2, batch_size=32, optimizer=OptimizerConfig(lr=0.05), checkpoint_every=100
    )
    return fit(method, batches, train, tmp_path, seed=0, on_epoch_end=on_epoch_end, desc=desc)


def test_a_fit_prints_one_flushed_line_per_epoch_without_a_tty(tmp_path, capsys) -> None:
    result = _fit(tmp_path)
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 2
    matches = [LINE.match(line) for line in lines]
    assert all(matches), lines
    for m, row in zip(matches, result.history, strict=True):
        assert m["what"] == "train"
        assert m["epochs"] == "2"
        assert m["loss"] == f"{float(row['loss']):.4f}"
        assert m["ips"] == f"{float(row['images_per_s']):,.0f}"
    assert [m["epoch"] for m in matches] == ["1", "2"]
    assert re.fullmatch(r"\d+s|\d+m\d\ds", matches[0]["left"])
    assert matches[1]["left"] == "0s"  # the fit is done
    assert "it/s" not in err  # no tqdm bar when stderr is not a terminal


def test_in_a_study_the_lines_say_the_representation_and_study_time_left(
    tmp_path, capsys, monkeypatch
) -> None:
    clock = Clock()
    monkeypatch.setattr(logger, "_clock", clock)

    def ten_seconds_an_epoch(epoch: int, model) -> dict:  # noqa: ANN001
        clock.t = 10.0 * (epoch + 1)
        return {}

    # this representation: 2 epochs x 64 images (+ as many fine-tuning passes, say); one more
    # of twice its work to go
    work = {"rep-a": (256.0, 128.0), "rep-b": (512.0, 256.0)}
    with logger.study_progress(work) as progress:
        with progress.representation("rep-a", "mocov2_exp"):
            _fit(tmp_path, ten_seconds_an_epoch, desc="mocov2_exp")
        assert progress.done == 256.0
    lines = capsys.readouterr().out.splitlines()
    m = [LINE.match(line) for line in lines]
    assert [x["what"] for x in m] == ["mocov2_exp", "mocov2_exp"]
    # epoch 1: 64 of 128 images in 10 s; study: 128 of 768 passes in 10 s
    assert m[0]["left"] == "10s this representation, 50s study"
    # epoch 2: the representation is done; 256 of 768 passes in 20 s
    assert m[1]["left"] == "0s this representation, 40s study"
    assert logger._STUDY is None


def test_a_fine_tune_inside_a_representation_names_both() -> None:
    row = {"loss": 0.5, "images_per_s": 1234.4}
    with logger.study_progress({"rep-a": (0.0, 0.0)}) as progress:  # noqa: SIM117
        with progress.representation("rep-a", "simclr_balanced"):
            first = logger.epoch_line("finetune", 0, 2, row, 64)
    assert first == (
        "simclr_balanced (finetune) epoch 1/2: loss 0.5000, 1,234 images/s, "
        "left ? this representation, ? study"  # cached: nothing planned, nothing measured
    )
    assert logger.epoch_line("finetune", 0, 2, row, 2468) == (
        "finetune epoch 1/2: loss 0.5000, 1,234 images/s, left 2s"  # outside a study
    )


@pytest.mark.parametrize(
    "seconds, text", [(None, "?"), (0.4, "0s"), (42, "42s"), (185, "3m05s"), (7620, "2h07m")]
)
def test_durations_read_as_time(seconds, text) -> None:  # noqa: ANN001
    assert logger.duration(seconds) == text


def test_the_plan_states_a_measured_speed_and_the_time_it_gives() -> None:
    rows = [
        PlanRow("mocov2_exp-r0.1_s0", "SSL-in-domain", "exp-r0.1", 0, "todo", 3, 275_400),
        PlanRow("random-init_none_s0", "random-init", "-", 0, "done", 3, 3_060),
    ]
    speed = Throughput(100.0, "resnet_tiny", 64, 16, "cpu")
    last = plan_lines(StudyConfig(), rows, speed)[-1]
    assert last == (
        "2 representations, 1 cached; 275,400 image passes to go: about 45m54s of training at "
        "100 image passes/s (measured: the median of 5 training steps of "
        "resnet_tiny at batch 64, 16 px on cpu, after 2 warm-up)"
    )
    # the configured batch beside the one measured, and the range the timed steps span
    speed = Throughput(100.0, "resnet_tiny", 64, 16, "cpu", 5, 2, 128, 80.0, 120.0)
    assert plan_lines(StudyConfig(), rows, speed)[-1] == (
        "2 representations, 1 cached; 275,400 image passes to go: about 45m54s of training "
        "(38m15s to 57m22s at the fastest and slowest timed step) at 100 image passes/s "
        "(measured: the median of 5 training steps of resnet_tiny at batch 64 "
        "(the configured 128, capped on a CPU for speed), 16 px on cpu, after 2 warm-up)"
    )


def test_the_plan_prices_the_evaluations_frozen_passes_at_the_forward_speed() -> None:
    """Evaluation was 'extra', never estimated: its frozen passes (features, fine-tuning's
    predictions) are counted per representation and priced at the measured forward speed."""
    rows = [
        PlanRow("simclr_exp-r0.1_s0", "SSL-in-domain", "exp-r0.1", 0, "todo", 3, 6_000,
                frozen_passes=3_000),
        PlanRow("random-init_none_s0", "random-init", "-", 0, "todo", 3, 0, frozen_passes=1_000),
        PlanRow("simclr_balanced_s0", "SSL-in-domain", "balanced", 0, "done", 3, 6_000),
        # cached, but one evaluation (a fine-tune) never finished: its passes are still to go
        PlanRow("mocov2_balanced_s0", "SSL-in-domain", "balanced", 0, "done", 3, 6_000,
                frozen_passes=1_000, passes_left=1_000, evaluations_left=1),
    ]  # fmt: skip
    speed = Throughput(100.0, "resnet_tiny", 64, 16, "cpu", forward_per_s=400.0)
    assert plan_lines(StudyConfig(), rows, speed)[-1] == (
        "4 representations, 2 cached, 1 evaluation of cached ones to run; 7,000 image passes "
        "to go: about 1m10s of training at 100 image passes/s; evaluation: 5,000 frozen image "
        "passes (features, fine-tuning's predictions), about 12s at 400 images/s; not timed: "
        "the probes' fits, kNN search, decoding batches, t-SNE and the report (measured: the "
        "median of 5 training steps and of 5 forward passes of resnet_tiny at batch 64, "
        "16 px on cpu, after 2 warm-up)"
    )


def test_measure_throughput_times_the_configured_backbone_in_seconds() -> None:
    cfg = StudyConfig.model_validate(
        {"data": {"image_size": 8}, "backbone": {"width": 4}, "pretrain": {"batch_size": 8}}
    )
    speed = measure_throughput(cfg, CPU)
    assert (speed.backbone, speed.batch, speed.image_size, speed.device) == (
        "resnet_tiny",
        8,
        8,
        "cpu",
    )
    assert speed.passes_per_s > 0
    big = cfg.model_copy(update={"pretrain": TrainConfig(batch_size=512)})
    assert measure_throughput(big, CPU).batch == 64  # capped on a CPU
    large = big.model_copy(update={"data": big.data.model_copy(update={"image_size": 72})})
    assert measure_throughput(large, CPU).batch == 8  # above 64 px, fewer (seconds, not minutes)


def test_a_slow_step_is_timed_once(monkeypatch) -> None:
    monkeypatch.setattr(plan, "SLOW_STEP_S", 0.0)
    cfg = StudyConfig.model_validate(
        {"data": {"image_size": 8}, "backbone": {"width": 4}, "pretrain": {"batch_size": 8}}
    )
    speed = measure_throughput(cfg, CPU)
    assert speed.steps == 1
    assert speed.how().startswith(
        "measured: 1 training step and 1 forward pass of resnet_tiny at batch 8, 8 px on cpu, "
        "after 2 warm-up; "
        "load average "
    )


def test_run_plan_prints_the_measured_estimate(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(plan, "SLOW_STEP_S", float("inf"))  # 5 steps however loaded the CPU
    result = CliRunner().invoke(
        cli,
        [
            "run",
            "--plan",
            "--set",
            f"output_dir={tmp_path / 'out'}",
            "--set",
            "device=cpu",
            "--set",
            "backbone.width=4",
        ],
    )
    assert result.exit_code == 0, result.output
    last = next(x for x in result.output.splitlines() if "image passes to go" in x)
    assert "used per arm (of a " in result.output  # the data each arm uses, before training
    assert re.search(
        r"image passes to go: about \S+ of training \(\S+ to \S+ at the fastest and slowest "
        r"timed step\) at [\d,]+ image passes/s",
        last,
    )
    assert (
        "(measured: the median of 5 training steps and of 5 forward passes of resnet_tiny at "
        "batch 64 (the configured "
        "128, capped on a CPU for speed), 16 px on cpu" in last
    )


def test_a_one_representation_study_logs_its_fits_and_ends_at_zero_left(tmp_path, capsys) -> None:
    cfg = validate_config(tiny_study(tmp_path, methods=[{"name": "supervised"}]))
    data, device, specs = start_study(cfg, owner=True)
    spec = next(s for s in specs if s.name == "supervised_balanced_s0")
    capsys.readouterr()
    records, failures = run_specs([spec], cfg, data, device, log=lambda *_: None)
    assert failures == [] and records
    lines = capsys.readouterr().out.splitlines()
    m = [LINE.match(line) for line in lines]
    assert all(m), lines
    assert [(x["what"], x["epoch"], x["epochs"]) for x in m] == [
        ("supervised_balanced_s0", "1", "2"),
        ("supervised_balanced_s0", "2", "2"),
        ("supervised_balanced_s0 (finetune)", "1", "1"),
    ]
    assert m[0]["left"].endswith(" study") and " this representation, " in m[0]["left"]
    # the planned images are the fits' full batches: nothing is left once the last one ends
    assert m[-1]["left"] == "0s this representation, 0s study"
