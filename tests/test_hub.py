"""Published ImageNet SSL checkpoints by name (`imported: [{weights: ...}]`), without network:
each test points a registry entry at a `file://` URL of a checkpoint it writes itself."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from conftest import tiny_study
from ssl_robustness.config import ImportedConfig, validate_config
from ssl_robustness.data.prepare import prepare_data
from ssl_robustness.errors import UserError
from ssl_robustness.models import hub
from ssl_robustness.models.backbones import backbone_from_arch
from ssl_robustness.models.checkpoints import load_backbone
from ssl_robustness.names import CHECKPOINT_FORMATS, PUBLISHED_WEIGHTS, RESNET_FORMATS
from ssl_robustness.representations import expand_representations, obtain_representation

TINY = {"block": "BasicBlock", "layers": [1, 1, 1, 1], "width": 8, "small_stem": False}
NAME = "mocov2_800ep"


def _backbone_state(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    model = backbone_from_arch(TINY)
    for p in model.parameters():  # away from the init, so equality means the file was read
        p.data.normal_()
    return {k: v.clone() for k, v in model.state_dict().items()}


def _write_moco(path: Path, sd: dict[str, torch.Tensor]) -> Path:
    """An official MoCo training file: DDP prefix, query and key encoders, MLP head, queue."""
    state = {f"module.encoder_q.{k}": v for k, v in sd.items()}
    state |= {f"module.encoder_k.{k}": v for k, v in sd.items()}
    state["module.encoder_q.fc.0.weight"] = torch.zeros(4, 64)
    state["module.queue"] = torch.zeros(4, 16)
    torch.save({"epoch": 800, "state_dict": state}, path)
    return path


def _publish(monkeypatch, tmp_path: Path, src: Path, checksum: str | None) -> None:
    monkeypatch.setenv(hub.CACHE_ENV, str(tmp_path / "cache"))
    entry = hub.Published(src.as_uri(), "moco", None, checksum, "a test file")
    monkeypatch.setitem(hub.REGISTRY, NAME, entry)


@pytest.fixture
def downloads(monkeypatch) -> list[str]:
    """The URLs torch.hub's downloader was called with."""
    calls: list[str] = []
    real = torch.hub.download_url_to_file

    def counting(url: str, dst: str, *args, **kwargs) -> None:
        calls.append(url)
        real(url, dst, *args, **kwargs)

    monkeypatch.setattr(torch.hub, "download_url_to_file", counting)
    return calls


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_weights(model: torch.nn.Module, sd: dict[str, torch.Tensor]) -> None:
    own = model.state_dict()
    assert set(own) == set(sd)
    for k, v in sd.items():
        assert torch.equal(own[k], v), k


def test_named_weights_download_once_record_a_checksum_and_load_the_written_weights(
    tmp_path, monkeypatch, downloads
):
    sd = _backbone_state()
    src = _write_moco(tmp_path / "moco_v2_800ep_pretrain.pth.tar", sd)
    _publish(monkeypatch, tmp_path, src, checksum=None)
    imp = ImportedConfig(name="moco", weights=NAME)

    model, report = hub.load_imported(imp)
    cached = tmp_path / "cache" / f"{NAME}-moco_v2_800ep_pretrain.pth.tar"
    assert report.path == str(cached) and report.format == "moco"
    assert downloads == [src.as_uri()]
    assert cached.read_bytes() == src.read_bytes()
    assert (tmp_path / "cache" / (cached.name + ".sha256")).read_text() == _sha256(src) + "\n"
    assert not (tmp_path / "cache" / (cached.name + ".part")).exists()
    _assert_weights(model, sd)

    src.unlink()  # the second use reads the cache: no download, nothing to download from
    model, _ = hub.load_imported(imp)
    assert downloads == [src.as_uri()]
    _assert_weights(model, sd)


def test_a_cached_file_changed_after_its_download_is_refused_by_name(
    tmp_path, monkeypatch, downloads
):
    src = _write_moco(tmp_path / "w.pth", _backbone_state())
    _publish(monkeypatch, tmp_path, src, checksum=None)
    cached = hub.fetch(NAME)
    recorded = _sha256(cached)
    with open(cached, "ab") as f:
        f.write(b"\0")
    with pytest.raises(UserError) as err:
        hub.fetch(NAME)
    assert str(err.value).startswith(f"{cached}: changed since it was downloaded")
    assert f"recorded {recorded}" in str(err.value)
    assert downloads == [src.as_uri()]  # refused, not silently re-downloaded


