import numpy as np
import pytest
import torch
from torchvision.models.resnet import BasicBlock

from ssl_robustness.config import (
    BYOLConfig,
    MocoV2Config,
    OptimizerConfig,
    SimCLRConfig,
    SimSiamConfig,
    SupervisedConfig,
    TrainConfig,
)
from ssl_robustness.data.sources.digits import load_digits
from ssl_robustness.data.store.images import resize_pixels
from ssl_robustness.engine.batches import ArrayBatches
from ssl_robustness.engine.loop import fit
from ssl_robustness.engine.optim import LARS, build_optimizer, warmup_cosine
from ssl_robustness.methods import build_method
from ssl_robustness.models.backbones import ResNet

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def digits():
    lset = load_digits()
    idx = np.arange(0, 1797, 7)[:128]
    return resize_pixels(lset.pixels[idx], 8), lset.labels[idx]


def _method(cfg, labels, seed=0):
    torch.manual_seed(seed)
    backbone = ResNet(BasicBlock, [1, 1, 1, 1], width=8, small_stem=True)
    return build_method(
        cfg,
        backbone,
        num_classes=10,
        class_counts=np.bincount(labels, minlength=10),
        train_size=len(labels),
    )


@pytest.mark.parametrize(
    "cfg, lr",
    [
        (SupervisedConfig(), 0.1),
        (SupervisedConfig(loss="ldam_drw", sampler="class_balanced"), 0.1),
        (MocoV2Config(proj_dim=16, queue_size=64, temperature=0.2), 0.1),
        (SimSiamConfig(proj_dim=32), 0.05),
        (SimCLRConfig(proj_dim=16), 0.1),
        (BYOLConfig(proj_dim=16, hidden_dim=32), 0.1),
    ],
)
def test_each_method_trains_and_its_loss_goes_down(digits, tmp_path, cfg, lr):
    images, labels = digits
    method = _method(cfg, labels)
    batches = ArrayBatches(
        images,
        labels,
        np.arange(len(labels)),
        64,
        CPU,
        sampler=getattr(cfg, "sampler", "instance"),
        num_classes=10,
    )
    train = TrainConfig(
        epochs=12, batch_size=64, optimizer=OptimizerConfig(lr=lr), checkpoint_every=100
    )
    result = fit(method, batches, train, tmp_path, seed=0)
    losses = [float(r["loss"]) for r in result.history]
    assert len(losses) == 12
    assert np.mean(losses[-3:]) < np.mean(losses[:3]), losses
    assert (tmp_path / "checkpoint.pt").exists() and (tmp_path / "epochs.csv").exists()
    if cfg.name != "supervised":
        assert "collapse_ratio" in result.history[-1]


def test_resumed_run_reproduces_uninterrupted_weights_exactly(digits, tmp_path):
    images, labels = digits
    cfg = MocoV2Config(proj_dim=16, queue_size=64)
    train = TrainConfig(
        epochs=3,
        batch_size=32,
        optimizer=OptimizerConfig(lr=0.05),
        checkpoint_every=1,
        warmup_epochs=1,
    )

    def run(directory, on_epoch_end=None):
        method = _method(cfg, labels)
        batches = ArrayBatches(images, labels, np.arange(len(labels)), 32, CPU)
        fit(method, batches, train, directory, seed=3, on_epoch_end=on_epoch_end)
        return method

    straight = run(tmp_path / "a")

    class Killed(Exception):
        pass

    def kill_after_first(epoch, model):
        if epoch == 1:
            raise Killed  # dies after epoch 0's checkpoint, during epoch 1's bookkeeping
        return {}

    with pytest.raises(Killed):
        run(tmp_path / "b", kill_after_first)
    resumed = run(tmp_path / "b")
    for (k, a), (_, b) in zip(
        straight.state_dict().items(), resumed.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), k
    rows = (tmp_path / "b" / "epochs.csv").read_text().splitlines()
    assert len(rows) == 4  # header + 3 epochs, none duplicated by the resume


def test_warmup_cosine_schedule_and_fixed_lr_group():
    w = torch.nn.Parameter(torch.zeros(1))
    v = torch.nn.Parameter(torch.zeros(1))
    opt = build_optimizer(
        [{"params": [w]}, {"params": [v], "fixed_lr": True}], OptimizerConfig(lr=1.0), lr=1.0
    )
    sched = warmup_cosine(opt, warmup_steps=2, total_steps=6)
    seen = []
    for _ in range(6):
        seen.append((opt.param_groups[0]["lr"], opt.param_groups[1]["lr"]))
        opt.step()
        sched.step()
    assert [round(a, 4) for a, _ in seen] == [0.5, 1.0, 1.0, 0.8536, 0.5, 0.1464]
    assert all(b == 1.0 for _, b in seen)


def test_lars_scales_step_by_trust_ratio():
    p = torch.nn.Parameter(torch.full((2, 2), 2.0))  # ||w|| = 4
    p.grad = torch.full((2, 2), 1.0)  # ||g|| = 2
    opt = LARS([p], lr=1.0, momentum=0.0, eta=0.5)
    opt.step()
    # trust = 0.5 * 4 / 2 = 1 -> w - 1 * 1 * g
    assert torch.allclose(p, torch.full((2, 2), 1.0))
