import numpy as np
import pytest
import torch
from torchvision.models.resnet import BasicBlock

from ssl_robustness.config import (
    AugmentationConfig,
    BYOLConfig,
    MocoV2Config,
    SimCLRConfig,
    SimSiamConfig,
    SupervisedConfig,
)
from ssl_robustness.methods import build_method, method_views
from ssl_robustness.methods.augment import (
    ViewSpec,
    augment,
    crop_boxes,
    eval_view,
    gaussian_blur,
    resized_crop,
    to_float,
)
from ssl_robustness.methods.byol import BYOL_VIEWS
from ssl_robustness.methods.mocov2 import MOCOV2_VIEW
from ssl_robustness.models.backbones import ResNet


def _images(n=6, size=32):
    return torch.randint(
        0, 256, (n, size, size, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )


def test_views_have_the_asked_shape_and_are_seeded():
    x = _images()
    a = augment(x, MOCOV2_VIEW, torch.Generator().manual_seed(1))
    b = augment(x, MOCOV2_VIEW, torch.Generator().manual_seed(1))
    c = augment(x, MOCOV2_VIEW, torch.Generator().manual_seed(2))
    assert a.shape == (6, 3, 32, 32) and torch.equal(a, b) and not torch.equal(a, c)
    assert augment(x, BYOL_VIEWS[1], torch.Generator(), size=16).shape == (6, 3, 16, 16)


def test_full_box_crop_is_the_identity():
    x = to_float(_images(2, 8))
    boxes = torch.tensor([[0.0, 0.0, 8.0, 8.0]] * 2)
    assert torch.allclose(resized_crop(x, boxes, 8), x, atol=1e-5)


def test_crop_boxes_stay_inside_and_respect_scale():
    g = torch.Generator().manual_seed(0)
    boxes = crop_boxes(500, 32, 32, (0.2, 1.0), (3 / 4, 4 / 3), g)
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 32 + 1e-4).all()
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / 1024
    assert area.min() >= 0.2 - 1e-4 and area.max() <= 1 + 1e-4


def test_flip_only_view_mirrors_exactly():
    x = _images(64, 8)
    spec = ViewSpec(
        crop_scale=(1.0, 1.0),
        crop_ratio=(1.0, 1.0),
        flip_p=0.5,
        jitter_p=0,
        grayscale_p=0,
        blur_p=0,
    )
    y = augment(x, spec, torch.Generator().manual_seed(0))
    plain = eval_view(x)
    flipped = [torch.allclose(y[i], plain[i].flip(2), atol=1e-4) for i in range(64)]
    same = [torch.allclose(y[i], plain[i], atol=1e-4) for i in range(64)]
    assert all(f or s for f, s in zip(flipped, same, strict=True))
    assert 16 < sum(flipped) < 48


def test_blur_keeps_constant_images_and_smooths_noise():
    flat = torch.full((2, 3, 16, 16), 0.5)
    assert torch.allclose(gaussian_blur(flat, torch.tensor([1.0, 2.0])), flat, atol=1e-6)
    noise = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert gaussian_blur(noise, torch.tensor([1.5])).std() < noise.std()


@pytest.mark.parametrize(
    "cfg, paper, override",
    [
        (SimCLRConfig(), 0.08, 0.5),
        (BYOLConfig(), 0.08, 0.5),
        (MocoV2Config(), 0.2, 0.5),
        (SimSiamConfig(), 0.2, 0.5),
        (SupervisedConfig(), 0.35, 0.5),
        (SimCLRConfig(), 0.08, 0.2),
    ],
)
def test_each_method_crops_from_its_papers_scale_unless_the_study_overrides(cfg, paper, override):
    assert {v.crop_scale for v in method_views(cfg, None)} == {(paper, 1.0)}
    assert {v.crop_scale for v in method_views(cfg, AugmentationConfig())} == {(paper, 1.0)}
    study = AugmentationConfig(crop_min_scale=override, flip=False)
    assert {v.crop_scale for v in method_views(cfg, study)} == {(override, 1.0)}
    for aug, scale in ((None, paper), (study, override)):
        backbone = ResNet(BasicBlock, [1, 1, 1, 1], width=4, small_stem=True)
        method = build_method(
            cfg,
            backbone,
            num_classes=2,
            class_counts=np.array([3, 3]),
            train_size=6,
            augmentation=aug,
        )
        built = method.views if hasattr(method, "views") else (method.view,)
        assert {v.crop_scale for v in built} == {(scale, 1.0)}
