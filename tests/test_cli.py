"""The command line as users and scripts call it: exit codes, messages, files written."""

import subprocess
import sys

import pytest
import torch
import torchvision
import yaml
from click.testing import CliRunner

from conftest import tiny_study
from ssl_robustness.cli import cli, main


def _run(args, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["ssl-robustness", *args])
    with pytest.raises(SystemExit) as exc:
        main()
        raise SystemExit(0)
    return exc.value.code, capsys.readouterr()


def test_data_stats_prints_table_and_writes_chart_and_manifests(tmp_path, monkeypatch, capsys):
    cfg = tmp_path / "study.yaml"
    cfg.write_text(yaml.safe_dump(tiny_study(tmp_path)))
    code, out = _run(["data", "stats", str(cfg)], monkeypatch, capsys)
    assert code == 0, out.err
    assert "balanced" in out.out and "exp-r0.2" in out.out and "Gini" in out.out
    data_dir = tmp_path / "study" / "data"
    assert (data_dir / "class_counts.png").stat().st_size > 1000
    assert (data_dir / "manifests" / "subset-exp-r0.2-s0.csv").exists()  # seed 0's draw
    assert (data_dir / "stats.json").exists()


def test_bad_config_value_exits_nonzero_with_key_path(tmp_path, monkeypatch, capsys):
    cfg = tmp_path / "study.yaml"
    cfg.write_text(yaml.safe_dump(tiny_study(tmp_path)))
    code, out = _run(["run", str(cfg), "--set", "data.imbalance.ratio=1.5"], monkeypatch, capsys)
    assert code == 2
    assert "data.imbalance.ratio: must be in (0, 1] (got 1.5)" in out.err
    assert not (tmp_path / "study").exists()  # nothing half-written


def test_plan_lists_runs_and_cache_state(tmp_path, monkeypatch, capsys):
    cfg = tmp_path / "study.yaml"
    cfg.write_text(yaml.safe_dump(tiny_study(tmp_path)))
    code, out = _run(["run", str(cfg), "--plan"], monkeypatch, capsys)
    assert code == 0
    assert "supervised_balanced_s0" in out.out and "todo" in out.out
    assert "5 representations, 0 cached" in out.out


def test_checkpoint_inspect_and_export(tmp_path, monkeypatch, capsys):
    path = tmp_path / "moco.pth"
    sd = torchvision.models.resnet18().state_dict()
    torch.save({"state_dict": {f"module.encoder_q.{k}": v for k, v in sd.items()}}, path)
    code, out = _run(["checkpoint", "inspect", str(path)], monkeypatch, capsys)
    assert code == 0 and "format:    moco" in out.out and "load:      ok (strict)" in out.out
    code, out = _run(
        ["checkpoint", "export", str(path), str(tmp_path / "tv.pt")], monkeypatch, capsys
    )
    assert code == 0 and (tmp_path / "tv.pt").exists()
    (tmp_path / "junk.pth").write_bytes(b"\x00" * 10)
    code, out = _run(["checkpoint", "inspect", str(tmp_path / "junk.pth")], monkeypatch, capsys)
    assert code == 2 and "junk.pth: cannot read checkpoint" in out.err


def test_help_lists_the_commands():
    result = CliRunner().invoke(cli, ["--help"])
    for command in ("run", "data", "pretrain", "evaluate", "report", "checkpoint"):
        assert command in result.output


