"""The one training loop: every method, fine-tuning and the SGD probe train through `fit`.

Shaped like torchvision's reference scripts: `fit` is the outer loop (resume, epochs,
checkpoints), `train_one_epoch` the steps of one epoch, `TrainState` what a checkpoint holds.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..config import SAMConfig, TrainConfig
from ..faults import reached
from ..layout import CHECKPOINT_FILE
from .batches import ArrayBatches
from .checkpoint import capture_rng, load_checkpoint, restore_rng, save_checkpoint
from .device import autocast, make_scaler, prepare_model
from .distributed import (
    all_finite,
    gather,
    gather_objects,
    is_distributed,
    rank,
    sync_batchnorm,
    world_size,
)
from .logger import MetricsLogger, report_epoch
from .optim import build_optimizer, warmup_cosine
from .sam import SAM, ExampleWeights
from .step import COLLAPSE_RATIO, Method, StepContext, collapse_ratio, collapse_std

EpochCallback = Callable[[int, Method], dict[str, float]]
AUGMENT_PER_PROCESS = "augment_per_process"  # checkpoint key: each DDP process's generator


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite, or exploded past `MAX_LOSS`."""


# Above this a loss is not training but diverging: no loss of this tool's methods reaches it
# while it learns (cross-entropy that size means logits 1e4 apart; NT-Xent and InfoNCE are at
# most 2 / tau + log(negatives), so a contrastive temperature under 2e-4, e.g. a schedule's tiny
# tau_min, whose losses of 1e11-1e16 were once logged as ordinary epochs).
MAX_LOSS = 1e4


