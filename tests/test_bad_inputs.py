"""Every bad input ends in `error: ...` naming the fault, exit status 2, no traceback, and
before any training: one row per input (configs, --set values, arguments, data layouts)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from conftest import tiny_study, write_image
from ssl_robustness.cli import cli
from ssl_robustness.lock import LOCK_NAME
from ssl_robustness.study import run_study as REAL_RUN_STUDY

Builder = Callable[[Path, pytest.MonkeyPatch], list[str]]
DROP = object()  # a change that removes the key


def _write_config(tmp: Path, changes: dict | None = None, text: str | None = None) -> str:
    """tiny_study with dotted-key changes (or raw text) written to tmp/study.yaml."""
    path = tmp / "study.yaml"
    if text is not None:
        path.write_text(text)
        return str(path)
    raw = tiny_study(tmp)
    for key, value in (changes or {}).items():
        node = raw
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        if value is DROP:
            node.pop(last, None)
        else:
            node[last] = value
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def cfg(command: str = "run", **changes) -> Builder:
    """A case: `command` on tiny_study with changes (keys use __ for dots)."""
    dotted = {k.replace("__", "."): v for k, v in changes.items()}
    return lambda tmp, mp: [*command.split(), _write_config(tmp, dotted)]


def text(body: str, command: str = "run") -> Builder:
    return lambda tmp, mp: [*command.split(), _write_config(tmp, text=body)]


def sets(*items: str, command: str = "run") -> Builder:
    """A case: valid tiny_study with --set items."""
    return lambda tmp, mp: [
        *command.split(),
        _write_config(tmp),
        *[x for item in items for x in ("--set", item)],
    ]


def _no_device(name: str) -> Builder:
    def build(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
        import torch

        mp.setattr(torch.cuda, "is_available", lambda: False)
        mp.setattr(torch.backends.mps, "is_available", lambda: False)
        return ["run", _write_config(tmp, {"device": name})]

    return build


def _imported_arch(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
    (tmp / "w.pt").write_bytes(b"x")
    entry = {"name": "in1k", "path": str(tmp / "w.pt"), "arch": "bogus"}
    return ["run", _write_config(tmp, {"imported": [entry]})]


def _folder(classes: dict[str, int], split: str = "") -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        root = tmp / "imgs"
        root.mkdir(exist_ok=True)
        for name, n in classes.items():
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                write_image(root / split / name / f"{i}.png", i, size=8)
        return root

    return make


def data_layout(make: Callable[[Path], Path], command: str = "data stats", **data) -> Builder:
    """A case: `command` on a folder/list/npz source the test writes."""

    def build(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
        root = make(tmp)
        section = {
            "source": "folder",
            "root": str(root),
            "image_size": 8,
            "split": {"val_per_class": 1, "test_per_class": 1},
            "imbalance": {"profile": "natural"},
            **data,
        }
        return [*command.split(), _write_config(tmp, {"data": section})]

    return build


def _list_files(lines: list[str]) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        for i in range(4):
            write_image(tmp / "l" / f"{i}.png", i, size=8)
        (tmp / "train.txt").write_text("\n".join(lines) + "\n")
        return tmp

    return make


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _list_source(lines: list[str]) -> Builder:
    return lambda tmp, mp: data_layout(
        _list_files(lines), source="list", list={"train": str(tmp / "train.txt")}
    )(tmp, mp)


def _list_with(name: str, text: str, classes: str | None = None, **lst: object) -> Builder:
    """A case: `data stats` on source list, one file `name` holding `text` (4 images in l/,
    and a classes file when given)."""

    def build(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
        def make(tmp: Path) -> Path:
            for i in range(4):
                write_image(tmp / "l" / f"{i}.png", i, size=8)
            (tmp / name).write_text(text, encoding="utf-8")
            if classes is not None:
                (tmp / "classes.txt").write_text(classes)
            return tmp

        section = {"train": str(tmp / name), **lst}
        if classes is not None:
            section["classes"] = str(tmp / "classes.txt")
        return data_layout(make, source="list", list=section)(tmp, mp)

    return build


def _bad_npz(tmp: Path) -> Path:
    np.savez(tmp / "x.npz", train_images=np.zeros((2, 4, 4), np.uint8))
    return tmp / "x.npz"


def _output_is_file(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
    (tmp / "taken").write_text("a file")
    return ["run", _write_config(tmp, {"output_dir": str(tmp / "taken")})]


def _output_below_file(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
    (tmp / "taken").write_text("a file")
    return ["data", "stats", _write_config(tmp, {"output_dir": str(tmp / "taken" / "sub")})]


def _unwritable(command: str) -> Builder:
    """No write permission, simulated (tests may run as root, who may write anywhere)."""

    def build(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
        import ssl_robustness.cli as cli_module

        real = os.access
        mp.setattr(
            cli_module.os,
            "access",
            lambda p, mode: False if Path(p) == tmp and mode & os.W_OK else real(p, mode),
        )
        return [*command.split(), _write_config(tmp, {"output_dir": str(tmp / "out")})]

    return build


def _report_without_tables(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
    run_dir = tmp / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(yaml.safe_dump(tiny_study(tmp)))
    return ["report", str(run_dir)]


def _export_to_folder(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
    import torch
    from torchvision.models import resnet as tv

    from ssl_robustness.models.backbones import ResNet

    torch.save(ResNet(tv.BasicBlock, [1, 1, 1, 1], 4, True).state_dict(), tmp / "tiny.pt")
    (tmp / "folder").mkdir()
    return ["checkpoint", "export", str(tmp / "tiny.pt"), str(tmp / "folder")]


def _tiny_resnet_state() -> dict:
    from torchvision.models import resnet as tv

    from ssl_robustness.models.backbones import ResNet

    return ResNet(tv.BasicBlock, [1, 1, 1, 1], 4, True).state_dict()


def _export(make: Callable[[], object], name: str = "w.pt") -> Builder:
    """A case: `checkpoint export` of a file holding what `make` returns (bytes: written)."""

    def build(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
        import torch

        obj = make()
        if isinstance(obj, bytes):
            (tmp / name).write_bytes(obj)
        else:
            torch.save(obj, tmp / name)
        return ["checkpoint", "export", str(tmp / name), str(tmp / "out.pt")]

    return build


def _with(key: str, value: object) -> Callable[[], dict]:
    def make() -> dict:
        return {**_tiny_resnet_state(), key: value() if callable(value) else value}

    return make


def _with_arch(**record: object) -> Callable[[], dict]:
    arch = {"block": "BasicBlock", "layers": [1, 1, 1, 1], "width": 4, "small_stem": True}
    return lambda: {"arch": {**arch, **record}, "state_dict": _tiny_resnet_state()}


def _vgg_features() -> dict:
    from torch import nn

    return nn.Sequential(nn.Conv2d(3, 64, 3), nn.ReLU(), nn.Conv2d(64, 64, 3)).state_dict()


def _nan_weights() -> dict:
    sd = _tiny_resnet_state()
    sd["layer1.0.conv1.weight"][0, 0, 0, 0] = float("nan")
    return sd


def _four_conv_cnn(head: str = "projection_head"):  # noqa: ANN202 - an nn.Module
    """A 4-conv CNN with an SSL projection head: an architecture the tool does not know."""
    from torch import nn

    net = nn.Module()
    net.conv1, net.bn1 = nn.Conv2d(3, 32, 3), nn.BatchNorm2d(32)
    net.conv2, net.conv3, net.conv4 = (
        nn.Conv2d(32, 64, 3),
        nn.Conv2d(64, 128, 3),
        nn.Conv2d(128, 256, 3),
    )
    setattr(net, head, nn.Sequential(nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 64)))
    return net


def _small_vit() -> dict:
    from ssl_robustness.models.vit import ViTArch, build_vit

    return build_vit(
        ViTArch(patch=16, dim=64, depth=2, heads=1, mlp_hidden=128, grid=2)
    ).state_dict()


def _inspect(make: Callable[[], object], *args: str) -> Builder:
    """A case: `checkpoint inspect` of a file holding what `make` returns, with `args`."""

    def build(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
        import torch

        torch.save(make(), tmp / "w.pt")
        return ["checkpoint", "inspect", str(tmp / "w.pt"), *args]

    return build


def _report_on_cut_table(cut: Callable[[str], str]) -> Builder:
    """A case: `report` on a run directory whose tables/results.csv was cut by `cut`."""

    def build(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
        run_dir = tmp / "run"
        (run_dir / "tables").mkdir(parents=True)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(tiny_study(tmp)))
        whole = "representation,method,top1\nsimclr_s0,simclr,0.61\nsupervised_s0,supervised,0.7\n"
        (run_dir / "tables" / "results.csv").write_text(cut(whole))
        return ["report", str(run_dir)]

    return build


def _stats_over_finished_study(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
    out = tmp / "study"
    (out / "tables").mkdir(parents=True)
    (out / "tables" / "results.csv").write_text("representation\nx\n")
    (out / "config.yaml").write_text(yaml.safe_dump(tiny_study(tmp)))
    return ["data", "stats", _write_config(tmp), "--set", "data.imbalance.ratio=0.5"]


def _latin1(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
    (tmp / "l1.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    return ["run", str(tmp / "l1.yaml")]


BOMB = (
    "a: &a [x, x, x, x, x, x, x, x, x]\n"
    + "".join(
        f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n"
        for a, b in zip("abcdefg", "bcdefgh", strict=True)
    )
    + f"seeds: [{', '.join(['*h'] * 9)}]\n"
)  # 9**9 strings from 1 kB
NESTED_BOMB = "data:\n  classes:\n    include:\n      - &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"      - &{b} [{', '.join([f'*{a}'] * 9)}]\n"
    for a, b in zip("abcdefg", "bcdefgh", strict=True)
)


def _npz(**arrays: np.ndarray) -> Callable[[Path], Path]:
    """An npz of 6 train and 4 test 8x8 images (2 classes) with arrays changed or added."""

    def make(tmp: Path) -> Path:
        base = {
            "train_images": np.zeros((6, 8, 8, 3), np.uint8),
            "train_labels": np.array([0, 1, 0, 1, 0, 1]),
            "test_images": np.zeros((4, 8, 8, 3), np.uint8),
            "test_labels": np.array([0, 1, 0, 1]),
        }
        np.savez(tmp / "x.npz", **{**base, **arrays})
        return tmp / "x.npz"

    return make


def _self_link(tmp: Path) -> Path:
    root = _folder({"ant": 3, "bee": 3})(tmp)
    (root / "ant" / "loop.png").symlink_to("loop.png")  # points to itself
    return root


def _latin1_list(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
    def make(tmp: Path) -> Path:
        for i in range(4):
            write_image(tmp / "l" / f"{i}.png", i, size=8)
        (tmp / "train.txt").write_bytes("l/0.png 0\nl/1.png 1\nl/caf\xe9.png 0\n".encode("latin-1"))
        return tmp

    return data_layout(make, source="list", list={"train": str(tmp / "train.txt")})(tmp, mp)


def _offline(mp: pytest.MonkeyPatch) -> None:
    """No network: every urlopen (torchvision's and torch.hub's own binding) fails as a
    machine without DNS does."""
    import urllib.error
    import urllib.request

    import torch.hub

    def refuse(*args, **kwargs):
        raise urllib.error.URLError(OSError(-3, "Temporary failure in name resolution"))

    mp.setattr(urllib.request, "urlopen", refuse)
    mp.setattr(torch.hub, "urlopen", refuse)


def _offline_source(source: str) -> Builder:
    """A case: `data stats` on a CIFAR source to download into an empty folder, offline."""

    def build(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
        _offline(mp)
        (tmp / "cifar").mkdir()
        section = {"source": source, "root": str(tmp / "cifar"), "download": True}
        return ["data", "stats", _write_config(tmp, {"data": section})]

    return build


def _offline_weights(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
    _offline(mp)
    (tmp / "cache").mkdir()
    mp.setenv("SSL_ROBUSTNESS_CACHE", str(tmp / "cache"))
    return ["checkpoint", "inspect", "mocov2_800ep"]


CIFAR10_OFFLINE = (
    r"cannot download CIFAR-10 from https://www\.cs\.toronto\.edu/~kriz/cifar-10-python\.tar\.gz: "
    r"\[Errno -3\] Temporary failure in name resolution\. Place cifar-10-python\.tar\.gz "
    r"\(170 MB.*md5 c58f30108f718f92721af3b95e74349a\) in \S+/cifar by hand"
)


def _damaged(kind: str) -> Callable[[bytes], bytes]:
    """Bytes of a damaged .npz from a whole one's: empty, cut in half, or noise."""
    return {
        "zero-byte": lambda whole: b"",
        "truncated": lambda whole: whole[: len(whole) // 2],
        "random bytes": lambda whole: np.random.default_rng(0).bytes(len(whole)),
    }[kind]


def _damaged_npz(kind: str) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        path = _npz()(tmp)
        path.write_bytes(_damaged(kind)(path.read_bytes()))
        return path

    return make


def _damaged_subset_cache(kind: str) -> Callable[[Path], Path]:
    """A cifar10_subset cache folder whose npz is damaged (its record intact)."""

    def make(tmp: Path) -> Path:
        root = tmp / "subset"
        root.mkdir()
        path = _npz()(tmp).rename(root / "cifar10_subset.npz")
        path.write_bytes(_damaged(kind)(path.read_bytes()))
        (root / "cifar10_subset.json").write_text('{"content_sha256": "ab12"}')
        return root

    return make


CASES: list[tuple[str, Builder, str]] = [
    # -- the config file itself
    ("missing file", lambda t, m: ["run", str(t / "nope.yaml")], r"nope\.yaml: config file not"),
    ("config is a folder", lambda t, m: ["run", str(t)], r": is a folder, not a config file"),
    ("not UTF-8", _latin1, r"l1\.yaml:1: not UTF-8 text \(byte 0xe9"),
    ("YAML syntax", text("name: x\ndata: [digits\n"), r"study\.yaml:\d+: not valid YAML"),
    (
        "duplicate top key",
        text("name: a\nseeds: [0]\nseeds: [1]\n"),
        r"study\.yaml:3: .*duplicate key 'seeds' \(first set on line 2\)",
    ),
    (
        "duplicate nested key",
        text("data:\n  image_size: 8\n  split: {seed: 1}\n  image_size: 16\n"),
        r"study\.yaml:4: .*duplicate key 'image_size' \(first set on line 2\)",
    ),
    ("not a mapping", text("- a\n- b\n"), r"must be a mapping of keys, got list"),
    (  # the key was not named: in a long config, where is it?
        "alias bomb",
        text(BOMB),
        r"study\.yaml:6: f\.0: the alias \*e expands the config past 100000 values",
    ),
    (
        "alias bomb in a nested key",
        text(NESTED_BOMB),
        r"study\.yaml:\d+: data\.classes\.include\.5\.0: the alias \*e expands the config past",
    ),
    ("empty config", text(""), r"study\.yaml: the config file is empty \(or only comments\)"),
    ("comment-only config", text("# name: x\n\n"), r"study\.yaml: the config file is empty"),
    # -- values that would only fail later, or run as something else
    ("epochs: true", cfg(pretrain__epochs=True), r"pretrain\.epochs: true/false is a boolean"),
    ("seeds: [true]", cfg(seeds=[True]), r"seeds: true/false is a boolean, .*\[True\]"),
    ("method k: false", cfg(evaluation__knn__k=[False]), r"evaluation\.knn\.k: true/false"),
    ("lr inf", cfg(pretrain__optimizer__lr=float("inf")), r"optimizer\.lr: .*finite number"),
    ("decay inf", cfg(pretrain__optimizer__weight_decay=float("inf")), r"weight_decay: .*finite"),
    ("warmup inf", cfg(pretrain__warmup_epochs=float("inf")), r"warmup_epochs: .*finite number"),
    ("exponent nan", cfg(data__imbalance__exponent=float("nan")), r"exponent: .*finite number"),
    ("ratio 1", cfg(data__imbalance__ratio=1), r"data\.imbalance\.ratio: 1 makes the imbalanced"),
    ("power exponent 0", cfg(data__imbalance={"profile": "power", "exponent": 0}), r"exponent: 0"),
    ("l2_grid empty", cfg(evaluation__linear__l2_grid=[]), r"l2_grid: must list at least one"),
    ("l2_grid negative", cfg(evaluation__linear__l2_grid=[-1e-3]), r"l2_grid: every L2 penalty"),
    (
        "tiers contradict",
        cfg(data__tiers={"many_above": 10, "few_below": 50}),
        r"data\.tiers: many_above \(10\) is below few_below \(50\)",
    ),
    (
        "tiers under both names",
        cfg(data__tiers={"rule": "oltr"}, data__groups={"rule": "thirds"}),
        r"data: .*groups: the old name of data\.tiers; set data\.tiers only",
    ),
    ("output_dir empty", cfg(output_dir=""), r"output_dir: empty: name a folder"),
    (
        "knn k above the probe set",
        cfg("run --plan", evaluation__knn__k=[5, 100000]),
        r"evaluation\.knn\.k: \[100000\] exceed\(s\) the probe set's \d+ images",
    ),
    (
        "L2 grid without val",
        cfg("run --plan", data__split__val_per_class=0, evaluation__linear__l2_grid=[1e-2, 1e-3]),
        r"data\.split\.val_per_class: this data has no validation split",
    ),
    # -- validation: key path and reason
    ("unknown key", cfg(nmae="x"), r"nmae: unknown key"),
    ("unknown nested key", cfg(data__imbalanse=1), r"data\.imbalanse: unknown key"),
    ("wrong type", cfg(pretrain__epochs="many"), r"pretrain\.epochs: .*integer"),
    ("ratio out of range", cfg(data__imbalance__ratio=1.5), r"data\.imbalance\.ratio: must be in"),
    ("negative imbalance seed", cfg(data__imbalance__seed=-1), r"data\.imbalance\.seed: a seed"),
    ("negative split seed", cfg(data__split__seed=-3), r"data\.split\.seed: a seed must be >= 0"),
    ("negative seed", cfg(seeds=[-1]), r"seeds: every seed must be >= 0 \(got \[-1\]\)"),
    ("no seeds", cfg(seeds=[]), r"seeds: must list at least one seed"),
    ("duplicate seeds", cfg(seeds=[1, 1]), r"seeds: seeds must be distinct"),
    ("knn k zero", cfg(evaluation__knn__k=[0]), r"evaluation\.knn\.k: every k must be >= 1"),
    ("knn k twice", cfg(evaluation__knn__k=[5, 5]), r"evaluation\.knn\.k: k values must be"),
    ("zero layers", cfg(backbone__layers=[0, 0, 0, 0]), r"backbone\.layers: needs 4 block"),
    ("three layers", cfg(backbone__layers=[1, 1, 1]), r"backbone\.layers: needs 4 block counts"),
    ("unknown backbone", cfg(backbone__name="vgg"), r"backbone\.name: must be resnet18"),
    ("timm without name", cfg(backbone__name="timm:"), r"backbone\.name: timm: needs a model"),
    ("imported arch", _imported_arch, r"imported\.0\.arch: must be one of resnet18, resnet50"),
    (
        "imported file missing",
        cfg(imported=[{"name": "x", "path": "/nowhere/w.pt"}]),
        r"imported\.0\.path: file does not exist: /nowhere/w\.pt",
    ),
    ("unknown method", cfg(methods=[{"name": "dino"}]), r"methods\.0: .*tag 'dino'"),
    (
        "same method twice",
        cfg(methods=[{"name": "simclr"}, {"name": "simclr"}]),
        r"methods: two methods share the label \['simclr'\]",
    ),
    *[  # a fixed temperature beside a schedule was dropped without a word (issue 32)
        (
            f"temperature with a schedule ({name})",
            cfg(methods=[{"name": name, "temperature": 0.5, "temperature_schedule": {}}]),
            r"methods\.0(\.\w+)?: .*temperature and temperature_schedule are both set",
        )
        for name in ("simclr", "mocov2", "sdclr", "bcl")
    ],
    ("unknown device", cfg(device="tpu"), r"device: Input should be 'auto', 'cpu'"),
    ("cuda without CUDA", _no_device("cuda"), r"device: 'cuda' asked for, but torch finds no"),
    ("mps without MPS", _no_device("mps"), r"device: 'mps' asked for, but this machine has no"),
    (
        "folder without root",
        cfg(data={"source": "folder"}),
        r"data: .*root: required for source 'folder'",
    ),
    (
        "root missing",
        cfg(data={"source": "folder", "root": "/nowhere/imgs"}),
        r"root: path does not exist: /nowhere/imgs",
    ),
    ("image size too small", cfg(data__image_size=4), r"data\.image_size: .*greater than or"),
    # -- --set values
    ("--set without =", sets("data.image_size"), r"--set 'data\.image_size': expected KEY=VALUE"),
    ("--set below a scalar", sets("name.x.y=1"), r"--set name\.x\.y: name is a value \('tiny'\)"),
    ("--set below a list item", sets("seeds.0.x=1"), r"--set seeds\.0\.x: seeds\.0 is a value"),
    (
        "--set missing item",
        sets("methods.5.lr=1"),
        r"--set methods\.5\.lr: no list item methods\.5",
    ),
    ("--set bad YAML", sets("seeds=[1"), r"--set 'seeds=\[1': value is not valid YAML"),
    ("--set empty key part", sets("data..seed=1"), r"--set 'data\.\.seed=1': empty key part"),
    (
        "--set duplicate key",
        sets("data.imbalance={ratio: 0.1, ratio: 0.5}"),
        r"--set .*: value is not valid YAML \(duplicate key 'ratio'",
    ),
    ("--set bool as int", sets("pretrain.batch_size=true"), r"pretrain\.batch_size: true/false"),
    ("--set negative seed", sets("data.imbalance.seed=-1"), r"data\.imbalance\.seed: a seed must"),
    (
        "--set on --plan",
        sets("evaluation.knn.k=[0]", command="run --plan"),
        r"evaluation\.knn\.k: every k must be >= 1",
    ),
    # -- output directory and arguments
    ("output_dir is a file", _output_is_file, r"output_dir: .*taken is a file, not a folder"),
    ("output_dir below a file", _output_below_file, r"output_dir: .*taken is a file, not a"),
    ("run: output not writable", _unwritable("run"), r"output_dir: cannot write into .*denied"),
    (
        "stats: output not writable",
        _unwritable("data stats"),
        r"output_dir: cannot write into .*permission denied",
    ),
    ("report without tables", _report_without_tables, r"run: no tables/results\.csv; the study"),
    ("report on nothing", lambda t, m: ["report", str(t / "none")], r"'RUN_DIR'.*does not exist"),
    (
        "report on a table cut mid-row",
        _report_on_cut_table(lambda t: t[:-8]),
        r"results\.csv: truncated \(its last row is cut off\); rerun",
    ),
    (
        "report on a ragged table",
        _report_on_cut_table(lambda t: t + "x,y,0.1,extra,more\n"),
        r"results\.csv: not a readable table",
    ),
    ("export to a folder", _export_to_folder, r"folder: Is a directory"),
    # -- checkpoints
    (
        "checkpoint with integer keys",
        _export(lambda: {101: __import__("torch").zeros(2)}),
        r"w\.pt: a dict of tensors keyed by 101 \(int\)",
    ),
    (
        "0-d conv1.weight",
        _export(_with("conv1.weight", lambda: __import__("torch").tensor(1.0))),
        r"w\.pt: conv1\.weight has shape \(\), not a convolution's",
    ),
    (
        "arch record: unknown block",
        _export(_with_arch(block="Foo")),
        r"w\.pt: the file's arch record .*: unknown block 'Foo'",
    ),
    (
        "arch record: two stages",
        _export(_with_arch(layers=[1, 1])),
        r"w\.pt: the file's arch record .*: layers must be 4 block counts >= 1, got \[1, 1\]",
    ),
    (
        "text file named .pth",
        _export(lambda: b"hello\n", name="w.pth"),  # was KeyError: 101
        r"w\.pth: cannot read checkpoint \(truncated or not a PyTorch file\)",
    ),
    (
        "NaN weights",
        _export(_nan_weights),
        r"w\.pt: 1 tensor\(s\) hold NaN or infinite values: \['layer1\.0\.conv1\.weight'\]",
    ),
    (  # was "not a ResNet; set arch: timm:<name>": no timm model is two convolutions
        "a VGG's layers",
        _export(_vgg_features),
        r"^(?!.*timm:).*w\.pt: an architecture this tool does not know \(not a ResNet.*layers "
        r"found: conv1 \(64, 3, 3, 3\), 2 \(64, 64, 3, 3\)\. This tool builds",
    ),
    (
        "export: arch record shorter than its keys",
        _export(_with_arch(layers=[1, 1], width=64)),
        r"w\.pt: the file's arch record .*got \[1, 1\]; its keys describe BasicBlock "
        r"\[1, 1, 1, 1\]",
    ),
    (
        "inspect --arch resnet_tiny on a 4-conv CNN",
        _inspect(lambda: _four_conv_cnn().state_dict(), "--arch", "resnet_tiny"),
        r"--arch resnet_tiny builds the ResNet the file's keys describe, and \S+w\.pt's describe "
        r"none: an architecture this tool does not know",
    ),
    (
        "inspect --arch resnet18 on a ViT",
        _inspect(_small_vit, "--arch", "resnet18"),
        r"--arch resnet18: \S+w\.pt holds a vision transformer \(ViT\S*, 2 blocks, dim 64\); "
        r"--arch takes its size",
    ),
    (
        "inspect --arch ViT on a ResNet",
        _inspect(_tiny_resnet_state, "--arch", "ViT-S/16"),
        r"--arch ViT-S/16: \S+w\.pt holds no vision transformer",
    ),
    (
        "inspect --arch unknown name",
        _inspect(_tiny_resnet_state, "--arch", "bogus"),
        r"--arch: unknown 'bogus' \(one of resnet18, .*resnet_tiny; ViT-<size>/<patch>",
    ),
    *[
        (
            f"inspect --arch timm:not_a_model ({kind})",
            _inspect(make, "--arch", "timm:not_a_model"),
            r"--arch: timm has no model 'not_a_model' \(nearest: ",  # as the config says it
        )
        for kind, make in (("ResNet", _tiny_resnet_state), ("ViT", _small_vit))
    ],
    ("unknown option", lambda t, m: ["run", "--sed", "1"], r"No such option '--sed'"),
    ("unknown command", lambda t, m: ["train"], r"No such command 'train'"),
    (
        "stats over another finished study",
        _stats_over_finished_study,
        r"study holds a finished study .* whose data differ from this config; data stats would "
        r"overwrite",
    ),
    # -- data layouts
    (
        "folder with one class",
        data_layout(_folder({"ant": 6})),
        r"data\.root: .*imgs: only one class folder \(ant\); .* at least 2",
    ),
    (
        "one class on --plan",
        data_layout(_folder({"ant": 6}), command="run --plan"),
        r"data\.root: .*imgs: only one class folder \(ant\)",
    ),
    (
        "empty class folder",
        data_layout(_folder({"ant": 4, "bee": 0})),
        r"imgs/bee: empty class folder",
    ),
    ("no class folders", data_layout(_folder({})), r"imgs: no class folders found"),
    (
        "splits without train",
        data_layout(_folder({"ant": 2, "bee": 2}, split="test")),
        r"imgs: has \['test'\] split folders but no train/",
    ),
    (
        "list label out of range",
        _list_source(["l/0.png 0", "l/1.png 1", "l/2.png -1"]),
        r"train\.txt:3: label -1 out of range",
    ),
    (
        "list duplicate path",
        _list_source(["l/0.png 0", "l/1.png 1", "l/0.png 1"]),
        r"train\.txt:3: duplicate path 'l/0\.png'",
    ),
    (
        "list with one class",
        _list_source(["l/0.png 0", "l/1.png 0"]),
        r"data\.root: .*: only one class \(0\)",
    ),
    (
        "npz missing arrays",
        data_layout(_bad_npz, source="npz"),
        r"x\.npz: missing arrays \['train_labels', 'test_images', 'test_labels'\]",
    ),
    (
        "self-referencing symlink",
        data_layout(_self_link),
        r"1 image link\(s\) point to nothing or to themselves: \['.*imgs/ant/loop\.png'\]",
    ),
    (
        "npz lengths differ",
        data_layout(_npz(train_labels=np.array([0, 1, 0, 1])), source="npz"),
        r"x\.npz: train_labels holds 4 labels for 6 train_images",
    ),
    (
        "npz labels (N, 1)",
        data_layout(_npz(test_labels=np.array([[0], [1], [0], [1]])), source="npz"),
        r"x\.npz: test_labels must have shape \(N,\), got \(4, 1\)",
    ),
    (
        "npz one-hot labels",
        data_layout(_npz(train_labels=np.eye(2)[[0, 1, 0, 1, 0, 1]]), source="npz"),
        r"x\.npz: train_labels has shape \(6, 2\) \(one-hot",
    ),
    (
        "npz fractional labels",
        data_layout(_npz(train_labels=np.array([0, 1, 0.5, 1, 0, 1])), source="npz"),
        r"x\.npz: train_labels must hold integer class indices, got values such as \[0\.5\]",
    ),
    (
        "npz object array",
        data_layout(_npz(test_labels=np.array([0, 1, "a", None], dtype=object)), source="npz"),
        r"x\.npz: test_labels: not readable as plain numbers: an object array",
    ),
    ("list file in Latin-1", _latin1_list, r"train\.txt:3: not UTF-8 text \(byte 0xe9"),
    (
        "unknown class to include",
        data_layout(_folder({"ant": 6, "bee": 6}), classes={"include": ["ant", "cow"]}),
        r"data\.classes\.include: unknown class\(es\) \['cow'\] \(classes: ant, bee\)",
    ),
    (
        "class filter leaves one class",
        data_layout(_folder({"ant": 6, "bee": 6}), classes={"exclude": ["bee"]}),
        r"data\.classes: keeps 1 class\(es\) \(ant\) of 2; .* at least 2",
    ),
    (
        "label_from value",
        cfg(data__list={"train": "t", "label_from": "dir"}),
        r"data\.list\.label_from: Input should be 'column' or 'folder' \(got 'dir'\)",
    ),
    (  # was read as names: three classes '0', '1', 'cat', the indexes' meaning lost
        "list labels: indexes and names",
        _list_with("train.txt", "l/0.png 0\nl/1.png cat\nl/2.png 1\n"),
        r"train\.txt:2: label 'cat' is a class name, but \S+train\.txt:1 gives a class index "
        r"\(0\): a list's labels are all indexes",
    ),
    (  # was two labels made one class, silently
        "class name listed twice",
        _list_with("train.txt", "l/0.png ant\nl/1.png bee\n", classes="ant\nbee\nant\n"),
        r"classes\.txt:3: class name 'ant' listed twice \(first on line 1\)",
    ),
    (
        "list line without a label",
        _list_with("train.txt", "l/0.png 0\nl/1.png\n"),
        r"train\.txt:2: expected at least 2 fields, got 1: \['l/1\.png'\] \(data\.list\."
        r"label_column 1 \(field 2\) is past them\); a \.txt list line is `path label`: the label "
        r"is the last",
    ),
    (
        "group_by column past a short CSV row",
        lambda tmp, mp: data_layout(
            _list_files([]),  # the images; the CSV is written below
            source="list",
            list={"train": str(_write(tmp / "t.csv", "l/0.png,0,a\nl/1.png,1,b\nl/2.png,0\n"))},
            group_by={"column": 2},
        )(tmp, mp),
        r"t\.csv:3: expected at least 3 fields, got 2: \['l/2\.png', '0'\] \(the label column 2 "
        r"\(field 3\) is past them\)",
    ),
    (
        "list glob matches nothing",
        lambda tmp, mp: data_layout(
            _list_files(["l/0.png 0"]), source="list", list={"train": str(tmp / "*.lst")}
        )(tmp, mp),
        r"data\.list\.train: no file matches '.*\*\.lst'",
    ),
    # -- downloads, damaged arrays and names checked up front (issue 32, round 3)
    ("CIFAR-10 download offline", _offline_source("cifar10"), CIFAR10_OFFLINE),
    (
        "CIFAR-100 download offline",
        _offline_source("cifar100"),
        r"cannot download CIFAR-100 from https://www\.cs\.toronto\.edu/~kriz/cifar-100-python"
        r"\.tar\.gz: .*name resolution\. Place cifar-100-python\.tar\.gz \(169 MB.*md5 "
        r"eb9058c3a382ffc7106e4002c42a8d85\) in \S+/cifar by hand",
    ),
    ("cifar10_subset download offline", _offline_source("cifar10_subset"), CIFAR10_OFFLINE),
    (
        "published weights offline",
        _offline_weights,
        r"weights 'mocov2_800ep': cannot download https://dl\.fbaipublicfiles\.com/moco/\S+"
        r"moco_v2_800ep_pretrain\.pth\.tar: \[Errno -3\] Temporary failure in name resolution; "
        r"nothing was cached\. Without network, place the file from \S+ at \S+/cache/"
        r"mocov2_800ep-moco_v2_800ep_pretrain\.pth\.tar \(md5 beginning a04e12f8\)",
    ),
    *[
        (
            f"{kind} npz",
            data_layout(_damaged_npz(kind), source="npz"),
            r"x\.npz: not a readable \.npz file: ",
        )
        for kind in ("zero-byte", "truncated")  # random bytes were refused already
    ],
    *[
        (
            f"{kind} cifar10_subset cache",
            data_layout(_damaged_subset_cache(kind), source="cifar10_subset"),
            r"subset/cifar10_subset\.npz: not a readable \.npz file: .*; delete \S+"
            r"cifar10_subset\.npz and \S+cifar10_subset\.json to make the subset again",
        )
        for kind in ("zero-byte", "truncated", "random bytes")
    ],
    (
        "unknown timm backbone",
        cfg(backbone__name="timm:resnet5"),
        r"backbone\.name: timm has no model 'resnet5' \(nearest: .*resnet50",
    ),
    (
        "unknown timm import",
        lambda tmp, mp: (
            (tmp / "w.pt").write_bytes(b"x"),
            cfg(imported=[{"name": "i", "path": str(tmp / "w.pt"), "arch": "timm:vit_smal"}])(
                tmp, mp
            ),
        )[1],
        r"imported\.0\.arch: timm has no model 'vit_smal' \(nearest: ",
    ),
    (
        "unknown timm name on --plan",
        cfg("run --plan", backbone__name="timm:convnext_tinny"),
        r"backbone\.name: timm has no model 'convnext_tinny' \(nearest: convnext_tiny",
    ),
]


@pytest.fixture(autouse=True)
def _never_train(monkeypatch):
    """Bad inputs are caught before a study starts: reaching run_study fails the case."""
    import ssl_robustness.study as study

    def refuse(*args, **kwargs):
        raise RuntimeError("run_study reached: the bad input was not caught up front")

    monkeypatch.setattr(study, "run_study", refuse)


@pytest.mark.parametrize("build,message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_exits_2_naming_the_fault(build, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = build(tmp_path, monkeypatch)
    before = set(tmp_path.rglob("*"))
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit)  # handled, not a crash
    assert "Traceback" not in result.output
    assert re.search(message, result.stderr, re.S), result.stderr
    # nothing written but the output folder, its lock file and (data-layout errors) data/
    new = {p.relative_to(tmp_path).as_posix() for p in set(tmp_path.rglob("*")) - before}
    assert new <= {"study", f"study/{LOCK_NAME}", "study/data"}, new


def test_cases_are_distinct_and_many():
    assert len(CASES) >= 40 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only folder")
@pytest.mark.parametrize("command", ["run", "data stats"])
def test_read_only_output_folder_is_refused(command, tmp_path):
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        args = [*command.split(), _write_config(tmp_path, {"output_dir": str(locked / "out")})]
        result = CliRunner().invoke(cli, args)
    finally:
        locked.chmod(0o755)
    assert result.exit_code == 2 and "output_dir: cannot write into" in result.stderr


CHILD = textwrap.dedent(
    """
    import sys
    from ssl_robustness.cli import main
    sys.argv = ["ssl-robustness", *sys.argv[1:]]
    try:
        main()
    except SystemExit as exc:
        print(f"exit={exc.code} torch={'torch' in sys.modules}")
    """
)


@pytest.mark.parametrize("command", ["run", "run --plan", "data stats"])
def test_config_errors_fail_without_importing_torch(command, tmp_path):
    path = _write_config(tmp_path, {"data.imbalanse": {"ratio": 0.1}})
    out = subprocess.run(
        [sys.executable, "-c", CHILD, *command.split(), path],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stdout.strip() == "exit=2 torch=False", out.stderr
    assert "data.imbalanse: unknown key" in out.stderr


# -- numbers that cannot be wrong without a word (not CLI rows: each checks the number itself)
def test_knn_tiny_temperature_is_the_nearest_neighbour():
    """exp(cos / 1e-12) overflowed to inf in several classes and argmax took the first; scaled
    by the nearest neighbour, a tiny temperature is 1-NN."""
    from ssl_robustness.evaluation.knn import knn_scores

    rng = np.random.default_rng(0)
    train, labels = rng.normal(size=(60, 8)), rng.integers(0, 3, 60)
    test = rng.normal(size=(25, 8))
    unit = train / np.linalg.norm(train, axis=1, keepdims=True)
    nearest = labels[np.argmax(test @ unit.T, axis=1)]
    for t in (1e-12, 1e-30):
        scores = knn_scores(train, labels, test, k=20, temperature=t, num_classes=3)
        assert np.isfinite(scores).all()
        assert (scores.argmax(1) == nearest).all()


@pytest.mark.parametrize("call", ["knn", "linear"])
def test_evaluations_refuse_what_they_would_silently_change(call):
    """k above the labelled images (was capped, rows kept the k) and an L2 grid without a
    validation split (was 'selected' on a curve of zeros)."""
    from ssl_robustness.evaluation.knn import knn_scores
    from ssl_robustness.evaluation.linear_probe import linear_probe

    x, y = np.random.default_rng(1).normal(size=(10, 4)).astype(np.float32), np.arange(10) % 2
    with pytest.raises(ValueError, match="k = 11 exceeds the 10|no validation split"):
        if call == "knn":
            knn_scores(x, y, x, k=11, temperature=0.1, num_classes=2)
        else:
            linear_probe(x, y, x[:0], y[:0], 2, [1e-2, 1e-3])
    if call == "linear":  # one value: used as given, and the curve says nothing was measured
        model, curve = linear_probe(x, y, x[:0], y[:0], 2, [1e-3])
        assert model.l2 == 1e-3 and curve == [{"l2": 1e-3, "val_balanced_accuracy": None}]


def _saved_evaluation(tmp: Path) -> tuple[Path, object]:
    from types import SimpleNamespace

    from ssl_robustness.evaluation.outputs import write_evaluation

    data = SimpleNamespace(labels=np.array([0, 1, 2, 1]), items=list("abcd"), num_classes=3)
    scores = np.eye(3)[[0, 1, 2, 2]] + np.linspace(0, 0.1, 3)
    write_evaluation(tmp, data, np.arange(4), scores, {})
    return tmp, data


PREDICTION_EDITS = [
    ("a prediction edited", lambda t: t.replace("d,1,2,", "d,1,1,"), "checksum mismatch"),
    ("class id out of range", lambda t: t.replace("d,1,2,", "d,1,7,"), "checksum mismatch"),
]


@pytest.mark.parametrize("name,edit,why", PREDICTION_EDITS, ids=[c[0] for c in PREDICTION_EDITS])
def test_edited_predictions_are_rebuilt_not_read(name, edit, why, tmp_path):
    from ssl_robustness.atomic import CacheWarning
    from ssl_robustness.evaluation.outputs import PREDICTIONS_FILE, predictions_readable

    directory, data = _saved_evaluation(tmp_path)
    assert predictions_readable(directory, 4, 3, data.labels)
    path = directory / PREDICTIONS_FILE
    path.write_text(edit(path.read_text()))
    with pytest.warns(CacheWarning, match=why):
        assert not predictions_readable(directory, 4, 3, data.labels)


def test_predictions_without_checksum_are_range_checked(tmp_path):
    """Evaluations saved before the checksum existed: a class id out of range is refused."""
    import json

    from ssl_robustness.atomic import CacheWarning
    from ssl_robustness.evaluation.outputs import (
        METRICS_FILE,
        PREDICTIONS_FILE,
        PREDICTIONS_SHA256,
        predictions_readable,
    )

    directory, data = _saved_evaluation(tmp_path)
    meta = json.loads((directory / METRICS_FILE).read_text())
    del meta[PREDICTIONS_SHA256]
    (directory / METRICS_FILE).write_text(json.dumps(meta))
    assert predictions_readable(directory, 4, 3, data.labels)
    path = directory / PREDICTIONS_FILE
    path.write_text(path.read_text().replace("d,1,2,", "d,1,7,"))
    with pytest.warns(CacheWarning, match="class id 7 in column prediction, out of 0..2"):
        assert not predictions_readable(directory, 4, 3, data.labels)


def test_failed_runs_name_their_causes_on_the_last_line():
    from ssl_robustness.cli import failures_line

    failures = [
        {"representation": f"r{i}", "error": f"TrainingDiverged: loss is nan\nat step {i}"}
        for i in range(5)
    ]
    line = failures_line(failures, "runs/x/report.html")
    assert "\n" not in line
    assert line.startswith("5 run(s) failed: r0: TrainingDiverged: loss is nan at step 0; r1:")
    assert line.endswith("; and 2 more; see runs/x/report.html")


def test_inspect_does_not_call_nan_weights_ok(tmp_path):
    import torch

    torch.save(_nan_weights(), tmp_path / "w.pt")
    result = CliRunner().invoke(cli, ["checkpoint", "inspect", str(tmp_path / "w.pt")])
    assert result.exit_code == 2 and "ok (strict)" not in result.output
    assert "load:      refused:" in result.output and "NaN or infinite" in result.output


def _fill_then_fail(exc: BaseException) -> Callable[[Path], None]:
    def writer(tmp: Path) -> None:
        tmp.write_bytes(b"x" * 100)  # what was written before the disk filled
        raise exc

    return writer


DISK_FULL = [  # how a full disk surfaces: numpy's message, torch's, and the plain errno
    ("numpy np.save", OSError("1048576 requested and 8192 written"), True),
    ("torch.save", RuntimeError("[enforce fail at inline_container.cc:626] unexpected pos"), True),
    ("errno ENOSPC", OSError(28, "No space left on device"), False),
]


@pytest.mark.parametrize("name,exc,by_free_space", DISK_FULL, ids=[c[0] for c in DISK_FULL])
def test_a_full_disk_is_said_with_the_path_and_nothing_half_written(
    name, exc, by_free_space, tmp_path, monkeypatch
):
    import shutil

    from ssl_robustness import atomic

    if by_free_space:  # the file system has (almost) nothing left while the temp file exists
        monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(1, 1, 0))
    target = tmp_path / "rep" / "checkpoint.pt"
    with pytest.raises(atomic.DiskFull, match=r"rep/checkpoint\.pt: the disk is full"):
        atomic.write_with(target, _fill_then_fail(exc))
    assert list((tmp_path / "rep").iterdir()) == []  # neither the file nor its temp


def test_a_failed_write_with_free_space_is_not_called_a_full_disk(tmp_path):
    from ssl_robustness import atomic

    with pytest.raises(RuntimeError, match="unexpected pos"):
        atomic.write_with(tmp_path / "x.pt", _fill_then_fail(RuntimeError("unexpected pos")))


# -- caches that can be wrong
def test_swapped_files_fool_the_stat_fingerprint_but_not_the_content_one(tmp_path):
    """Two images of equal byte size swapped, their mtimes restored: the default (stat)
    fingerprint keeps the old pixels, as the README says; `data.fingerprint: content` sees it."""
    import warnings

    from PIL import Image

    from ssl_robustness.atomic import CacheWarning
    from ssl_robustness.data.listing.labelled import LabelledSet
    from ssl_robustness.data.store.images import build_image_cache

    a, b = tmp_path / "a.bmp", tmp_path / "b.bmp"  # BMP: equal sizes for equal shapes
    Image.new("RGB", (8, 8), (250, 0, 0)).save(a)
    Image.new("RGB", (8, 8), (0, 0, 250)).save(b)
    lset = LabelledSet(["a.bmp", "b.bmp"], np.array([0, 1]), ["x", "y"], root=tmp_path)
    idx = np.arange(2)
    for content in (False, True):
        cache = tmp_path / f"cache-{content}.npy"
        first, _ = build_image_cache(lset, idx, 8, cache, content_fingerprint=content)
        red = int(first[0, 0, 0, 0])
        del first
        times = [(p.stat().st_atime_ns, p.stat().st_mtime_ns) for p in (a, b)]
        data_a, data_b = a.read_bytes(), b.read_bytes()
        a.write_bytes(data_b)
        b.write_bytes(data_a)
        for p, t in zip((a, b), times, strict=True):
            os.utime(p, ns=t)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            again, _ = build_image_cache(lset, idx, 8, cache, content_fingerprint=content)
        rebuilt = any(issubclass(w.category, CacheWarning) for w in caught)
        assert rebuilt is content
        assert (int(again[0, 0, 0, 0]) == red) is (not content)  # stat: the stale red
        a.write_bytes(data_a)  # swap back for the next round
        b.write_bytes(data_b)
        for p, t in zip((a, b), times, strict=True):
            os.utime(p, ns=t)


def test_batches_above_their_subset_and_no_val_are_said_before_training(tmp_path):
    """A batch larger than its subset was silently one step of the whole subset; without a
    validation split nothing is selected: both are said (run_study logs them as notes)."""
    from ssl_robustness.config import validate_config
    from ssl_robustness.data.prepare import list_data
    from ssl_robustness.representations import expand_representations
    from ssl_robustness.study import size_notes

    raw = tiny_study(tmp_path)
    raw["data"]["split"]["val_per_class"] = 0
    raw["pretrain"]["batch_size"] = 5000
    raw["evaluation"]["finetune"]["batch_size"] = 5000
    cfg = validate_config(raw)
    data = list_data(cfg.data, cfg.layout.data.path, cfg.evaluation)
    notes = size_notes(cfg, data, expand_representations(cfg, data))
    text = "\n".join(notes)
    assert re.search(r"simclr on \S+: batch 5000 > 300 images: one batch of 300 per epoch", text)
    assert re.search(
        r"evaluation\.finetune on \S+: batch 5000 > 300 images: one batch of 300 ", text
    )
    assert "no validation split: fine-tuning keeps its last epoch" in text
    assert "no validation split: the linear probe uses L2 0.001 as given" in text


def test_evaluate_refuses_k_above_the_probe_set_like_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _write_config(tmp_path, {"evaluation.knn.k": [100000]})
    result = CliRunner().invoke(cli, ["evaluate", path, "--method", "simclr"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "evaluation.knn.k: [100000] exceed(s) the probe set's" in result.stderr


@pytest.mark.parametrize(
    "cut", ["3,", "3", "3,0,2.", ",,"], ids=["no epoch", "step only", "mid", "empty"]
)
def test_a_log_row_cut_off_by_a_kill_or_full_disk_resumes(cut, tmp_path):
    """A resumed training reads steps.csv back: a last row cut off mid-write was a
    ValueError/TypeError traceback; it is left out (the log is rewritten without it)."""
    from ssl_robustness.engine.logger import MetricsLogger

    (tmp_path / "steps.csv").write_text(f"step,epoch,loss\n1,0,2.3\n2,0,2.1\n{cut}")
    (tmp_path / "epochs.csv").write_text("epoch,loss\n0,2.2\n")
    logger = MetricsLogger(tmp_path, start_epoch=1)
    logger.close()
    assert (tmp_path / "steps.csv").read_text() == "step,epoch,loss\n1,0,2.3\n2,0,2.1\n"
    assert logger.epochs == [{"epoch": "0", "loss": "2.2"}]


def _forbid_downloads(mp: pytest.MonkeyPatch) -> None:
    """Every downloader the sources and hub use fails the test if it is called."""
    import urllib.request

    import torch.hub
    from torchvision.datasets import utils as tv_utils

    def refuse(*args, **kwargs):
        raise AssertionError(f"a download was started: {args[:1]}")

    for owner, name in [
        (urllib.request, "urlopen"),
        (torch.hub, "urlopen"),
        (torch.hub, "download_url_to_file"),
        (tv_utils, "download_url"),
        (tv_utils, "download_and_extract_archive"),
    ]:
        mp.setattr(owner, name, refuse)


PLAN_DOWNLOADS = [  # what a plan would need, and the line that says so
    ("cifar10", {"data": {"source": "cifar10", "download": True}}, r"CIFAR-10 is not in \S+"),
    ("cifar100", {"data": {"source": "cifar100", "download": True}}, r"CIFAR-100 is not in "),
    ("cifar10_subset", {"data": {"source": "cifar10_subset", "download": True}}, r"CIFAR-10 is"),
    ("weights", {"imported": [{"name": "m", "weights": "mocov2_800ep"}]}, r"weights 'mocov2_800"),
]


@pytest.mark.parametrize("name,changes,says", PLAN_DOWNLOADS, ids=[c[0] for c in PLAN_DOWNLOADS])
def test_a_plan_downloads_nothing_and_says_what_a_run_will(
    name, changes, says, tmp_path, monkeypatch
):
    import ssl_robustness.plan as plan

    _forbid_downloads(monkeypatch)
    monkeypatch.setattr(plan, "imported_costs", lambda *a, **k: [])  # times a ResNet-50: slow
    monkeypatch.setenv("SSL_ROBUSTNESS_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cifar").mkdir()
    if "data" in changes:
        changes = {"data": {**changes["data"], "root": str(tmp_path / "cifar")}}
    dotted = (
        {"data": {**tiny_study(tmp_path)["data"], **changes["data"]}}
        if "data" in changes
        else changes
    )
    result = CliRunner().invoke(cli, ["run", "--plan", _write_config(tmp_path, dotted)])
    assert result.exit_code == 0, (result.output, result.exception)
    assert re.search(says + r".*the run will download .*Without network, place", result.output), (
        result.output
    )
    assert list((tmp_path / "cifar").iterdir()) == [] and not (tmp_path / "cache").exists()


THREAD_SWITCH = [("defualt", 2), ("0", 2), ("off", 2), ("default", 0), ("DEFAULT", 0), ("", 0)]


@pytest.mark.parametrize("value,code", THREAD_SWITCH)
def test_the_cpu_threads_switch_takes_default_or_nothing(value, code, monkeypatch, capsys):
    """A typo in SSL_ROBUSTNESS_CPU_THREADS was read as 'unset': threads chosen anyway."""
    from ssl_robustness.cli import main

    monkeypatch.setenv("SSL_ROBUSTNESS_CPU_THREADS", value)
    monkeypatch.setattr(sys, "argv", ["ssl-robustness", "run", "--help"])
    try:
        main()
        status = 0  # click's --help returns without standalone mode
    except SystemExit as exc:
        status = exc.code or 0
    assert status == code
    err = capsys.readouterr().err
    if code:
        assert (
            f"error: SSL_ROBUSTNESS_CPU_THREADS={value!r}: not a value it takes; set it to "
            "'default'" in err
        )
    else:
        assert "error" not in err


def _timm_like() -> dict:
    """Keys in timm's module names (a ConvNeXt's stem and stages), no ResNet, no ViT."""
    import torch

    return {
        "stem.0.weight": torch.zeros(8, 3, 4, 4),
        "stages.0.blocks.0.conv_dw.weight": torch.zeros(8, 1, 7, 7),
    }


INSPECTED = [  # (case, what the file holds, --arch and such, said on stdout, never said)
    (
        "4-conv CNN with a projection head",
        lambda: _four_conv_cnn().state_dict(),
        [],
        [
            r"format: +none recognised \(keys without a codebase's prefix",
            r"arch: +an architecture this tool does not know",
            r"layers: +conv1 \(32, 3, 3, 3\), bn1 \(32,\), conv2 \(64, 32, 3, 3\), conv3 "
            r"\(128, 64, 3, 3\), conv4 \(256, 128, 3, 3\)\n",
            r"dropped: +projection_head\.\* \(4 tensors: a projection head, not part of the",
            r"load: +refused: \S+w\.pt: an architecture this tool does not know .*cannot be "
            r"imported as it is",
        ],
        [r"format: +torchvision", r"timm:", r"ok \(strict\)"],
    ),
    (
        "4-conv CNN with a projector",
        lambda: _four_conv_cnn("projector").state_dict(),
        [],
        [r"dropped: +projector\.\* \(4 tensors: a projection head", r"tensors: +13, "],
        [r"unexpected", r"timm:"],
    ),
    (
        "4-conv CNN, --arch resnet18: every difference",
        lambda: _four_conv_cnn().state_dict(),
        ["--arch", "resnet18"],
        [
            r"arch: +resnet18 \(as asked\); the keys describe an architecture this tool does not",
            r"load: +refused: \S+w\.pt: 5 mis-shaped, 95 missing and 7 unexpected key\(s\)\n"
            r"differences from resnet18 \(107\):\n",
            r"  mis-shaped conv1\.weight: file \(32, 3, 3, 3\) vs model \(64, 3, 7, 7\)\n",
            r"(\n  missing    \S+ \(\d+[,\d ]*\)){95}\n  unexpected conv1\.bias",  # all 95 of them
            r"  unexpected conv4\.weight \(256, 128, 3, 3\)",
        ],
        [r"not a ResNet; set arch"],
    ),
    (
        "tiny ResNet, --arch resnet50: every difference",
        _tiny_resnet_state,
        ["--arch", "resnet50"],
        [r"not resnet50\ndifferences from resnet50 \(\d+\):\n  mis-shaped conv1\.weight"],
        [],
    ),
    (
        "keys in timm's module names",
        _timm_like,
        [],
        [r"Its module names are timm's: if it is a timm model, set arch: timm:<its name>"],
        [],
    ),
    (
        "arch field naming a timm model",
        lambda: {"arch": "convnext_atto", "state_dict": _four_conv_cnn().state_dict()},
        [],
        [r"Its arch field names timm's model 'convnext_atto': set arch: timm:convnext_atto"],
        [],
    ),
    (  # was ValueError: zip() argument 2 is longer than argument 1
        "arch record shorter than its keys",
        _with_arch(layers=[1, 1], width=64),
        [],
        [
            r"arch: +the file's arch record \{.*\} is unusable \(layers must be 4 block counts",
            r"load: +refused: \S+w\.pt: the file's arch record .*got \[1, 1\]; its keys "
            r"describe BasicBlock \[1, 1, 1, 1\], width 4",
        ],
        [],
    ),
]


@pytest.mark.parametrize(
    "make,args,said,unsaid", [c[1:] for c in INSPECTED], ids=[c[0] for c in INSPECTED]
)
def test_checkpoint_inspect_says_what_it_found(make, args, said, unsaid, tmp_path):
    """An unknown network was `format: torchvision`, told to try timm, and an --arch beside it
    was ignored; a short arch record crashed the summary."""
    result = CliRunner().invoke(cli, _inspect(make, *args)(tmp_path, None))
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    for pattern in said:
        assert re.search(pattern, result.output, re.S), (pattern, result.output)
    for pattern in unsaid:
        assert not re.search(pattern, result.output), (pattern, result.output)


class _Code:
    """Pickled as a global a weights-only load refuses: a file that would run code."""


def _cut(whole: bytes) -> bytes:
    return whole[: len(whole) // 2]


def _without_key() -> dict:
    return {k: v for k, v in _tiny_resnet_state().items() if k != "layer2.0.conv1.weight"}


def _misshaped() -> dict:
    import torch

    return {**_tiny_resnet_state(), "layer1.0.conv1.weight": torch.zeros(4, 4, 5, 5)}


IMPORTS = [  # (case, the file: a state dict / bytes / a change of a good file's bytes, said)
    ("truncated", _cut, r"cannot read checkpoint \(truncated or not a PyTorch file\)"),
    ("random bytes", np.random.default_rng(0).bytes(4096), r"cannot read checkpoint"),
    ("pickled code", lambda: {"state_dict": _tiny_resnet_state(), "x": _Code()}, r"pickled code"),
    ("missing key", _without_key, r"1 missing key\(s\) \['layer2\.0\.conv1\.weight'\]"),
    (
        "extra key",
        _with("extra.weight", lambda: __import__("torch").zeros(3)),
        r"1 unexpected key\(s\) \['extra\.weight'\]",
    ),
    ("mis-shaped key", _misshaped, r"shapes differ:\n  layer1\.0\.conv1\.weight: file"),
    ("NaN tensor", _nan_weights, r"1 tensor\(s\) hold NaN or infinite values"),
    ("not a ResNet", lambda: _four_conv_cnn().state_dict(), r"an architecture this tool does not"),
]


@pytest.mark.parametrize("name,content,said", IMPORTS, ids=[c[0] for c in IMPORTS])
def test_imported_files_are_checked_before_the_first_training(
    name, content, said, tmp_path, monkeypatch
):
    """A bad imported file was '1 run(s) failed: imp_none_s0: ...' after every other
    representation had trained; it is refused as the study starts, naming the file."""
    import torch

    import ssl_robustness.study as study

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(study, "run_study", REAL_RUN_STUDY)  # the real start, up to training

    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(study, "run_specs", no_training)
    path = tmp_path / "imp.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        made = content(_tiny_state_bytes(tmp_path)) if content is _cut else content()
        if isinstance(made, bytes):
            path.write_bytes(made)
        else:
            torch.save(made, path)
    config = _write_config(tmp_path, {"imported": [{"name": "imp", "path": str(path)}]})
    result = CliRunner().invoke(cli, ["run", config])
    assert result.exit_code == 2, (result.output, result.exception)
    assert re.search(rf"^error: imported\.0 \(imp\): \S*imp\.pt: .*{said}", result.stderr, re.S)
    assert "run(s) failed" not in result.output
    assert not (tmp_path / "study" / "config.yaml").exists()  # refused before the study started


def _tiny_state_bytes(tmp: Path) -> bytes:
    import torch

    torch.save(_tiny_resnet_state(), tmp / "whole.pt")
    return (tmp / "whole.pt").read_bytes()


def test_a_good_imported_file_passes_the_check_and_training_starts(tmp_path, monkeypatch):
    import torch

    import ssl_robustness.study as study

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(study, "run_study", REAL_RUN_STUDY)
    monkeypatch.setattr(study, "run_specs", lambda *a, **k: (_ for _ in ()).throw(KeyError("go")))
    torch.save(_tiny_resnet_state(), tmp_path / "imp.pt")
    config = _write_config(
        tmp_path, {"imported": [{"name": "imp", "path": str(tmp_path / "imp.pt")}]}
    )
    result = CliRunner().invoke(cli, ["run", config])
    assert isinstance(result.exception, KeyError)  # reached training


READ_RIGHT = [  # (case, list file, its text, list settings, items, labels read)
    (
        "BOM before a .txt list",
        "t.txt",
        "\ufeffl/0.png 0\nl/1.png 1\n",
        {},
        ["l/0.png", "l/1.png"],
        [0, 1],
    ),
    (
        "BOM before a CSV header",
        "t.csv",
        "\ufeffpath,label\nl/0.png,1\nl/1.png,0\n",
        {"path_column": "path", "label_column": "label"},
        ["l/0.png", "l/1.png"],
        [1, 0],
    ),
    (
        "a path with a space",
        "t.txt",
        "l/0.png 0\nl/my img.png 1\n",
        {},
        ["l/0.png", "l/my img.png"],
        [0, 1],
    ),
    (
        "tab-separated",
        "t.txt",
        "l/my img.png\t1\nl/0.png\t0\n",
        {},
        ["l/my img.png", "l/0.png"],
        [1, 0],
    ),
]


@pytest.mark.parametrize(
    "name,text,settings,items,labels", [c[1:] for c in READ_RIGHT], ids=[c[0] for c in READ_RIGHT]
)
def test_list_files_read_what_they_say(name, text, settings, items, labels, tmp_path):
    """A BOM became part of the first path (or header); 'l/my img.png 1' was path 'l/my',
    label 'img.png'."""
    from ssl_robustness.config import validate_config
    from ssl_robustness.data.sources import load_source

    (tmp_path / name).write_text(text, encoding="utf-8")
    section = {"train": str(tmp_path / name), **settings}
    cfg = validate_config({"data": {"source": "list", "root": str(tmp_path), "list": section}})
    lset = load_source(cfg.data)
    assert lset.items == items and lset.labels.tolist() == labels


def _jpeg_bytes() -> bytes:
    """A 32x32 JPEG of noise."""
    import io

    from PIL import Image

    pixels = np.random.default_rng(3).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=90)
    return out.getvalue()


def _mid_scan(marker: bytes) -> Callable[[bytes], bytes]:
    """The JPEG with `marker` written over its scan data halfway through."""

    def corrupt(data: bytes) -> bytes:
        start = data.index(b"\xff\xda")
        mid = start + (len(data) - start) // 2
        return data[:mid] + marker + data[mid + len(marker) :]

    return corrupt


CORRUPT_JPEGS = [  # (case, how the bytes are damaged, a library's lenient flag, said)
    ("end-of-image mid-scan", _mid_scan(b"\xff\xd9"), False, r"an end-of-image marker at byte"),
    ("restart marker mid-scan", _mid_scan(b"\xff\xd3"), False, r"a restart marker \(RST3\)"),
    (  # a library imported before (some set it) made a cut-off image a grey one
        "truncated, LOAD_TRUNCATED_IMAGES set",
        lambda d: d[: len(d) * 2 // 3],
        True,
        r"the file ends inside the scan data \(truncated\)",
    ),
]


@pytest.mark.parametrize(
    "damage,lenient,said", [c[1:] for c in CORRUPT_JPEGS], ids=[c[0] for c in CORRUPT_JPEGS]
)
def test_a_jpeg_with_corrupt_scan_data_is_unreadable_not_grey(
    damage, lenient, said, tmp_path, monkeypatch
):
    """libjpeg fills a scan cut short with grey and only warns; PIL returned the grey image."""
    from PIL import ImageFile

    from ssl_robustness.data.listing.labelled import LabelledSet
    from ssl_robustness.data.store.images import build_image_cache
    from ssl_robustness.errors import UserError

    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", lenient)
    (tmp_path / "good.jpg").write_bytes(_jpeg_bytes())
    (tmp_path / "bad.jpg").write_bytes(damage(_jpeg_bytes()))
    lset = LabelledSet(["good.jpg", "bad.jpg"], np.array([0, 1]), ["x", "y"], root=tmp_path)
    with pytest.raises(UserError, match=rf"1 unreadable image\(s\).*\n  \S+bad\.jpg: .*{said}"):
        build_image_cache(lset, np.arange(2), 8, tmp_path / "c.npy")
    _, bad = build_image_cache(lset, np.arange(2), 8, tmp_path / "c.npy", skip_bad=True)
    assert [b.index for b in bad] == [1]
    assert ImageFile.LOAD_TRUNCATED_IMAGES is lenient  # the caller's flag, given back


def test_decoder_warnings_are_errors_while_a_cache_is_decoded(tmp_path, monkeypatch):
    """A PIL plugin's warning (corrupt EXIF, a truncated TIFF read) names a damaged file."""
    import warnings

    from PIL import JpegImagePlugin

    from ssl_robustness.data.listing.labelled import LabelledSet
    from ssl_robustness.data.store import images
    from ssl_robustness.errors import UserError

    real = images.decode_image

    def warn_then_decode(path: Path, size: int) -> np.ndarray:
        warnings.warn_explicit(
            "Corrupt EXIF data", UserWarning, JpegImagePlugin.__file__, 1, JpegImagePlugin.__name__
        )
        return real(path, size)

    monkeypatch.setattr(images, "decode_image", warn_then_decode)
    (tmp_path / "a.jpg").write_bytes(_jpeg_bytes())
    lset = LabelledSet(["a.jpg"], np.array([0]), ["x"], root=tmp_path)
    with pytest.raises(UserError, match=r"a\.jpg: UserWarning: Corrupt EXIF data"):
        images.build_image_cache(lset, np.arange(1), 8, tmp_path / "c.npy")


def _record_with(**changes: object) -> Callable[[bytes], bytes]:
    def edit(whole: bytes) -> bytes:
        import json

        return json.dumps({**json.loads(whole), **changes}).encode()

    return edit


GARBAGE_RECORDS = [  # (case, the record's bytes from the good ones, said once)
    ("junk bytes", lambda b: b"\x00\x01junk", r"record: \S+\.meta\.json: truncated or corrupt"),
    ("not UTF-8", lambda b: b"\xff\xfe{}", r"record: \S+\.meta\.json: truncated or corrupt JSON"),
    ("a JSON list", lambda b: b"[1, 2]", r"record: \S+\.meta\.json holds a list, not a record"),
    ("keys missing", lambda b: b'{"version": 2}', r"record malformed \(KeyError: 'inputs'\)"),
    (  # passed its checks, then IndexError when the bad images were left out
        "a bad image it did not decode",
        _record_with(bad=[{"index": 999, "message": "x"}]),
        r"lists bad images it did not decode \(\[999\]\)",
    ),
    (
        "a bad image twice",
        _record_with(bad=[{"index": 1, "message": "x"}, {"index": 1, "message": "x"}]),
        r"or one twice",
    ),
]


@pytest.mark.parametrize(
    "edit,said", [c[1:] for c in GARBAGE_RECORDS], ids=[c[0] for c in GARBAGE_RECORDS]
)
def test_a_garbage_image_cache_record_is_said_once_and_rebuilt(edit, said, tmp_path):
    """A corrupt record warned twice (the JSON, then the cache: 'rebuilding it' both times);
    bad images out of range passed and crashed later."""
    import warnings

    from ssl_robustness.atomic import CacheWarning
    from ssl_robustness.data.listing.labelled import LabelledSet
    from ssl_robustness.data.store.images import build_image_cache, meta_path

    for i in range(3):
        write_image(tmp_path / f"{i}.png", i, size=8)
    lset = LabelledSet(
        [f"{i}.png" for i in range(3)], np.array([0, 1, 0]), ["a", "b"], root=tmp_path
    )
    cache = tmp_path / "c.npy"
    first, _ = build_image_cache(lset, np.arange(3), 8, cache)
    pixels = np.array(first)
    del first
    record = meta_path(cache)
    good = record.read_bytes()
    record.write_bytes(edit(good))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again, bad = build_image_cache(lset, np.arange(3), 8, cache)
    said_ = [str(w.message) for w in caught if issubclass(w.category, CacheWarning)]
    assert len(said_) == 1 and re.search(said, said_[0]), said_
    assert said_[0].startswith(f"{cache}: ") and said_[0].endswith("; rebuilding it")
    assert bad == [] and np.array_equal(again, pixels)  # and rebuilt, as said
    assert record.read_bytes() != edit(good)


def test_a_folder_in_place_of_the_record_is_refused_without_a_rebuild_promise(tmp_path):
    import warnings

    from ssl_robustness.data.listing.labelled import LabelledSet
    from ssl_robustness.data.store.images import build_image_cache, meta_path
    from ssl_robustness.errors import UserError

    write_image(tmp_path / "0.png", 0, size=8)
    lset = LabelledSet(["0.png"], np.array([0]), ["a"], root=tmp_path)
    cache = tmp_path / "c.npy"
    build_image_cache(lset, np.arange(1), 8, cache)
    meta_path(cache).unlink()
    meta_path(cache).mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "rebuilding it" before the refusal
        with pytest.raises(UserError, match=r"c\.meta\.json: a folder where the record of the "):
            build_image_cache(lset, np.arange(1), 8, cache)


BIG_BATCHES = {"pretrain.batch_size": 5000, "evaluation.finetune.batch_size": 4096}
SAID = [
    r"simclr on balanced: batch 5000 > 300 images: one batch of 300 per epoch",
    r"supervised on exp-r0\.2: batch 5000 > 300 images: one batch of 300 per epoch",
    r"evaluation\.finetune on balanced: batch 4096 > 300 images: one batch of 300 per epoch",
]


@pytest.mark.parametrize("said", SAID)
def test_a_batch_above_its_subset_is_said_on_the_plan(said, tmp_path, monkeypatch):
    """The plan said nothing of a batch the loader cuts to the subset (one step an epoch)."""
    import ssl_robustness.plan as plan

    monkeypatch.setattr(plan, "measure_throughput", lambda *a, **k: None)
    result = CliRunner().invoke(cli, ["run", "--plan", _write_config(tmp_path, BIG_BATCHES)])
    assert result.exit_code == 0, (result.output, result.exception)
    assert re.search(rf"^note: {said}$", result.output, re.M), result.output


@pytest.mark.parametrize("said", SAID)
def test_a_batch_above_its_subset_is_said_in_the_report(said, tmp_path, monkeypatch):
    """Only the run's log said it; the report, read later, did not."""
    import ssl_robustness.study as study
    from ssl_robustness.config import validate_config
    from ssl_robustness.report.content import training_notes

    def stop(*args, **kwargs):
        raise KeyError("training")

    monkeypatch.setattr(study, "run_specs", stop)
    raw = tiny_study(tmp_path)
    for key, value in BIG_BATCHES.items():
        section, name = key.rsplit(".", 1)
        node = raw
        for part in section.split("."):
            node = node[part]
        node[name] = value
    cfg = validate_config(raw)
    with pytest.raises(KeyError):
        REAL_RUN_STUDY(cfg, log=lambda *_: None)
    lines = training_notes(cfg.out)
    assert any(re.fullmatch(rf"Note: {said}\.", line) for line in lines), lines


INTERVALS = [  # (case, seeds, ci95 of the fraction, the cell shown)
    ("one seed, no interval", 1, float("nan"), "1 seed"),
    ("one seed, a zero written", 1, 0.0, "1 seed"),
    ("several seeds, all the same", 3, 0.0, "no spread"),
    ("several seeds", 3, 0.0512, "5.1"),
]


@pytest.mark.parametrize(
    "seeds,ci,shown", [c[1:] for c in INTERVALS], ids=[c[0] for c in INTERVALS]
)
def test_interval_cells_say_one_seed_and_no_spread(seeds, ci, shown):
    """A cell of one seed read '± 0.0' (or blank): as if measured to be exact."""
    import pandas as pd

    from ssl_robustness.report import display as D
    from ssl_robustness.report.sentences import gap_sentences

    aggregate = pd.DataFrame(
        [
            {
                "scenario": "SL",
                "method": "supervised",
                "subset": "balanced",
                "seeds": seeds,
                "top1_mean": 0.8,
                "top1_ci95": ci,
            }
        ]
    )
    part = D.formatted(D.aggregate_parts(aggregate, "top1")[0])
    assert part["top-1 ±95% (%)"].tolist() == [shown] and part["top-1 (%)"].tolist() == ["80.0"]
    gaps = pd.DataFrame(
        [
            {
                "scenario": "SL",
                "method": "supervised",
                "evaluation": "e",
                "comparison": "c",
                "subset": "exp",
                "seeds": seeds,
                "top1_gap_mean": 0.1,
                "top1_gap_ci95": ci,
                "top1_rel_gap_mean": 0.12,
                "top1_rel_gap_ci95": ci,
            }
        ]
    )
    cells = D.formatted(D.gap_parts(gaps, "top1")[0])
    assert cells["top-1 gap ±95% (points)"].tolist() == [shown]
    line = gap_sentences(gaps, ("e", "c"), "top1")[0]
    words = {"1 seed": "one seed: no interval", "no spread": "no spread over 3 seeds"}
    assert words.get(shown, "95% t-interval ± 5.1 points over 3 seeds") in line, line
    assert "± 0.0" not in line


def test_the_tradeoff_is_a_table_on_15_natural_classes(tmp_path):
    """It was a fixed-width text table cut into bullets ('- choice n classes share')."""
    import json

    from test_report import make_run

    from ssl_robustness.config import validate_config
    from ssl_robustness.data.prepare import list_data
    from ssl_robustness.data.stats import data_tradeoff
    from ssl_robustness.report.render import write_report

    root = _folder({f"c{i:02d}": 12 + 3 * i for i in range(15)})(tmp_path)  # 12..54 images
    section = {
        "source": "folder",
        "root": str(root),
        "image_size": 8,
        "split": {"val_per_class": 1, "test_per_class": 1},
        "imbalance": {"profile": "natural"},
    }
    cfg = validate_config({"data": section, "output_dir": str(tmp_path / "study")})
    rows = data_tradeoff(list_data(cfg.data, cfg.layout.data.path, cfg.evaluation))
    assert len(rows) >= 2
    run, _ = make_run(tmp_path)
    stats_file = run / "data" / "stats.json"
    stats = json.loads(stats_file.read_text())
    stats_file.write_text(
        json.dumps({**stats, "classes": [f"c{i:02d}" for i in range(15)], "tradeoff": rows})
    )
    write_report(run)
    md = (run / "report" / "summary.md").read_text()
    html = (run / "report" / "report.html").read_text()
    assert "| choice | n | classes | share of the pool (%) |" in md
    for r in rows:
        assert (
            f"| {r['choice']} | {r['n']} | {r['classes']} | {100 * r['share_of_pool']:.1f} |" in md
        )
    assert not re.search(r"^- +(choice|matched n by choice)", md, re.M)
    assert "<th>share of the pool (%)</th>" in html and "matched n by choice (n:" not in html


def test_tsne_on_many_natural_classes_offers_a_class_row_too():
    """Above the palette, natural data's maps were coloured by frequency group only."""
    from matplotlib.colors import to_hex

    from ssl_robustness.report.plots import CLASS_COLORS, plt
    from ssl_robustness.report.tsne import OTHER_CLASSES, tsne_figure

    classes = 40
    labels = np.arange(classes).repeat(2)
    groups = np.array(["head"] * 10 + ["medium"] * 10 + ["tail"] * 20)
    counts = np.arange(classes)[::-1] * 3 + 1  # class 39 the rarest, class 0 the most frequent
    feats = np.random.default_rng(2).normal(size=(len(labels), 6)) + labels[:, None] % 5
    names = [f"c{i}" for i in range(classes)]
    fig = tsne_figure([("natural", feats)], labels, groups, names, "t", seed=0, class_counts=counts)
    k = len(CLASS_COLORS)
    assert [ax.get_title() for ax in fig.axes] == [
        f"natural, by class ({k} of {classes}, rarest to most frequent)",
        "natural, by tier",
    ]
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend[0] == "c39" and legend[k - 1] == "c0"  # rarest first, most frequent last
    assert legend[-1] == f"{classes - k} other classes" and len(legend) == k + 1
    points = [to_hex(c) for c in fig.axes[0].collections[0].get_facecolors()]
    grey = points.count(to_hex(OTHER_CLASSES))
    assert grey == 2 * (classes - k) and set(points[:grey]) == {to_hex(OTHER_CLASSES)}  # under
    plt.close(fig)
    # without counts (an older run's stats): the group row alone, as before
    assert len(tsne_figure([("n", feats)], labels, groups, names, "t", seed=0).axes) == 1


@pytest.mark.parametrize(
    "action, said",
    [
        ("drop", "  'c': 29 of its 30 listed images were left out as duplicates "
                 "(data.duplicates.action: drop)"),
        ("group", "  'c': 30 of its 30 listed images are one duplicate set, linked into one group "
                  "(data.duplicates.action: group keeps a set in one split)"),
    ],
)  # fmt: skip
def test_a_split_size_failed_by_duplicates_names_them(action, said, tmp_path):
    """A class that is one image thirty times: the split error said '1 training images' (drop)
    or '1 groups' (group) and not why; min_count was proposed on the counts after the drop,
    where the filter counts before it (so 'min_count: 1' would have kept the class)."""
    for c in ("a", "b"):
        for i in range(50):
            write_image(tmp_path / "data" / c / f"{i}.png", seed=100 * ord(c) + i)
    for i in range(30):
        write_image(tmp_path / "data" / "c" / f"{i}.png", seed=7)  # one image, thirty files
    raw = {
        "data": {
            "source": "folder",
            "root": str(tmp_path / "data"),
            "duplicates": {"action": action},
            "split": {"test_per_class": 5, "val_per_class": 2},
        },
        "output_dir": str(tmp_path / "out"),
    }
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(cli, ["data", "stats", str(tmp_path / "s.yaml")])
    assert result.exit_code == 2, result.output
    lines = result.output.splitlines()
    assert lines[-2:] == ["duplicates behind it:", said]
    assert "  data.classes.min_count: 24 keeps 2 of 3 classes, 100 listed training images" in lines


def test_tsne_class_row_reads_the_seeds_counts_as_stats_json_records_them():
    """stats.json keeps a seed's subset counts as a plain list (and the fixed draw's as a
    dict): the t-SNE's class row read only the dict, so on every real run it never appeared."""
    from types import SimpleNamespace

    from ssl_robustness.report.figures import _train_counts

    stats = {
        "subsets": {"natural": {"counts": [9, 8, 7]}},
        "seeds": {"1": {"subsets": {"natural": [3, 2, 1]}}},
    }
    run = SimpleNamespace(stats=stats)
    assert _train_counts(run, "natural", 1, 3).tolist() == [3, 2, 1]
    assert _train_counts(run, "natural", 0, 3).tolist() == [9, 8, 7]  # no seed entry: the draw's
    assert _train_counts(run, "natural", 1, 4) is None  # not this study's classes
