"""Batches of cached uint8 images, straight from the memory-mapped array to the device."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from ..data.samplers import epoch_order
from .distributed import rank, world_size


def rows_in_order(array: np.ndarray, picked: np.ndarray) -> np.ndarray:
    """`array[picked]` in the order drawn. Memory-mapped rows are read in ascending order (one
    forward pass over the file), then put back: a batch sorted by item index would follow the
    labels (sources list images class by class), and batch statistics (MoCo's shuffle-BN
    sub-batches, BN itself) would carry them into a label-free method.

    >>> rows_in_order(np.arange(10) * 10, np.array([7, 2, 9, 2]))
    array([70, 20, 90, 20])
    """
    ascending = np.argsort(picked, kind="stable")
    rows = array[picked[ascending]]
    back = np.empty_like(ascending)
    back[ascending] = np.arange(len(ascending))
    return np.ascontiguousarray(rows[back])


def full_batches(size: int, batch: int) -> int:
    """Images an epoch trains on: full batches only (the batches below drop the rest), a batch
    larger than the set being one step of all of it."""
    batch = min(batch, size)
    return size // batch * batch if batch > 0 else 0


class ArrayBatches:
    """An epoch iterator over `indices` of a (N, H, W, 3) uint8 array in sampler order.

    No worker processes: images are already decoded, augmentation runs batched on the
    device. Under DDP each process takes its own stride of the epoch order.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        indices: np.ndarray,
        batch_size: int,
        device: torch.device,
        *,
        sampler: str = "instance",
        drop_last: bool = True,
        num_classes: int | None = None,
    ) -> None:
        self.images, self.labels = images, np.asarray(labels)
        self.indices = np.asarray(indices)
        self.device, self.sampler, self.num_classes = device, sampler, num_classes
        per_process = len(self.indices) // world_size()
        self.batch_size = min(batch_size, per_process)
        self.drop_last = drop_last

    def __len__(self) -> int:
        per_process = len(self.indices) // world_size()
        full, rest = divmod(per_process, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def epoch(self, rng: np.random.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for images, labels, _ in self.epoch_positions(rng):
            yield images, labels

    def epoch_positions(
        self, rng: np.random.Generator
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """`epoch`'s batches with each image's position in `indices` (the same draws)."""
        order = epoch_order(self.labels[self.indices], self.sampler, rng, self.num_classes)
        order = order[rank() :: world_size()]
        pin = self.device.type == "cuda"
        for b in range(len(self)):
            positions = order[b * self.batch_size : (b + 1) * self.batch_size]
            picked = self.indices[positions]
            images = torch.from_numpy(rows_in_order(self.images, picked))
            labels = torch.from_numpy(self.labels[picked])
            if pin:
                images, labels = images.pin_memory(), labels.pin_memory()
            yield (
                images.to(self.device, non_blocking=True),
                labels.to(self.device, non_blocking=True),
                torch.from_numpy(np.asarray(positions, dtype=np.int64)).to(self.device),
            )
