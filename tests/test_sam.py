"""SAM / rwSAM (engine/sam.py, methods/reweight.py): the perturbation is rho g/||g|| (ASAM:
rho T^2 g/||T g||) of the loss gradient unscaled from AMP's scale; the weights enter only the
inner step; KDE weights are larger in sparse regions; a fit with rwSAM trains and logs the
weights per class; without `sam` the config dump (every cache key) is as before."""

from __future__ import annotations

import json
import math
import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torchvision.models.resnet import BasicBlock

from conftest import end_spawned_worker
from ssl_robustness.cache_keys import config_hash
from ssl_robustness.config import (
    BYOLConfig,
    MocoV2Config,
    OptimizerConfig,
    SAMConfig,
    SimCLRConfig,
    SimSiamConfig,
    TrainConfig,
)
from ssl_robustness.engine.batches import ArrayBatches
from ssl_robustness.engine.loop import fit
from ssl_robustness.engine.sam import SAM, WEIGHTS_FILE, perturbation
from ssl_robustness.engine.step import Method, StepContext, StepOutput
from ssl_robustness.methods import build_method
from ssl_robustness.methods.reweight import (
    KDEWeights,
    LabelWeights,
    example_weights,
    kde_log_weights,
)
from ssl_robustness.models.backbones import ResNet