def test_console_script_is_installed():
    out = subprocess.run(
        [sys.executable, "-m", "ssl_robustness.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "Is self-supervised learning" in out.stdout


def test_pretrain_then_evaluate_one_representation(tmp_path, monkeypatch, capsys):
    raw = tiny_study(tmp_path, methods=[{"name": "simsiam"}])
    raw["evaluation"] = {
        "linear": {"l2_grid": [1e-3]},
        "knn": {"k": [5]},
        "finetune": {"enabled": False},
    }
    cfg = tmp_path / "study.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    code, out = _run(["pretrain", str(cfg), "--method", "simsiam"], monkeypatch, capsys)
    assert code == 0, out.err
    backbone = out.out.split("backbone: ")[1].split()[0]
    sd = torch.load(backbone, weights_only=True)
    assert "conv1.weight" in sd and "layer4.0.bn2.running_var" in sd  # torchvision key names
    code, out = _run(["evaluate", str(cfg), "--method", "simsiam"], monkeypatch, capsys)
    assert code == 0, out.err
    assert "linear-balanced" in out.out and "knn-k5" in out.out and "tail" in out.out
    code, out = _run(["pretrain", str(cfg), "--method", "byol"], monkeypatch, capsys)
    assert code == 2 and "no such representation" in out.err


def _source_config(kind: str, tmp_path, image_folder) -> dict:
    """A data section per source, over files written here in that source's real layout."""
    from test_sources import _write_cifar10

    from conftest import write_image

    small = {
        "split": {"val_per_class": 1, "test_per_class": 2},
        "image_size": 8,
        "imbalance": {"profile": "natural"},
    }
    if kind == "folder":
        return {"source": "folder", "root": str(image_folder), **small}
    if kind == "agrinet":
        return {"source": "agrinet", "root": str(image_folder), **small}
    if kind == "awa2":
        base = tmp_path / "Animals_with_Attributes2"
        base.mkdir()
        (base / "classes.txt").write_text("1\tzebra\n2\tmole\n")
        for c, n in (("zebra", 12), ("mole", 8)):  # pools of 9 and 5 after val and test
            for i in range(n):
                write_image(base / "JPEGImages" / c / f"{c}_{i:04d}.jpg", i)
        return {"source": "awa2", "root": str(tmp_path), **small}
    if kind == "list":
        lines = []
        for i in range(24):  # 8 per class: a disjoint probe set leaves pretraining images
            write_image(tmp_path / "imgs" / f"{i}.png", i)
            lines.append(f"imgs/{i}.png {i % 3}")
        (tmp_path / "train.txt").write_text("\n".join(lines) + "\n")
        return {
            "source": "list",
            "root": str(tmp_path),
            "list": {"train": str(tmp_path / "train.txt")},
            **small,
        }
    if kind == "cifar10":
        _write_cifar10(tmp_path, per_batch=20)
        return {
            "source": "cifar10",
            "root": str(tmp_path),
            "image_size": 32,
            "split": {"val_per_class": 1},
            "imbalance": {"profile": "exp", "ratio": 0.5, "n": 20},
        }
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["folder", "agrinet", "awa2", "list", "cifar10"])
def test_data_stats_for_every_source(kind, tmp_path, image_folder, monkeypatch, capsys):
    raw = tiny_study(tmp_path)
    raw["data"] = _source_config(kind, tmp_path, image_folder)
    cfg = tmp_path / "study.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    code, out = _run(["data", "stats", str(cfg)], monkeypatch, capsys)
    assert code == 0, out.err
    assert "total" in out.out and "tiers (head/medium/tail): rule" in out.out
    assert (tmp_path / "study" / "data" / "stats.json").exists()


def test_read_only_data_folder_is_only_read(tmp_path, image_folder, monkeypatch, capsys):
    raw = tiny_study(tmp_path)
    raw["data"] = _source_config("folder", tmp_path, image_folder)
    cfg = tmp_path / "study.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    before = sorted(image_folder.rglob("*"))
    for p in [image_folder, *before]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        code, out = _run(["data", "stats", str(cfg)], monkeypatch, capsys)
    finally:
        for p in [image_folder, *before]:
            p.chmod(0o755 if p.is_dir() else 0o644)
    assert code == 0, out.err
    assert sorted(image_folder.rglob("*")) == before  # caches and manifests go to output_dir
    assert (tmp_path / "study" / "data" / "stats.json").exists()


def test_data_stats_over_a_finished_study_needs_its_data_settings(tmp_path, monkeypatch, capsys):
    cfg = tmp_path / "study.yaml"
    cfg.write_text(yaml.safe_dump(tiny_study(tmp_path)))
    out_dir = tmp_path / "study"
    (out_dir / "tables").mkdir(parents=True)
    (out_dir / "tables" / "results.csv").write_text("representation\nx\n")
    (out_dir / "config.yaml").write_text(cfg.read_text())
    code, out = _run(
        ["data", "stats", str(cfg), "--set", "data.imbalance.n=200"], monkeypatch, capsys
    )
    assert code == 2 and "whose data differ from this config" in out.err
    assert not (out_dir / "data").exists()
    # other settings (here the training length) do not touch data/: allowed
    code, out = _run(["data", "stats", str(cfg), "--set", "pretrain.epochs=1"], monkeypatch, capsys)
    assert code == 0, out.err
    assert (out_dir / "data" / "stats.json").exists()


def test_help_documents_the_lock_and_the_data_stats_guard():
    def text(*args: str) -> str:
        return " ".join(CliRunner().invoke(cli, [*args, "--help"]).output.split())

    stats = text("data", "stats")
    assert "--wait" in stats and "--set output_dir=<another folder>" in stats
    assert "refuses rather than overwrite that study's files" in stats
    assert "or waits for it with --wait" in text("run")