def test_a_cached_file_without_its_recorded_checksum_is_refused(tmp_path, monkeypatch):
    src = _write_moco(tmp_path / "w.pth", _backbone_state())
    _publish(monkeypatch, tmp_path, src, checksum=None)
    cached = hub.fetch(NAME)
    hub.sidecar(cached).unlink()
    with pytest.raises(UserError, match=r"no recorded checksum .*delete it to download it again"):
        hub.fetch(NAME)


def test_a_redownload_must_match_the_first_downloads_checksum(tmp_path, monkeypatch, downloads):
    src = _write_moco(tmp_path / "w.pth", _backbone_state(0))
    _publish(monkeypatch, tmp_path, src, checksum=None)
    cached = hub.fetch(NAME)
    cached.unlink()  # the sidecar stays
    _write_moco(src, _backbone_state(1))  # the publisher swapped the file
    with pytest.raises(UserError, match=r"now has sha256 [0-9a-f]{64}, not the [0-9a-f]{64}"):
        hub.fetch(NAME)
    assert len(downloads) == 2 and not cached.exists()


def test_a_wrong_published_sha256_is_refused_and_nothing_is_cached(tmp_path, monkeypatch):
    src = _write_moco(tmp_path / "w.pth", _backbone_state())
    _publish(monkeypatch, tmp_path, src, checksum="sha256:deadbeef")
    with pytest.raises(UserError, match=r"invalid hash value.*nothing was cached"):
        hub.fetch(NAME)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == []  # no lock file either


def test_the_published_sha256_prefix_is_checked_at_download_and_every_use(tmp_path, monkeypatch):
    sd = _backbone_state()
    src = _write_moco(tmp_path / "w.pth", sd)
    _publish(monkeypatch, tmp_path, src, checksum=f"sha256:{_sha256(src)[:8]}")
    cached = hub.fetch(NAME)
    assert not hub.sidecar(cached).exists()  # a published checksum needs no record
    _assert_weights(hub.load_imported(ImportedConfig(name="m", weights=NAME))[0], sd)
    cached.write_bytes(cached.read_bytes()[:-1])
    with pytest.raises(UserError, match=r"sha256 [0-9a-f]{64} does not match the published"):
        hub.fetch(NAME)


def test_a_published_md5_prefix_is_checked(tmp_path, monkeypatch):
    src = _write_moco(tmp_path / "w.pth", _backbone_state())
    md5 = hashlib.md5(src.read_bytes()).hexdigest()
    _publish(monkeypatch, tmp_path, src, checksum="md5:00000000")
    with pytest.raises(UserError, match=rf"md5 {md5} does not match the published md5:00000000"):
        hub.fetch(NAME)
    assert not hub.cached_path(NAME).exists()
    _publish(monkeypatch, tmp_path, src, checksum=f"md5:{md5[:8]}")
    assert hub.fetch(NAME).read_bytes() == src.read_bytes()


def test_unknown_names_list_the_known_ones():
    known = ", ".join(PUBLISHED_WEIGHTS)
    with pytest.raises(
        UserError, match=rf"imported\.0\.weights: .*unknown 'mocov3' \(known: {known}\)"
    ):
        validate_config({"imported": [{"name": "x", "weights": "mocov3"}]})
    with pytest.raises(UserError, match=rf"weights: unknown 'mocov3' \(known: {known}\)"):
        hub.published("mocov3")


def test_an_entry_gives_exactly_one_of_path_and_weights(tmp_path):
    ckpt = tmp_path / "w.pth"
    ckpt.write_bytes(b"x")
    for entry in ({"name": "x"}, {"name": "x", "path": str(ckpt), "weights": NAME}):
        with pytest.raises(UserError, match="exactly one of path .* and weights"):
            validate_config({"imported": [entry]})


def test_a_path_entry_dumps_as_before_weights_existed(tmp_path):
    ckpt = tmp_path / "w.pth"
    ckpt.write_bytes(b"x")
    dump = ImportedConfig(name="x", path=ckpt).model_dump(mode="json")
    assert dump == {
        "name": "x",
        "path": str(ckpt),
        "format": "auto",
        "arch": None,
        "image_size": 224,
    }
    dump = ImportedConfig(name="x", weights=NAME).model_dump(mode="json")
    assert dump == {"name": "x", "weights": NAME, "format": "auto", "arch": None, "image_size": 224}


