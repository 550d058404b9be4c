"""Well-known ImageNet SSL checkpoints by name: fetched once, verified on every use.

An `imported` entry may name one of `REGISTRY` (`weights: mocov2_800ep`) instead of giving a
`path:`. The file is downloaded once with torch.hub's `download_url_to_file` into
`$SSL_ROBUSTNESS_CACHE` (else torch.hub's `<hub dir>/checkpoints`), under `<name>-<file name>`
(SimSiam's `checkpoint_0099.pth.tar` and Barlow Twins' `resnet50.pth` say nothing alone).

Checksums: where the authors published one it is checked (a sha256 prefix by torch.hub during
the download, an md5 prefix here), at the download and at every later use. Where none is
published, the sha256 of the first download is recorded in a sidecar `<file>.sha256` and every
later use (and any later re-download) must match it: a changed file is an error naming it, not a
silent swap of the backbone under a study's cached results. The file is then read like any
other: `weights_only=True` and the strict loader of `checkpoints.py`.
"""

from __future__ import annotations

import fcntl
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.parse import urlparse

import torch
from torch import nn

from ..atomic import file_digest, file_sha256, write_text
from ..config import ImportedConfig
from ..errors import UserError
from ..names import PUBLISHED_WEIGHTS
from .checkpoints import ImportReport, load_backbone
from .vit import ViTArch, ViTBackbone, build_vit
from .vit_checkpoints import ViTReport, heads_for

CACHE_ENV = "SSL_ROBUSTNESS_CACHE"
SIDECAR_SUFFIX = ".sha256"


@dataclass(frozen=True)
class Published:
    """A checkpoint file as its authors (or a named conversion) published it."""

    url: str
    format: str  # one of names.CHECKPOINT_FORMATS: the converter that reads it
    arch: str | None  # what the strict loader checks the file against
    checksum: str | None  # "sha256:<prefix>" or "md5:<prefix>" as published; None: none is
    source: str  # who published it, in words (the README's table)


FAIR = "https://dl.fbaipublicfiles.com"
IBOT = "https://lf3-nlp-opensource.bytetos.com/obj/nlp-opensource/archive/2022/ibot"

