"""Batched, per-sample image augmentations on uint8 tensors (on CPU or GPU): the views
methods train on and the eval view the evaluations read features through.

Each sample draws its own crop, flip, jitter, grey, blur and solarize parameters, but the
work is done as a few batched tensor ops (crops through `roi_align`), not a Python loop
over images: the loop over PIL images is what made the seed project's CPU runs slow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

from ..engine.device import channels_last

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class ViewSpec:
    """Parameters of one augmented view (defaults: MoCo v2 / SimSiam). Each method declares
    its own views in its file."""

    crop_scale: tuple[float, float] = (0.2, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    grayscale_p: float = 0.2
    blur_p: float = 0.5
    solarize_p: float = 0.0


# every labelled training (SL pretraining, fine-tuning, the SGD probe): milder than the SSL
# recipes, crops from 0.35 of the image, flips, no colour changes
LABELLED_VIEW = ViewSpec(crop_scale=(0.35, 1.0), jitter_p=0.0, grayscale_p=0.0, blur_p=0.0)


PAPER_CROP = (0.08, 1.0)  # Inception's crop scale, kept by SimCLR's and BYOL's papers

MIN_BLUR_SIZE = 64  # CIFAR-scale recipes skip blur; at >= 64 px the kernel is >= 7 px


def to_float(images: torch.Tensor, contiguous: bool = False) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float in [0, 1]: channels_last strides (a view of
    the cache's layout), or NCHW-contiguous when the next op wants that (made in uint8, a
    quarter of the bytes of the float copy `roi_align` would make)."""
    chw = images.permute(0, 3, 1, 2)
    return (chw.contiguous() if contiguous else chw).float().div_(255.0)


def normalize_into_memory_format(x: torch.Tensor) -> torch.Tensor:
    """(x - mean) / std with ImageNet's statistics, in one pass: the subtraction writes
    straight into a tensor of the model's layout."""
    mean = x.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = x.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    layout = torch.channels_last if channels_last(x.device) else torch.preserve_format
    return torch.sub(x, mean, out=torch.empty_like(x, memory_format=layout)).div_(std)


def eval_view(images: torch.Tensor) -> torch.Tensor:
    """The eval pipeline: the cached image as it is, normalised."""
    return normalize_into_memory_format(to_float(images))


def _uniform(n: int, low: float, high: float, g: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=g) * (high - low) + low


def crop_boxes(
    n: int,
    h: int,
    w: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    g: torch.Generator,
    tries: int = 10,
) -> torch.Tensor:
    """RandomResizedCrop boxes (x1, y1, x2, y2), `tries` candidates per sample, first valid kept,
    whole image where none fits (torchvision's fallback, simplified)."""
    area = h * w * _uniform(n * tries, *scale, g)
    log_r = _uniform(n * tries, math.log(ratio[0]), math.log(ratio[1]), g)
    aspect = torch.exp(log_r)
    cw = torch.sqrt(area * aspect).view(n, tries)
    ch = torch.sqrt(area / aspect).view(n, tries)
    valid = (cw <= w) & (ch <= h)
    first = torch.where(valid.any(1), valid.float().argmax(1), torch.full((n,), -1))
    pick = first.clamp(min=0).unsqueeze(1)
    cw = torch.where(first >= 0, cw.gather(1, pick).squeeze(1), torch.full((n,), float(w)))
    ch = torch.where(first >= 0, ch.gather(1, pick).squeeze(1), torch.full((n,), float(h)))
    x1 = torch.rand(n, generator=g) * (w - cw)
    y1 = torch.rand(n, generator=g) * (h - ch)
    return torch.stack([x1, y1, x1 + cw, y1 + ch], dim=1)


