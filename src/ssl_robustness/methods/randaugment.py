"""Batched RandAugment with a strength per image, as BCL draws it (Zhou et al., ICML 2022, the
official code's `RandAugment_prob` in data/randaug.py and data/memoboosted_cifar100.py).

Each image of strength w in [0, 1] draws k operations uniformly from the 15 below; each is
applied with probability w, at magnitude m = max_strength x w x u (u ~ U(0, 1), one per image,
drawn by `draw_magnitude` once for both of its views: the official code builds one transform
per image and applies it to both) as a fraction of the operation's range:
value = low + m (high - low). Shear, translate and
rotate take a random sign. Ranges are the official code's; in it the range's low end is not
always the mild one (contrast 0.1 is near grey, solarize 0 inverts every pixel), which is kept
as it is. Images are floats in [0, 1]; operations PIL defines on 8-bit pixels (equalize,
posterize, solarize, autocontrast) quantise to 256 levels; geometric ones sample the nearest
pixel and fill with black, as PIL's defaults do. All draws come from the step's generator, the
same number whatever the strengths, so a run is reproduced from its checkpointed generator.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torchvision.transforms.functional import equalize

from .augment import grayscale

# name: (low, high) of the value at magnitude 0 and 1 (data/randaug.py's augment_list)
RANGES: dict[str, tuple[float, float]] = {
    "shear_x": (0.0, 0.6),
    "shear_y": (0.0, 0.6),
    "translate_x": (0.0, 0.66),  # of the width
    "translate_y": (0.0, 0.66),
    "rotate": (0.0, 60.0),  # degrees
    "autocontrast": (0.0, 1.0),
    "invert": (0.0, 1.0),
    "equalize": (0.0, 1.0),
    "solarize": (0.0, 110.0),  # threshold, of 256 levels
    "posterize": (4.0, 8.0),  # bits kept
    "contrast": (0.1, 1.9),
    "color": (0.1, 1.9),
    "brightness": (0.1, 1.9),
    "sharpness": (0.1, 1.9),
    "cutout": (0.0, 0.4),  # side, of the width
}
OPS = tuple(RANGES)
CUTOUT_FILL = (125 / 255, 123 / 255, 114 / 255)


def _affine(x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Resample each image at input = matrix @ (output pixel, 1), in pixel coordinates of
    pixel centres: nearest pixel, black outside (PIL's `transform` defaults)."""
    n, _, h, w = x.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=x.dtype, device=x.device) + 0.5,
        torch.arange(w, dtype=x.dtype, device=x.device) + 0.5,
        indexing="ij",
    )
    points = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1).view(1, h * w, 3)
    src = points @ matrix.to(x).transpose(1, 2)  # (n, h*w, 2)
    grid = torch.stack([src[..., 0] / w * 2 - 1, src[..., 1] / h * 2 - 1], dim=-1)
    return F.grid_sample(
        x, grid.view(n, h, w, 2), mode="nearest", padding_mode="zeros", align_corners=False
    )


def _matrix(n: int, device: torch.device) -> torch.Tensor:
    return torch.eye(3, device=device)[:2].repeat(n, 1, 1)


def shear_x(x: torch.Tensor, v: torch.Tensor, **_: torch.Tensor) -> torch.Tensor:
    m = _matrix(len(x), x.device)
    m[:, 0, 1] = v
    return _affine(x, m)


def shear_y(x: torch.Tensor, v: torch.Tensor, **_: torch.Tensor) -> torch.Tensor:
    m = _matrix(len(x), x.device)
    m[:, 1, 0] = v
    return _affine(x, m)


def translate_x(x: torch.Tensor, v: torch.Tensor, **_: torch.Tensor) -> torch.Tensor:
    m = _matrix(len(x), x.device)
    m[:, 0, 2] = v * x.shape[3]
    return _affine(x, m)


def translate_y(x: torch.Tensor, v: torch.Tensor, **_: torch.Tensor) -> torch.Tensor:
    m = _matrix(len(x), x.device)
    m[:, 1, 2] = v * x.shape[2]
    return _affine(x, m)


def rotate(x: torch.Tensor, v: torch.Tensor, **_: torch.Tensor) -> torch.Tensor:
    """About the image centre, by v degrees."""
    h, w = x.shape[2:]
    a = v * math.pi / 180
    cos, sin = torch.cos(a), torch.sin(a)
    m = torch.stack([torch.stack([cos, sin], 1), torch.stack([-sin, cos], 1)], 1)  # (n, 2, 2)
    centre = torch.tensor([w / 2, h / 2], device=x.device, dtype=m.dtype)
    shift = centre - m @ centre
    return _affine(x, torch.cat([m, shift.unsqueeze(2)], dim=2))


def _levels(x: torch.Tensor) -> torch.Tensor:
    return (x * 255).round_().clamp_(0, 255)


def autocontrast(x: torch.Tensor, v: torch.Tensor, **_: torch.Tensor) -> torch.Tensor:
    """Each channel stretched to the full range (unchanged where it is flat)."""
    lo, hi = x.amin(dim=(2, 3), keepdim=True), x.amax(dim=(2, 3), keepdim=True)
    flat = hi <= lo
    return torch.where(flat, x, (x - lo) / torch.where(flat, torch.ones_like(hi), hi - lo))


def invert(x: torch.Tensor, v: torch.Tensor, **_: torch.Tensor) -> torch.Tensor:
    return 1 - x


