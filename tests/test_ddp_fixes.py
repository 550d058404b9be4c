"""DDP on two CPU processes (gloo): each process draws its own augmentations (rank 0 those of a
one-process run), a resumed process gets its own augmentation stream back, a NaN loss on one
process makes every process raise at the same step; the process group's collective timeout."""

from __future__ import annotations

import os
import socket
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from conftest import end_spawned_worker
from ssl_robustness.config import OptimizerConfig, TrainConfig
from ssl_robustness.engine.batches import ArrayBatches
from ssl_robustness.engine.loop import AUGMENT_PER_PROCESS, augmentation_seed, fit
from ssl_robustness.engine.step import Method, StepContext, StepOutput

STEPS = 4  # per epoch and process: 32 images, 2 processes, 4 a batch


class _Probe(Method):
    """A linear model whose only randomness is one augmentation draw per image, recorded."""

    name = "probe"

    def __init__(self, nan_on_rank: int | None = None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.backbone = nn.Linear(12, 1)
        self.draws: list[torch.Tensor] = []
        self.nan_on_rank = nan_on_rank

    def forward(self, images: torch.Tensor, labels: torch.Tensor, ctx: StepContext) -> StepOutput:
        noise = torch.rand(len(images), generator=ctx.generator)  # as a crop or flip draws
        self.draws.append(noise)
        x = images.flatten(1).float() / 255
        loss = ((self.backbone(x).squeeze(1) - noise) ** 2).mean()
        me = dist.get_rank() if dist.is_initialized() else 0
        if me == self.nan_on_rank and len(self.draws) == 2:
            loss = loss * float("nan")
        return StepOutput(loss)


class _Stop(Exception):
    pass


def _batches() -> ArrayBatches:
    images = np.random.default_rng(0).integers(0, 255, (32, 2, 2, 3), dtype=np.uint8)
    return ArrayBatches(images, np.arange(32) % 4, np.arange(32), 4, torch.device("cpu"))


def _train(epochs: int = 2) -> TrainConfig:
    return TrainConfig(
        epochs=epochs, batch_size=4, checkpoint_every=1, optimizer=OptimizerConfig(lr=0.1)
    )


def _weights(m: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in m.parameters()])


def _stop_at(epoch: int):  # noqa: ANN202
    def callback(e: int, _: Method) -> dict[str, float]:
        if e == epoch:
            raise _Stop
        return {}

    return callback


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    # short: the old code left rank 0 in DDP's all-reduce after rank 1's NaN until this ends
    dist.init_process_group("gloo", rank=rank, world_size=2, timeout=timedelta(seconds=20))
    torch.set_num_threads(1)
    out = Path(out_dir)
    try:
        full = _Probe()
        fit(full, _batches(), _train(), out / "full", seed=0)
        with pytest.raises(_Stop):  # killed in epoch 2, after epoch 1's checkpoint
            fit(_Probe(), _batches(), _train(), out / "resumed", seed=0, on_epoch_end=_stop_at(1))
        resumed = _Probe()
        fit(resumed, _batches(), _train(), out / "resumed", seed=0)
        error = ""
        try:
            fit(_Probe(nan_on_rank=1), _batches(), _train(), out / "nan", seed=0)
        except Exception as exc:  # noqa: BLE001 - recorded for the test to judge
            error = f"{type(exc).__name__}: {exc}"
        torch.save(
            {
                "draws": torch.stack(full.draws),
                "resumed_draws": torch.stack(resumed.draws),
                "weights": _weights(full),
                "resumed_weights": _weights(resumed),
                "error": error,
            },
            out / f"rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()
    end_spawned_worker()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> tuple[dict, dict, Path]:
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(_free_port(), str(out)), nprocs=2, join=True)
    r0, r1 = (torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    return r0, r1, out


def test_each_process_draws_its_own_augmentations(two_ranks):
    r0, r1, _ = two_ranks
    assert r0["draws"].shape == r1["draws"].shape == (2 * STEPS, 4)
    for mine, theirs in zip(r0["draws"], r1["draws"], strict=True):
        assert not torch.equal(mine, theirs)  # the old code: rank 1 drew rank 0's numbers
    # rank 0 draws exactly what one process seeded with the run's seed draws
    expected = torch.rand(2 * STEPS * 4, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(r0["draws"].flatten(), expected, rtol=0, atol=0)


def test_a_resumed_process_gets_its_own_augmentations_back(two_ranks):
    r0, r1, out = two_ranks
    saved = torch.load(out / "resumed" / "checkpoint.pt", weights_only=True)
    assert len(saved[AUGMENT_PER_PROCESS]) == 2
    for r in (r0, r1):  # epoch 2 after the resume is epoch 2 of the uninterrupted run
        torch.testing.assert_close(r["resumed_draws"], r["draws"][STEPS:], rtol=0, atol=0)
        torch.testing.assert_close(r["resumed_weights"], r["weights"], rtol=0, atol=0)


def test_a_nan_loss_on_one_process_raises_on_every_process(two_ranks):
    r0, r1, _ = two_ranks
    assert r1["error"] == (
        "TrainingDiverged: train (probe): loss is nan at epoch 1, step 1; lower the learning rate"
    )
    assert r0["error"] == (
        "TrainingDiverged: train (probe): another process's loss is not finite or exploded at "
        "epoch 1, step 1; lower the learning rate"
    )


def test_one_process_keeps_its_seed_and_checkpoint(tmp_path):
    probe = _Probe()
    fit(probe, _batches(), _train(epochs=1), tmp_path, seed=3)
    n = len(probe.draws) * 4
    expected = torch.rand(n, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(torch.cat(probe.draws), expected, rtol=0, atol=0)
    assert AUGMENT_PER_PROCESS not in torch.load(tmp_path / "checkpoint.pt", weights_only=True)


def test_augmentation_seeds_differ_per_process_and_epoch():
    assert augmentation_seed(7, 0) == 7
    seeds = {augmentation_seed(7, r, e) for r in range(4) for e in range(3)}
    assert len(seeds) == 12 and all(0 <= s < 2**63 for s in seeds)


def test_the_process_group_waits_long_for_a_lock(monkeypatch):
    """Rank 0 may wait hours in flock for another worker's lock while the others sit in a
    barrier: the group's timeout is 24 h unless SSL_ROBUSTNESS_DIST_TIMEOUT_S says otherwise."""
    from ssl_robustness.engine import distributed
    from ssl_robustness.errors import UserError

    seen: dict = {}
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend, **kw: seen.update(kw))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("SSL_ROBUSTNESS_DIST_TIMEOUT_S", raising=False)
    assert distributed.init_from_env()
    assert seen["timeout"] == timedelta(hours=24)
    monkeypatch.setenv("SSL_ROBUSTNESS_DIST_TIMEOUT_S", "90")
    distributed.init_from_env()
    assert seen["timeout"] == timedelta(seconds=90)
    for bad in ("soon", "0", "inf"):
        monkeypatch.setenv("SSL_ROBUSTNESS_DIST_TIMEOUT_S", bad)
        with pytest.raises(UserError, match=f"SSL_ROBUSTNESS_DIST_TIMEOUT_S='{bad}': expected"):
            distributed.init_from_env()
