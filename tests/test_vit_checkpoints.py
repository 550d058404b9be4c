"""Vision transformers from the SSL codebases' release formats, without network: each test builds
a tiny timm ViT with random weights and saves it as DINO, DINOv2, MAE, MoCo v3 and iBOT publish
theirs (models/vit_checkpoints.py)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

pytest.importorskip("timm")
from timm.models.vision_transformer import VisionTransformer  # noqa: E402

from conftest import tiny_study  # noqa: E402
from ssl_robustness.config import validate_config  # noqa: E402
from ssl_robustness.errors import UserError  # noqa: E402
from ssl_robustness.evaluation.finetune import LayerDecayClassifier, vit_training  # noqa: E402
from ssl_robustness.evaluation.run import evaluation_specs  # noqa: E402
from ssl_robustness.models import hub  # noqa: E402
from ssl_robustness.models.checkpoints import export_backbone, inspect_checkpoint, load_backbone  # noqa: E402
from ssl_robustness.models.vit import ViTArch, ViTBackbone  # noqa: E402
from ssl_robustness.models.vit_checkpoints import heads_for  # noqa: E402
from ssl_robustness.names import PUBLISHED_WEIGHTS, VIT_FORMATS  # noqa: E402

DIM = 64  # one head of 64, as dim / 64 says


def _vit(img: int = 32, patch: int = 16, depth: int = 2, dim: int = DIM, **kw) -> VisionTransformer:
    torch.manual_seed(0)
    model = VisionTransformer(
        img_size=img,
        patch_size=patch,
        embed_dim=dim,
        depth=depth,
        num_heads=max(1, dim // 64),
        num_classes=0,
        **kw,
    )
    with torch.no_grad():  # away from the init (zero tokens, unit norms), so equality means read
        for p in model.parameters():
            p.normal_(0, 0.2)
    return model.eval()


def _heads(prefix: str) -> dict[str, torch.Tensor]:
    return {
        f"{prefix}mlp.0.weight": torch.zeros(8, DIM),
        f"{prefix}last_layer.weight": torch.zeros(4, 8),
    }


def _save(path: Path, obj) -> Path:
    torch.save(obj, path)
    return path


def _files(tmp_path: Path, sd: dict[str, torch.Tensor], *only: str) -> dict[str, tuple[str, Path]]:
    """(the format `auto` should find, the file) of each release layout of `sd` (timm key
    names), or of those named in `only`."""
    return {
        case: (fmt, _save(tmp_path / f"{case}.pth", obj))
        for case, (fmt, obj) in _layouts(sd).items()
        if not only or case in only
    }


def _layouts(sd: dict[str, torch.Tensor]) -> dict[str, tuple[str, Any]]:
    bb = {f"backbone.{k}": v for k, v in sd.items()}
    args = argparse.Namespace(arch="vit_small", patch_size=16)  # DINO and iBOT save their options
    return {
        "dino_bare": ("dino", sd),
        "dino_full": (
            "dino",
            {
                "teacher": {**bb, **_heads("head.")},
                "student": {f"module.{k}": v for k, v in {**bb, **_heads("head.")}.items()},
                "optimizer": {"state": {}, "param_groups": []},
                "epoch": 100,
                "args": args,
            },
        ),
        "ibot_full": (
            "ibot",
            {
                "teacher": {**bb, **_heads("head."), "head.last_layer2.weight": torch.zeros(4, 8)},
                "student": {f"module.{k}": v for k, v in bb.items()},
                "args": args,
            },
        ),
        "ibot_backbone": ("ibot", {"state_dict": sd}),
        "mae": (
            "mae",
            {
                "model": {
                    **sd,
                    "mask_token": torch.zeros(1, 1, 32),
                    "decoder_embed.weight": torch.zeros(32, DIM),
                    "decoder_blocks.0.norm1.weight": torch.zeros(32),
                    "decoder_pred.weight": torch.zeros(768, 32),
                }
            },
        ),
        "mocov3": (
            "mocov3",
            {
                "epoch": 300,
                "arch": "vit_base",
                "state_dict": {
                    **{f"module.base_encoder.{k}": v for k, v in sd.items()},
                    **_heads("module.base_encoder.head."),
                    **{f"module.momentum_encoder.{k}": v for k, v in sd.items()},
                    "module.predictor.0.weight": torch.zeros(8, 8),
                },
            },
        ),
        "timm_with_classifier": ("dino", {**sd, "head.weight": torch.zeros(10, DIM)}),
    }


@pytest.mark.parametrize(
    "case",
    [
        "dino_bare",
        "dino_full",
        "ibot_full",
        "ibot_backbone",
        "mae",
        "mocov3",
        "timm_with_classifier",
    ],
)
def test_each_release_layout_loads_strictly_and_computes_the_same(tmp_path, case):
    ref = _vit()
    sd = ref.state_dict()
    fmt, path = _files(tmp_path, sd, case)[case]
    model, report = load_backbone(path)
    assert report.format == fmt and isinstance(model, ViTBackbone)
    own = model.model.state_dict()
    assert set(own) == set(sd) and all(torch.equal(own[k], v) for k, v in sd.items())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), ref.forward_features(x)[:, 0], atol=1e-6)
    assert not any(k.startswith(("backbone.", "base_encoder.")) for k in report.state_dict)


def test_dropped_parts_are_named(tmp_path):
    files = _files(tmp_path, _vit().state_dict(), "dino_full", "mae", "mocov3")
    summary = inspect_checkpoint(files["dino_full"][1]).summary()
    assert "student.* (32)" in summary and "teacher.* (2)" in summary
    mae = inspect_checkpoint(files["mae"][1])
    assert "MAE encoder (decoder dropped)" in mae.words()
    assert sorted(mae.dropped)[:2] == ["decoder_blocks.0.norm1.weight", "decoder_embed.weight"]
    moco = inspect_checkpoint(files["mocov3"][1])
    assert {k.split(".")[0] for k in moco.dropped} == {"head", "momentum_encoder", "predictor"}


def _dinov2_hub(model: VisionTransformer, registers: int) -> dict[str, torch.Tensor]:
    """torch.hub's DINOv2 layout: position embeddings over class token and patches, registers
    apart as `register_tokens`, an unused `mask_token`, layer-scale gammas."""
    sd = dict(model.state_dict())
    sd["mask_token"] = torch.zeros(1, DIM)
    if registers:
        sd["register_tokens"] = torch.randn(1, registers, DIM)
    return sd


def _dinov2_reference(backbone: ViTBackbone, sd: dict, x: torch.Tensor) -> torch.Tensor:
    """DINOv2's own order of operations: [cls, patches] + pos, then registers after cls."""
    m = backbone.model
    t = m.patch_embed(x)
    t = torch.cat([sd["cls_token"].expand(len(x), -1, -1), t], 1) + sd["pos_embed"]
    if "register_tokens" in sd:
        regs = sd["register_tokens"].expand(len(x), -1, -1)
        t = torch.cat([t[:, :1], regs, t[:, 1:]], 1)
    for block in m.blocks:
        t = block(t)
    return m.norm(t)[:, 0]


