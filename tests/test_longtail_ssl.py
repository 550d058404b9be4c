"""The SSL methods built for long-tailed data (issue 20) against hand computations: the
temperature schedule (Kukleva et al. 2023) at given epochs, SDCLR's pruning mask (Jiang et al.
2021) per layer with the dense weights untouched, BCL's momentum loss and augmentation strength
(Zhou et al. 2022) on three images and views that the strength really changes; each trains, a
resumed run equals an uninterrupted one, and --plan and the labels count and name them."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.models.resnet import BasicBlock

from conftest import tiny_study
from ssl_robustness.config import (
    BCLConfig,
    MocoV2Config,
    OptimizerConfig,
    SDCLRConfig,
    SimCLRConfig,
    TemperatureScheduleConfig,
    TrainConfig,
    validate_config,
)
from ssl_robustness.config_docs import config_yaml
from ssl_robustness.engine.batches import ArrayBatches
from ssl_robustness.engine.loop import fit
from ssl_robustness.engine.step import StepContext
from ssl_robustness.errors import UserError
from ssl_robustness.methods import build_method, views_per_step
from ssl_robustness.methods.augment import augment
from ssl_robustness.methods.bcl import memorization_strength, momentum_update
from ssl_robustness.methods.randaugment import (
    brightness,
    cutout,
    invert,
    posterize,
    rand_augment,
    solarize,
    translate_x,
)
from ssl_robustness.methods.sdclr import magnitude_masks, prunable_weights
from ssl_robustness.methods.simclr import SIMCLR_VIEW
from ssl_robustness.methods.temperature import scheduled_temperature
from ssl_robustness.models.backbones import ResNet

CPU = torch.device("cpu")
N = 32  # training images


def _images(n: int = N, size: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def _method(cfg, n: int = N, seed: int = 0):
    torch.manual_seed(seed)
    backbone = ResNet(BasicBlock, [1, 1, 1, 1], width=4, small_stem=True)
    return build_method(
        cfg, backbone, num_classes=2, class_counts=np.array([n // 2, n - n // 2]), train_size=n
    )


def _ctx(seed: int = 0, progress: float = 0.0, n: int = 8) -> StepContext:
    return StepContext(torch.Generator().manual_seed(seed), progress, torch.arange(n))


# ----------------------------------------------------------------------------- temperature
def test_the_temperature_at_given_epochs_of_the_papers_cifar_run():
    ts = TemperatureScheduleConfig()  # 0.1 .. 1.0, period 0.1 of training: 200 of 2000 epochs
    at = {e: scheduled_temperature(ts, 0.2, e / 2000) for e in (0, 50, 100, 150, 200, 1900)}
    # tau = 0.1 + 0.9 (1 + cos(2 pi e / 200)) / 2
    expected = {0: 1.0, 50: 0.55, 100: 0.1, 150: 0.55, 200: 1.0, 1900: 0.1}
    for e, tau in expected.items():
        assert at[e] == pytest.approx(tau, abs=1e-12), e
    # a 20-epoch run keeps the 10 cycles: the lowest temperature at epoch 1, the highest at 2
    assert scheduled_temperature(ts, 0.2, 1 / 20) == pytest.approx(0.1)
    assert scheduled_temperature(ts, 0.2, 2 / 20) == pytest.approx(1.0)
    other = TemperatureScheduleConfig(tau_min=0.2, tau_max=0.5, period=0.25)
    assert scheduled_temperature(other, 0.2, 1 / 16) == pytest.approx(0.35)  # a quarter cycle
    assert scheduled_temperature(None, 0.2, 0.37) == 0.2


def test_the_schedule_refuses_tau_min_above_tau_max_and_labels_the_method():
    with pytest.raises(UserError, match="tau_min 0.5 is above tau_max 0.3"):
        validate_config(
            {
                "methods": [
                    {"name": "simclr", "temperature_schedule": {"tau_min": 0.5, "tau_max": 0.3}}
                ]
            }
        )
    assert SimCLRConfig(temperature_schedule={}).label == "simclr-ts"
    assert MocoV2Config(temperature_schedule={}).label == "mocov2-ts"
    assert SDCLRConfig(temperature_schedule={"period": 0.25}).label == "sdclr-ts0.1-1p0.25"
    # unset, it is not in the dump, so the cache keys of existing configs stay as they were
    assert "temperature_schedule" not in SimCLRConfig().model_dump(mode="json")
    assert "temperature_schedule" not in MocoV2Config().model_dump(mode="json")


@pytest.mark.parametrize("name", ["simclr", "mocov2"])
def test_a_scheduled_loss_is_the_fixed_loss_at_that_steps_temperature(name):
    progress = 0.03  # tau = 0.1 + 0.9 (1 + cos(0.6 pi)) / 2
    tau = 0.1 + 0.9 * (1 + math.cos(2 * math.pi * 0.3)) / 2
    extra = {"queue_size": 16} if name == "mocov2" else {}
    cls = SimCLRConfig if name == "simclr" else MocoV2Config
    scheduled = _method(cls(proj_dim=8, temperature_schedule={}, **extra))
    fixed = _method(cls(proj_dim=8, temperature=tau, **extra))
    images = torch.from_numpy(_images(8))
    labels = torch.zeros(8, dtype=torch.long)
    out = scheduled(images, labels, _ctx(progress=progress))
    ref = fixed(images, labels, _ctx(progress=progress))
    assert out.logs["temperature"] == pytest.approx(tau)
    torch.testing.assert_close(out.loss, ref.loss, rtol=0, atol=0)


# ----------------------------------------------------------------------------- SDCLR
def test_global_magnitude_pruning_by_hand():
    a = torch.tensor([[0.5, -0.05], [0.2, -0.9]])
    b = torch.tensor([0.01, -0.3, 0.7, 0.02])
    # |w| sorted: .01 .02 .05 .2 .3 .5 .7 .9; ratio 0.5 prunes ceil(4) = 4, threshold 0.3
    m = magnitude_masks({"a": a, "b": b}, 0.5)
    assert m["a"].tolist() == [[1.0, 0.0], [0.0, 1.0]]  # layer a: 2 of 4 pruned
    assert m["b"].tolist() == [0.0, 1.0, 1.0, 0.0]  # layer b: 2 of 4 pruned
    # ratio 0.75 prunes ceil(6): only .7 and .9 stay, a layer keeps 1 of 4 and b 1 of 4
    m = magnitude_masks({"a": a, "b": b}, 0.75)
    assert m["a"].sum() == 1 and m["b"].sum() == 1
    # 0.9 of 30 weights is 27 (not 28: float rounding of 0.9 * 30)
    w = {"c": torch.arange(1.0, 31.0)}
    assert int(magnitude_masks(w, 0.9)["c"].sum()) == 3
    assert magnitude_masks(w, 0.0)["c"].sum() == 30


def test_sdclr_masks_each_layer_at_one_global_threshold_and_leaves_the_dense_weights():
    method = _method(SDCLRConfig(proj_dim=8))
    weights = prunable_weights(method.backbone)
    assert all(".conv" in n or n.startswith("conv") or "downsample" in n for n in weights)
    flat = torch.cat([w.detach().abs().flatten() for w in weights.values()]).sort().values
    k = math.ceil(0.9 * len(flat))
    threshold = flat[k]  # the (k+1)-th smallest |w|
    masks = method.masks()
    assert set(masks) == set(weights)
    for name, w in weights.items():
        by_hand = int((w.detach().abs() < threshold).sum())
        assert int((masks[name] == 0).sum()) == by_hand, name
    pruned = sum(float((1 - m).sum()) for m in masks.values())
    assert pruned == k  # 90% of all the backbone's weights, not of each layer
    per_layer = [float(1 - m.mean()) for m in masks.values()]
    assert max(per_layer) - min(per_layer) > 0.05  # the layers' sparsities differ

    before = copy.deepcopy(method.backbone.state_dict())
    images = torch.from_numpy(_images(8))
    method(images, torch.zeros(8, dtype=torch.long), _ctx())
    method.begin_epoch(1)
    after = method.backbone.state_dict()
    for key, value in before.items():
        if "running" in key or "num_batches" in key:
            continue  # the dense branch's batch statistics move with its forward pass
        assert torch.equal(after[key], value), key  # no weight zeroed by pruning
    assert all(float(w.detach().abs().min()) < threshold for w in weights.values())


def test_the_pruned_branch_is_the_masked_network_with_its_own_batch_norm():
    method = _method(SDCLRConfig(proj_dim=8))
    method.train()
    # the masked network by hand: weights zeroed where pruned, the pruned BN's layers
    backbone, projector = copy.deepcopy(method.backbone), copy.deepcopy(method.projector)
    with torch.no_grad():
        for name, mask in method.masks().items():
            backbone.get_parameter(name).mul_(mask)
    for part, module in (("backbone", backbone), ("projector", projector)):
        for key, bn in method.pruned_bn[part].items():
            module.get_submodule(key.replace("-", ".")).load_state_dict(bn.state_dict())
    x = torch.randn(8, 3, 8, 8)
    dense_stats = method.backbone.bn1.running_mean.clone()
    z = method.pruned_embedding(x)
    torch.testing.assert_close(z, projector(backbone(x)))
    # its statistics moved, the dense branch's did not
    torch.testing.assert_close(
        method.pruned_bn["backbone"]["bn1"].running_mean, backbone.bn1.running_mean
    )
    assert not torch.equal(method.pruned_bn["backbone"]["bn1"].running_mean, dense_stats)
    assert torch.equal(method.backbone.bn1.running_mean, dense_stats)
    # the gradient reaches the dense weights through the mask: none where pruned
    z.pow(2).sum().backward()
    for name, mask in method.masks().items():
        grad = method.backbone.get_parameter(name).grad
        assert float(grad[mask == 0].abs().max()) == 0.0, name
    assert method.pruned_bn["backbone"]["bn1"].weight.grad is not None
    assert method.backbone.bn1.weight.grad is None  # the dense BN is not in the pruned branch


# ----------------------------------------------------------------------------- BCL
def test_momentum_loss_and_strength_of_three_images_by_hand():
    memory, seen = torch.zeros(3), torch.zeros(3, dtype=torch.bool)
    assert memorization_strength(memory, seen).tolist() == [0.0, 0.0, 0.0]  # first epoch
    momentum_update(memory, seen, torch.tensor([2, 0, 1]), torch.tensor([4.0, 1.0, 2.0]), 0.95)
    assert memory.tolist() == [1.0, 2.0, 4.0]  # an image's first loss is its momentum loss
    momentum_update(memory, seen, torch.tensor([0, 1, 2]), torch.tensor([3.0, 2.0, 0.0]), 0.95)
    # 0.95 * [1, 2, 4] + 0.05 * [3, 2, 0]
    torch.testing.assert_close(memory, torch.tensor([1.1, 2.0, 3.8]))
    # mean 2.3: z = -1.2, -0.3, 1.5; z / max|z| / 2 + 1/2
    torch.testing.assert_close(memorization_strength(memory, seen), torch.tensor([0.1, 0.4, 1.0]))
    # an image not seen yet sits at the mean; equal losses give every image 1/2
    partly = torch.tensor([True, False, True])
    m = torch.tensor([1.0, 9.0, 3.0])
    torch.testing.assert_close(memorization_strength(m, partly), torch.tensor([0.0, 0.5, 1.0]))
    torch.testing.assert_close(
        memorization_strength(torch.full((3,), 2.0), seen), torch.full((3,), 0.5)
    )


def test_bcl_keys_its_state_by_position_and_sets_strength_at_the_epochs_start():
    method = _method(BCLConfig(proj_dim=8), n=3)
    method.momentum_loss.copy_(torch.tensor([1.0, 2.0, 4.0]))
    method.seen.fill_(True)
    images = torch.from_numpy(_images(3))
    ctx = StepContext(torch.Generator().manual_seed(0), 0.0, torch.tensor([1, 2, 0]))
    out = method(images, torch.zeros(3, dtype=torch.long), ctx)
    method.after_step(0.5)
    expected = 0.95 * torch.tensor([1.0, 2.0, 4.0])
    expected[torch.tensor([1, 2, 0])] += 0.05 * out.losses.detach()
    torch.testing.assert_close(method.momentum_loss, expected)
    assert method.strength.tolist() == [0.0, 0.0, 0.0]  # until the next epoch starts
    method.begin_epoch(1)
    torch.testing.assert_close(
        method.strength, memorization_strength(method.momentum_loss, method.seen)
    )
    assert {"momentum_loss", "seen"} <= set(method.state_dict())  # saved with checkpoints


def test_rand_augment_operations_by_hand():
    x = torch.tensor([0.0, 0.2, 0.6, 1.0]).view(1, 1, 1, 4).expand(1, 3, 4, 4).clone()
    one = torch.ones(1)
    torch.testing.assert_close(invert(x, one), 1 - x)
    torch.testing.assert_close(brightness(x, torch.tensor([1.5])), (1.5 * x).clamp(0, 1))
    # threshold 100 of 256: levels 153 and 255 inverted, 0 and 51 kept
    sol = solarize(x, torch.tensor([100.0]))[0, 0, 0]
    torch.testing.assert_close(sol, torch.tensor([0.0, 0.2, 0.4, 0.0]))
    # 4 bits: levels 0, 51, 153, 255 -> 0, 48, 144, 240
    post = posterize(x, torch.tensor([4.0]))[0, 0, 0] * 255
    torch.testing.assert_close(post, torch.tensor([0.0, 48.0, 144.0, 240.0]))
    # by a quarter of the width (PIL's sign): one column to the left, black entering on the right
    shifted = translate_x(x, torch.tensor([0.25]))[0, 0, 0]
    torch.testing.assert_close(shifted, torch.tensor([0.2, 0.6, 1.0, 0.0]))
    box = cutout(torch.zeros(1, 3, 10, 10), torch.tensor([0.4]), centre=torch.tensor([[0.5, 0.5]]))
    assert int((box[0, 0] > 0).sum()) == 16  # a 4 x 4 square


def test_the_strength_really_changes_the_views():
    images = torch.from_numpy(_images(64))
    method = _method(BCLConfig(proj_dim=8), n=64)

    def view(strength: float) -> torch.Tensor:
        return method.boosted_view(
            images, SIMCLR_VIEW, torch.full((64,), strength), torch.Generator().manual_seed(5)
        )

    plain = augment(images, SIMCLR_VIEW, torch.Generator().manual_seed(5))
    assert torch.equal(view(0.0), plain)  # strength 0: SimCLR's view, bit for bit
    change = {s: (view(s) - plain).abs().mean(dim=(1, 2, 3)) for s in (0.3, 1.0)}
    assert int((change[1.0] > 0).sum()) >= 56  # nearly every image (cutout 0 leaves a few)
    assert 0 < int((change[0.3] > 0).sum()) < int((change[1.0] > 0).sum())
    assert float(change[1.0].mean()) > 2 * float(change[0.3].mean())


def test_rand_augment_draws_the_same_numbers_whatever_the_strengths():
    x = torch.rand(6, 3, 8, 8)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    rand_augment(x, torch.zeros(6), g1, ops=2)
    rand_augment(x, torch.ones(6), g2, ops=2)
    assert torch.equal(g1.get_state(), g2.get_state())


# ----------------------------------------------------------------------------- training
CONFIGS = {
    "simclr-ts": SimCLRConfig(proj_dim=8, temperature_schedule={}),
    "mocov2-ts": MocoV2Config(proj_dim=8, queue_size=8, temperature_schedule={}),
    "sdclr": SDCLRConfig(proj_dim=8),
    "bcl": BCLConfig(proj_dim=8),
}


def _fit(cfg, directory, epochs: int, batch: int = 16, on_epoch_end=None):
    method = _method(cfg)
    batches = ArrayBatches(_images(), np.arange(N) % 2, np.arange(N), batch, CPU)
    train = TrainConfig(
        epochs=epochs, batch_size=batch, optimizer=OptimizerConfig(lr=0.05), checkpoint_every=1
    )
    result = fit(method, batches, train, directory, seed=1, on_epoch_end=on_epoch_end)
    return method, result


@pytest.mark.parametrize("label", list(CONFIGS))
def test_two_steps_train(label, tmp_path):
    method, result = _fit(CONFIGS[label], tmp_path, epochs=2, batch=N)  # one step an epoch
    assert len(result.history) == 2
    assert all(math.isfinite(r["loss"]) for r in result.history)
    if label == "bcl":
        assert bool(method.seen.all())  # every image's loss is remembered after epoch 1
        strength = memorization_strength(method.momentum_loss, method.seen)
        assert 0.0 <= float(strength.min()) < float(strength.max()) == 1.0


class _Killed(Exception):
    pass


def _kill_after_first(epoch, model):
    if epoch == 1:
        raise _Killed  # after epoch 0's checkpoint
    return {}


@pytest.mark.parametrize("label", ["sdclr", "bcl", "simclr-ts"])
def test_a_resumed_run_equals_an_uninterrupted_one(label, tmp_path):
    cfg = CONFIGS[label]
    straight, _ = _fit(cfg, tmp_path / "a", epochs=2)
    with pytest.raises(_Killed):  # in epoch 1's bookkeeping, before its checkpoint
        _fit(cfg, tmp_path / "b", epochs=2, on_epoch_end=_kill_after_first)
    resumed, _ = _fit(cfg, tmp_path / "b", epochs=2)  # epoch 1 again, from epoch 0's state
    a, b = straight.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    if label == "sdclr":
        for name, mask in straight.masks().items():
            assert torch.equal(mask, resumed.masks()[name]), name


# ----------------------------------------------------------------------------- plan, labels
def test_plan_counts_and_names_them_and_config_lists_them(tmp_path):
    from ssl_robustness.data.prepare import prepare_data
    from ssl_robustness.plan import plan_rows

    methods = [
        {"name": "supervised"},
        {"name": "simclr"},
        {"name": "simclr", "temperature_schedule": {}},
        {"name": "mocov2", "temperature_schedule": {}},
        {"name": "sdclr"},
        {"name": "bcl"},
    ]
    raw = tiny_study(tmp_path, methods=methods)
    raw["pretrain"]["epochs"] = 3
    cfg = validate_config(raw)
    data = prepare_data(cfg.data, cfg.layout.data.path, cfg.evaluation, cfg.seeds)
    rows = {r.representation: r for r in plan_rows(cfg, data) if r.subset == "balanced"}
    size = len(data.draw(0).subsets["balanced"])
    # pretraining: 1 view x 3 epochs x size for supervised, 2 for SimCLR; fine-tuning alike
    simclr = rows["simclr_balanced_s0"].image_passes
    assert simclr - rows["supervised_balanced_s0"].image_passes == 3 * size
    for label in ("simclr-ts", "mocov2-ts", "sdclr", "bcl"):
        row = rows[f"{label}_balanced_s0"]
        assert row.scenario == "SSL-in-domain"
        # two forward passes of one view each a step, as SimCLR (SDCLR's second is pruned)
        assert row.image_passes == simclr, label
    assert views_per_step(cfg.methods[4]) == views_per_step(cfg.methods[1]) == 2
    text = config_yaml()
    for key in ("name: sdclr", "name: bcl", "prune_ratio", "loss_momentum", "tau_min"):
        assert key in text, key


# ----------------------------------------------------------------------------- DDP
def _ddp_worker(rank: int, port: int, out_dir: str) -> None:
    import os
    from datetime import timedelta
    from pathlib import Path

    import torch.distributed as dist

    from conftest import end_spawned_worker

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2, timeout=timedelta(seconds=60))
    torch.set_num_threads(1)
    out = Path(out_dir)
    try:
        result = {}
        for label in ("bcl", "sdclr"):
            method, _ = _fit(CONFIGS[label], out / label, epochs=1, batch=8)  # 8 a process
            result[label] = {k: v.clone() for k, v in method.state_dict().items()}
            if label == "sdclr":
                result["masks"] = {k: v.clone() for k, v in method.masks().items()}
        torch.save(result, out / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()
    end_spawned_worker()


def test_under_ddp_every_process_holds_every_images_state(tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(port, str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    # BCL: each process saw half the images a step, yet both remember all of them, equally
    assert bool(r0["bcl"]["seen"].all())
    for key in ("momentum_loss", "seen"):
        assert torch.equal(r0["bcl"][key], r1["bcl"][key]), key
    assert float(r0["bcl"]["momentum_loss"].min()) > 0
    # the saved state is what rank 0 holds
    saved = torch.load(tmp_path / "bcl" / "checkpoint.pt", weights_only=True)["model"]
    assert torch.equal(saved["momentum_loss"], r0["bcl"]["momentum_loss"])
    # SDCLR: the same weights on both processes, so the same masks
    for name, mask in r0["masks"].items():
        assert torch.equal(mask, r1["masks"][name]), name
    for key, value in r0["sdclr"].items():
        assert torch.equal(value, r1["sdclr"][key]), key


def test_bcl_outside_the_loop_needs_positions():
    method = _method(BCLConfig(proj_dim=8), n=4)
    ctx = StepContext(torch.Generator().manual_seed(0), 0.0)
    with pytest.raises(ValueError, match="position"):
        method(torch.from_numpy(_images(4)), torch.zeros(4, dtype=torch.long), ctx)
    assert isinstance(method, nn.Module)
