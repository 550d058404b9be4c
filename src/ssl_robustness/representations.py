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

import numpy as np
import torch
from torch import nn

from .atomic import load_torch_or_none, read_json_or_none, save_torch, write_json
from .config import ImportedConfig, StudyConfig, TrainConfig, config_hash
from .data.prepare import StudyData, data_key
from .engine.batches import ArrayBatches
from .engine.loop import fit, seed_everything
from .methods import build_method, is_self_supervised
from .models.backbones import backbone_from_arch, build_backbone
from .models.checkpoints import load_backbone

DONE_FILE = "representation.json"
SCENARIOS = ("SL", "SSL-in-domain", "SSL-ImageNet", "random-init")


@dataclass(frozen=True)
class RepresentationSpec:
    scenario: str
    method: str
    subset: str | None
    seed: int
    settings: dict[str, Any] = field(hash=False, compare=False)

    @property
    def key(self) -> str:
        return config_hash(
            {
                "scenario": self.scenario,
                "method": self.method,
                "subset": self.subset,
                "seed": self.seed,
                **self.settings,
            }
        )

    @property
    def name(self) -> str:
        return f"{self.method}_{self.subset or 'none'}_s{self.seed}"

    def directory(self, out: Path) -> Path:
        return out / "representations" / f"{self.name}-{self.key}"


def expand_representations(cfg: StudyConfig, data: StudyData) -> list[RepresentationSpec]:
    """Every representation of the study: trained methods x subsets x seeds, imported
    checkpoints and random init x seeds."""
    base = {
        "data": data_key(cfg.data),
        "split": cfg.data.split.model_dump(mode="json"),
        "imbalance": cfg.data.imbalance.model_dump(mode="json"),
        "image_size": cfg.data.image_size,
    }
    specs = []
    for seed in cfg.seeds:
        drawn = data.draw(seed)
        for m in cfg.methods:
            scenario = "SSL-in-domain" if is_self_supervised(m) else "SL"
            train = _train_config(cfg, m).model_dump(mode="json")
            for plan in drawn.plans:
                specs.append(
                    RepresentationSpec(
                        scenario,
                        m.label,
                        plan.name,
                        seed,
                        {
                            **base,
                            # keyed by the very images it trains on, not by how they were drawn
                            "images": items_key(data, drawn.subsets[plan.name]),
                            "method": m.model_dump(mode="json"),
                            "train": train,
                            "augmentation": cfg.augmentation.model_dump(mode="json"),
                            "backbone": cfg.backbone.model_dump(mode="json"),
                        },
                    )
                )
        for imp in cfg.imported:
            st = imp.path.stat()
            specs.append(
                RepresentationSpec(
                    "SSL-ImageNet",
                    imp.name,
                    None,
                    seed,
                    {
                        **base,
                        "input_size": imp.image_size,
                        "imported": imp.model_dump(mode="json"),
                        "size": st.st_size,
                        "mtime": st.st_mtime,
                    },
                )
            )
        if cfg.random_init:
            specs.append(
                RepresentationSpec(
                    "random-init",
                    "random-init",
                    None,
                    seed,
                    {**base, "backbone": cfg.backbone.model_dump(mode="json")},
                )
            )
    return specs


def items_key(data: StudyData, idx: np.ndarray) -> str:
    """A hash of the items (and labels) an index set holds."""
    return config_hash({"items": [data.items[i] for i in idx], "labels": data.labels[idx].tolist()})


def _train_config(cfg: StudyConfig, method: Any) -> TrainConfig:
    train = cfg.pretrain.model_copy(deep=True)
    if method.epochs is not None:
        train.epochs = method.epochs
    if method.batch_size is not None:
        train.batch_size = method.batch_size
    if method.lr is not None:
        train.optimizer.lr = method.lr
    return train


def representation_status(spec: RepresentationSpec, out: Path) -> str:
    d = spec.directory(out)
    if (d / DONE_FILE).exists():
        return "done"
    if (d / "train" / "checkpoint.pt").exists():
        return "partial"
    return "todo"


def obtain_representation(
    spec: RepresentationSpec, cfg: StudyConfig, data: StudyData, device: torch.device
) -> tuple[nn.Module, dict[str, Any]]:
    """The spec's backbone: read back when done, else trained/imported/initialised now."""
    d = spec.directory(cfg.out)
    info = read_json_or_none(d / DONE_FILE)
    if info is not None:
        if spec.scenario == "SSL-ImageNet":
            imp = ImportedConfig.model_validate(spec.settings["imported"])
            return load_backbone(imp.path, imp.format, imp.arch)[0], info
        state = load_torch_or_none(d / "backbone.pt", warn_missing=True)
        if state is not None:
            backbone = backbone_from_arch(info["arch"])
            backbone.load_state_dict(state)
            return backbone, info
        # a truncated or lost backbone.pt is rebuilt (from the training checkpoint if any)
    d.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    info: dict[str, Any] = {
        "scenario": spec.scenario,
        "method": spec.method,
        "subset": spec.subset,
        "seed": spec.seed,
        "collapsed": False,
    }
    if spec.scenario == "SSL-ImageNet":
        imp = ImportedConfig.model_validate(spec.settings["imported"])
        backbone, report = load_backbone(imp.path, imp.format, imp.arch)
        info.update(format=report.format, arch=report.arch, path=str(imp.path))
    else:
        seed_everything(spec.seed)
        backbone = build_backbone(cfg.backbone, cfg.data.image_size)
        if spec.scenario != "random-init":
            info.update(_train(spec, cfg, data, backbone, d, device))
        save_torch(d / "backbone.pt", backbone.state_dict())
        info["arch"] = backbone.arch  # type: ignore[attr-defined]
    info["seconds"] = time.perf_counter() - started
    write_json(d / DONE_FILE, info)
    return backbone, info


def _train(
    spec: RepresentationSpec,
    cfg: StudyConfig,
    data: StudyData,
    backbone: nn.Module,
    d: Path,
    device: torch.device,
) -> dict[str, Any]:
    method_cfg = next(m for m in cfg.methods if m.label == spec.method)
    train = TrainConfig.model_validate(spec.settings["train"])
    idx = data.draw(spec.seed).subsets[spec.subset]  # type: ignore[index]
    counts = np.bincount(data.labels[idx], minlength=data.num_classes)
    method = build_method(
        method_cfg,
        backbone,
        num_classes=data.num_classes,
        class_counts=counts,
        train_size=len(idx),
        augmentation=cfg.augmentation,
    )
    sampler = getattr(method_cfg, "sampler", "instance")
    batches = ArrayBatches(
        data.images,
        data.labels,
        idx,
        train.batch_size,
        device,
        sampler=sampler,
        num_classes=data.num_classes,
    )
    result = fit(method, batches, train, d / "train", seed=spec.seed, desc=spec.name)
    last = result.history[-1] if result.history else {}
    return {
        "collapsed": result.collapsed,
        "collapse_ratio": result.final_collapse_ratio,
        "final_loss": float(last.get("loss", float("nan"))),
        "epochs": train.epochs,
        "train_size": len(idx),
    }
