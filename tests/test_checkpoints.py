import os
import sys

import pytest
import torch
import torchvision

from ssl_robustness.cli import main
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
    with pytest.raises(
        UserError, match=r"evil\.pth: carries pickled code; refused: weights_only load"
    ):
        load_backbone(path)
    with pytest.raises(UserError, match="not found"):
        load_backbone(tmp_path / "absent.pth")


def _without(sd, prefix):
    return {k: v for k, v in sd.items() if not k.startswith(prefix)}


def _cli(args, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["ssl-robustness", *args])
    with pytest.raises(SystemExit) as exc:
        main()
        raise SystemExit(0)
    return exc.value.code, capsys.readouterr()


def test_standard_resnet_with_a_block_missing_is_refused_listing_the_keys(reference, tmp_path):
    torch.save(_without(reference, "layer4.1."), tmp_path / "cut.pth")
    with pytest.raises(UserError) as info:
        load_backbone(tmp_path / "cut.pth")
    text = str(info.value)
    assert "a resnet18 with 10 key(s) missing (blocks per stage [2, 2, 2, 1]" in text
    for k in ("conv1.weight", "bn1.running_var", "conv2.weight", "bn2.bias"):
        assert f"'layer4.1.{k}'" in text
    assert "set arch: resnet_tiny" in text


def test_inspect_names_the_architecture_and_refuses_the_truncated_file(
    reference, tmp_path, monkeypatch, capsys
):
    torch.save(torchvision.models.resnet50().state_dict(), tmp_path / "r50.pth")
    code, out = _cli(["checkpoint", "inspect", str(tmp_path / "r50.pth")], monkeypatch, capsys)
    assert code == 0 and "arch:      resnet50\n" in out.out
    assert "structure: Bottleneck [3, 4, 6, 3], width 64; ImageNet stem" in out.out
    assert "load:      ok (strict)" in out.out
    torch.save(_without(reference, "layer4.1."), tmp_path / "cut.pth")
    code, out = _cli(["checkpoint", "inspect", str(tmp_path / "cut.pth")], monkeypatch, capsys)
    assert code == 2 and "ok (strict)" not in out.out
    assert "arch:      resnet18 with blocks missing" in out.out
    assert "load:      refused: " in out.out and "'layer4.1.conv1.weight'" in out.out


def test_wide_resnet_is_recognised_and_loads_exactly(tmp_path):
    sd = torchvision.models.wide_resnet50_2().state_dict()
    torch.save(sd, tmp_path / "wide.pth")
    model, report = load_backbone(tmp_path / "wide.pth")
    assert "arch:      wide_resnet50_2\n" in report.summary()
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in sd.items() if not k.startswith("fc."))


def test_the_files_own_arch_field_is_used(reference, tmp_path):
    bb = _backbone_keys(reference)
    torch.save({"arch": "resnet50", "state_dict": bb}, tmp_path / "says50.pth")
    with pytest.raises(UserError, match=r"holds a BasicBlock \[2, 2, 2, 2\].*not resnet50"):
        load_backbone(tmp_path / "says50.pth")
    assert (
        "resnet50 (the file's arch field)" in inspect_checkpoint(tmp_path / "says50.pth").summary()
    )
    cut = {f"module.encoder_q.{k}": v for k, v in _without(bb, "layer4.1.").items()}
    torch.save({"arch": "resnet18", "state_dict": cut}, tmp_path / "moco_cut.pth")
    with pytest.raises(UserError, match=r"refusing a partial load: 10 missing key\(s\)"):
        load_backbone(tmp_path / "moco_cut.pth")


def test_our_own_arch_record_builds_a_custom_resnet(tmp_path):
    from ssl_robustness.models.backbones import ResNet

    tiny = ResNet(torchvision.models.resnet.BasicBlock, [1, 1, 1, 1], 64, small_stem=True)
    sd = tiny.state_dict()
    torch.save(sd, tmp_path / "bare.pth")  # width 64, [1, 1, 1, 1]: looks like a cut resnet18
    with pytest.raises(UserError, match=r"a resnet18 with \d+ key\(s\) missing"):
        load_backbone(tmp_path / "bare.pth")
    torch.save({"arch": tiny.arch, "state_dict": sd}, tmp_path / "ours.pth")
    model, report = load_backbone(tmp_path / "ours.pth")
    assert model.conv1.padding == (1, 1)  # our small stem, as recorded
    assert report.summary().startswith(f"file:      {tmp_path / 'ours.pth'}")
    assert "custom ResNet (the file's arch field" in report.summary()
    model, _ = load_backbone(tmp_path / "bare.pth", arch="resnet_tiny")
    assert model.arch["layers"] == [1, 1, 1, 1]
    with pytest.raises(UserError, match="arch: unknown 'resnet19'"):
        load_backbone(tmp_path / "bare.pth", arch="resnet19")


def test_non_standard_width_loads_without_being_called_standard(tmp_path):
    from ssl_robustness.models.backbones import ResNet

    sd = ResNet(torchvision.models.resnet.BasicBlock, [1, 1, 1, 1], 8).state_dict()
    torch.save(sd, tmp_path / "w8.pth")
    model, report = load_backbone(tmp_path / "w8.pth")
    assert model.feature_dim == 64
    assert "arch:      custom ResNet (not a torchvision architecture)" in report.summary()


def test_solo_learn_cifar_stem_is_built_and_computes_the_same(tmp_path):
    torch.manual_seed(0)
    ref = torchvision.models.resnet18()
    ref.conv1 = torch.nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=2, bias=False)
    ref.maxpool = torch.nn.Identity()
    ref.fc = torch.nn.Identity()
    ckpt = {
        "epoch": 999,
        "global_step": 10,
        "state_dict": {f"backbone.{k}": v for k, v in ref.state_dict().items()},
    }
    torch.save(ckpt, tmp_path / "solo.ckpt")
    model, report = load_backbone(tmp_path / "solo.ckpt")
    assert report.format == "lightning"
    conv = model.conv1
    assert conv.kernel_size == (3, 3) and conv.stride == (1, 1) and conv.padding == (2, 2)
    assert isinstance(model.maxpool, torch.nn.Identity)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in model.modules())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model.eval()(x), ref.eval()(x), atol=1e-5)
    text = report.summary()
    assert "arch:      resnet18\n" in text
    assert "3x3 stem (solo-learn CIFAR): stride 1, padding 2, no max-pool" in text
