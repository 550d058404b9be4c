"""Representations: the backbones a study compares, one per (scenario, method, subset, seed).

A representation is trained (SL or in-domain SSL), imported (an SSL-ImageNet checkpoint) or
left at random init. Its directory holds `backbone.pt` (torchvision key names, a plain
state dict), and `representation.json`, written last, which marks it done.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import cache_keys
from .atomic import load_torch_or_none, read_json_or_none, save_torch, write_json
from .config import (
    AugmentationConfig,
    BackboneConfig,
    DataConfig,
    ImportedConfig,
    MethodBase,
    StudyConfig,
    TrainConfig,
)
from .data.study_data import StudyData
from .engine.batches import ArrayBatches
from .engine.distributed import is_main, world_size
from .engine.loop import fit, seed_everything
from .layout import RepresentationLayout, RunLayout
from .methods import build_method, is_self_supervised
from .methods.reweight import example_weights
from .models.backbones import backbone_from_arch, build_backbone
from .models.hub import load_imported, published_settings
from .names import RANDOM_INIT, SL, SSL_IMAGENET, SSL_IN_DOMAIN


@dataclass(frozen=True)
class RepresentationSpec:
    """One representation of a study, with the typed settings that make it. Its key hashes a
    canonical JSON dump of them (`settings`), so the directory of a run made earlier stays
    its directory."""

    scenario: str  # SL, SSL-in-domain, SSL-ImageNet, random-init
    method: str  # the method's label, the imported name, or random-init
    subset: str | None
    seed: int
    data: DataConfig = field(hash=False, compare=False)
    # the study's view adjustments: every representation's fine-tuning views; a trained one's
    # pretraining views (and key) too
    augmentation: AugmentationConfig | None = field(default=None, hash=False, compare=False)
    # trained (SL, SSL-in-domain)
    method_config: MethodBase | None = field(default=None, hash=False, compare=False)
    train: TrainConfig | None = field(default=None, hash=False, compare=False)
    images: str | None = None  # items_key of the very images it trains on
    # trained and random init
    backbone: BackboneConfig | None = field(default=None, hash=False, compare=False)
    # imported (SSL-ImageNet): the checkpoint, and its file's size and mtime when expanded (a
    # `path:`; a published `weights:` name is keyed by its URL and checksum, unfetched)
    imported: ImportedConfig | None = field(default=None, hash=False, compare=False)
    imported_file: tuple[int, float] | None = None

    @property
    def sampler(self) -> str:
        """How its training batches are drawn: its method's `batch_sampler`."""
        return self.method_config.batch_sampler if self.method_config is not None else "instance"

    @property
    def input_size(self) -> int | None:
        """The representation's own input size where it is not the study's (imported)."""
        return self.imported.image_size if self.imported is not None else None

    @property
    def settings(self) -> dict[str, Any]:
        """The canonical JSON dump of what makes this representation (hashed into `key`)."""
        if self.imported is not None:
            weights = self.imported.weights
            return cache_keys.imported_settings(
                self.data,
                self.imported,
                self.imported.image_size,
                published=published_settings(weights) if weights is not None else None,
                file=self.imported_file,
            )
        if self.method_config is not None:
            assert self.train is not None
            return cache_keys.trained_settings(
                self.data,
                self.images,
                self.method_config,
                self.train,
                self.augmentation,
                self.backbone,
            )
        return cache_keys.random_init_settings(self.data, self.backbone)

    @property
    def key(self) -> str:
        return cache_keys.representation_key(
            self.scenario, self.method, self.subset, self.seed, self.settings
        )

    @property
    def name(self) -> str:
        return f"{self.method}_{self.subset or 'none'}_s{self.seed}"

    @property
    def dirname(self) -> str:
        return f"{self.name}-{self.key}"

    def layout(self, run: RunLayout) -> RepresentationLayout:
        return run.representation(self.dirname)


def expand_representations(cfg: StudyConfig, data: StudyData) -> list[RepresentationSpec]:
    """Every representation of the study, resolved: trained methods x subsets x seeds,
    imported checkpoints and random init x seeds, each carrying what makes it (its backbone,
    training, augmentation; its sampler follows from its method), so the functions below need
    no study config."""
    specs = []
    for seed in cfg.seeds:
        drawn = data.draw(seed)
        for m in cfg.methods:
            scenario = SSL_IN_DOMAIN if is_self_supervised(m) else SL
            train = train_config(cfg, m)
            for plan in drawn.plans:
                specs.append(
                    RepresentationSpec(
                        scenario,
                        m.label,
                        plan.name,
                        seed,
                        cfg.data,
                        augmentation=cfg.augmentation,
                        method_config=m,
                        train=train,
                        # keyed by the very images it trains on, not by how they were drawn
                        images=data.items_key(drawn.subsets[plan.name]),
                        backbone=cfg.backbone,
                    )
                )
        for imp in cfg.imported:
            st = imp.path.stat() if imp.path is not None else None
            specs.append(
                RepresentationSpec(
                    SSL_IMAGENET,
                    imp.name,
                    None,
                    seed,
                    cfg.data,
                    augmentation=cfg.augmentation,
                    imported=imp,
                    imported_file=(st.st_size, st.st_mtime) if st is not None else None,
                )
            )
        if cfg.random_init:
            specs.append(
                RepresentationSpec(
                    RANDOM_INIT,
                    RANDOM_INIT,
                    None,
                    seed,
                    cfg.data,
                    augmentation=cfg.augmentation,
                    backbone=cfg.backbone,
                )
            )
    return specs