class Tiny(Method):
    """A linear regressor whose step adds generator noise to its input (an augmentation) and
    counts its forward passes in a buffer (a side effect SAM's second pass must not keep)."""

    name = "tiny"

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 1, bias=False)
        with torch.no_grad():
            self.lin.weight.copy_(torch.tensor([[0.5, -1.0, 2.0]]))
        self.register_buffer("passes", torch.zeros(()))

    def view(self, images: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return images + 0.1 * torch.randn(images.shape, generator=g)

    def forward(self, images: torch.Tensor, labels: torch.Tensor, ctx: StepContext) -> StepOutput:
        self.passes += 1
        x = self.view(images, ctx.generator)
        losses = (self.lin(x).squeeze(1) - labels.float()) ** 2
        return StepOutput(losses.mean(), x, losses=losses)


class Fixed:
    """Weights given in advance (what rwSAM's source would return)."""

    def __init__(self, w: list[float]) -> None:
        self.w = torch.tensor(w)

    def __call__(self, out: StepOutput, labels: torch.Tensor) -> torch.Tensor:
        return self.w


class FakeScaler:
    """An enabled GradScaler's interface at a fixed scale (AMP on CPU)."""

    def __init__(self, scale: float) -> None:
        self.s = scale

    def is_enabled(self) -> bool:
        return True

    def get_scale(self) -> float:
        return self.s

    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        return loss * self.s


class NoScaler(FakeScaler):
    def __init__(self) -> None:
        super().__init__(1.0)

    def is_enabled(self) -> bool:
        return False


IMAGES = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, -1.0], [2.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
LABELS = torch.tensor([1, 0, 3, 2])


def _sam_step(weights=None, scaler=None, rho=0.1, adaptive=False):
    """One SAM step's backward on Tiny; the model, the gradient it leaves, the step's view."""
    model = Tiny()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sam = SAM(SAMConfig(rho=rho, adaptive=adaptive), model, opt, weights)
    ctx = StepContext(torch.Generator().manual_seed(0), 0.0)
    sam.begin(ctx, torch.device("cpu"))
    out = model(IMAGES, LABELS, ctx)
    sam.backward(model, IMAGES, LABELS, ctx, out, scaler or NoScaler())
    view = Tiny().view(IMAGES, torch.Generator().manual_seed(0))
    return model, model.lin.weight.grad.clone(), view


def _grad(w: torch.Tensor, x: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Gradient of the (weighted) mean squared error of the linear model w at x."""
    w = w.clone().requires_grad_(True)
    losses = ((x @ w.t()).squeeze(1) - LABELS.float()) ** 2
    loss = (losses * weights).mean() if weights is not None else losses.mean()
    (g,) = torch.autograd.grad(loss, w)
    return g


def test_perturbation_is_rho_times_the_unit_gradient_and_asam_scales_by_w():
    p = torch.tensor([1.0, -2.0], requires_grad=True)
    p.grad = torch.tensor([3.0, 4.0])
    (e,) = perturbation([p], rho=0.5, adaptive=False)
    assert torch.allclose(e, torch.tensor([0.3, 0.4]))  # 0.5 * (3, 4) / 5
    # ASAM, T = |w| = (1, 2): T g = (3, 8), e = rho T^2 g / ||T g|| = 0.5 (3, 16) / sqrt(73)
    (e,) = perturbation([p], rho=0.5, adaptive=True)
    assert torch.allclose(e, 0.5 * torch.tensor([3.0, 16.0]) / math.sqrt(73))
    # AMP: the gradient held is scaled; the perturbation is the unscaled one's
    p.grad = torch.tensor([3.0, 4.0]) * 1024
    (e,) = perturbation([p], rho=0.5, adaptive=False, grad_scale=1024.0)
    assert torch.allclose(e, torch.tensor([0.3, 0.4]))
    p.grad = torch.tensor([float("inf"), 4.0])
    assert perturbation([p], rho=0.5, adaptive=False) is None


@pytest.mark.parametrize("adaptive", [False, True])
def test_sam_gradient_is_the_loss_gradient_at_w_plus_e_on_the_same_view(adaptive):
    model, grad, x = _sam_step(rho=0.1, adaptive=adaptive)
    w = torch.tensor([[0.5, -1.0, 2.0]])
    g = _grad(w, x)
    t = w.abs() if adaptive else torch.ones_like(w)
    e = 0.1 * t**2 * g / (t * g).norm()
    assert torch.allclose(grad, _grad(w + e, x), atol=1e-6)
    assert not torch.allclose(grad, g, atol=1e-3)  # it is not the plain gradient
    assert torch.equal(model.lin.weight.detach(), w)  # weights put back exactly
    assert model.passes.item() == 1  # the second pass left no trace in the buffers


def test_weights_enter_only_the_inner_step():
    weights = [4.0, 0.0, 0.0, 0.0]
    _, grad, x = _sam_step(weights=Fixed(weights), rho=0.1)
    w = torch.tensor([[0.5, -1.0, 2.0]])
    g_weighted = _grad(w, x, torch.tensor(weights))
    e = 0.1 * g_weighted / g_weighted.norm()
    # the outer gradient: the UNWEIGHTED loss's, at the point the weighted ascent reached
    assert torch.allclose(grad, _grad(w + e, x), atol=1e-6)
    assert not torch.allclose(grad, _grad(w + e, x, torch.tensor(weights)), atol=1e-3)
    g = _grad(w, x)  # ... which is not where unweighted SAM goes
    assert not torch.allclose(grad, _grad(w + 0.1 * g / g.norm(), x), atol=1e-3)


def test_amp_scale_is_undone_for_the_perturbation_and_inf_skips():
    _, plain, _ = _sam_step(rho=0.1)
    _, scaled, _ = _sam_step(scaler=FakeScaler(256.0), rho=0.1)
    # same perturbation; the gradient left for scaler.step is the scaled one
    assert torch.allclose(scaled, 256.0 * plain, rtol=1e-5)
    model, grad, _ = _sam_step(weights=Fixed([float("inf"), 1.0, 1.0, 1.0]), rho=0.1)
    assert not torch.isfinite(grad).all()  # left for GradScaler.step to skip
    assert torch.equal(model.lin.weight.detach(), torch.tensor([[0.5, -1.0, 2.0]]))
    assert model.passes.item() == 1  # no second pass


def test_kde_log_weights_exact_leave_one_out():
    x = torch.tensor([[0.0], [1.0], [3.0]])
    got = kde_log_weights(x, x, alpha=0.5, bandwidth=1.0, self_index=torch.arange(3))
    k = lambda d: math.exp(-(d**2) / 2)  # noqa: E731
    dens = [k(1) + k(3), k(1) + k(2), k(3) + k(2)]
    assert torch.allclose(got, torch.tensor([-0.5 * math.log(d) for d in dens]))


def _two_clusters(g: torch.Generator) -> torch.Tensor:
    dense = torch.tensor([1.0, 0, 0, 0]) + 0.1 * torch.randn(100, 4, generator=g)
    sparse = torch.tensor([0, 1.0, 0, 0]) + 0.1 * torch.randn(10, 4, generator=g)
    return torch.cat([dense, sparse])


def test_kde_weights_larger_in_the_sparse_cluster():
    g = torch.Generator().manual_seed(0)
    x = _two_clusters(g)
    kde = KDEWeights(alpha=1.0, memory=64)
    w = kde(StepOutput(torch.zeros(()), x), torch.zeros(110))
    assert w.mean().item() == pytest.approx(1.0)
    assert w[100:].mean() > 3 * w[:100].mean()
    assert w[100:].median() > 3 * w[:100].median()
    # a kernel as wide as the median distance: every sparse point above every dense one
    wide = KDEWeights(alpha=1.0, memory=64, scale=1.0)(StepOutput(torch.zeros(()), x), x[:, 0])
    assert wide[100:].min() > wide[:100].max()
    assert kde.queue is not None and len(kde.queue) == 64  # the memory keeps the latest 64
    assert torch.equal(kde.queue, torch.nn.functional.normalize(x, dim=1)[-64:])
    # the next batch (new draws from the same clusters) against the memory too
    w2 = kde(StepOutput(torch.zeros(()), _two_clusters(g)), torch.zeros(110))
    assert w2[100:].mean() > 3 * w2[:100].mean()
    # as an epoch ends the memory empties: an image never meets its own earlier embedding
    kde.new_epoch()
    assert kde.queue is None
    batch = _two_clusters(g)
    fresh = KDEWeights(alpha=1.0, memory=64)(StepOutput(torch.zeros(()), batch), batch[:, 0])
    assert torch.equal(kde(StepOutput(torch.zeros(()), batch), batch[:, 0]), fresh)


def test_sam_empties_the_kde_memory_at_each_epoch_end():
    kde = KDEWeights(alpha=1.0, memory=64)
    sam = SAM(
        SAMConfig(weights="kde"),
        nn.Linear(2, 2),
        torch.optim.SGD([nn.Parameter(torch.ones(1))], lr=0.1),
        kde,
    )
    kde.queue = torch.ones(3, 2)
    sam.end_epoch(0, write=False)
    assert kde.queue is None


def test_kde_weights_under_two_processes_equal_one_process_on_the_global_batch(monkeypatch):
    """One density estimate and one bandwidth over the global batch: each rank keeps its
    rows of the one-process weights (not a bandwidth of its own rows)."""
    import ssl_robustness.methods.reweight as rw

    g = torch.Generator().manual_seed(3)
    x = _two_clusters(g)[:100]  # 100 rows: 50 per rank
    whole = KDEWeights(alpha=1.0, memory=256)(StepOutput(torch.zeros(()), x), x[:, 0])
    parts = []
    for r in (0, 1):
        unit = torch.nn.functional.normalize(x, dim=1)  # what every rank gathers
        monkeypatch.setattr(rw, "gather", lambda t, unit=unit: unit)
        monkeypatch.setattr(rw, "rank", lambda r=r: r)
        mine = x[50 * r : 50 * (r + 1)]
        parts.append(
            KDEWeights(alpha=1.0, memory=256)(StepOutput(torch.zeros(()), mine), mine[:, 0])
        )
    assert torch.allclose(torch.cat(parts), whole, atol=1e-6)


def test_default_bandwidth_tells_rare_clusters_in_128_dims():
    """High-dimensional distances crowd their median: a kernel that wide gives flat weights."""
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(10, 128, generator=g)
    sizes = [300] * 5 + [30] * 5
    x = torch.cat(
        [c + torch.randn(n, 128, generator=g) for c, n in zip(centers, sizes, strict=True)]
    )
    rare = torch.arange(len(x)) >= 1500
    out = StepOutput(torch.zeros(()), x)
    w = KDEWeights(alpha=1.0, memory=4096)(out, torch.zeros(len(x)))
    assert w[rare].mean() > 3 * w[~rare].mean()
    flat = KDEWeights(alpha=1.0, memory=4096, scale=1.0)(out, torch.zeros(len(x)))
    assert flat[rare].mean() < 1.1 * flat[~rare].mean()


def test_label_weights_are_inverse_class_frequency_mean_one():
    w = LabelWeights(np.array([90, 10]), alpha=1.0)(StepOutput(torch.zeros(())), LABELS % 2)
    raw = torch.tensor([10.0, 1 / 0.9, 10.0, 1 / 0.9])
    assert torch.allclose(w, raw / raw.mean())
    assert example_weights(SAMConfig(), np.array([1, 1])) is None
    assert example_weights(None, np.array([1, 1])) is None


def test_no_sam_leaves_the_dump_and_the_label_as_before():
    plain = SimSiamConfig()
    assert "sam" not in plain.model_dump(mode="json")
    assert config_hash(plain) == config_hash(
        {
            k: v
            for k, v in SimSiamConfig(sam=SAMConfig()).model_dump(mode="json").items()
            if k != "sam"
        }
    )
    assert plain.label == "simsiam"
    assert SimSiamConfig(sam=SAMConfig()).label == "simsiam-sam"
    assert SimSiamConfig(sam=SAMConfig(adaptive=True, weights="kde")).label == "simsiam-rwasam_kde"
    assert SimSiamConfig(sam={"weights": "label", "rho": 0.1}).sam.rho == 0.1


def _tiny_simsiam(labels: np.ndarray):
    torch.manual_seed(0)
    return build_method(
        SimSiamConfig(proj_dim=16, pred_hidden_dim=8),
        ResNet(BasicBlock, [1, 1, 1, 1], 4, True),
        num_classes=2,
        class_counts=np.bincount(labels),
        train_size=len(labels),
    )


@pytest.mark.parametrize(
    "cfg",
    [
        SimSiamConfig(proj_dim=16, pred_hidden_dim=8),
        SimCLRConfig(proj_dim=8),
        MocoV2Config(proj_dim=8, queue_size=16),
        MocoV2Config(proj_dim=8, queue_size=16, symmetric=False),
        BYOLConfig(proj_dim=8, hidden_dim=16),
    ],
)
def test_each_ssl_method_gives_per_example_losses_whose_mean_is_its_loss(cfg):
    torch.manual_seed(0)
    labels = np.arange(8) % 2
    method = build_method(
        cfg,
        ResNet(BasicBlock, [1, 1, 1, 1], 4, True),
        num_classes=2,
        class_counts=np.bincount(labels),
        train_size=64,
    )
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 255, (8, 8, 8, 3), np.uint8))
    out = method(images, torch.from_numpy(labels), StepContext(torch.Generator(), 0.0))
    assert out.losses is not None and out.losses.shape == (8,)
    assert torch.allclose(out.losses.mean(), out.loss, atol=1e-6)
    assert out.losses.std() > 0  # one per image, not the batch loss repeated


def test_a_two_step_rwsam_fit_trains_and_logs_the_weights_per_class(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (32, 8, 8, 3), dtype=np.uint8)
    labels = np.array([0] * 28 + [1] * 4)
    method = _tiny_simsiam(labels)
    before = [p.detach().clone() for p in method.parameters()]
    batches = ArrayBatches(images, labels, np.arange(32), 16, torch.device("cpu"))
    train = TrainConfig(epochs=1, batch_size=16, optimizer=OptimizerConfig(lr=0.05))
    sam = SAMConfig(rho=0.05, weights="kde", memory=32)
    result = fit(
        method,
        batches,
        train,
        tmp_path,
        seed=0,
        sam=sam,
        example_weights=example_weights(sam, np.bincount(labels)),
    )
    assert len(batches) == 2 and math.isfinite(result.history[0]["loss"])
    assert any(not torch.equal(a, b) for a, b in zip(before, method.parameters(), strict=True))
    log = json.loads((tmp_path / WEIGHTS_FILE).read_text())
    assert [r["epoch"] for r in log] == [0]
    per_class = log[0]["per_class"]
    assert per_class["0"]["n"] == 28 and per_class["1"]["n"] == 4
    mean = (28 * per_class["0"]["mean"] + 4 * per_class["1"]["mean"]) / 32
    assert mean == pytest.approx(1.0, rel=1e-5)  # mean 1 in each batch, so over the epoch


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.set_num_threads(1)
    try:
        model = Tiny()
        ddp = nn.parallel.DistributedDataParallel(model, broadcast_buffers=False)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        sam = SAM(SAMConfig(rho=0.1), model, opt)
        ctx = StepContext(torch.Generator().manual_seed(rank), 0.0)
        part = slice(2 * rank, 2 * rank + 2)
        sam.begin(ctx, torch.device("cpu"))
        out = ddp(IMAGES[part], LABELS[part], ctx)
        sam.backward(ddp, IMAGES[part], LABELS[part], ctx, out, NoScaler())
        torch.save(model.lin.weight.grad, f"{out_dir}/grad{rank}.pt")
    finally:
        dist.destroy_process_group()
    end_spawned_worker()


def test_ddp_perturbs_by_the_all_reduced_gradient(tmp_path):
    mp.spawn(_ddp_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    g0, g1 = torch.load(tmp_path / "grad0.pt"), torch.load(tmp_path / "grad1.pt")
    assert torch.equal(g0, g1)  # replicas get the same update
    # one process on the global batch, with each rank's views
    x = torch.cat(
        [Tiny().view(IMAGES[2 * r : 2 * r + 2], torch.Generator().manual_seed(r)) for r in (0, 1)]
    )
    w = torch.tensor([[0.5, -1.0, 2.0]])
    g = _grad(w, x)
    assert torch.allclose(g0, _grad(w + 0.1 * g / g.norm(), x), atol=1e-6)


def test_sam_arms_are_told_apart_by_label_and_supervised_takes_plain_sam_only():
    from ssl_robustness.config import SupervisedConfig, validate_config
    from ssl_robustness.errors import UserError

    assert SimSiamConfig(sam={"rho": 0.2, "weights": "kde"}).label == "simsiam-rwsam0.2_kde"
    assert SupervisedConfig(sam={}).label == "supervised-sam"
    assert SupervisedConfig(loss="cb", sam={"rho": 0.1}).label == "supervised-cb-sam0.1"
    # two arms that differ only in rho are both allowed (labels differ)
    validate_config(
        {"methods": [{"name": "simsiam", "sam": {}}, {"name": "simsiam", "sam": {"rho": 0.1}}]}
    )
    with pytest.raises(UserError, match="methods.0: sam.weights: 'kde' is for the self-supervised"):
        validate_config({"methods": [{"name": "supervised", "sam": {"weights": "kde"}}]})


def test_plan_counts_both_passes_of_a_sam_step(tmp_path):
    from conftest import tiny_study
    from ssl_robustness.config import validate_config
    from ssl_robustness.data.prepare import list_data
    from ssl_robustness.plan import plan_rows

    raw = tiny_study(tmp_path, methods=[{"name": "simsiam"}, {"name": "simsiam", "sam": {}}])
    raw["pretrain"]["epochs"] = 2
    raw["evaluation"] = {"finetune": {"enabled": False}}
    cfg = validate_config(raw)
    data = list_data(cfg.data, cfg.layout.data.path, cfg.evaluation)
    rows = {r.representation: r for r in plan_rows(cfg, data)}
    plain = [r for k, r in rows.items() if k.startswith("simsiam_balanced")]
    sam = [r for k, r in rows.items() if k.startswith("simsiam-sam_balanced")]
    size = len(data.draw(0).subsets["balanced"])
    assert plain[0].image_passes == 2 * 2 * size  # two views x two epochs
    assert sam[0].image_passes == 2 * plain[0].image_passes


def test_a_non_finite_perturbed_loss_stops_training_with_the_weights_at_w(tmp_path):
    """Finite at w, NaN at w + e: training stops there, the weights never take that step."""
    from ssl_robustness.engine.loop import TrainingDiverged

    labels = np.array([0] * 12 + [1] * 4)
    images = np.random.default_rng(0).integers(0, 255, (16, 8, 8, 3), dtype=np.uint8)
    method = _tiny_simsiam(labels)
    plain_forward, calls = method.forward, []

    def nan_at_w_plus_e(*args):
        calls.append(1)
        out = plain_forward(*args)
        if len(calls) % 2 == 0:  # every second pass is SAM's perturbed one
            return StepOutput(out.loss * float("nan"), out.embedding, losses=out.losses)
        return out

    method.forward = nan_at_w_plus_e
    before = [p.detach().clone() for p in method.parameters()]
    batches = ArrayBatches(images, labels, np.arange(16), 16, torch.device("cpu"))
    with pytest.raises(TrainingDiverged, match="SAM's perturbed pass"):
        fit(
            method, batches, TrainConfig(epochs=1, batch_size=16), tmp_path, seed=0, sam=SAMConfig()
        )
    assert len(calls) == 2
    assert all(torch.equal(a, b) for a, b in zip(before, method.parameters(), strict=True))
