"""The pixels of a study's items, apart from its labels and index sets (`StudyData`): row i is
item i, decoded once at the study's size and at any other input size a representation asks
for (an imported backbone's own), each into an image cache of its own."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...config import DataConfig
from ..listing.labelled import LabelledSet
from .cache_records import image_cache_file
from .images import build_image_cache


@dataclass
class ImageStore:
    images: np.ndarray  # (N, S, S, 3) uint8 at the study's size, memory-mapped
    source: LabelledSet | None  # what other sizes decode from; None: the study's size only
    cfg: DataConfig
    directory: Path
    _sized: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def size(self) -> int:
        return int(self.images.shape[1])

    def at(self, size: int | None = None) -> np.ndarray:
        """The images at `size` px (None: the study's), decoded into their cache on first use;
        `prepare` decodes them before a study's first representation instead."""
        if size is None or size == self.size or self.source is None:
            return self.images
        if size not in self._sized:
            self._sized[size], _ = build_image_cache(
                self.source,
                np.arange(len(self.source)),
                size,
                image_cache_file(self.cfg, self.directory, self.source, size),
                skip_bad=self.cfg.skip_bad_images,
                workers=self.cfg.decode_workers,
                content_fingerprint=self.cfg.fingerprint == "content",
            )
        return self._sized[size]

    def prepare(self, sizes: Iterable[int]) -> None:
        """Decode every size a study's representations will read (before any trains), so no
        evaluation stops midway to decode."""
        for size in sorted(set(sizes)):
            self.at(size)