@pytest.mark.parametrize("registers", [0, 4])
def test_dinov2_hub_files_with_layer_scale_and_registers_compute_as_dinov2(tmp_path, registers):
    sd = _dinov2_hub(_vit(img=28, patch=14, init_values=1e-5), registers)
    path = _save(tmp_path / "dinov2.pth", sd)
    model, report = load_backbone(path)
    assert report.format == "dinov2" and report.vit.layer_scale and report.vit.patch == 14
    assert report.vit.registers == registers and report.dropped == ["mask_token"]
    assert ("4 registers" in report.words()) == bool(registers)
    x = torch.randn(2, 3, 28, 28)
    with torch.no_grad():
        assert torch.allclose(model(x), _dinov2_reference(model, sd, x), atol=1e-5)
    export_backbone(report, tmp_path / "exported.pth")  # timm's layout, registers folded
    again, back = load_backbone(tmp_path / "exported.pth")
    # without registers the two layouts are the same keys
    layout = "timm layout, 4 registers" if registers else "torch.hub layout"
    assert back.words().endswith(f"DINOv2 ({layout})")
    with torch.no_grad():
        assert torch.equal(again(x), model(x))


def test_inspect_names_the_architecture_in_words(tmp_path):
    ref = _vit(img=32, depth=12, dim=384)  # a ViT-S/16 at 32 px: the words of the real one
    files = _files(tmp_path, ref.state_dict(), "dino_full", "mocov3", "dino_bare")
    report = inspect_checkpoint(files["dino_full"][1])
    assert (
        report.words()
        == "ViT-S/16, 12 blocks, dim 384, DINO teacher (of a full training checkpoint)"
    )
    assert report.vit.heads == 6
    moco = inspect_checkpoint(files["mocov3"][1])
    assert moco.words() == "ViT-S/16, 12 blocks, dim 384, MoCo v3 base encoder"
    assert moco.vit.heads == 12  # MoCo v3's ViT-S, whatever its arch field says
    assert inspect_checkpoint(files["dino_bare"][1], "dino").words().endswith("DINO backbone")
    auto = inspect_checkpoint(files["dino_bare"][1]).words()
    assert auto.endswith("plain ViT keys bare (the layout of DINO's backbone files)")