REGISTRY: dict[str, Published] = {
    "mocov2_800ep": Published(
        "https://dl.fbaipublicfiles.com/moco/moco_checkpoints/moco_v2_800ep/"
        "moco_v2_800ep_pretrain.pth.tar",
        "moco",
        "resnet50",
        "md5:a04e12f8",  # facebookresearch/moco README, Models table
        "MoCo v2, 800 epochs (facebookresearch/moco)",
    ),
    "simsiam_100ep_256bs": Published(
        "https://dl.fbaipublicfiles.com/simsiam/models/100ep-256bs/pretrain/checkpoint_0099.pth.tar",
        "simsiam",
        "resnet50",
        None,
        "SimSiam, 100 epochs, batch 256 (facebookresearch/simsiam)",
    ),
    "byol_200ep": Published(
        "https://download.openmmlab.com/mmselfsup/1.x/byol/byol_resnet50_16xb256-coslr-200e_in1k/"
        "byol_resnet50_16xb256-coslr-200e_in1k_20220825-de817331.pth",
        "mmselfsup",
        "resnet50",
        "sha256:de817331",  # OpenMMLab names a published file by its sha256 prefix
        "BYOL, 200 epochs, batch 4096, trained by OpenMMLab mmselfsup 1.x (DeepMind's own "
        "1000-epoch release is a JAX file)",
    ),
    "swav_800ep": Published(
        "https://dl.fbaipublicfiles.com/deepcluster/swav_800ep_pretrain.pth.tar",
        "torchvision",
        "resnet50",
        None,
        "SwAV, 800 epochs, multi-crop (facebookresearch/swav)",
    ),
    "dino_resnet50": Published(
        "https://dl.fbaipublicfiles.com/dino/dino_resnet50_pretrain/dino_resnet50_pretrain.pth",
        "torchvision",
        "resnet50",
        None,
        "DINO ResNet-50 (facebookresearch/dino)",
    ),
    "barlowtwins_resnet50": Published(
        "https://dl.fbaipublicfiles.com/barlowtwins/ep1000_bs2048_lrw0.2_lrb0.0048_lambd0.0051/"
        "resnet50.pth",
        "torchvision",
        "resnet50",
        None,
        "Barlow Twins, 1000 epochs, batch 2048 (facebookresearch/barlowtwins)",
    ),
    # vision transformers (models/vit_checkpoints.py); none of them publishes a checksum
    "dino_vits16": Published(
        f"{FAIR}/dino/dino_deitsmall16_pretrain/dino_deitsmall16_pretrain.pth",
        "dino",
        "ViT-S/16",
        None,
        "DINO ViT-S/16 backbone (facebookresearch/dino)",
    ),
    "dino_vitb16": Published(
        f"{FAIR}/dino/dino_vitbase16_pretrain/dino_vitbase16_pretrain.pth",
        "dino",
        "ViT-B/16",
        None,
        "DINO ViT-B/16 backbone (facebookresearch/dino)",
    ),
    **{
        f"dinov2_vit{s}14{reg}": Published(
            f"{FAIR}/dinov2/dinov2_vit{s}14/dinov2_vit{s}14{reg and '_reg4'}_pretrain.pth",
            "dinov2",
            f"ViT-{s.upper()}/14",
            None,
            f"DINOv2 ViT-{s.upper()}/14{reg and ' with 4 registers'}, distilled from ViT-g, "
            "pretrained on LVD-142M, not ImageNet-1k alone (facebookresearch/dinov2, torch.hub)",
        )
        for reg in ("", "_reg")
        for s in ("s", "b")
    },
    "mae_vitb16": Published(
        f"{FAIR}/mae/pretrain/mae_pretrain_vit_base.pth",
        "mae",
        "ViT-B/16",
        None,
        "MAE ViT-B/16 encoder (facebookresearch/mae)",
    ),
    "mocov3_vits": Published(
        f"{FAIR}/moco-v3/vit-s-300ep/vit-s-300ep.pth.tar",
        "mocov3",
        "ViT-S/16",
        None,
        "MoCo v3 ViT-S/16 (12 heads), 300 epochs (facebookresearch/moco-v3)",
    ),
    "mocov3_vitb": Published(
        f"{FAIR}/moco-v3/vit-b-300ep/vit-b-300ep.pth.tar",
        "mocov3",
        "ViT-B/16",
        None,
        "MoCo v3 ViT-B/16, 300 epochs (facebookresearch/moco-v3)",
    ),
    "ibot_vits16": Published(
        f"{IBOT}/vits_16/checkpoint_teacher.pth",
        "ibot",
        "ViT-S/16",
        None,
        "iBOT ViT-S/16 teacher backbone (bytedance/ibot)",
    ),
    "ibot_vitb16": Published(
        f"{IBOT}/vitb_16/checkpoint_teacher.pth",
        "ibot",
        "ViT-B/16",
        None,
        "iBOT ViT-B/16 teacher backbone (bytedance/ibot)",
    ),
}
assert tuple(REGISTRY) == PUBLISHED_WEIGHTS, "names.PUBLISHED_WEIGHTS lists the registry"


def published(name: str) -> Published:
    """The registry's entry, or an error listing the known names."""
    if name not in REGISTRY:
        raise UserError(f"weights: unknown '{name}' (known: {', '.join(REGISTRY)})")
    return REGISTRY[name]


def published_settings(name: str) -> dict[str, Any]:
    """What identifies a named checkpoint in a representation's cache key (no download)."""
    entry = published(name)
    return {"url": entry.url, "checksum": entry.checksum}


def cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path(torch.hub.get_dir()) / "checkpoints"


def cached_path(name: str) -> Path:
    url_name = Path(urlparse(published(name).url).path).name
    return cache_dir() / f"{name}-{url_name}"


def sidecar(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR_SUFFIX)


def fetch(name: str) -> Path:
    """The named checkpoint's file in the cache: downloaded if absent, verified every time."""
    entry = published(name)
    path = cached_path(name)
    with _lock(path):  # two processes of one study download it once
        if not path.is_file():
            _download(name, entry, path)
    verify(name, entry, path)
    return path