def equalize_(x: torch.Tensor, v: torch.Tensor, **_: torch.Tensor) -> torch.Tensor:
    return equalize(_levels(x).to(torch.uint8)).to(x.dtype) / 255


def solarize(x: torch.Tensor, v: torch.Tensor, **_: torch.Tensor) -> torch.Tensor:
    """Levels at or above the threshold v (of 256) inverted."""
    return torch.where(_levels(x) >= v.view(-1, 1, 1, 1), 1 - x, x)


def posterize(x: torch.Tensor, v: torch.Tensor, **_: torch.Tensor) -> torch.Tensor:
    """The top int(v) bits of each 8-bit level kept."""
    step = 2.0 ** (8 - v.floor().clamp(1, 8)).view(-1, 1, 1, 1)
    return torch.div(_levels(x), step, rounding_mode="floor") * step / 255


def _blend(degenerate: torch.Tensor, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """PIL's ImageEnhance: degenerate + v (x - degenerate)."""
    return (degenerate + v.view(-1, 1, 1, 1) * (x - degenerate)).clamp(0, 1)


def contrast(x: torch.Tensor, v: torch.Tensor, **_: torch.Tensor) -> torch.Tensor:
    mean = _levels(grayscale(x).mean(dim=(1, 2, 3), keepdim=True)) / 255
    return _blend(mean.expand_as(x), x, v)


def color(x: torch.Tensor, v: torch.Tensor, **_: torch.Tensor) -> torch.Tensor:
    return _blend(grayscale(x).expand_as(x), x, v)


def brightness(x: torch.Tensor, v: torch.Tensor, **_: torch.Tensor) -> torch.Tensor:
    return _blend(torch.zeros_like(x), x, v)


def sharpness(x: torch.Tensor, v: torch.Tensor, **_: torch.Tensor) -> torch.Tensor:
    """Against PIL's SMOOTH filter (centre 5, neighbours 1, over 13), the border kept."""
    kernel = torch.ones(3, 3, dtype=x.dtype, device=x.device)
    kernel[1, 1] = 5
    kernel = (kernel / 13).expand(3, 1, 3, 3)
    smooth = x.clone()
    smooth[:, :, 1:-1, 1:-1] = F.conv2d(x, kernel, groups=3)
    return _blend(smooth, x, v)


def cutout(x: torch.Tensor, v: torch.Tensor, *, centre: torch.Tensor) -> torch.Tensor:
    """A grey square of side v x width at a random centre (clipped at the border)."""
    h, w = x.shape[2:]
    side = (v * w).view(-1, 1)
    lo = (centre * torch.tensor([w, h], device=x.device) - side / 2).clamp(min=0).floor()
    hi = torch.minimum(lo + side, torch.tensor([w, h], device=x.device, dtype=lo.dtype))
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    inside = (
        (cols >= lo[:, 0, None, None])
        & (cols < hi[:, 0, None, None])
        & (rows >= lo[:, 1, None, None])
        & (rows < hi[:, 1, None, None])
        & (side.view(-1, 1, 1) > 0)
    )
    fill = torch.tensor(CUTOUT_FILL, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return torch.where(inside.unsqueeze(1), fill, x)


FUNCTIONS: dict[str, Callable[..., torch.Tensor]] = {
    "shear_x": shear_x,
    "shear_y": shear_y,
    "translate_x": translate_x,
    "translate_y": translate_y,
    "rotate": rotate,
    "autocontrast": autocontrast,
    "invert": invert,
    "equalize": equalize_,
    "solarize": solarize,
    "posterize": posterize,
    "contrast": contrast,
    "color": color,
    "brightness": brightness,
    "sharpness": sharpness,
    "cutout": cutout,
}
SIGNED = ("shear_x", "shear_y", "translate_x", "translate_y", "rotate")


def draw_magnitude(
    strength: torch.Tensor, g: torch.Generator, max_strength: float = 1.0
) -> torch.Tensor:
    """Each image's magnitude, max_strength x strength[i] x u_i with u_i ~ U(0, 1): one per image,
    shared by its views (the official code's 30 x w x np.random.rand(1) per __getitem__)."""
    strength = strength.detach().float().cpu()
    return max_strength * strength * torch.rand(len(strength), generator=g)


def rand_augment(
    x: torch.Tensor,
    strength: torch.Tensor,
    magnitude: torch.Tensor,
    g: torch.Generator,
    *,
    ops: int = 1,
) -> torch.Tensor:
    """`x` (B, 3, H, W) floats in [0, 1] with `ops` operations per image, each applied with
    probability strength[i] at `magnitude[i]` (`draw_magnitude`); which operations, whether each
    applies, its sign and cutout's centre are drawn anew for each call (each view)."""
    n = len(x)
    strength = strength.detach().float().cpu()
    magnitude = magnitude.detach().float().cpu()
    for _ in range(ops):
        choice = torch.randint(len(OPS), (n,), generator=g)
        applied = torch.rand(n, generator=g) < strength
        sign = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
        centre = torch.rand(n, 2, generator=g)
        for j, name in enumerate(OPS):
            picked = torch.nonzero(applied & (choice == j)).flatten()
            if len(picked) == 0:
                continue
            low, high = RANGES[name]
            value = low + magnitude[picked] * (high - low)
            if name in SIGNED:
                value = value * sign[picked]
            extra = {"centre": centre[picked].to(x.device)} if name == "cutout" else {}
            idx = picked.to(x.device)
            out = FUNCTIONS[name](x[idx], value.to(x.device, x.dtype), **extra)
            x = x.index_copy(0, idx, out.to(x.dtype))
    return x