def test_a_named_entry_is_keyed_by_its_url_and_checksum_without_a_download(tmp_path, monkeypatch):
    monkeypatch.setenv(hub.CACHE_ENV, str(tmp_path / "cache"))
    raw = tiny_study(tmp_path, imported=[{"name": "dino", "weights": "dino_resnet50"}])
    cfg = validate_config(raw)
    data = prepare_data(cfg.data, cfg.layout.data.path, cfg.evaluation, cfg.seeds)
    spec = next(s for s in expand_representations(cfg, data) if s.scenario == "SSL-ImageNet")
    assert spec.settings["published"] == {
        "url": "https://dl.fbaipublicfiles.com/dino/dino_resnet50_pretrain/dino_resnet50_pretrain.pth",
        "checksum": None,
    }
    assert "size" not in spec.settings and not (tmp_path / "cache").exists()


def test_the_registry_names_a_converter_and_an_arch_for_each_published_file():
    assert tuple(hub.REGISTRY) == PUBLISHED_WEIGHTS
    for name, entry in hub.REGISTRY.items():
        assert entry.url.startswith("https://"), name
        assert entry.format in CHECKPOINT_FORMATS, name
        assert entry.format not in RESNET_FORMATS or entry.arch == "resnet50", name
        assert entry.checksum is None or entry.checksum.split(":")[0] in ("sha256", "md5"), name
    assert hub.REGISTRY["mocov2_800ep"].checksum == "md5:a04e12f8"
    assert hub.REGISTRY["byol_200ep"].checksum == "sha256:de817331"


def test_swav_layout_loads_as_torchvision_with_its_heads_dropped(tmp_path):
    sd = _backbone_state()
    state = {f"module.{k}": v for k, v in sd.items()}
    state["module.projection_head.0.weight"] = torch.zeros(16, 64)
    state["module.prototypes.weight"] = torch.zeros(30, 16)
    torch.save(state, tmp_path / "swav.pth.tar")
    model, report = load_backbone(tmp_path / "swav.pth.tar", "torchvision")
    assert sorted(report.dropped) == ["projection_head.0.weight", "prototypes.weight"]
    _assert_weights(model, sd)


def test_an_mmselfsup_file_without_meta_reads_as_mmselfsup(tmp_path):
    sd = _backbone_state()
    state = {f"backbone.{k}": v for k, v in sd.items()} | {"neck.mlp.0.weight": torch.zeros(2, 2)}
    torch.save({"state_dict": state}, tmp_path / "byol.pth")
    model, report = load_backbone(tmp_path / "byol.pth", "mmselfsup")
    assert report.format == "mmselfsup" and report.dropped == ["neck.mlp.0.weight"]
    _assert_weights(model, sd)


def test_a_representation_imports_named_weights_once_across_runs(tmp_path, monkeypatch, downloads):
    sd = _backbone_state()
    src = _write_moco(tmp_path / "w.pth", sd)
    _publish(monkeypatch, tmp_path, src, checksum=None)
    raw = tiny_study(tmp_path, methods=[], random_init=False)
    raw["imported"] = [{"name": "moco", "weights": NAME, "image_size": 32}]
    cfg = validate_config(raw)
    data = prepare_data(cfg.data, cfg.layout.data.path, cfg.evaluation, cfg.seeds)
    (spec,) = expand_representations(cfg, data)
    for _ in range(2):  # made, then read back from its representation.json
        backbone, info = obtain_representation(spec, cfg.layout, data, torch.device("cpu"))
        _assert_weights(backbone, sd)
    assert downloads == [src.as_uri()]
    assert info["path"] == str(hub.cached_path(NAME)) and info["format"] == "moco"
    done = json.loads(spec.layout(cfg.layout).done.read_text())
    assert done["path"] == info["path"]


def test_checkpoint_inspect_takes_a_published_name(tmp_path, monkeypatch, downloads):
    from click.testing import CliRunner

    from ssl_robustness.cli import cli

    src = _write_moco(tmp_path / "moco_v2_800ep_pretrain.pth.tar", _backbone_state())
    _publish(monkeypatch, tmp_path, src, checksum=None)
    result = CliRunner().invoke(cli, ["checkpoint", "inspect", NAME])
    assert result.exit_code == 0, result.output
    assert "moco" in result.output and "load:      ok (strict)" in result.output
    assert downloads == [src.as_uri()]
    assert CliRunner().invoke(cli, ["checkpoint", "inspect", NAME]).exit_code == 0
    assert downloads == [src.as_uri()]  # fetched once