def test_heads_and_size_names():
    assert heads_for(384, "dino", None) == 6 and heads_for(384, "mocov3", None) == 12
    assert heads_for(768, "mocov3", "vit_base") == 12 and heads_for(1024, "mae", None) == 16
    assert ViTArch(14, 768, 12, 12, 3072, 37).words() == "ViT-B/14, 12 blocks, dim 768"


def test_a_partial_load_is_refused_with_the_keys_named(tmp_path):
    sd = dict(_vit().state_dict())
    del sd["blocks.1.attn.proj.weight"]
    sd["blocks.0.attn.extra"] = torch.zeros(3)
    with pytest.raises(UserError, match=r"1 missing key\(s\) \['blocks.1.attn.proj.weight'\]") as e:
        load_backbone(_save(tmp_path / "p.pth", sd))
    assert "['blocks.0.attn.extra']" in str(e.value)


def test_a_standard_vit_with_a_block_missing_is_refused_not_loaded_smaller(tmp_path):
    sd = _vit(depth=12, dim=384).state_dict()
    short = {k: v for k, v in sd.items() if not k.startswith("blocks.11.")}
    with pytest.raises(UserError, match=r"blocks \[11\] missing .* no blocks.11"):
        load_backbone(_save(tmp_path / "s.pth", short))


def test_a_wrong_format_or_architecture_is_refused(tmp_path):
    files = _files(tmp_path, _vit().state_dict(), "mocov3", "dino_bare")
    with pytest.raises(UserError, match="looks like MoCo v3"):
        load_backbone(files["mocov3"][1], "dino")
    with pytest.raises(UserError, match="holds a vision transformer"):
        load_backbone(files["dino_bare"][1], "moco")
    with pytest.raises(UserError, match="not ViT-B/16"):
        load_backbone(files["dino_bare"][1], "dino", "ViT-B/16")
    with pytest.raises(UserError, match="no vision-transformer weights"):
        load_backbone(_save(tmp_path / "r.pth", {"conv1.weight": torch.zeros(8, 3, 7, 7)}), "mae")


