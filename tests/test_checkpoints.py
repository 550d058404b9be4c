import os

import pytest
import torch
import torchvision

from ssl_robustness.errors import UserError
from ssl_robustness.models.checkpoints import export_backbone, inspect_checkpoint, load_backbone


@pytest.fixture(scope="module")
def reference():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=7)
    with torch.no_grad():  # non-trivial BN statistics, so buffers are checked too
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    return model.state_dict()


def _backbone_keys(sd):
    return {k: v for k, v in sd.items() if not k.startswith("fc.")}


def _mlp(prefix):
    return {
        f"{prefix}fc.0.weight": torch.randn(4, 512),
        f"{prefix}fc.0.bias": torch.randn(4),
        f"{prefix}fc.2.weight": torch.randn(2, 4),
        f"{prefix}fc.2.bias": torch.randn(2),
    }


def _formats(sd):
    bb = _backbone_keys(sd)
    lightly_children = {
        "0": "conv1",
        "1": "bn1",
        "4": "layer1",
        "5": "layer2",
        "6": "layer3",
        "7": "layer4",
    }
    inv = {v: k for k, v in lightly_children.items()}
    return {
        "torchvision": ("torchvision", sd),
        "timm": ("timm", sd),
        "moco": (
            "moco",
            {
                "epoch": 200,
                "arch": "resnet18",
                "state_dict": {
                    **{f"module.encoder_q.{k}": v for k, v in bb.items()},
                    **_mlp("module.encoder_q."),
                    **{f"module.encoder_k.{k}": v for k, v in bb.items()},
                    "module.queue": torch.randn(2, 16),
                    "module.queue_ptr": torch.zeros(1),
                },
            },
        ),
        "moco_no_ddp": ("moco", {"state_dict": {f"encoder_q.{k}": v for k, v in bb.items()}}),
        "simsiam": (
            "simsiam",
            {
                "state_dict": {
                    **{f"module.encoder.{k}": v for k, v in bb.items()},
                    **_mlp("module.encoder."),
                    "module.predictor.0.weight": torch.randn(3, 2),
                }
            },
        ),
        "lightning": (
            "lightning",
            {
                "pytorch-lightning_version": "2.1.0",
                "epoch": 3,
                "global_step": 9,
                "state_dict": {
                    **{f"backbone.{k}": v for k, v in bb.items()},
                    "projector.0.weight": torch.randn(3, 3),
                },
            },
        ),
        "lightly_sequential": (
            "lightning",
            {
                "state_dict": {
                    f"backbone.{inv[k.split('.')[0]]}.{k.split('.', 1)[1]}": v
                    for k, v in bb.items()
                }
            },
        ),
        "mmselfsup": (
            "mmselfsup",
            {
                "meta": {"epoch": 100},
                "state_dict": {
                    **{f"backbone.{k}": v for k, v in bb.items()},
                    "neck.mlp.0.weight": torch.randn(2),
                },
            },
        ),
        "vissl": (
            "vissl",
            {
                "classy_state_dict": {
                    "base_model": {
                        "model": {
                            "trunk": {f"_feature_blocks.{k}": v for k, v in bb.items()},
                            "heads": {"0.clf.0.weight": torch.randn(2, 2)},
                        }
                    }
                }
            },
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "torchvision",
        "timm",
        "moco",
        "moco_no_ddp",
        "simsiam",
        "lightning",
        "lightly_sequential",
        "mmselfsup",
        "vissl",
    ],
)
def test_each_format_round_trips_exactly(reference, tmp_path, case):
    fmt, obj = _formats(reference)[case]
    path = tmp_path / f"{case}.pth"
    torch.save(obj, path)
    asked = "timm" if case == "timm" else "auto"
    model, report = load_backbone(path, asked)
    assert report.format == fmt
    loaded = model.state_dict()
    expected = _backbone_keys(reference)
    assert set(loaded) == set(expected)
    for k, v in expected.items():
        assert torch.equal(loaded[k], v), k
    out = tmp_path / "exported.pt"
    export_backbone(report, out)
    tv = torchvision.models.resnet18()
    missing, unexpected = tv.load_state_dict(torch.load(out, weights_only=True), strict=False)
    assert missing == ["fc.weight", "fc.bias"] and unexpected == []


def test_inspect_reports_format_arch_and_dropped_heads(reference, tmp_path):
    fmt, obj = _formats(reference)["moco"]
    torch.save(obj, tmp_path / "m.pth")
    report = inspect_checkpoint(tmp_path / "m.pth")
    assert report.arch == {
        "block": "BasicBlock",
        "layers": [2, 2, 2, 2],
        "width": 64,
        "small_stem": False,
    }
    text = report.summary()
    assert "format:    moco" in text and "encoder_k.* (" in text and "queue" in text


def test_wrong_architecture_is_refused(reference, tmp_path):
    torch.save(reference, tmp_path / "r18.pth")
    with pytest.raises(UserError, match="not resnet50"):
        load_backbone(tmp_path / "r18.pth", arch="resnet50")
    bad = dict(reference)
    bad["layer1.0.conv1.weight"] = torch.randn(64, 64, 5, 5)
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(
        UserError,
        match=r"shapes differ:\n  layer1\.0\.conv1\.weight: file "
        r"\(64, 64, 5, 5\) vs model \(64, 64, 3, 3\)",
    ):
        load_backbone(tmp_path / "bad.pth")


def test_partial_state_dict_is_refused(reference, tmp_path):
    partial = {k: v for k, v in reference.items() if not k.startswith("layer2.1.bn2")}
    torch.save(partial, tmp_path / "partial.pth")
    with pytest.raises(
        UserError,
        match=r"refusing a partial load: 4 missing key\(s\) "
        r"\['layer2\.1\.bn2\.weight'",
    ):
        load_backbone(tmp_path / "partial.pth")


def test_truncated_file_is_refused(reference, tmp_path):
    path = tmp_path / "full.pth"
    torch.save(reference, path)
    data = path.read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match=r"cut\.pth: cannot read checkpoint \(truncated"):
        load_backbone(tmp_path / "cut.pth")


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_pickle_that_would_run_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"conv1.weight": torch.zeros(1)}, "payload": _Evil()}, path)
    with pytest.raises(UserError, match=r"evil\.pth: refused: .*could run code"):
        load_backbone(path)
    with pytest.raises(UserError, match="not found"):
        load_backbone(tmp_path / "absent.pth")
