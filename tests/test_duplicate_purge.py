"""Training-side copies of official test and val images leave the pool; the test set is never
touched (issue 31): with official splits `group` cannot move a test image and `drop` could
delete the test copy, so both purge the training side, and `data stats` says how many."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import write_image
from ssl_robustness.config import DataConfig, EvaluationConfig
from ssl_robustness.data.prepare import prepare_data
from ssl_robustness.data.stats import stats_lines


def _official(tmp: Path) -> tuple[Path, Path]:
    """root/<class>/ (train) and test_root/<class>/ (the official test split): 20 training and 4
    test images per class; test/cod/t0 has three training-side copies (one filed under eel,
    one under cod twice), test/eel/t1 has one, and two test images are copies of each other."""
    root, test = tmp / "train", tmp / "test"
    for c, name in enumerate(("cod", "eel")):
        for i in range(20):
            write_image(root / name / f"{i:02d}.png", 100 * c + i, size=16)
        for i in range(4):
            write_image(test / name / f"t{i}.png", 1000 + 100 * c + i, size=16)
    t0 = (test / "cod" / "t0.png").read_bytes()
    (root / "cod" / "copy_a.png").write_bytes(t0)
    (root / "cod" / "copy_b.png").write_bytes(t0)
    (root / "eel" / "copy_c.png").write_bytes(t0)  # a copy under the other class
    (root / "eel" / "copy_d.png").write_bytes((test / "eel" / "t1.png").read_bytes())
    (test / "eel" / "t3.png").write_bytes((test / "eel" / "t2.png").read_bytes())
    return root, test


def _cfg(root: Path, test: Path, action: str) -> DataConfig:
    return DataConfig(
        source="folder",
        root=root,
        test_root=test,
        image_size=16,
        split={"val_per_class": 2},
        imbalance={"profile": "natural"},
        duplicates={"action": action},
    )


COPIES = {"cod/copy_a.png", "cod/copy_b.png", "eel/copy_c.png", "eel/copy_d.png"}


@pytest.mark.parametrize("action", ["drop", "group"])
def test_training_side_copies_of_test_images_leave_the_pool(tmp_path, action):
    root, test = _official(tmp_path)
    data = prepare_data(_cfg(root, test, action), tmp_path / "out", EvaluationConfig())
    held = {data.items[i] for i in data.indices("test")}
    assert len(held) == 8  # every official test image stays, copies among them too
    assert data.split_counts("test").tolist() == [4, 4]  # still balanced: the metric stays
    assert not COPIES & set(data.items)  # none in the pool, the probe set or any subset
    assert data.duplicates["purged"] == 4 and data.duplicates["held_out_copies_left"] == 0
    assert (
        "duplicates: 4 training-side copies of val/test images left the pool (the val and test "
        "sets are never touched)"
    ) in stats_lines(data, 0)


def test_report_counts_the_copies_it_leaves(tmp_path):
    root, test = _official(tmp_path)
    data = prepare_data(_cfg(root, test, "report"), tmp_path / "out", EvaluationConfig())
    assert set(data.items) >= COPIES
    assert data.duplicates["held_out_copies_left"] == 4
    assert any(
        line.startswith("duplicates: 4 pool or probe-set images are copies of val/test images")
        and line.endswith("set data.duplicates.action: drop or group to purge them")
        for line in stats_lines(data, 0)
    )
