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
    draw_magnitude,
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


def _ctx(seed: int = 0, n: int = 8, epoch: int = 0, epochs: int = 1) -> StepContext:
    gen = torch.Generator().manual_seed(seed)
    return StepContext(gen, epoch / epochs, torch.arange(n), epoch, epochs)


# ----------------------------------------------------------------------------- temperature
def _released(e: int, tau_min: float = 0.1, tau_max: float = 1.0, t_max: int = 200) -> float:
    """The authors' released formula (Annusha/temperature_schedules, train_simCLR.py) at their
    1-based epoch e."""
    return tau_min + 0.5 * (tau_max - tau_min) * (1 + math.cos(math.pi * e / t_max))


def test_the_temperature_follows_the_released_code_at_its_2000_epochs():
    ts = TemperatureScheduleConfig()  # 0.1 .. 1.0, a full cycle 0.2 of the run: 400 of 2000
    # the released formula gives tau_min at epochs 200, 600, ... and tau_max at 400, 800, ...
    for e in (200, 600, 1000, 1400, 1800):
        assert scheduled_temperature(ts, 0.2, e - 1, 2000) == pytest.approx(0.1, abs=1e-12), e
    for e in (400, 800, 1200, 1600, 2000):
        assert scheduled_temperature(ts, 0.2, e - 1, 2000) == pytest.approx(1.0, abs=1e-12), e
    # and at every epoch of the run (the old schedule: tau_min at epoch 100, twice the cycles)
    for e in range(1, 2001):
        assert scheduled_temperature(ts, 0.2, e - 1, 2000) == pytest.approx(_released(e)), e
    assert scheduled_temperature(ts, 0.2, 99, 2000) == pytest.approx(0.55)
    assert scheduled_temperature(None, 0.2, 7, 30) == 0.2


def test_a_short_run_keeps_the_released_number_of_cycles():
    ts = TemperatureScheduleConfig()
    at = [scheduled_temperature(ts, 0.2, epoch, 30) for epoch in range(30)]
    # 30 epochs, 5 cycles of 6: tau_min at (1-based) epochs 3, 9, ..., 27, tau_max at 6, ..., 30
    lows = [e for e in range(1, 31) if at[e - 1] == pytest.approx(0.1, abs=1e-12)]
    highs = [e for e in range(1, 31) if at[e - 1] == pytest.approx(1.0, abs=1e-12)]
    assert lows == [3, 9, 15, 21, 27] and highs == [6, 12, 18, 24, 30]
    # the released formula with t_max scaled from 200 of 2000 epochs to 3 of 30
    for e in range(1, 31):
        assert at[e - 1] == pytest.approx(_released(e, t_max=3)), e
    other = TemperatureScheduleConfig(tau_min=0.2, tau_max=0.5, period=0.25)
    assert scheduled_temperature(other, 0.2, 0, 16) == pytest.approx(0.35)  # a quarter cycle


def test_the_temperature_is_stepped_once_per_epoch(tmp_path):
    """Every step of an epoch trains at that epoch's temperature (the old one moved per step)."""
    cfg = SimCLRConfig(proj_dim=8, temperature_schedule={})
    seen: list[tuple[int, float]] = []
    method = _method(cfg)
    plain = method.temperature_at

    def spy(ctx: StepContext) -> float:
        tau = plain(ctx)
        seen.append((ctx.epoch, tau))
        return tau

    method.temperature_at = spy  # type: ignore[method-assign]
    batches = ArrayBatches(_images(), np.arange(N) % 2, np.arange(N), 8, CPU)  # 4 steps an epoch
    train = TrainConfig(epochs=5, batch_size=8, optimizer=OptimizerConfig(lr=0.05))
    fit(method, batches, train, tmp_path, seed=1)
    assert [e for e, _ in seen] == [e for e in range(5) for _ in range(4)]
    for epoch in range(5):
        taus = {tau for e, tau in seen if e == epoch}
        assert taus == {scheduled_temperature(cfg.temperature_schedule, 0.2, epoch, 5)}, epoch


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


def test_runs_of_the_changed_methods_are_not_reused_and_other_keys_stay():
    """BCL's and the schedule's code changed under the same settings (issue 34): their keys
    carry a revision; plain SimCLR's, SDCLR's and MoCo's settings hash as before."""
    from ssl_robustness.cache_keys import trained_settings
    from ssl_robustness.config import DataConfig

    def settings(method):  # noqa: ANN001, ANN202
        return trained_settings(DataConfig(), "items", method, TrainConfig(), None, None)

    assert settings(BCLConfig())["revision"] == "bcl-per-image"
    assert settings(SimCLRConfig(temperature_schedule={}))["revision"] == "ts-per-epoch"
    assert settings(MocoV2Config(temperature_schedule={}))["revision"] == "ts-per-epoch"
    for plain in (SimCLRConfig(), SDCLRConfig(), MocoV2Config()):
        assert "revision" not in settings(plain), plain.name


