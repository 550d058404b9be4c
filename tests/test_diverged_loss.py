"""A loss that is not finite or explodes stops training at once with its cause (issue 32): the
method, the representation, the epoch and step, and the value. A schedule with a tiny tau_min
once gave NT-Xent losses of 1e11-1e16, logged as ordinary epochs."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.models.resnet import BasicBlock

from ssl_robustness.config import OptimizerConfig, SimCLRConfig, TrainConfig
from ssl_robustness.engine.batches import ArrayBatches
from ssl_robustness.engine.loop import MAX_LOSS, TrainingDiverged, fit
from ssl_robustness.engine.step import Method, StepContext, StepOutput
from ssl_robustness.methods import build_method
from ssl_robustness.models.backbones import ResNet

CPU = torch.device("cpu")


class _FixedLoss(Method):
    """A one-weight model whose loss is `value` from step `at` on (finite and small before)."""

    name = "fixed"

    def __init__(self, value: float, at: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(()))
        self.value, self.at, self.steps = value, at, 0

    def forward(self, images: torch.Tensor, labels: torch.Tensor, ctx: StepContext) -> StepOutput:
        self.steps += 1
        loss = self.w * 0.5
        if self.steps > self.at:
            loss = loss * 0 + self.value
        return StepOutput(loss)


def _batches(n: int = 8, batch: int = 4) -> ArrayBatches:
    images = np.random.default_rng(0).integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
    return ArrayBatches(images, np.arange(n) % 2, np.arange(n), batch, CPU)


def _train(epochs: int = 3) -> TrainConfig:
    return TrainConfig(epochs=epochs, batch_size=4, optimizer=OptimizerConfig(lr=0.01))


# value, the step it starts at (2 steps an epoch), what the error says
CASES = [
    ("nan", math.nan, 0, r"fit \(fixed\): loss is nan at epoch 1, step 0"),
    ("inf", math.inf, 3, r"fit \(fixed\): loss is inf at epoch 2, step 1"),
    ("-inf", -math.inf, 2, r"loss is -inf at epoch 2, step 0"),
    ("exploded", 3.5e11, 1, r"fit \(fixed\): loss 3\.5e\+11 at epoch 1, step 1 exploded past"),
    ("just past", 1.01 * MAX_LOSS, 4, r"loss 1\.01e\+04 at epoch 3, step 0 exploded past 10000"),
    ("negative", -2e12, 0, r"loss -2e\+12 at epoch 1, step 0 exploded"),
]


@pytest.mark.parametrize("value,at,message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_loss_stops_training_with_its_cause(value, at, message, tmp_path):
    method = _FixedLoss(value, at)
    with pytest.raises(TrainingDiverged, match=message):
        fit(method, _batches(), _train(), tmp_path, seed=0, desc="fit")
    assert method.steps == at + 1  # stopped at the first bad step, not an epoch later


def test_a_large_but_sane_loss_trains_on(tmp_path):
    method = _FixedLoss(0.5 * MAX_LOSS, 0)  # cross-entropy of logits 5,000 apart: still a loss
    result = fit(method, _batches(), _train(), tmp_path, seed=0)
    assert [r["loss"] for r in result.history] == [0.5 * MAX_LOSS] * 3


def test_a_tiny_tau_min_stops_the_run_naming_the_method_epoch_and_loss(tmp_path):
    """The issue's case: SimCLR at a schedule's tau_min of 1e-9, NT-Xent near 1e9."""
    cfg = SimCLRConfig(proj_dim=8, temperature_schedule={"tau_min": 1e-9, "tau_max": 1e-9})
    torch.manual_seed(0)
    backbone = ResNet(BasicBlock, [1, 1, 1, 1], width=4, small_stem=True)
    method = build_method(
        cfg, backbone, num_classes=2, class_counts=np.array([8, 8]), train_size=16
    )
    with pytest.raises(TrainingDiverged) as caught:
        fit(method, _batches(16, 8), _train(2), tmp_path, seed=0, desc="simclr-ts_balanced_s0")
    text = str(caught.value)
    assert text.startswith("simclr-ts_balanced_s0 (simclr): loss "), text
    value = float(re.search(r"loss (\S+) at epoch 1, step 0 exploded", text).group(1))
    assert value > 1e6, text
    assert "tau_min" in text
