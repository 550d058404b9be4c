"""The `data` section: where the images come from, how val/test are carved, the long-tail
profile of the pretraining subsets, frequency tiers, data.group_by groups and duplicates."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .base import OmitsUnset, Strict, _non_negative_seed

SourceName = Literal[
    "digits", "folder", "list", "cifar10", "cifar100", "cifar10_subset", "awa2", "agrinet", "npz"
]
BUILT_IN_SOURCES = ("digits",)  # ship inside a dependency: no root to give
SOURCES_WITH_ROOT = tuple(s for s in get_args(SourceName) if s not in BUILT_IN_SOURCES)


class ListFilesConfig(Strict):
    """Split files: `path label` lines (ImageNet-LT style) or CSV/TSV with named columns."""

    train: Path | list[Path]
    """The training list: a file, a glob (`Images/*/GT-*.csv`) or a list of files and globs."""
    val: Path | list[Path] | None = None
    """The validation list (file, glob or list), if the data ships one."""
    test: Path | list[Path] | None = None
    """The test list (file, glob or list), if the data ships one."""
    path_column: str | int = 0
    """Column of the image path: an index, or a header name in a CSV/TSV with a header."""
    label_column: str | int = 1
    """Column of the label (integer index or class name): an index or a header name."""
    delimiter: str | None = None
    """Column separator; None: whitespace for .txt, ',' for .csv, tab for .tsv."""
    classes: Path | None = None
    """Optional file of class names, one per line, in label order."""
    label_from: Literal["column", "folder"] = "column"
    """`folder`: lines carry only a path and the label is its parent folder
    (`accordion/image_0002.jpg` is class `accordion`); `column`: the label column."""
    relative_to: Literal["root", "list"] = "root"
    """Listed paths are relative to `data.root` (`root`) or to the folder of the list file
    that names them (`list`: GTSRB's one CSV per class folder)."""
    roots: dict[Literal["train", "val", "test"], Path] = Field(default_factory=dict)
    """A root per split (`{test: GTSRB/Final_Test/Images}`): that split's paths are relative
    to it; it wins over `relative_to` for its split."""


class SplitConfig(Strict, OmitsUnset):
    """Carving val/test out of sources without official splits; both balanced per class."""

    omit_when_none: ClassVar[tuple[str, ...]] = ("max_per_group",)  # added later: keys stay

    val_per_class: int = Field(10, ge=0)
    """Validation images per class carved from the train pool when the source has no official val
    split (used for model selection)."""
    test_per_class: int = Field(30, ge=1)
    """Test images per class carved from the train pool when the source has no official test
    split."""
    seed: int = 0
    """Seed of the stratified val/test carving (fixed across study seeds, so every run shares one
    test set)."""
    use_official: bool = True
    """Use the source's official train/val/test splits where it has them; false: carve val and test
    from the whole pool instead."""
    max_per_group: int | None = Field(None, ge=1)
    """With data.group_by: a group carved into val or test gives at most this many of its images
    (a seeded choice); the rest of that group is set aside, never trained on (counted in
    `data stats`). None: whole groups, as many small ones as the size allows. Set it (e.g. 1-3)
    where long tracks would otherwise never reach the test set or make up a class's test set."""

    @field_validator("seed")
    @classmethod
    def _seed_range(cls, v: int) -> int:
        return _non_negative_seed(v)


class ImbalanceConfig(Strict):
    """The long-tail profile of the pretraining subsets D(n, r) and the matched balanced D(n, 1)."""

    profile: Literal["natural", "exp", "step", "pareto", "power"] = "exp"
    """Long-tail profile of the pretraining subsets: exp (Cui et al.), step (half the classes n_max,
    half n_max*r), pareto, power (natural counts to the power exponent) or natural (the data's own
    skew)."""
    ratio: float = 0.1
    """Imbalance ratio r = n_min / n_max of the main imbalanced subset (exp, step, pareto); 1 is
    balanced."""
    exponent: float = 1.0
    """Exponent a of the power profile: class sizes proportional to natural_count ** a (0 balanced,
    1 the natural skew)."""
    sweep: list[float] = Field(default_factory=list)
    """Further imbalance levels (ratios, or exponents for power), each drawn at the same size n."""
    pareto_alpha: float = Field(6.0, gt=0)
    """Shape alpha of the pareto profile (ImageNet-LT: 6)."""
    n: int | None = Field(None, ge=1)
    """Images per pretraining subset (every level and the balanced set have this size); None: the
    largest the pool, less the probe set, allows."""
    n_max: int | None = Field(None, ge=1)
    """Images of the largest class (exp/step/pareto); None: the largest the pool allows. Sets n
    through the profile."""
    class_order: Literal["auto", "frequency", "random", "index"] = "auto"
    """Which classes become rare: auto (random where the pool's classes are within 10% of each
    other in size, drawn anew for every seed unless resample_per_seed is false; else frequency),
    frequency (the least frequent in the pool), random (seeded) or index (the last labels)."""
    seed: int = 0
    """Seed of the draws of the subsets (combined with the study seed when resample_per_seed)."""
    resample_per_seed: bool = True
    """Each study seed draws its own nested subsets from the pool (val, test and the probe set stay
    fixed), so an interval over seeds covers the sampling of the rare images too."""
    class_order_per_seed: bool = False
    """With class_order 'random': also draw which classes are rare anew for every study seed."""
    full_natural: bool = False
    """Profile natural/power: also pretrain on the whole (unmatched) pretraining pool, the data as
    it is; it has no same-size balanced twin, so it gets no gap."""

    @field_validator("seed")
    @classmethod
    def _seed_range(cls, v: int) -> int:
        return _non_negative_seed(v)

    @field_validator("ratio")
    @classmethod
    def _ratio_range(cls, v: float, info: ValidationInfo) -> float:
        if not 0 < v <= 1:
            raise ValueError("must be in (0, 1]")
        if v == 1 and info.data.get("profile", "exp") in ("exp", "step", "pareto"):
            raise ValueError(
                "1 makes the imbalanced subset a balanced one: there would be no imbalanced "
                "arm and no gap; give a ratio below 1 (e.g. 0.1)"
            )
        return v

    @field_validator("exponent")
    @classmethod
    def _exponent_range(cls, v: float, info: ValidationInfo) -> float:
        if v < 0:
            raise ValueError("must be >= 0")
        if v == 0 and info.data.get("profile") == "power":
            raise ValueError(
                "0 makes the power profile balanced: there would be no imbalanced arm and no "
                "gap; give an exponent above 0 (1: the data's own skew)"
            )
        return v

    @model_validator(mode="after")
    def _per_seed_order_needs_a_draw(self) -> ImbalanceConfig:
        """frequency and index orders are the data's: 'per seed' would be the same classes rare
        in every seed, which a user asking for per-seed draws does not expect."""
        if self.class_order_per_seed and self.class_order in ("frequency", "index"):
            raise ValueError(
                f"class_order_per_seed: true has no effect with class_order '{self.class_order}' "
                "(the same classes are rare in every seed); use class_order: random to draw "
                "them anew per seed, or drop class_order_per_seed"
            )
        return self

    @model_validator(mode="after")
    def _sweep_range(self) -> ImbalanceConfig:
        for i, v in enumerate(self.sweep):
            if self.profile == "power" and v < 0:
                raise ValueError(f"sweep.{i}: exponent must be >= 0 (got {v})")
            if self.profile in ("exp", "step", "pareto") and not 0 < v <= 1:
                raise ValueError(f"sweep.{i}: ratio must be in (0, 1] (got {v})")
        return self

    def levels(self) -> list[float]:
        """Imbalance levels to pretrain on; the first is always the balanced reference."""
        if self.profile == "natural":
            return [0.0, 1.0]  # power exponents: 0 = balanced, 1 = the data as it is
        balanced = 0.0 if self.profile == "power" else 1.0
        main = self.exponent if self.profile == "power" else self.ratio
        out = [balanced]
        for v in [main, *self.sweep]:
            if v not in out:
                out.append(v)
        return out


class TiersConfig(Strict):
    """The frequency tiers head/medium/tail: OLTR thresholds (many > 100, few < 20) or
    frequency thirds."""

    rule: Literal["auto", "oltr", "thirds"] = "auto"
    """How classes are sorted into the tiers head/medium/tail: oltr (thresholds below), thirds
    (frequency thirds), or auto (oltr unless it leaves a tier empty, then thirds)."""
    many_above: int = Field(100, ge=1)
    """oltr: a class with more training images than this is head (many-shot)."""
    few_below: int = Field(20, ge=1)
    """oltr: a class with fewer training images than this is tail (few-shot)."""

    @model_validator(mode="after")
    def _consistent(self) -> TiersConfig:
        """A class with many_above < count < few_below would be head and tail at once."""
        if self.few_below > self.many_above + 1:
            raise ValueError(
                f"many_above ({self.many_above}) is below few_below ({self.few_below}): a class "
                f"of {self.many_above + 1} images would be head and tail at once; "
                "many_above must be >= few_below - 1"
            )
        return self


class ClassesConfig(Strict):
    """Which classes a study keeps; labels are re-indexed densely, class names kept."""

    include: list[str] = Field(default_factory=list)
    """Keep only these classes (names); empty: every class."""
    exclude: list[str] = Field(default_factory=list)
    """Drop these classes (names), e.g. a `BACKGROUND_Google` or `Other` class."""
    min_count: int | None = Field(None, ge=1)
    """Keep only classes with at least this many images in the train pool (what is left
    for training once val/test are carved out), as `data stats` counts it."""


class GroupByConfig(Strict):
    """Images that belong together (frames of one video track, photos of one plant, animal or
    patient): one id per image, and no id ever spans val, test, the probe set and the pool."""

    pattern: str | None = None
    """A regular expression searched in each image's path relative to data.root; its one
    capture group is the group id (`(track_\\d+)_frame` groups `track_03_frame_11.png`)."""
    column: str | int | None = None
    """Source `list`: the column of the list files holding the group id (a header name or an
    index)."""
    keep_together: bool = True
    """true: val, test, the probe set and the pool are disjoint in groups; false: split per image
    as without group_by and only measure the leak (`data stats`' leakage line)."""

    @model_validator(mode="after")
    def _one_source(self) -> GroupByConfig:
        if (self.pattern is None) == (self.column is None):
            raise ValueError("give exactly one of pattern and column")
        if self.pattern is not None:
            try:
                groups = re.compile(self.pattern).groups
            except re.error as exc:
                raise ValueError(f"pattern: not a regular expression: {exc}") from None
            if groups != 1:
                raise ValueError(f"pattern: needs exactly one capture group, has {groups}")
        return self


class DuplicatesConfig(Strict):
    """Exact duplicates (the same decoded pixels) and, optionally, near-duplicates (sets of
    images whose grey thumbnails all correlate at least near_similarity with each other):
    found by `data stats`."""

    action: Literal["report", "drop", "group"] = "report"
    """report: list them only; drop: keep one image of each set (none of a set filed under two
    classes); group: keep each set in one split (as a data.group_by group)."""
    near: bool = False
    """Also find near-duplicates. Candidates: 64-bit difference hashes (9x8 grey) within
    near_threshold bits, and each image's 8 nearest neighbours by its mean-subtracted,
    normalised 8x8 grey thumbnail. Confirmed: the best correlation of two 16x16 grey
    thumbnails (zero-mean, unit-norm) over shifts of up to 2 cells (half cells too), each
    image's central 7/8 against the other's whole too (crops), at least near_similarity.
    Sets: every member near every other (complete linkage, strongest pairs first: a drifting
    video track is several sets, not one chain); each near set reports its weakest pair
    (min_similarity)."""
    near_threshold: int = Field(4, ge=0, le=16)
    """Largest Hamming distance (of 64 bits) between the difference hashes of a candidate pair
    (candidates are then confirmed by near_similarity)."""
    near_similarity: float = Field(0.95, gt=0, le=1)
    """Smallest thumbnail correlation of two near-duplicates (1: the same grey structure up to
    brightness and contrast). 0.95 finds JPEG re-encodes, brightness, contrast and colour
    changes, most 1-3 px shifts and about half the crops of 26-30 of 32 px (86% of planted
    CIFAR-10 copies, benchmarks/duplicate_finder.py); lower finds more copies and more false
    sets of like-looking images (horizons, plain backgrounds); raise it (0.97) for
    low-detail images such as small digits or specimens on one background, which correlate
    highly without being copies (docs/own-data.md: the measured trade)."""


class DataConfig(Strict):
    source: SourceName = "digits"
    """Where the images come from: digits (built in), folder, list, cifar10, cifar100,
    cifar10_subset (1,000 + 200 images per class of CIFAR-10, seeded, cached once), awa2, agrinet
    or npz (see the README's Data formats)."""
    root: Path | None = None
    """Folder (or .npz file) of the data; required by every source but digits."""
    download: bool = False
    """cifar10/cifar100/cifar10_subset: fetch CIFAR through torchvision into root if it is not
    there."""
    list: ListFilesConfig | None = None
    """Split files of source 'list' (required for it)."""
    image_size: int = Field(16, ge=8, le=1024)
    """Side in pixels the images are decoded to (shorter side resized, centre crop), once, into a
    cache."""
    split: SplitConfig = Field(default_factory=SplitConfig)
    """How val and test are carved out when the source has no official splits."""
    imbalance: ImbalanceConfig = Field(default_factory=ImbalanceConfig)
    """The long-tail profile of the pretraining subsets and the matched balanced set."""
    tiers: TiersConfig = Field(default_factory=TiersConfig)
    """The frequency tiers (head/medium/tail) of the classes, used by the per-tier results.
    Formerly `data.groups` (still read, with a note)."""
    test_root: Path | None = None
    """`folder` source: the test images in class folders of their own
    (`test_root/<class>/<image>`), used as the official test split; `root` holds the rest."""
    classes: ClassesConfig = Field(default_factory=ClassesConfig)
    """Class filters (`include`, `exclude`, `min_count`), applied to the listing before
    anything is split or decoded."""
    skip_bad_images: bool = False
    """Skip unreadable images (counted in stats.json) instead of failing with their paths."""
    decode_workers: int = Field(4, ge=1)
    """Processes decoding images into the cache."""
    fingerprint: Literal["stat", "content"] = "stat"
    """How the image cache knows its files are unchanged: stat (each file's size and
    modification time: fast, but a file replaced by another of the same size with its mtime
    restored goes unseen) or content (SHA-256 of every file's bytes: reads each image once per
    run). Not part of any cache key; switching rebuilds the image cache once."""
    group_by: GroupByConfig | None = None
    """Where each image's group id comes from (a path pattern or a list column; a plain string
    is the pattern); None: images are split one by one."""
    duplicates: DuplicatesConfig = Field(default_factory=DuplicatesConfig)
    """What `data stats` and the study do with duplicate images."""

    @model_validator(mode="before")
    @classmethod
    def _tiers_were_groups(cls, v: Any) -> Any:
        """`data.groups` was the tiers' key until "group" came to mean data.group_by's images
        that belong together: still read (a user's config is told so where it is loaded,
        `loading.old_key_notes`; a saved run's is read quietly), refused beside `data.tiers`."""
        if not isinstance(v, dict) or "groups" not in v:
            return v
        if "tiers" in v:
            raise ValueError("groups: the old name of data.tiers; set data.tiers only")
        return {("tiers" if k == "groups" else k): x for k, x in v.items()}

    @field_validator("group_by", mode="before")
    @classmethod
    def _pattern_as_string(cls, v: Any) -> Any:
        """`group_by: '(track\\d+)'` is what users type first: it is the pattern."""
        return {"pattern": v} if isinstance(v, str) else v

    @model_validator(mode="after")
    def _needs(self) -> DataConfig:
        if (
            self.group_by is not None
            and not self.group_by.keep_together
            and self.duplicates.action == "group"
        ):
            raise ValueError(
                "group_by.keep_together: false with duplicates.action: group: linking duplicates "
                "into one split keeps groups together too, so the leak keep_together: false "
                "measures would not be the leak of a per-image split; choose one (action: report "
                "or drop with keep_together: false)"
            )
        if self.source in SOURCES_WITH_ROOT and self.root is None:
            raise ValueError(f"root: required for source '{self.source}'")
        if self.source == "list" and self.list is None:
            raise ValueError("list: required for source 'list' (train/val/test split files)")
        if self.root is not None and not self.root.exists() and not self.download:
            raise ValueError(f"root: path does not exist: {self.root}")
        if self.test_root is not None:
            if self.source not in ("folder", "agrinet"):
                raise ValueError(f"test_root: only for source 'folder', not '{self.source}'")
            if not self.test_root.is_dir():
                raise ValueError(f"test_root: not a folder: {self.test_root}")
        return self