def train_config(cfg: StudyConfig, method: MethodBase) -> TrainConfig:
    """The study's pretraining settings with the method's own epochs, batch size and lr."""
    train = cfg.pretrain.model_copy(deep=True)
    if method.epochs is not None:
        train.epochs = method.epochs
    if method.batch_size is not None:
        train.batch_size = method.batch_size
    if method.lr is not None:
        train.optimizer.lr = method.lr
    return train


def representation_status(spec: RepresentationSpec, out: Path) -> str:
    rep = spec.layout(RunLayout(out))
    if rep.done.exists():
        return "done"
    if rep.checkpoint.exists():
        return "partial"
    return "todo"


def obtain_representation(
    spec: RepresentationSpec, run: RunLayout, data: StudyData, device: torch.device
) -> tuple[nn.Module, dict[str, Any]]:
    """The spec's backbone: read back when done, else trained/imported/initialised now."""
    rep = spec.layout(run)
    info = read_json_or_none(rep.done)
    if info is not None:
        if spec.imported is not None:
            return load_imported(spec.imported)[0], info
        state = load_torch_or_none(rep.backbone, warn_missing=True)
        if state is not None:
            backbone = backbone_from_arch(info["arch"])
            backbone.load_state_dict(state)
            return backbone, info
        # a truncated or lost backbone.pt is rebuilt (from the training checkpoint if any)
    rep.path.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    info: dict[str, Any] = {
        "scenario": spec.scenario,
        "method": spec.method,
        "subset": spec.subset,
        "seed": spec.seed,
        "collapsed": False,
    }
    if spec.imported is not None:
        backbone, report = load_imported(spec.imported)
        info.update(format=report.format, arch=report.arch, path=report.path)
    else:
        seed_everything(spec.seed)
        assert spec.backbone is not None
        backbone = build_backbone(spec.backbone, spec.data.image_size)
        if spec.scenario != RANDOM_INIT:
            info.update(_train(spec, data, backbone, rep, device))
        if is_main():  # under DDP rank 0 writes; every replica holds the same weights
            save_torch(rep.backbone, backbone.state_dict())
        info["arch"] = backbone.arch  # type: ignore[attr-defined]
    info["seconds"] = time.perf_counter() - started
    # the cost table's first phase; evaluation/run.py adds features and each evaluation
    info["phases"] = {setup_phase(spec): round(info["seconds"], 3)}
    if is_main():
        write_json(rep.done, info)
    return backbone, info


def setup_phase(spec: RepresentationSpec) -> str:
    """What obtaining the representation cost: pretraining, an import, or a random init."""
    if spec.imported is not None:
        return "import"
    return "init" if spec.scenario == RANDOM_INIT else "pretraining"


def _train(
    spec: RepresentationSpec,
    data: StudyData,
    backbone: nn.Module,
    rep: RepresentationLayout,
    device: torch.device,
) -> dict[str, Any]:
    method_cfg, train = spec.method_config, spec.train
    assert method_cfg is not None and train is not None
    idx = data.draw(spec.seed).subsets[spec.subset]  # type: ignore[index]
    method = build_method(
        method_cfg,
        backbone,
        num_classes=data.num_classes,
        class_counts=data.class_counts(idx),
        train_size=len(idx),
        augmentation=spec.augmentation,
    )
    assert data.store is not None
    batches = ArrayBatches(
        data.store.images,
        data.labels,
        idx,
        train.batch_size // world_size(),  # the same global batch on any number of processes
        device,
        sampler=spec.sampler,
        num_classes=data.num_classes,
    )
    sam = {"sam": method_cfg.sam}  # SAM / rwSAM (engine/sam.py) and rwSAM's weights
    sam["example_weights"] = example_weights(method_cfg.sam, data.class_counts(idx))
    result = fit(method, batches, train, rep.train, seed=spec.seed, desc=spec.name, **sam)
    last = result.history[-1] if result.history else {}
    return {
        "collapsed": result.collapsed,
        "collapse_ratio": result.final_collapse_ratio,
        "final_loss": float(last.get("loss", float("nan"))),
        "epochs": train.epochs,
        "train_size": len(idx),
    }
