"""The GPU path (AMP, channels_last, pinned memory): run where CUDA is, skipped elsewhere.

`benchmarks/gpu_check.sh` runs these on a lent GPU machine; on CPU-only CI they skip, and the
same code's CPU path is what every other test covers.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.models.resnet import BasicBlock

from ssl_robustness.config import MocoV2Config, OptimizerConfig, SupervisedConfig, TrainConfig
from ssl_robustness.data.sources.digits import load_digits
from ssl_robustness.data.store.images import resize_pixels
from ssl_robustness.engine.batches import ArrayBatches
from ssl_robustness.engine.device import amp_dtype, make_scaler, resolve_device
from ssl_robustness.engine.loop import fit
from ssl_robustness.evaluation.features import extract_features
from ssl_robustness.methods import build_method
from ssl_robustness.models.backbones import ResNet

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
CUDA = torch.device("cuda")


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    lset = load_digits()
    idx = np.arange(0, 1797, 7)[:128]
    return resize_pixels(lset.pixels[idx], 8), lset.labels[idx]


def _method(cfg, labels: np.ndarray) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_method(
        cfg,
        ResNet(BasicBlock, [1, 1, 1, 1], width=8, small_stem=True),
        num_classes=10,
        class_counts=np.bincount(labels, minlength=10),
        train_size=len(labels),
    )


def test_auto_device_is_cuda_with_amp() -> None:
    assert resolve_device("auto") == CUDA
    assert amp_dtype(CUDA) in (torch.bfloat16, torch.float16)
    scaler = make_scaler(CUDA)
    assert scaler.is_enabled() == (amp_dtype(CUDA) == torch.float16)


def test_pinned_batches_arrive_on_the_gpu(digits) -> None:
    images, labels = digits
    batches = ArrayBatches(images, labels, np.arange(len(labels)), 32, CUDA)
    seen = []
    for x, y in batches.epoch(np.random.default_rng(0)):
        assert x.device.type == "cuda" and y.device.type == "cuda" and x.dtype == torch.uint8
        seen.append(y.cpu())
    assert sorted(torch.cat(seen).tolist()) == sorted(labels.tolist())


@pytest.mark.parametrize(
    "cfg", [SupervisedConfig(), MocoV2Config(proj_dim=16, queue_size=64, temperature=0.2)]
)
def test_fit_on_gpu_with_amp_learns(digits, tmp_path, cfg) -> None:
    images, labels = digits
    batches = ArrayBatches(images, labels, np.arange(len(labels)), 64, CUDA)
    train = TrainConfig(
        epochs=12, batch_size=64, optimizer=OptimizerConfig(lr=0.1), checkpoint_every=100
    )  # the settings of the CPU test (tests/test_engine.py), here under AMP
    result = fit(_method(cfg, labels), batches, train, tmp_path, seed=0)
    losses = [float(r["loss"]) for r in result.history]
    assert np.isfinite(losses).all()
    assert np.mean(losses[-3:]) < np.mean(losses[:3]), losses


def test_gpu_features_match_cpu_features(digits) -> None:
    """Feature extraction runs under autocast on GPU: close to the fp32 CPU features, not equal."""
    images, labels = digits
    torch.manual_seed(0)
    backbone = ResNet(BasicBlock, [1, 1, 1, 1], width=8, small_stem=True)
    idx = np.arange(len(labels))
    on_cpu = extract_features(backbone, images, idx, torch.device("cpu"))
    on_gpu = extract_features(backbone, images, idx, CUDA)
    assert on_gpu.shape == on_cpu.shape and on_gpu.dtype == np.float32
    rel = np.linalg.norm(on_gpu - on_cpu) / np.linalg.norm(on_cpu)
    assert rel < 0.02, rel