@pytest.mark.parametrize("name", ["simclr", "mocov2"])
def test_a_scheduled_loss_is_the_fixed_loss_at_that_steps_temperature(name):
    ctx = {"epoch": 0, "epochs": 30}  # tau = 0.1 + 0.9 (1 + cos(2 pi (1 / 30) / 0.2)) / 2
    tau = 0.1 + 0.9 * (1 + math.cos(2 * math.pi / 6)) / 2
    extra = {"queue_size": 16} if name == "mocov2" else {}
    cls = SimCLRConfig if name == "simclr" else MocoV2Config
    scheduled = _method(cls(proj_dim=8, temperature_schedule={}, **extra))
    fixed = _method(cls(proj_dim=8, temperature=tau, **extra))
    images = torch.from_numpy(_images(8))
    labels = torch.zeros(8, dtype=torch.long)
    out = scheduled(images, labels, _ctx(**ctx))
    ref = fixed(images, labels, _ctx(**ctx))
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
    # an image not seen yet gets the official code's initial strength 0 (not the mean's 1/2),
    # and is not in the mean (seen: 1 and 3, mean 2); equal losses give every image 1/2
    partly = torch.tensor([True, False, True])
    m = torch.tensor([1.0, 9.0, 3.0])
    torch.testing.assert_close(memorization_strength(m, partly), torch.tensor([0.0, 0.0, 1.0]))
    m = torch.tensor([1.0, 0.0, 3.0, 2.5])
    partly = torch.tensor([True, False, True, True])  # mean 13/6: z = -7/6, 5/6, 1/3
    expected = torch.tensor([0.0, 0.0, 0.5 + 5 / 14, 0.5 + 1 / 7])
    torch.testing.assert_close(memorization_strength(m, partly), expected)
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


def test_both_views_of_an_image_get_its_strength_and_one_magnitude(monkeypatch):
    """The official code builds one RandAugment per image (its strength w, magnitude 30 w u)
    and applies it to both views; the old code drew u anew for each view."""
    import ssl_robustness.methods.bcl as bcl

    method = _method(BCLConfig(proj_dim=8), n=4)
    method.momentum_loss.copy_(torch.tensor([1.0, 2.0, 4.0, 0.0]))
    method.seen.copy_(torch.tensor([True, True, True, False]))  # image 3: no loss yet
    method.begin_epoch(1)
    calls: list[tuple[torch.Tensor, torch.Tensor]] = []
    real = bcl.rand_augment

    def spy(x, strength, magnitude, g, *, ops):  # noqa: ANN001, ANN202
        calls.append((strength.clone(), magnitude.clone()))
        return real(x, strength, magnitude, g, ops=ops)

    monkeypatch.setattr(bcl, "rand_augment", spy)
    positions = torch.tensor([2, 3, 0, 1])
    ctx = StepContext(torch.Generator().manual_seed(0), 0.0, positions)
    method(torch.from_numpy(_images(4)), torch.zeros(4, dtype=torch.long), ctx)
    assert len(calls) == 2  # one call per view
    (s1, m1), (s2, m2) = calls
    # mean 7/3: z = -4/3, -1/3, 5/3; by position 2, 3 (unseen), 0, 1
    expected = torch.tensor([1.0, 0.0, 0.5 - 0.4, 0.5 - 0.1])
    torch.testing.assert_close(s1, expected)
    assert torch.equal(s1, s2) and torch.equal(m1, m2)  # the image's, not the view's
    assert float(m1[1]) == 0.0  # no strength, no magnitude
    assert bool(((m1 >= 0) & (m1 <= s1)).all()) and float(m1[0]) > 0


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
        w = torch.full((64,), strength)
        magnitude = draw_magnitude(w, torch.Generator().manual_seed(9))
        return method.boosted_view(
            images, SIMCLR_VIEW, w, magnitude, torch.Generator().manual_seed(5)
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
    rand_augment(x, torch.zeros(6), torch.zeros(6), g1, ops=2)
    rand_augment(x, torch.ones(6), torch.ones(6), g2, ops=2)
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
