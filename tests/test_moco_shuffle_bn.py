"""MoCo v2's shuffle-BN on one process: split BN over sub-batches, keys shuffled and un-shuffled."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import BasicBlock

from ssl_robustness.config import MocoV2Config
from ssl_robustness.engine.step import StepContext
from ssl_robustness.methods.augment import ViewSpec
from ssl_robustness.methods.mocov2 import MocoV2
from ssl_robustness.methods.shuffle_bn import key_permutation, split_batchnorm, split_sizes
from ssl_robustness.models.backbones import ResNet

# no augmentation: both views are the images themselves, so samples can be followed
PLAIN = ViewSpec(
    crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0, jitter_p=0, grayscale_p=0, blur_p=0
)


def _moco(splits: int, views=None) -> MocoV2:
    torch.manual_seed(0)
    backbone = ResNet(BasicBlock, [1, 1, 1, 1], width=4, small_stem=True)
    cfg = MocoV2Config(proj_dim=8, queue_size=32, shuffle_bn_splits=splits)
    if views is None:
        return MocoV2(backbone, cfg, train_size=100)
    return MocoV2(backbone, cfg, train_size=100, views=views)


def _images(n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 8, 8, 3), dtype=torch.uint8, generator=g)


def _step(model: MocoV2, n: int = 16) -> torch.Tensor:
    model.train()
    ctx = StepContext(torch.Generator().manual_seed(1), 0.0)
    return model(_images(n), torch.zeros(n, dtype=torch.long), ctx).loss


def test_split_sizes_fall_back_to_fewer_splits_never_one_sample():
    assert split_sizes(128, 8) == [16] * 8
    assert split_sizes(18, 4) == [5, 5, 4, 4]
    assert split_sizes(10, 8) == [2] * 5  # 8 splits would leave sub-batches of 1
    assert split_sizes(5, 8) == [3, 2]
    assert split_sizes(3, 8) == [3] and split_sizes(16, 1) == [16]


def test_split_batchnorm_equals_one_bn_per_sub_batch_with_averaged_running_stats():
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(3)
    nn.init.uniform_(bn.weight)
    nn.init.uniform_(bn.bias)
    x = torch.randn(10, 3, 4, 4) * 3 + 1
    copies = [copy.deepcopy(bn) for _ in range(4)]
    expected = torch.cat([c(part) for c, part in zip(copies, x.split([3, 3, 2, 2]), strict=True)])
    with split_batchnorm(bn, 4):
        out = bn(x)
    assert "forward" not in vars(bn)  # restored on exit
    assert torch.allclose(out, expected, atol=1e-6)
    assert torch.allclose(bn.running_mean, torch.stack([c.running_mean for c in copies]).mean(0))
    assert torch.allclose(bn.running_var, torch.stack([c.running_var for c in copies]).mean(0))
    assert bn.num_batches_tracked.item() == 1
    bn.eval()  # running statistics: sub-batches do not matter
    with split_batchnorm(bn, 4):
        assert torch.allclose(bn(x), nn.BatchNorm2d.forward(bn, x), atol=1e-6)


def test_one_split_is_plain_local_batchnorm_even_for_syncbatchnorm():
    torch.manual_seed(0)
    plain = nn.BatchNorm1d(5)
    sync = nn.SyncBatchNorm(5)
    x = torch.randn(6, 5)
    with split_batchnorm(sync, 1):
        out = sync(x)
    assert torch.equal(out, plain(x))
    assert torch.equal(sync.running_var, plain.running_var)


def test_key_permutation_never_repeats_an_in_order_sub_batch():
    g = torch.Generator().manual_seed(0)
    sizes = [2] * 8  # pairs: a random permutation often repeats one
    ordered = [set(range(a, a + 2)) for a in range(0, 16, 2)]
    for _ in range(200):
        perm = key_permutation(sizes, g).tolist()
        assert sorted(perm) == list(range(16))
        assert all(set(perm[a : a + 2]) not in ordered for a in range(0, 16, 2))
    a = key_permutation([5, 5, 4, 4], torch.Generator().manual_seed(3))
    assert torch.equal(a, key_permutation([5, 5, 4, 4], torch.Generator().manual_seed(3)))


def _bn_groups(model: MocoV2, monkeypatch, n: int) -> dict[str, list[list[int]]]:
    """Which samples each training-mode batch_norm call of the first BN layer of each
    encoder normalised over, found by matching that layer's input rows to the samples."""
    state: dict = {"tag": None, "whole": {}, "calls": []}
    real = F.batch_norm

    def recording(x, *args, **kwargs):
        if state["tag"] is not None:
            state["calls"].append((state["tag"], x.detach().clone()))
        return real(x, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "batch_norm", recording)
    for tag, layer in (("q", model.backbone.bn1), ("k", model.backbone_k.bn1)):
        layer.register_forward_pre_hook(lambda m, a, tag=tag: state.update(tag=tag))
        layer.register_forward_hook(lambda m, a, out: state.update(tag=None))
        layer.register_forward_pre_hook(
            lambda m, a, tag=tag: state["whole"].setdefault(tag, a[0].detach().clone())
        )
    _step(model, n)
    samples = state["whole"]["q"].flatten(1)  # the first query call is in sample order
    groups: dict[str, list[list[int]]] = {"q": [], "k": []}
    for tag, x in state["calls"]:
        dist = torch.cdist(x.flatten(1), samples)
        assert dist.min(1).values.max() < 1e-4  # every row is one of the samples
        groups[tag].append(dist.argmin(1).tolist())
    return groups


def test_keys_are_normalised_over_other_sub_batches_than_queries(monkeypatch):
    model = _moco(4, views=(PLAIN, PLAIN))
    groups = _bn_groups(model, monkeypatch, 18)
    in_order = [list(range(0, 5)), list(range(5, 10)), list(range(10, 14)), list(range(14, 18))]
    assert groups["q"] == in_order * 2  # symmetric loss: two query passes
    assert [len(g) for g in groups["k"]] == [5, 5, 4, 4] * 2
    for first in (0, 4):  # each key pass covers the whole batch once
        assert sorted(sum(groups["k"][first : first + 4], [])) == list(range(18))
    query_sets = [set(g) for g in groups["q"]]
    assert all(set(g) not in query_sets for g in groups["k"])


def test_small_last_batch_uses_fewer_splits(monkeypatch):
    groups = _bn_groups(_moco(8, views=(PLAIN, PLAIN)), monkeypatch, 5)
    assert [len(g) for g in groups["q"]] == [3, 2, 3, 2]
    assert [len(g) for g in groups["k"]] == [3, 2, 3, 2]


def test_one_split_reproduces_the_old_step_and_splits_change_it():
    old = 3.2108192443847656  # MocoV2 before shuffle-BN, same seeds and data
    assert _step(_moco(1)).item() == pytest.approx(old, rel=1e-6)
    assert _step(_moco(4)).item() != pytest.approx(old, rel=1e-3)


def test_unshuffle_returns_each_key_to_its_query():
    model = _moco(4).eval()  # running statistics: a key no longer depends on its sub-batch
    x = torch.randn(18, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    keys = model._key(x, g)
    with torch.no_grad():
        plain = F.normalize(model.projector_k(model.backbone_k(x)), dim=1)
    assert torch.allclose(keys, plain, atol=1e-6)
    perm = key_permutation([5, 5, 4, 4], torch.Generator().manual_seed(0))
    assert not torch.equal(perm, torch.arange(18))  # the keys really went through a shuffle
    assert not torch.allclose(keys, plain[perm], atol=1e-3)