def verify(name: str, entry: Published, path: Path) -> None:
    """The published checksum where there is one, else the one recorded at first download."""
    if entry.checksum is not None:
        _check_published(name, entry, path)
        return
    record = sidecar(path)
    if not record.is_file():
        raise UserError(
            f"{path}: no recorded checksum ({record} is missing), so the file of weights '{name}' "
            f"cannot be trusted; delete it to download it again"
        )
    expected = record.read_text(encoding="utf-8").strip()
    got = file_sha256(path)
    if got != expected:
        raise UserError(
            f"{path}: changed since it was downloaded (sha256 {got}, recorded {expected} in "
            f"{record}); delete both files to download weights '{name}' again, and use a new "
            f"output_dir: a study's results from '{name}' are keyed by its name and URL, not by "
            "the file's bytes, so an old run directory would give back the old file's numbers"
        )


def _check_published(name: str, entry: Published, path: Path) -> None:
    assert entry.checksum is not None
    algo, _, prefix = entry.checksum.partition(":")
    got = file_digest(path, algo)
    if not got.startswith(prefix):
        raise UserError(
            f"{path}: {algo} {got} does not match the published {entry.checksum} of weights "
            f"'{name}' ({entry.url}); delete the file to download it again"
        )


def _download(name: str, entry: Published, path: Path) -> None:
    """Download to `<path>.part`, check it, record its sha256 if none is published, move in."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    algo, _, prefix = (entry.checksum or "").partition(":")
    print(f"downloading weights '{name}' from {entry.url} to {path}", file=sys.stderr)
    try:
        torch.hub.download_url_to_file(
            entry.url,
            str(part),
            hash_prefix=prefix if algo == "sha256" else None,
            progress=sys.stderr.isatty(),
        )
    except RuntimeError as exc:  # torch.hub's "invalid hash value"
        part.unlink(missing_ok=True)
        raise UserError(f"weights '{name}': {entry.url}: {exc}; nothing was cached") from None
    except (URLError, OSError, ValueError) as exc:
        part.unlink(missing_ok=True)
        why = " ".join(str(getattr(exc, "reason", None) or exc).split()) or type(exc).__name__
        raise UserError(
            f"weights '{name}': cannot download {entry.url}: {why}; nothing was cached. "
            f"{by_hand(name, entry, path)}"
        ) from None
    try:
        if entry.checksum is not None:
            _check_published(name, entry, part)
        else:
            _record(name, entry, part, sidecar(path))
    except UserError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, path)


def checksum_words(entry: Published) -> str:
    """The checksum a file of `entry` must have, in words."""
    if entry.checksum is None:
        return "no checksum is published: the first file's sha256 is recorded and kept"
    algo, _, prefix = entry.checksum.partition(":")
    return f"{algo} beginning {prefix}"


def by_hand(name: str, entry: Published, path: Path) -> str:
    """How to place the file of weights `name` by hand on a machine without network."""
    text = f"Without network, place the file from {entry.url} at {path} ({checksum_words(entry)})"
    if entry.checksum is None:
        text += f" and write its sha256 into {sidecar(path)} (sha256sum)"
    return text


def missing_downloads(imports: list[ImportedConfig]) -> list[str]:
    """What a run will download for the `imported` entries that name published weights not yet
    in the cache (nothing is downloaded): the plan's lines."""
    lines = []
    for imp in imports:
        if imp.weights is None:
            continue
        path = cached_path(imp.weights)
        if path.is_file():
            continue
        entry = published(imp.weights)
        lines.append(
            f"weights '{imp.weights}' are not in {path.parent}; the run will download them "
            f"from {entry.url} (size: not published; a {entry.arch} backbone, "
            f"{_backbone_megabytes(imp.weights, entry)} of float32 weights at least). "
            f"{by_hand(imp.weights, entry, path)}"
        )
    return lines


def _backbone_megabytes(name: str, entry: Published) -> str:
    """The backbone's float32 size, from its architecture (a file also holds heads, and some
    a second encoder or optimizer state, so it is a lower bound)."""
    from .backbones import backbone_from_arch
    from .checkpoints import standard_arch

    arch = entry.arch or ""
    try:
        if arch.startswith("ViT-"):
            from .vit import build_vit

            model: nn.Module = build_vit(_registry_vit(name, entry, arch))
        else:
            model = backbone_from_arch(standard_arch(arch, {}))
    except (KeyError, ValueError, UserError):
        return "an unknown number of MB"
    n = sum(p.numel() for p in model.parameters())
    return f"{n * 4 / 1e6:.0f} MB"