def resized_crop(x: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Crop each image to its box and resize to size x size: bilinear, averaging ceil(box/size)
    samples per output pixel when shrinking (adaptive sampling), exact for an identity box."""
    idx = torch.arange(len(x), dtype=boxes.dtype).unsqueeze(1)
    rois = torch.cat([idx, boxes], dim=1).to(x.device, x.dtype)
    return roi_align(
        x, rois, output_size=(size, size), spatial_scale=1.0, sampling_ratio=0, aligned=True
    )


def grayscale(x: torch.Tensor) -> torch.Tensor:
    luma = x.new_tensor(_LUMA).view(1, 3, 1, 1)
    return (x * luma).sum(1, keepdim=True)


@lru_cache(maxsize=8)
def _yiq(device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """RGB -> YIQ and its inverse, made once per device and dtype (not once per view)."""
    rows = [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]]
    to_yiq = torch.tensor(rows, device=device, dtype=dtype)
    return to_yiq, torch.linalg.inv(to_yiq)


def rotate_hue(x: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """Hue shift as a rotation of the chroma plane in YIQ space (a linear stand-in for HSV)."""
    to_yiq, from_yiq = _yiq(x.device, x.dtype)
    theta = turns.to(x) * 2 * math.pi
    cos, sin = torch.cos(theta), torch.sin(theta)
    rot = torch.zeros(len(x), 3, 3, device=x.device, dtype=x.dtype)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = cos, -sin, sin, cos
    matrix = from_yiq @ rot @ to_yiq  # (B, 3, 3)
    return torch.einsum("bij,bjhw->bihw", matrix, x)


def color_jitter(x: torch.Tensor, spec: ViewSpec, g: torch.Generator) -> torch.Tensor:
    n = len(x)
    on = (torch.rand(n, generator=g) < spec.jitter_p).float()

    def factor(strength: float) -> torch.Tensor:
        f = _uniform(n, max(0.0, 1 - strength), 1 + strength, g)
        return (1 + on * (f - 1)).to(x).view(n, 1, 1, 1)

    b, c, s = factor(spec.brightness), factor(spec.contrast), factor(spec.saturation)
    hue = on * _uniform(n, -spec.hue, spec.hue, g)
    # in place on fresh intermediates: the same arithmetic in the same order, fewer buffers
    x = (x * b).clamp_(0, 1)
    mean = grayscale(x).mean(dim=(1, 2, 3), keepdim=True)
    x = x.sub(mean).mul_(c).add_(mean).clamp_(0, 1)
    grey = grayscale(x)
    x = x.sub(grey).mul_(s).add_(grey).clamp_(0, 1)
    return rotate_hue(x, hue).clamp_(0, 1) if spec.hue > 0 else x


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable blur with one sigma per image; kernel about 10% of the image (SimCLR)."""
    n, c, h, w = x.shape
    k = max(3, int(0.1 * h) // 2 * 2 + 1)
    r = torch.arange(k, device=x.device, dtype=x.dtype) - k // 2
    kern = torch.exp(-(r.view(1, -1) ** 2) / (2 * sigma.to(x).view(-1, 1) ** 2))
    kern = (kern / kern.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (n*c, k)
    y = x.reshape(1, n * c, h, w)
    y = F.conv2d(
        F.pad(y, (k // 2, k // 2, 0, 0), mode="reflect"), kern.view(n * c, 1, 1, k), groups=n * c
    )
    y = F.conv2d(
        F.pad(y, (0, 0, k // 2, k // 2), mode="reflect"), kern.view(n * c, 1, k, 1), groups=n * c
    )
    return y.view(n, c, h, w)


def _mask(n: int, p: float, g: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    return (torch.rand(n, generator=g) < p).to(like.device).view(n, 1, 1, 1)


def augment(
    images: torch.Tensor, spec: ViewSpec, g: torch.Generator, size: int | None = None
) -> torch.Tensor:
    """One augmented, normalised view (B, 3, S, S) of uint8 images (B, H, W, 3)."""
    return normalize_into_memory_format(augment_pixels(images, spec, g, size))


def augment_pixels(
    images: torch.Tensor, spec: ViewSpec, g: torch.Generator, size: int | None = None
) -> torch.Tensor:
    """`augment`'s view before normalisation: floats in [0, 1] (where BCL adds RandAugment)."""
    x = to_float(images, contiguous=True)  # roi_align reads NCHW
    n, _, h, w = x.shape
    size = size or h
    x = resized_crop(x, crop_boxes(n, h, w, spec.crop_scale, spec.crop_ratio, g), size)
    if spec.flip_p > 0:
        x = torch.where(_mask(n, spec.flip_p, g, x), x.flip(3), x)
    if spec.jitter_p > 0:
        x = color_jitter(x, spec, g)
    if spec.grayscale_p > 0:
        x = torch.where(_mask(n, spec.grayscale_p, g, x), grayscale(x).expand_as(x), x)
    if spec.blur_p > 0 and size >= MIN_BLUR_SIZE:
        sigma = _uniform(n, 0.1, 2.0, g)
        x = torch.where(_mask(n, spec.blur_p, g, x), gaussian_blur(x, sigma), x)
    if spec.solarize_p > 0:
        x = torch.where(_mask(n, spec.solarize_p, g, x), torch.where(x >= 0.5, 1 - x, x), x)
    return x


def adjust_view(
    spec: ViewSpec, crop_min_scale: float | None = None, flip: bool = True, color: bool = True
) -> ViewSpec:
    """A method's view with the study's augmentation adjustments applied."""
    if crop_min_scale is not None:
        spec = replace(spec, crop_scale=(crop_min_scale, 1.0))
    if not flip:
        spec = replace(spec, flip_p=0.0)
    if not color:
        spec = replace(spec, jitter_p=0.0, grayscale_p=0.0, solarize_p=0.0)
    return spec