def test_a_224_model_at_160_px_has_the_tokens_of_160_px(tmp_path):
    ref = _vit(img=224, depth=1)
    model, report = load_backbone(_save(tmp_path / "v.pth", ref.state_dict()))
    assert report.vit.trained_size == 224 and model.tokens == 14 * 14 + 1
    model.set_input_size(160)
    assert model.input_size == 160 and model.tokens == 10 * 10 + 1
    with torch.no_grad():
        tokens = model.model.forward_features(torch.randn(1, 3, 160, 160))
    assert tokens.shape == (1, 101, DIM) and model.model.pos_embed.shape == (1, 101, DIM)
    with pytest.raises(UserError, match="not a multiple of the patch size 16: use 160 or 176"):
        model.set_input_size(161)


def test_each_feature_choice_has_its_dimension_and_meaning(tmp_path):
    sd = _dinov2_hub(_vit(img=28, patch=14, depth=5, init_values=1e-5), registers=4)
    model, _ = load_backbone(_save(tmp_path / "v.pth", sd))
    x = torch.randn(3, 3, 28, 28)
    with torch.no_grad():
        tokens = model.model.forward_features(x)  # cls, 4 registers, 4 patches
        out = {}
        for choice in ("cls", "mean", "dino"):
            model.choose(choice)
            out[choice] = model(x)
            assert out[choice].shape == (3, model.feature_dim)
    assert model.feature_dim == 5 * DIM  # class tokens of the last 4 blocks + mean patch token
    assert torch.equal(out["cls"], tokens[:, 0])
    assert torch.allclose(out["mean"], tokens[:, 5:].mean(1))  # registers left out
    assert torch.allclose(out["dino"][:, 3 * DIM : 4 * DIM], out["cls"], atol=1e-6)
    assert torch.allclose(out["dino"][:, 4 * DIM :], out["mean"], atol=1e-6)
    with pytest.raises(UserError, match="unknown 'avg'"):
        model.choose("avg")


def test_feature_choice_keys_the_representation_and_resnet_keys_stay(tmp_path):
    from ssl_robustness.config import ImportedConfig

    path = _save(tmp_path / "v.pth", _vit().state_dict())
    plain = ImportedConfig(name="v", path=path).model_dump(mode="json")
    assert "features" not in plain  # as before the field existed: ResNet keys unchanged
    assert ImportedConfig(name="v", path=path, features="cls").model_dump(mode="json") == plain
    assert ImportedConfig(name="v", path=path, features="dino").model_dump()["features"] == "dino"


def test_vit_fine_tuning_uses_adamw_with_layer_decay_and_resnets_keep_their_keys():
    cfg = validate_config(tiny_study(Path("/nonexistent")))
    specs = evaluation_specs(cfg.evaluation)
    ft = next(s for s in specs if s.kind == "finetune")
    assert "vit" not in ft.key  # a ResNet's fine-tuning key is as before
    vit = next(s for s in evaluation_specs(cfg.evaluation, vit=True) if s.kind == "finetune")
    assert vit.key["vit"] == {
        "lr": 5e-4,
        "layer_decay": 0.65,
        "weight_decay": 0.05,
        "warmup_epochs": 0.5,
    }
    train = vit_training(cfg.pretrain.model_copy(update={"batch_size": 128}), vit.settings.vit)
    assert train.optimizer.name == "adamw" and train.optimizer.lr == pytest.approx(2.5e-4)
    a = ViTArch(16, DIM, 2, 1, 4 * DIM, 2)
    from ssl_robustness.models.vit import build_vit

    backbone = ViTBackbone(build_vit(a), a.record(), 16)
    groups = backbone.layer_groups(0.5, 0.05)
    by_name = {id(p): n for n, p in backbone.model.named_parameters()}
    mult = {by_name[id(p)]: (g["lr_mult"], g["weight_decay"]) for g in groups for p in g["params"]}
    assert mult["pos_embed"] == (0.125, 0.0) and mult["patch_embed.proj.weight"] == (0.125, 0.05)
    assert mult["blocks.0.attn.qkv.weight"] == (0.25, 0.05)
    assert mult["blocks.1.norm1.bias"] == (0.5, 0.0) and mult["norm.weight"] == (1.0, 0.0)
    assert len(mult) == len(list(backbone.model.parameters()))
    assert issubclass(LayerDecayClassifier, torch.nn.Module)


