"""What evaluating a representation costs in passes of its own network, and that network's
measured speed: an imported ViT-B at 224 px is not the study's ResNet-18 at 32 px.

A representation's evaluations push images through its backbone twice over: frozen, in the
feature pass of the linear probe and kNN (each named feature set once: the probe set or
subset, val, test) and in the validation and test predictions of fine-tuning; and in
fine-tuning's training steps (forward, backward, update)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..data.study_data import StudyData
from ..engine.batches import full_batches
from ..engine.device import autocast, prepare_model, to_memory_format
from .registry import kind_of_spec
from .run import EvaluationJob

MEASURE_BATCH_CPU = 8  # images per timed batch on a CPU: seconds, not minutes, at 224 px
MEASURE_BATCH_GPU = 64
SLOW_S = 5.0  # a warm-up slower than this: one timed repeat only


def evaluation_passes(jobs: list[EvaluationJob], data: StudyData) -> tuple[int, int]:
    """(images through the frozen backbone, images through fine-tuning's training steps) of
    one representation's evaluations (full batches only, as engine/batches.py trains)."""
    feature_sets: dict[str, int] = {}
    frozen = trained = 0
    n_val, n_test = len(data.indices("val")), len(data.indices("test"))
    for job in jobs:
        kind = kind_of_spec(job.spec)
        fit = kind.fit(job.spec.settings)
        if fit is None:  # frozen features: each named set is extracted once
            sizes = {
                "adapt": (job.features_name, len(job.indices)),
                "val": ("val", n_val),
                "test": ("test", n_test),
            }
            feature_sets.update(dict(sizes[r] for r in kind.reads))
            continue
        trained += fit.epochs * full_batches(len(job.indices), fit.batch_size)
        frozen += fit.epochs * n_val + n_test  # the best-on-val choice each epoch, then test
    return frozen + sum(feature_sets.values()), trained


@dataclass(frozen=True)
class ModelSpeed:
    """Images per second of one network: frozen forward passes and training steps."""

    forward_per_s: float
    train_per_s: float
    words: str  # "ViT-B/16, 12 blocks, dim 768 at 224 px"
    batch: int
    device: str

    def seconds(self, frozen: int, trained: int) -> float:
        return frozen / self.forward_per_s + trained / self.train_per_s

    def how(self) -> str:
        return (
            f"measured: {self.words} at batch {self.batch} on {self.device}, "
            f"{self.forward_per_s:,.1f} images/s frozen, {self.train_per_s:,.1f} training"
        )


def measure_speed(
    backbone: nn.Module, size: int, device: torch.device, words: str, repeats: int = 2
) -> ModelSpeed:
    """Time a no-grad forward batch (as the feature pass runs) and a training step (forward,
    backward, AdamW update) of `backbone` on random images of `size` px: the median of
    `repeats` after one warm-up, one when the warm-up is slower than SLOW_S."""
    batch = MEASURE_BATCH_CPU if device.type == "cpu" else MEASURE_BATCH_GPU
    torch.manual_seed(0)
    net = prepare_model(backbone, device)
    x = to_memory_format(torch.randn(batch, 3, size, size, device=device))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-6)

    def forward() -> None:
        net.eval()
        with torch.no_grad(), autocast(device):
            net(x)

    def train() -> None:
        net.train()
        with autocast(device):
            loss = net(x).float().pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def per_s(step) -> float:  # noqa: ANN001
        warm = timed_call(step, device)
        n = repeats if warm < SLOW_S else 1
        return batch / max(statistics.median(timed_call(step, device) for _ in range(n)), 1e-9)

    return ModelSpeed(per_s(forward), per_s(train), words, batch, str(device))


def timed_call(step: Callable[[], object], device: torch.device) -> float:
    """Seconds `step()` takes, the device synchronised before and after (CUDA runs
    asynchronously: without it a GPU step would time its launch only)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start
