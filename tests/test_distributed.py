"""Two CPU processes (gloo): gathered losses equal the one-process loss, MoCo's keys are
shuffled across processes, and DDP training through the shared loop keeps both replicas
identical."""

import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from conftest import end_spawned_worker


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        from torchvision.models.resnet import BasicBlock

        from ssl_robustness.config import MocoV2Config, OptimizerConfig, SimCLRConfig, TrainConfig
        from ssl_robustness.engine.batches import ArrayBatches
        from ssl_robustness.engine.loop import fit
        from ssl_robustness.methods import build_method
        from ssl_robustness.methods.mocov2 import MocoV2
        from ssl_robustness.methods.simclr import nt_xent
        from ssl_robustness.models.backbones import ResNet

        g = torch.Generator().manual_seed(0)
        z1, z2 = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)
        part = slice(4 * rank, 4 * rank + 4)
        local = nt_xent(z1[part], z2[part], 0.5)
        losses = [torch.zeros(()) for _ in range(world)]
        dist.all_gather(losses, local.detach())

        torch.manual_seed(0)
        moco = MocoV2(
            ResNet(BasicBlock, [1, 1, 1, 1], 4, True),
            MocoV2Config(proj_dim=5, queue_size=8),
            train_size=100,
        )
        moco.enqueue(F.normalize(torch.full((2, 5), float(rank + 1)), dim=1))
        shuffle = _moco_shuffle(moco, rank)

        torch.manual_seed(0)
        images = np.random.default_rng(0).integers(0, 255, (64, 8, 8, 3), dtype=np.uint8)
        labels = np.arange(64) % 4
        method = build_method(
            SimCLRConfig(proj_dim=8),
            ResNet(BasicBlock, [1, 1, 1, 1], 4, True),
            num_classes=4,
            class_counts=np.bincount(labels),
            train_size=64,
        )
        batches = ArrayBatches(images, labels, np.arange(64), 16, torch.device("cpu"))
        train = TrainConfig(epochs=2, batch_size=16, optimizer=OptimizerConfig(lr=0.1))
        step_losses, plain_forward = [], method.forward

        def recording(*args):
            out = plain_forward(*args)
            step_losses.append(float(out.loss))
            return out

        method.forward = recording
        result = fit(method, batches, train, Path(out_dir) / f"r{rank}", seed=0)
        weights = torch.cat([p.detach().flatten() for p in method.parameters()])
        torch.save(
            {
                "losses": torch.stack(losses),
                "queue": moco.queue[:, :4].t(),
                "weights": weights,
                "steps": len(batches),
                "epoch_loss": torch.tensor([row["loss"] for row in result.history]),
                "step_losses": torch.tensor(step_losses, dtype=torch.float64),
                **shuffle,
            },
            f"{out_dir}/rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()
    end_spawned_worker()


def _moco_shuffle(moco, rank: int) -> dict:
    """Keys of a batch whose samples carry their rank and index in one pixel: which samples
    each rank's key encoder saw, and whether the keys came back in their queries' order."""
    x = torch.randn(8, 3, 8, 8, generator=torch.Generator().manual_seed(10 + rank))
    x[:, 0, 0, 0] = 100.0 * rank + torch.arange(8)
    seen = []
    moco.backbone_k.register_forward_pre_hook(lambda m, a: seen.append(a[0][:, 0, 0, 0].clone()))
    # as the loop does on GPUs; synchronised statistics would undo the shuffle (and raise on CPU)
    torch.nn.SyncBatchNorm.convert_sync_batchnorm(moco)
    moco.eval()  # running statistics (equal on both ranks): a key is its sample's own encoding
    keys = moco._key(x, torch.Generator().manual_seed(5))
    with torch.no_grad():
        plain = F.normalize(moco.projector_k(moco.backbone_k(x)), dim=1)
    moco.train()
    trained = moco._key(x, torch.Generator().manual_seed(5))
    return {
        "seen": seen[0],
        "aligned": torch.tensor(torch.allclose(keys, plain, atol=1e-6)),
        "trained_finite": torch.isfinite(trained).all(),
    }


def test_two_process_gather_and_ddp_training(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    from ssl_robustness.methods.simclr import nt_xent

    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)
    assert r0["losses"].mean().item() == pytest.approx(nt_xent(z1, z2, 0.5).item(), rel=1e-5)
    expected = F.normalize(torch.tensor([[1.0] * 5] * 2 + [[2.0] * 5] * 2), dim=1)
    assert torch.allclose(r0["queue"], expected) and torch.allclose(r1["queue"], expected)
    assert r0["steps"] == 2  # 64 images, 2 processes, batch 16: each takes its own 32
    assert torch.equal(r0["weights"], r1["weights"])
    # the epoch's logged loss is over both processes' batches, the same on both
    # the epoch's logged loss (rank 0 logs) is over both processes' batches, not rank 0's
    per_rank_epoch = torch.stack([r["step_losses"].view(2, 2).mean(1) for r in (r0, r1)])
    assert torch.allclose(r0["epoch_loss"].double(), per_rank_epoch.mean(0), atol=1e-6)
    assert not torch.allclose(per_rank_epoch[0], per_rank_epoch[1], atol=1e-3)
    # shuffle-BN: each rank encodes keys of samples from both ranks, every sample once
    for r in (r0, r1):
        assert len(r["seen"]) == 8 and (r["seen"] < 100).any() and (r["seen"] >= 100).any()
        assert r["aligned"] and r["trained_finite"]
    everyone = sorted(torch.cat([r0["seen"], r1["seen"]]).tolist())
    assert everyone == [float(v) for v in [*range(8), *range(100, 108)]]