def test_the_feature_pass_batches_vit_b_at_224_into_a_few_gib():
    from ssl_robustness.models.vit import FEATURE_PASS_BUDGET, build_vit

    b16 = ViTArch(16, 768, 12, 12, 3072, 14)
    with torch.device("meta"):  # the structure only, no 86M weights drawn
        backbone = ViTBackbone(build_vit(b16), b16.record(), 16)
    assert backbone.tokens == 197 and 100 <= backbone.feature_batch() <= 300
    assert FEATURE_PASS_BUDGET == 2 * 1024**3


def test_published_vits_are_registered_with_their_formats():
    for name in ("dino_vits16", "dinov2_vitb14_reg", "mae_vitb16", "mocov3_vits", "ibot_vitb16"):
        assert name in PUBLISHED_WEIGHTS
        entry = hub.REGISTRY[name]
        assert entry.format in VIT_FORMATS and entry.arch.startswith("ViT-"), name
        assert entry.url.startswith("https://") and entry.checksum is None, name
    assert hub.REGISTRY["dinov2_vits14_reg"].url.endswith("dinov2_vits14_reg4_pretrain.pth")
    assert "LVD-142M" in hub.REGISTRY["dinov2_vitb14"].source


def test_a_linear_probe_and_fine_tuning_on_a_tiny_vit_in_a_tiny_study(tmp_path):
    from ssl_robustness.data.prepare import prepare_data
    from ssl_robustness.evaluation.run import evaluate_representation
    from ssl_robustness.representations import expand_representations, obtain_representation

    teacher = {f"backbone.{k}": v for k, v in _vit().state_dict().items()}
    path = _save(tmp_path / "vit.pth", {"teacher": teacher})
    raw = tiny_study(tmp_path, methods=[], random_init=False)
    raw["imported"] = [{"name": "vit", "path": str(path), "image_size": 16, "features": "dino"}]
    raw["evaluation"]["knn"] = {"enabled": False}
    raw["evaluation"]["linear"]["max_iter"] = 30
    raw["evaluation"]["finetune"]["train_on"] = ["imbalanced"]  # one fine-tuning run
    cfg = validate_config(raw)
    data = prepare_data(cfg.data, cfg.layout.data.path, cfg.evaluation, cfg.seeds)
    (spec,) = expand_representations(cfg, data)
    assert spec.settings["imported"]["features"] == "dino"  # in the representation's key
    cpu = torch.device("cpu")
    backbone, info = obtain_representation(spec, cfg.layout, data, cpu)
    assert isinstance(backbone, ViTBackbone) and backbone.input_size == 16
    assert backbone.feature_dim == 3 * DIM and info["arch"]["vit"]["depth"] == 2
    rep_dir = spec.layout(cfg.layout).path
    done = {
        job.spec.name: (out, metrics)
        for job, out, metrics in evaluate_representation(
            backbone, data, cfg.evaluation, rep_dir, 0, cpu, image_size=16
        )
    }
    assert set(done) == {"linear-balanced", "finetune-imbalanced"}
    feats = np.load(rep_dir / "features" / "test.npy")
    assert feats.shape == (len(data.indices("test")), 3 * DIM)
    ft_dir = done["finetune-imbalanced"][0]
    assert "vit" in json.loads((ft_dir / "metrics.json").read_text())["settings"]
    first = (ft_dir / "steps.csv").read_text().splitlines()[1].split(",")
    assert 0 < float(first[3]) <= 5e-4 * 64 / 256  # AdamW's scaled rate, not SGD's lr 0.05