def _record(name: str, entry: Published, part: Path, record: Path) -> None:
    """Record the first download's sha256; a re-download must match an earlier record."""
    got = file_sha256(part)
    if record.is_file():
        expected = record.read_text(encoding="utf-8").strip()
        if got != expected:
            raise UserError(
                f"weights '{name}': {entry.url} now has sha256 {got}, not the {expected} recorded "
                f"at its first download ({record}); refused"
            )
        return
    write_text(record, got + "\n")


@contextmanager
def _lock(path: Path) -> Iterator[None]:
    """An exclusive lock on `<path>.lock`, removed again before it is released, so the cache
    keeps no empty lock file (after a failed download neither). A waiter that got the lock on
    a file removed meanwhile opens the new one and waits again."""
    lock = path.with_name(path.name + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        f = open(lock, "a")  # noqa: SIM115 - held across the yield below
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            if os.fstat(f.fileno()).st_ino == os.stat(lock).st_ino:
                break
        except FileNotFoundError:
            pass
        f.close()
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()


def imported_source(imp: ImportedConfig) -> tuple[Path, str, str | None]:
    """(file, format, arch) of an `imported` entry; a named one is fetched first."""
    if imp.weights is None:
        assert imp.path is not None
        return imp.path, imp.format, imp.arch
    entry = published(imp.weights)
    fmt = entry.format if imp.format == "auto" else imp.format
    return fetch(imp.weights), fmt, imp.arch or entry.arch


def load_imported(imp: ImportedConfig) -> tuple[nn.Module, ImportReport | ViTReport]:
    """The backbone of an `imported` entry, read with weights_only and loaded strictly; a
    vision transformer returns the entry's features at the entry's image size."""
    backbone, report = load_backbone(*imported_source(imp))
    if isinstance(backbone, ViTBackbone):
        try:
            backbone.choose(imp.features or "cls")
            backbone.set_input_size(imp.image_size)
        except UserError as exc:
            raise UserError(f"imported '{imp.name}': {exc}") from None
    elif imp.features is not None:
        raise UserError(
            f"imported '{imp.name}': features: {imp.features} is for vision transformers; "
            f"{report.path} holds a ResNet (its pooled features): leave features unset"
        )
    return backbone, report


# the ViT sizes of the registry's arch words: (dim, blocks)
VIT_SIZES = {"S": (384, 12), "B": (768, 12), "L": (1024, 24)}


def imported_architecture(imp: ImportedConfig) -> tuple[nn.Module, str]:
    """(the network of an `imported` entry with random weights, at its image size and with its
    features; its name in words), for timing it: a published name is not downloaded (its arch
    word gives the structure), a file is inspected, not loaded."""
    from .backbones import backbone_from_arch
    from .checkpoints import arch_in_words, inspect_checkpoint, resolve_arch, standard_arch

    if imp.weights is not None:
        entry = published(imp.weights)
        arch = imp.arch or entry.arch or ""
        if arch.startswith("ViT-"):
            vit = _registry_vit(imp.weights, entry, arch)
        else:
            return backbone_from_arch(standard_arch(arch, {})), arch
    else:
        assert imp.path is not None
        report = inspect_checkpoint(imp.path, imp.format)
        if not isinstance(report, ViTReport):
            return backbone_from_arch(resolve_arch(report, imp.arch)), arch_in_words(
                report, imp.arch
            )
        vit = report.vit
    backbone = ViTBackbone(build_vit(vit), vit.record(), vit.patch, imp.features or "cls")
    backbone.set_input_size(imp.image_size)
    return backbone, vit.words()


def _registry_vit(name: str, entry: Published, arch: str) -> ViTArch:
    """The structure a registry's "ViT-S/16" names, as the published file holds it."""
    size, patch = arch.removeprefix("ViT-").split("/")
    dim, depth = VIT_SIZES[size]
    dinov2 = entry.format == "dinov2"
    return ViTArch(
        patch=int(patch),
        dim=dim,
        depth=depth,
        heads=heads_for(dim, entry.format, None),
        mlp_hidden=4 * dim,
        grid=224 // int(patch),
        registers=4 if dinov2 and name.endswith("_reg") else 0,
        layer_scale=dinov2,
    )
