"""Batches reach the model in sampler order, so no batch statistic follows the labels: sources
list images class by class, and a batch sorted by item index would hand MoCo's shuffle-BN
sub-batches (and every BN layer) mostly one class each."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ssl_robustness.engine.batches import ArrayBatches, rows_in_order
from ssl_robustness.methods.shuffle_bn import split_sizes
from ssl_robustness.report.tsne import subsample

CLASSES, PER_CLASS = 10, 200


def _class_by_class() -> tuple[np.ndarray, np.ndarray]:
    """Labels stored class by class; each image's pixels hold its own index."""
    labels = np.repeat(np.arange(CLASSES), PER_CLASS).astype(np.int64)
    index = np.arange(len(labels))
    images = np.zeros((len(labels), 2, 2, 3), dtype=np.uint8)
    images[:, 0, 0, 0], images[:, 0, 0, 1] = index % 256, index // 256
    return images, labels


def _majority_shares(batches: ArrayBatches, splits: int) -> list[float]:
    shares = []
    for _, labels in batches.epoch(np.random.default_rng(0)):
        for part in torch.split(labels, split_sizes(len(labels), splits)):
            shares.append(torch.bincount(part).max().item() / len(part))
    return shares


@pytest.mark.parametrize("sampler", ["instance", "class_balanced", "sqrt"])
def test_shuffle_bn_sub_batches_are_not_grouped_by_class(sampler):
    images, labels = _class_by_class()
    batches = ArrayBatches(
        images, labels, np.arange(len(labels)), 128, torch.device("cpu"), sampler=sampler
    )
    shares = _majority_shares(batches, splits=8)  # MoCo v2's 8 sub-batches of 16
    # random order: about 0.24 for 16 draws from 10 equal classes; sorted by index: about 0.7
    assert np.mean(shares) < 0.4


def test_a_batch_keeps_images_and_labels_together_in_the_drawn_order():
    images, labels = _class_by_class()
    idx = np.arange(0, len(labels), 3)
    batches = ArrayBatches(images, labels, idx, 64, torch.device("cpu"))
    seen = []
    rng = np.random.default_rng(5)
    for x, y in batches.epoch(rng):
        index = x[:, 0, 0, 0].long() + 256 * x[:, 0, 0, 1].long()
        assert torch.equal(torch.from_numpy(labels)[index], y)
        seen.append(index.numpy())
    order = np.concatenate(seen)
    assert not np.all(np.diff(order) > 0)  # not sorted
    assert len(set(order.tolist())) == len(order) == (len(idx) // 64) * 64


def test_rows_in_order_reads_ascending_and_returns_the_drawn_order():

    base = np.arange(20) * 10
    picked = np.array([13, 2, 19, 2, 7])
    assert rows_in_order(base, picked).tolist() == [130, 20, 190, 20, 70]


def test_tsne_points_are_drawn_in_a_shuffled_order():
    """Points plotted class after class would paint the last classes over the first."""
    idx = subsample(100, 100, seed=0)
    assert sorted(idx.tolist()) == list(range(100)) and idx.tolist() != list(range(100))
    assert len(set(subsample(100, 30, seed=0).tolist())) == 30