@dataclass
class FitResult:
    history: list[dict[str, Any]]
    collapsed: bool
    final_collapse_ratio: float | None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def augmentation_seed(seed: int, process: int, epoch: int = 0) -> int:
    """The seed of a process's augmentation generator: `seed` itself for rank 0 at the start
    (a one-process run draws what it always drew), one derived from (seed, process, epoch)
    otherwise, so the processes of a DDP run draw different crops, flips and jitter."""
    if process == 0 and epoch == 0:
        return seed
    state = np.random.SeedSequence([seed, 2, process, epoch]).generate_state(2, np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1  # below 2**63: manual_seed takes it


@dataclass
class TrainState:
    """Everything a checkpoint holds: the model and what drives its updates and randomness."""

    model: Method
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: Any  # torch.amp.GradScaler (a no-op one on CPU)
    sample_rng: np.random.Generator  # batch order
    aug_gen: torch.Generator  # augmentations, one stream per process
    sam: SAM | None = None  # two passes per step (engine/sam.py); its memory is not saved
    seed: int = 0  # reseeds another process's augmentations when the checkpoint lacks them

    def save(self, path: Path, epoch: int) -> None:
        """Write the state after `epoch` atomically (temp file + rename). Every process calls
        it (under DDP it gathers each process's augmentation generator); rank 0 writes."""
        per_process = gather_objects(self.aug_gen.get_state()) if is_distributed() else None
        if rank() != 0:
            return
        extra = {AUGMENT_PER_PROCESS: per_process} if per_process is not None else {}
        save_checkpoint(
            path,
            model=self.model.state_dict(),
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            scaler=self.scaler.state_dict(),
            rng=capture_rng(self.sample_rng, self.aug_gen),
            epoch=epoch,
            **extra,
        )

    def resume(self, path: Path) -> int:
        """Load the state saved at `path` if there is one; the first epoch still to run."""
        if not path.exists():
            return 0
        state = load_checkpoint(path)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        restore_rng(state["rng"], self.sample_rng, self.aug_gen)  # rank 0's generators
        start = int(state["epoch"]) + 1
        self._own_augmentations(state.get(AUGMENT_PER_PROCESS), start)
        return start

    def _own_augmentations(self, saved: list[torch.Tensor] | None, start: int) -> None:
        """Give this process back its own augmentation stream: the saved one when the
        checkpoint holds one per process of this group, else one reseeded from
        (seed, rank, epoch) (a checkpoint of another process count or an older one)."""
        if rank() == 0:
            return
        if saved is not None and len(saved) == world_size():
            self.aug_gen.set_state(saved[rank()])
        else:
            self.aug_gen.manual_seed(augmentation_seed(self.seed, rank(), start))


def fit(
    method: Method,
    batches: ArrayBatches,
    cfg: TrainConfig,
    run_dir: Path,
    *,
    seed: int,
    lr: float | None = None,
    on_epoch_end: EpochCallback | None = None,
    desc: str = "train",
    sam: SAMConfig | None = None,
    example_weights: ExampleWeights | None = None,
) -> FitResult:
    """Train `method` for `cfg.epochs` epochs, resuming from `run_dir/checkpoint.pt` if present;
    with `sam`, by SAM (rwSAM with `example_weights`, see engine/sam.py).

    Checkpoints (model, optimizer, scheduler, scaler, RNG states, epoch) are written every
    `cfg.checkpoint_every` epochs and at the end, atomically.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    device = batches.device
    model = prepare_model(method, device)
    optimizer = build_optimizer(model.param_groups(), cfg.optimizer, lr or cfg.optimizer.lr)
    steps_per_epoch = len(batches)
    if steps_per_epoch == 0:
        raise ValueError("no full batch: the training set is smaller than one batch")
    total = cfg.epochs * steps_per_epoch
    scheduler = warmup_cosine(optimizer, round(cfg.warmup_epochs * steps_per_epoch), total)
    state = TrainState(
        model,
        optimizer,
        scheduler,
        make_scaler(device),
        np.random.default_rng([seed, 1]),
        torch.Generator().manual_seed(augmentation_seed(seed, rank())),
        seed=seed,
    )
    ckpt_path = run_dir / CHECKPOINT_FILE
    start_epoch = state.resume(ckpt_path)
    step_model: nn.Module = model
    if is_distributed():
        sync_batchnorm(model, device)  # batch statistics over the global batch
        step_model = nn.parallel.DistributedDataParallel(model, broadcast_buffers=False)
    if sam is not None:
        state.sam = SAM(sam, model, optimizer, example_weights, run_dir)
    logger = MetricsLogger(run_dir, start_epoch) if rank() == 0 else None
    ratio: float | None = None
    for epoch in range(start_epoch, cfg.epochs):
        model.begin_epoch(epoch)
        row = train_one_epoch(state, step_model, batches, cfg, epoch, logger, desc)
        ratio = row.get("collapse_ratio", ratio)
        if state.sam is not None:
            state.sam.end_epoch(epoch, write=rank() == 0)  # the weights per class
        if on_epoch_end is not None:
            row.update(on_epoch_end(epoch, model))
        if logger is not None:
            logger.epoch(row)
            # a line per epoch, even in a log; images of every process (the global batch)
            images = steps_per_epoch * batches.batch_size * world_size()
            report_epoch(desc, epoch, cfg.epochs, row, images, (cfg.epochs - epoch - 1) * images)
        last = epoch == cfg.epochs - 1
        if (epoch + 1) % cfg.checkpoint_every == 0 or last:
            state.save(ckpt_path, epoch)  # every process (its generator); rank 0 writes
    history = logger.epochs if logger is not None else []
    if logger is not None:
        logger.close()
    if ratio is None and history and "collapse_ratio" in history[-1]:
        ratio = float(history[-1]["collapse_ratio"])
    collapsed = ratio is not None and not (ratio >= COLLAPSE_RATIO and math.isfinite(ratio))
    return FitResult(history, collapsed, ratio)


def _sane(loss: torch.Tensor) -> torch.Tensor:
    """The loss, or inf where it exploded past MAX_LOSS: one value for `all_finite` to agree on
    across processes, so every process stops at the same step."""
    return torch.where(loss.abs() > MAX_LOSS, torch.full_like(loss, math.inf), loss)


def _diverged(loss: torch.Tensor, epoch: int, i: int, name: str, desc: str) -> str:
    """Which method diverged where, with its loss value and the likely cause."""
    value = loss.item()
    at = f"at epoch {epoch + 1}, step {i}"
    who = f"{desc} ({name})" if desc != name else name
    if not math.isfinite(value):
        return f"{who}: loss is {value} {at}; lower the learning rate"
    if abs(value) > MAX_LOSS:
        return (
            f"{who}: loss {value:.4g} {at} exploded past {MAX_LOSS:g}: lower the learning rate, "
            "or raise a contrastive temperature (a temperature_schedule's tau_min) near 0"
        )
    return f"{who}: another process's loss is not finite or exploded {at}; lower the learning rate"


def train_one_epoch(
    state: TrainState,
    step_model: nn.Module,
    batches: ArrayBatches,
    cfg: TrainConfig,
    epoch: int,
    logger: MetricsLogger | None,
    desc: str,
) -> dict[str, Any]:
    """One pass over `batches`: a step per batch, logged every `cfg.log_every` steps; the
    epoch's row (mean loss, lr, throughput, collapse statistic of SSL methods)."""
    model, optimizer, device = state.model, state.optimizer, batches.device
    steps_per_epoch = len(batches)
    total = cfg.epochs * steps_per_epoch
    model.train()
    losses, stds, seen, t0 = [], [], 0, time.perf_counter()
    bar = tqdm(
        batches.epoch_positions(state.sample_rng),
        total=steps_per_epoch,
        leave=False,
        desc=f"{desc} {epoch + 1}/{cfg.epochs}",
        disable=None,
    )
    for i, (images, labels, positions) in enumerate(bar):
        reached("train-step")  # failpoint: tests kill training here (faults.py)
        step = epoch * steps_per_epoch + i
        ctx = StepContext(state.aug_gen, step / total, positions, epoch, cfg.epochs)
        if state.sam is not None:
            state.sam.begin(ctx, device)
        with autocast(device):
            out: Any = step_model(images, labels, ctx)
        if not all_finite(_sane(out.loss.detach())):  # every process at once: all raise together
            raise TrainingDiverged(_diverged(out.loss, epoch, i, model.name, desc))
        optimizer.zero_grad(set_to_none=True)
        if state.sam is not None:  # the gradient at w + e (a second pass)
            at_w_e = state.sam.backward(step_model, images, labels, ctx, out, state.scaler)
            if at_w_e is not None and not all_finite(_sane(at_w_e)):  # the weights are back at w
                raise TrainingDiverged(
                    _diverged(at_w_e, epoch, i, model.name, desc) + " (SAM's perturbed pass)"
                )
        else:
            state.scaler.scale(out.loss).backward()
        if cfg.grad_clip is not None:
            state.scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        state.scaler.step(optimizer)
        state.scaler.update()
        state.scheduler.step()
        model.after_step((step + 1) / total)
        loss = float(out.loss.detach())
        losses.append(loss)
        seen += len(images)
        if out.embedding is not None:
            stds.append(collapse_std(out.embedding))
        ips = seen / max(time.perf_counter() - t0, 1e-9)
        lr_now = optimizer.param_groups[0]["lr"]
        bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr_now:.3g}", img_s=f"{ips:.0f}")
        if logger is not None and (step % cfg.log_every == 0 or i == steps_per_epoch - 1):
            logger.step(
                {
                    "step": step,
                    "epoch": epoch,
                    "loss": loss,
                    "lr": lr_now,
                    "images_per_s": ips,
                    **{k: float(v) for k, v in out.logs.items()},
                }
            )
    # under DDP, the epoch's loss over every process's batches and the images of all of them
    mean_loss, images = float(np.mean(losses)), float(seen)
    if is_distributed():
        per_process = gather(
            torch.tensor([[mean_loss, images]], dtype=torch.float64, device=device)
        )
        mean_loss, images = float(per_process[:, 0].mean()), float(per_process[:, 1].sum())
    row: dict[str, Any] = {
        "epoch": epoch,
        "loss": mean_loss,
        "lr": optimizer.param_groups[0]["lr"],
        "images_per_s": images / max(time.perf_counter() - t0, 1e-9),
    }
    if stds:
        std = float(np.mean(stds))
        row.update(collapse_std=std, collapse_ratio=collapse_ratio(std, out.embedding.shape[1]))
    return row
