"""Data as it is laid out in the wild: path-only lists labelled by folder, one list file per
class folder with a root per split, class filters, feasibility before decoding, and the ways
out of a natural profile's small matched n."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from conftest import tiny_study, write_image
from ssl_robustness.cache_keys import config_hash, data_key
from ssl_robustness.cli import cli
from ssl_robustness.config import DataConfig, ListFilesConfig
from ssl_robustness.data.prepare import list_data, prepare_data
from ssl_robustness.data.sources import load_source
from ssl_robustness.data.sources.list_files import load_list
from ssl_robustness.data.stats import stats_lines
from ssl_robustness.data.store import images as images_module
from ssl_robustness.errors import UserError

OWN_DATA = Path(__file__).resolve().parents[1] / "docs" / "own-data.md"  # README's data page


def _files(root: Path, counts: dict[str, int], ext: str = ".png", decodable: bool = True) -> None:
    """root/<class>/<i><ext>: real tiny images, or empty files where nothing is decoded."""
    for name, n in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            path = root / name / f"image_{i:04d}{ext}"
            if decodable:
                write_image(path, i, size=8)
            else:
                path.write_bytes(b"")


def _refuse_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(path, size):  # noqa: ANN001, ANN202
        raise RuntimeError(f"decoded {path}")

    monkeypatch.setattr(images_module, "decode_image", refuse)


# ----------------------------------------------------------------------------- 1. folder labels
def test_path_only_lines_take_the_label_from_the_parent_folder(tmp_path):
    root = tmp_path / "101_ObjectCategories"
    _files(root, {"accordion": 3, "airplanes": 2}, ".jpg", decodable=False)
    (tmp_path / "train.txt").write_text(
        "accordion/image_0000.jpg\nairplanes/image_0000.jpg\naccordion/image_0001.jpg\n"
    )
    (tmp_path / "test.txt").write_text("accordion/image_0002.jpg\n\nairplanes/image_0001.jpg\n")
    cfg = ListFilesConfig(
        train=tmp_path / "train.txt", test=tmp_path / "test.txt", label_from="folder"
    )
    lset = load_list(root, cfg)
    assert lset.class_names == ["accordion", "airplanes"]
    assert lset.labels.tolist() == [0, 1, 0, 0, 1]
    assert lset.official_split.tolist() == ["train", "train", "train", "test", "test"]
    assert lset.items[3] == "accordion/image_0002.jpg"


def test_numeric_folder_names_stay_names_and_a_path_without_folder_is_named(tmp_path):
    (tmp_path / "train.txt").write_text("00007/a.ppm\n00012/b.ppm\n")
    lset = load_list(tmp_path, ListFilesConfig(train=tmp_path / "train.txt", label_from="folder"))
    assert lset.class_names == ["00007", "00012"] and lset.labels.tolist() == [0, 1]
    (tmp_path / "bad.txt").write_text("00007/a.ppm\nloose.ppm\n")
    with pytest.raises(UserError, match=r"bad\.txt:2: 'loose\.ppm' has no folder to take"):
        load_list(tmp_path, ListFilesConfig(train=tmp_path / "bad.txt", label_from="folder"))


# ----------------------------------------------------------------------------- 2. GTSRB-like
def _gtsrb(tmp: Path, per_class: dict[str, int], test: int = 4) -> Path:
    """GTSRB's layout: one `;` CSV per class folder naming files beside it; the test images
    flat in another folder, with one CSV outside it."""
    root = tmp / "GTSRB"
    k = 0
    for cls, n in per_class.items():
        folder = root / "Final_Training" / "Images" / cls
        rows = ["Filename;Width;Height;ClassId"]
        for i in range(n):
            write_image(folder / f"{cls}_{i:05d}.ppm", k, size=8)
            rows.append(f"{cls}_{i:05d}.ppm;8;10;{int(cls)}")
            k += 1
        (folder / f"GT-{cls}.csv").write_text("\n".join(rows) + "\n")
    flat = root / "Final_Test" / "Images"
    rows = ["Filename;Width;Height;ClassId"]
    for i in range(test):
        write_image(flat / f"{i:05d}.ppm", 100 + i, size=8)
        rows.append(f"{i:05d}.ppm;8;10;{i % len(per_class)}")
    (root / "GT-final_test.csv").write_text("\n".join(rows) + "\n")
    return root


def _gtsrb_list(root: Path, **changes) -> ListFilesConfig:
    return ListFilesConfig(
        **{
            "train": root / "Final_Training/Images/*/GT-*.csv",
            "test": root / "GT-final_test.csv",
            "delimiter": ";",
            "path_column": "Filename",
            "label_column": "ClassId",
            "relative_to": "list",
            "roots": {"test": root / "Final_Test/Images"},
            **changes,
        }
    )


def test_a_glob_of_per_class_csvs_and_a_root_for_the_test_split(tmp_path):
    root = _gtsrb(tmp_path, {"00000": 3, "00001": 2})
    lset = load_list(root, _gtsrb_list(root))
    assert lset.items == [
        "Final_Training/Images/00000/00000_00000.ppm",
        "Final_Training/Images/00000/00000_00001.ppm",
        "Final_Training/Images/00000/00000_00002.ppm",
        "Final_Training/Images/00001/00001_00000.ppm",
        "Final_Training/Images/00001/00001_00001.ppm",
        "Final_Test/Images/00000.ppm",
        "Final_Test/Images/00001.ppm",
        "Final_Test/Images/00002.ppm",
        "Final_Test/Images/00003.ppm",
    ]
    assert lset.labels.tolist() == [0, 0, 0, 1, 1, 0, 1, 0, 1]
    assert lset.official_split.tolist() == ["train"] * 5 + ["test"] * 4
    # the same two files listed by hand give the same listing
    files = sorted((root / "Final_Training/Images").glob("*/GT-*.csv"))
    assert load_list(root, _gtsrb_list(root, train=files)).items == lset.items


def test_a_gtsrb_like_layout_decodes_end_to_end(tmp_path):
    root = _gtsrb(tmp_path, {"00000": 6, "00001": 6})
    cfg = DataConfig(
        source="list",
        root=root,
        list=_gtsrb_list(root),
        image_size=8,
        split={"val_per_class": 1},
        imbalance={"profile": "natural"},
    )
    data = prepare_data(cfg, tmp_path / "out")
    assert data.store.images.shape == (16, 8, 8, 3) and data.store.images.max() > 0
    assert data.split_counts("test").tolist() == [2, 2]


def test_a_bad_row_in_one_of_several_files_names_that_file_and_line(tmp_path):
    root = _gtsrb(tmp_path, {"00000": 2, "00001": 2})
    bad = root / "Final_Training/Images/00001/GT-00001.csv"
    bad.write_text(bad.read_text() + "00001_00009.ppm;8\n")
    with pytest.raises(UserError, match=r"GT-00001\.csv:4: expected at least 4 fields, got 2"):
        load_list(root, _gtsrb_list(root))


def test_a_glob_matching_nothing_and_a_missing_split_root_are_named(tmp_path):
    root = _gtsrb(tmp_path, {"00000": 2, "00001": 2})
    with pytest.raises(UserError, match=r"data\.list\.train: no file matches '.*/GT-\*\.txt'"):
        load_list(root, _gtsrb_list(root, train=root / "Final_Training/Images/*/GT-*.txt"))
    with pytest.raises(UserError, match=r"data\.list\.roots\.test: not a folder: .*/nowhere"):
        load_list(root, _gtsrb_list(root, roots={"test": root / "nowhere"}))


def test_a_folder_source_with_its_test_images_under_another_root(tmp_path):
    _files(tmp_path / "train", {"ant": 5, "bee": 4}, decodable=False)
    _files(tmp_path / "elsewhere" / "test", {"ant": 2, "bee": 1}, decodable=False)
    cfg = _folder_cfg(
        tmp_path / "train",
        test_root=tmp_path / "elsewhere" / "test",
        imbalance={"profile": "natural"},
    )
    lset = load_source(cfg)
    assert lset.items[-3:] == [
        "../elsewhere/test/ant/image_0000.png",
        "../elsewhere/test/ant/image_0001.png",
        "../elsewhere/test/bee/image_0000.png",
    ]
    data = list_data(cfg, tmp_path / "out")
    assert data.split_counts("test").tolist() == [2, 1]
    assert data.split_counts("val").tolist() == [1, 1]  # only val is carved
    assert data.split_counts("train").tolist() == [4, 3]
    with pytest.raises(ValueError, match=r"test_root: only for source 'folder', not 'digits'"):
        DataConfig(source="digits", test_root=tmp_path)


def test_new_list_keys_left_at_their_defaults_keep_the_cache_key(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.txt").write_text("a/0.png 0\n")
    cfg = DataConfig(source="list", root=".", list={"train": "t.txt"})
    old_dump = {  # the key's input before data.list had label_from, relative_to and roots
        "source": "list",
        "root": ".",
        "list": {
            "train": "t.txt",
            "val": None,
            "test": None,
            "path_column": 0,
            "label_column": 1,
            "delimiter": None,
            "classes": None,
        },
        "image_size": 16,
        "skip_bad_images": False,
    }
    assert data_key(cfg) == config_hash(old_dump) == "125f7d1af4"
    folder = cfg.model_copy(update={"list": cfg.list.model_copy(update={"label_from": "folder"})})
    assert data_key(folder) != data_key(cfg)


# ----------------------------------------------------------------------------- 3. classes
def _folder_cfg(root: Path, **data) -> DataConfig:
    return DataConfig(
        source="folder",
        root=root,
        image_size=8,
        split={"val_per_class": 1, "test_per_class": 1},
        **data,
    )


def test_include_exclude_and_min_count_keep_classes_relabelled_densely(tmp_path):
    root = tmp_path / "imgs"
    _files(root, {"BACKGROUND": 9, "ant": 12, "bee": 8, "cat": 7, "dog": 5}, decodable=False)
    lset = load_source(_folder_cfg(root, classes={"exclude": ["BACKGROUND"]}))
    assert lset.class_names == ["ant", "bee", "cat", "dog"]
    assert np.bincount(lset.labels).tolist() == [12, 8, 7, 5]
    # pools after carving 1 val + 1 test: ant 10, bee 6, cat 5, dog 3
    lset = load_source(_folder_cfg(root, classes={"exclude": ["BACKGROUND"], "min_count": 5}))
    assert lset.class_names == ["ant", "bee", "cat"]
    assert np.bincount(lset.labels).tolist() == [12, 8, 7]
    lset = load_source(_folder_cfg(root, classes={"include": ["dog", "bee"]}))
    assert lset.class_names == ["bee", "dog"] and np.bincount(lset.labels).tolist() == [8, 5]
    assert all(item.split("/")[0] in ("bee", "dog") for item in lset.items)


def test_unknown_class_names_and_too_few_kept_classes_are_errors(tmp_path):
    root = tmp_path / "imgs"
    _files(root, {"ant": 6, "bee": 4}, decodable=False)
    with pytest.raises(UserError, match=r"data\.classes\.include: unknown class\(es\) \['cow'\]"):
        load_source(_folder_cfg(root, classes={"include": ["ant", "cow"]}))
    with pytest.raises(UserError, match=r"data\.classes\.exclude: unknown class\(es\) \['Other'"):
        load_source(_folder_cfg(root, classes={"exclude": ["Other"]}))
    with pytest.raises(UserError, match=r"data\.classes: keeps 1 class\(es\) \(ant\) of 2"):
        load_source(_folder_cfg(root, classes={"min_count": 3}))


# ----------------------------------------------------------------------------- 4. missing file
def test_a_missing_file_is_named_missing_never_unreadable(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _files(tmp_path / "imgs", {"ant": 4, "bee": 4})
    (tmp_path / "train.txt").write_text(
        "".join(f"{c}/image_{i:04d}.png\n" for c in ("ant", "bee") for i in range(4))
        + "ant/image_0099.png\n"
    )
    raw = tiny_study(tmp_path)
    raw["data"] = {
        "source": "list",
        "root": "imgs",
        "list": {"train": "train.txt", "label_from": "folder"},
        "image_size": 8,
        "split": {"val_per_class": 0, "test_per_class": 1},
        "imbalance": {"profile": "natural"},
        "skip_bad_images": True,
    }
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(cli, ["data", "stats", "s.yaml"])
    assert result.exit_code == 2
    assert "1 image file(s) do not exist (is data.root imgs right?)" in result.stderr
    assert "imgs/ant/image_0099.png" in result.stderr
    assert "unreadable" not in result.stderr and "skip_bad_images" not in result.stderr


# ----------------------------------------------------------------------------- 5. feasibility
def test_an_infeasible_split_fails_before_any_image_is_decoded(tmp_path, monkeypatch):
    root = tmp_path / "imgs"
    _files(root, {"ant": 8, "bee": 5})
    _refuse_decoding(monkeypatch)
    split = {"val_per_class": 1, "test_per_class": 4}
    cfg = DataConfig(source="folder", root=root, image_size=8, split=split)
    with pytest.raises(
        UserError, match=r"'bee': can give test_per_class=3 \(it has 5 training images\)"
    ):
        prepare_data(cfg, tmp_path / "out")
    cfg = _folder_cfg(root, imbalance={"profile": "exp", "n": 50})
    with pytest.raises(UserError, match=r"evaluation\.probe_per_class|data\.imbalance"):
        prepare_data(cfg, tmp_path / "out")
    assert not list((tmp_path / "out").glob("images-*"))


def test_run_plan_decodes_no_image(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _files(tmp_path / "imgs", {"ant": 12, "bee": 9})
    _refuse_decoding(monkeypatch)
    raw = tiny_study(tmp_path)
    raw["data"] = {
        "source": "folder",
        "root": "imgs",
        "image_size": 8,
        "split": {"val_per_class": 1, "test_per_class": 1},
        "imbalance": {"profile": "natural"},
    }
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(cli, ["run", "--plan", "s.yaml"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert "representations" in result.output
    assert not list(tmp_path.rglob("images-*.npy"))


# ----------------------------------------------------------------------------- 6. ways out
NATURAL = {"a": 40, "b": 36, "c": 30, "d": 26, "e": 22, "f": 20, "g": 18, "h": 16, "i": 12}


def test_data_stats_offers_class_filters_that_raise_the_matched_n(tmp_path):
    root = tmp_path / "nat"
    _files(root, {**NATURAL, "j": 10}, decodable=False)
    data = list_data(_folder_cfg(root, imbalance={"profile": "natural"}), tmp_path / "out")
    lines = stats_lines(data, 0)
    at = next(i for i, line in enumerate(lines) if line.startswith("natural: n=40 is bounded"))
    assert "10 classes x the smallest class (4 per class in the balanced set)" in lines[at]
    assert "Keeping fewer classes gives a larger n" in lines[at] and "ways out" not in lines[at]
    assert lines[at + 1 : at + 4] == [
        "  data.classes.min_count: 10 keeps 9 of 10 classes, n = 45 (21% of the pool)",
        "  data.classes.min_count: 14 keeps 8 of 10 classes, n = 56 (27% of the pool)",
        "  data.classes.min_count: 20 keeps 5 of 10 classes, n = 50 (24% of the pool)",
    ]
    # the offer holds: min_count 14 gives n = 56, and a chosen n works for the kept classes
    kept = list_data(
        _folder_cfg(root, imbalance={"profile": "natural"}, classes={"min_count": 14}),
        tmp_path / "out",
    )
    assert kept.num_classes == 8 and kept.base_plans[0].size == 56
    chosen = list_data(
        _folder_cfg(root, imbalance={"profile": "natural", "n": 80}, classes={"min_count": 16}),
        tmp_path / "out",
    )
    assert chosen.class_names == list("abcdefg")
    assert [p.size for p in chosen.base_plans] == [80, 80]


def test_a_natural_plan_the_smallest_class_cannot_meet_names_the_ways_out(tmp_path):
    root = tmp_path / "nat"
    _files(root, {**NATURAL, "i": 8, "j": 6}, decodable=False)
    with pytest.raises(UserError) as err:
        list_data(_folder_cfg(root, imbalance={"profile": "natural"}), tmp_path / "out")
    assert str(err.value).splitlines() == [
        "data.imbalance: subset 'natural' keeps no image of class 'j'; n=20, bounded by 10 "
        "classes x the smallest class, is too small for this shape to give it one image; or "
        "keep fewer classes:",
        "  data.classes.min_count: 6 keeps 9 of 10 classes, n = 27 (13% of the pool)",
        "  data.classes.min_count: 14 keeps 8 of 10 classes, n = 56 (28% of the pool)",
        "  data.classes.min_count: 20 keeps 5 of 10 classes, n = 50 (25% of the pool)",
    ]


# ----------------------------------------------------------------------------- 7. README
def _readme_data_snippets() -> list[dict]:
    text = OWN_DATA.read_text(encoding="utf-8")
    section = text[text.index("## Data formats") : text.index("## See also")]
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.S)
    return [yaml.safe_load(b) for b in blocks]


def test_every_readme_data_snippet_runs_on_a_tiny_layout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    caltech = tmp_path / "caltech101" / "101_ObjectCategories"
    counts = {"BACKGROUND_Google": 3, "Faces": 40, "accordion": 32, "airplanes": 28}
    _files(caltech, counts, ".jpg")
    lines = [f"{c}/image_{i:04d}.jpg" for c, n in counts.items() for i in range(n)]
    (tmp_path / "caltech101" / "train.txt").write_text(
        "".join(x + "\n" for i, x in enumerate(lines) if i % 4)
    )
    (tmp_path / "caltech101" / "test.txt").write_text(
        "".join(x + "\n" for i, x in enumerate(lines) if not i % 4)
    )
    _gtsrb(tmp_path, {"00000": 40, "00001": 32, "00002": 24}, test=6)
    for c, species in enumerate(("cod", "eel")):  # the natural-data snippet: video tracks
        for t in range(24):
            for f in range(2 + t % 4):
                name = f"track_{c}{t:03d}_frame_{f:04d}.png"
                write_image(tmp_path / "fish_frames" / species / name, 100 * c + 4 * t + f, size=8)
    snippets = _readme_data_snippets()
    assert len(snippets) >= 2
    for snippet in snippets:
        raw = tiny_study(tmp_path)
        raw["data"] = {**snippet["data"], "image_size": 8}
        (tmp_path / "s.yaml").write_text(yaml.safe_dump(raw))
        result = CliRunner().invoke(cli, ["data", "stats", "s.yaml"])
        assert result.exit_code == 0, (snippet, result.output, result.exception)
        rows = result.output.splitlines()  # a dropped class is named only as dropped
        assert not any(r.startswith("BACKGROUND_Google") for r in rows)