def test_the_plan_prices_an_imported_vit_by_its_own_network(tmp_path):
    from ssl_robustness.data.prepare import list_data
    from ssl_robustness.plan import imported_costs, plan_lines, plan_rows

    path = _save(tmp_path / "vit.pth", _vit().state_dict())
    raw = tiny_study(tmp_path, methods=[], random_init=False)
    raw["imported"] = [{"name": "vit", "path": str(path), "image_size": 32}]
    cfg = validate_config(raw)
    data = list_data(cfg.data, cfg.layout.data.path, cfg.evaluation)
    (cost,) = imported_costs(cfg, data, torch.device("cpu"))
    n_val, n_test = len(data.indices("val")), len(data.indices("test"))
    subsets = data.draw(0)
    fits = [subsets.subsets[p.name] for p in subsets.matched_plans]  # finetune-own, fixed rep
    # linear: probe, val, test; kNN: the same probe and test; each fine-tuning: val per epoch, test
    assert cost.frozen == len(data.probe_balanced) + n_val + n_test + len(fits) * (n_val + n_test)
    assert cost.trained == sum(len(i) // min(64, len(i)) * min(64, len(i)) for i in fits)
    assert cost.speed.words == "ViT/16, 2 blocks, dim 64 at 32 px"
    assert cost.speed.forward_per_s > 0 and cost.speed.train_per_s > 0
    lines = plan_lines(cfg, plan_rows(cfg, data), None, [cost])
    assert "0 image passes to go (SSL-ImageNet apart, below)" in lines[-2]
    assert lines[-1].startswith(f"SSL-ImageNet vit: {cost.frozen:,} frozen and {cost.trained:,}")


def test_a_published_vit_is_timed_without_a_download(tmp_path, monkeypatch):
    from ssl_robustness.config import ImportedConfig

    monkeypatch.setattr(hub, "fetch", lambda name: pytest.fail(f"fetched {name}"))
    with torch.device("meta"):  # the structure only
        net, words = hub.imported_architecture(
            ImportedConfig(name="m", weights="mocov3_vits", image_size=160, features="mean")
        )
        reg, _ = hub.imported_architecture(ImportedConfig(name="d", weights="dinov2_vits14_reg"))
    assert words == "ViT-S/16, 12 blocks, dim 384" and net.tokens == 101
    assert net.model.blocks[0].attn.num_heads == 12 and net.features == "mean"
    assert reg.tokens == 16 * 16 + 1 + 4  # 224 px in patches of 14, class and 4 registers


def test_checkpoint_inspect_says_what_the_vit_is(tmp_path):
    from click.testing import CliRunner

    from ssl_robustness.cli import cli

    sd = {f"backbone.{k}": v for k, v in _vit().state_dict().items()}
    path = _save(tmp_path / "dino.pth", {"teacher": sd, "args": argparse.Namespace(lr=0.1)})
    result = CliRunner().invoke(cli, ["checkpoint", "inspect", str(path)])
    assert result.exit_code == 0, result.output
    assert "arch:      ViT/16, 2 blocks, dim 64, DINO teacher" in result.output
    assert "load:      ok (strict)" in result.output


def test_nan_weights_in_a_vit_are_refused_by_the_strict_loader(tmp_path):
    sd = dict(_vit().state_dict())
    sd["blocks.0.attn.qkv.weight"] = sd["blocks.0.attn.qkv.weight"].clone()
    sd["blocks.0.attn.qkv.weight"][0, 0] = float("nan")
    with pytest.raises(UserError, match="NaN or infinite"):
        load_backbone(_save(tmp_path / "nan.pth", sd))


def test_an_imported_resnet_is_timed_as_the_network_its_keys_name(tmp_path):
    import torchvision

    from ssl_robustness.config import ImportedConfig

    path = _save(tmp_path / "r18.pth", torchvision.models.resnet18().state_dict())
    net, words = hub.imported_architecture(ImportedConfig(name="r", path=path))
    assert words == "resnet18" and net.feature_dim == 512
