import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.models.resnet import BasicBlock

from ssl_robustness.config import BYOLConfig, MocoV2Config
from ssl_robustness.engine.step import collapse_ratio, collapse_std
from ssl_robustness.methods.base import cosine_momentum, momentum_update
from ssl_robustness.methods.byol import BYOL, byol_loss
from ssl_robustness.methods.longtail_losses import (
    LongTailLoss,
    class_balanced_weights,
    ldam_margins,
)
from ssl_robustness.methods.mocov2 import MocoV2, info_nce
from ssl_robustness.methods.simclr import nt_xent
from ssl_robustness.methods.simsiam import negative_cosine
from ssl_robustness.models.backbones import ResNet


def test_info_nce_against_hand_computation():
    q = torch.tensor([[1.0, 0.0]])
    k = torch.tensor([[0.6, 0.8]])
    queue = torch.tensor([[0.0, -1.0], [1.0, 0.0]])  # columns: keys (0,1) and (-1,0)
    t = 0.5
    logits = torch.tensor([0.6, 0.0, -1.0]) / t
    expected = -logits[0] + torch.logsumexp(logits, 0)
    assert info_nce(q, k, queue, t).item() == pytest.approx(expected.item(), rel=1e-6)


def test_nt_xent_against_hand_computation():
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z2 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    t = 1.0
    # for anchor z1[0]: candidates z1[1]=0, z2[0]=1 (positive), z2[1]=0
    one = -1.0 + math.log(math.exp(0) + math.exp(1) + math.exp(0))
    assert nt_xent(z1, z2, t).item() == pytest.approx(one, rel=1e-6)


def test_negative_cosine_stops_gradient_into_target():
    p = torch.tensor([[1.0, 0.0]], requires_grad=True)
    z = torch.tensor([[1.0, 1.0]], requires_grad=True)
    loss = negative_cosine(p, z)
    assert loss.item() == pytest.approx(-1 / math.sqrt(2))
    loss.backward()
    assert z.grad is None and p.grad is not None


def test_byol_loss_is_normalised_squared_distance():
    p = torch.tensor([[3.0, 0.0]])
    z = torch.tensor([[0.0, 2.0]])
    assert byol_loss(p, z).item() == pytest.approx(2.0)
    assert byol_loss(p, p).item() == pytest.approx(0.0, abs=1e-6)


def _tiny_backbone():
    torch.manual_seed(0)
    return ResNet(BasicBlock, [1, 1, 1, 1], width=4, small_stem=True)


def test_moco_queue_wraps_and_target_gets_no_gradient():
    model = MocoV2(_tiny_backbone(), MocoV2Config(proj_dim=4, queue_size=5), train_size=100)
    assert model.queue.shape == (4, 5)
    keys = F.normalize(torch.randn(3, 4), dim=1)
    model.enqueue(keys)
    assert torch.allclose(model.queue[:, :3].t(), keys) and model.queue_ptr.item() == 3
    more = F.normalize(torch.randn(3, 4), dim=1)
    model.enqueue(more)
    assert torch.allclose(model.queue[:, [3, 4, 0]].t(), more) and model.queue_ptr.item() == 1
    assert all(not p.requires_grad for p in model.backbone_k.parameters())
    small = MocoV2(_tiny_backbone(), MocoV2Config(proj_dim=4, queue_size=4096), train_size=100)
    assert small.queue.shape[1] == 50  # capped at half the training set


def test_momentum_update_and_byol_schedule():
    online, target = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    with torch.no_grad():
        online.weight.fill_(1.0)
        target.weight.fill_(0.0)
    momentum_update(online, target, 0.9)
    assert torch.allclose(target.weight, torch.full((1, 2), 0.1))
    assert cosine_momentum(0.99, 0.0) == pytest.approx(0.99)
    assert cosine_momentum(0.99, 1.0) == pytest.approx(1.0)
    assert cosine_momentum(0.99, 0.5) == pytest.approx(0.995)


def test_byol_target_receives_no_gradient():
    from ssl_robustness.engine.step import StepContext

    model = BYOL(_tiny_backbone(), BYOLConfig(proj_dim=8, hidden_dim=16))
    images = torch.randint(0, 255, (4, 8, 8, 3), dtype=torch.uint8)
    out = model(images, torch.zeros(4, dtype=torch.long), StepContext(torch.Generator(), 0.0))
    out.loss.backward()
    assert all(p.grad is None for p in model.backbone_t.parameters())
    assert any(p.grad is not None for p in model.backbone.parameters())


def test_class_balanced_weights_and_ldam_margins():
    counts = np.array([100, 10])
    beta = 0.99
    eff = 1 - beta**counts
    w = (1 - beta) / eff
    expected = w / w.sum() * 2
    assert np.allclose(class_balanced_weights(counts, beta).numpy(), expected)
    m = ldam_margins(np.array([10000, 1]), 0.5).numpy()
    assert m[1] == pytest.approx(0.5) and m[0] == pytest.approx(0.05)


def test_balanced_softmax_and_logit_adjustment_offsets():
    counts = np.array([75, 25])
    logits = torch.tensor([[0.0, 0.0]])
    label = torch.tensor([1])
    bs = LongTailLoss("balanced_softmax", counts)(logits, label)
    # softmax over logits + log prior: p(1) = 0.25
    assert bs.item() == pytest.approx(-math.log(0.25), rel=1e-6)
    la = LongTailLoss("logit_adjusted", counts, tau=2.0)(logits, label)
    p1 = 0.25**2 / (0.25**2 + 0.75**2)
    assert la.item() == pytest.approx(-math.log(p1), rel=1e-6)
    ce = LongTailLoss("ce", counts)(logits, label)
    assert ce.item() == pytest.approx(math.log(2))


def test_ldam_drw_margin_and_deferred_weights():
    counts = np.array([10000, 1])
    loss = LongTailLoss("ldam_drw", counts, max_margin=0.5, scale=10.0, drw_start=0.5)
    logits = torch.tensor([[0.2, 0.2]])
    early = loss(logits, torch.tensor([1]), progress=0.1)
    z = torch.tensor([2.0, 10 * (0.2 - 0.5)])
    assert early.item() == pytest.approx((-z[1] + torch.logsumexp(z, 0)).item(), rel=1e-5)
    late = loss(torch.tensor([[0.2, 0.2], [0.2, 0.2]]), torch.tensor([0, 1]), progress=0.9)
    plain = loss(torch.tensor([[0.2, 0.2], [0.2, 0.2]]), torch.tensor([0, 1]), progress=0.1)
    assert late.item() != pytest.approx(plain.item())


def test_collapse_statistic():
    healthy = F.normalize(torch.randn(4096, 64, generator=torch.Generator().manual_seed(0)), dim=1)
    assert collapse_ratio(collapse_std(healthy), 64) == pytest.approx(1.0, abs=0.05)
    collapsed = torch.ones(128, 64) + 1e-4 * torch.randn(128, 64)
    assert collapse_ratio(collapse_std(collapsed), 64) < 0.01
