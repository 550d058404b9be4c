"""The study config: one YAML file, validated in full before any work starts.

Every section is a pydantic model with `extra="forbid"`, so a typo is an error naming its key
path (`data.imbalanse: unknown key`) instead of a silently ignored setting.
"""

from __future__ import annotations

import difflib
import re
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from .cache_keys import OmitsUnset
from .errors import UserError, utf8_text
from .layout import RunLayout
from .names import CHECKPOINT_FORMATS, PUBLISHED_WEIGHTS

SOURCES_WITH_ROOT = (
    "folder",
    "list",
    "cifar10",
    "cifar100",
    "cifar10_subset",
    "awa2",
    "agrinet",
    "npz",
)
BOOL_ERROR = "bool_not_a_value"  # the error type that names its key in its context


class Strict(BaseModel):
    """Unknown keys are errors; the docstring under each field is its documentation
    (`ssl-robustness config` prints it, and a test checks that every key has one)."""

    # allow_inf_nan=False: `lr: .inf` or `exponent: .nan` would pass every range check (nan
    # compares false) and fail, or silently poison a number, only much later
    model_config = ConfigDict(
        extra="forbid",
        protected_namespaces=(),
        use_attribute_docstrings=True,
        allow_inf_nan=False,
    )

    @model_validator(mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, data: Any) -> Any:
        """pydantic reads `epochs: true` as 1 and `seeds: [true]` as seed 1: a YAML boolean
        where a number (or text) is expected is a mistake, never a value."""
        if not isinstance(data, dict):
            return data
        for key, v in data.items():
            field = cls.model_fields.get(key) if isinstance(key, str) else None
            if field is not None and _holds_bool(v) and not _takes_bool(field.annotation):
                raise PydanticCustomError(
                    BOOL_ERROR,
                    "true/false is a boolean, not a value of this key (got {got})",
                    {"key": key, "got": repr(v)},
                )
        return data


def _leaf_types(annotation: Any) -> set[Any]:
    """The types a field's annotation is made of (Literal values give their types)."""
    if get_origin(annotation) is Literal:
        return {type(a) for a in get_args(annotation)}
    args = get_args(annotation)
    if not args:
        return {annotation}
    return set().union(*(_leaf_types(a) for a in args))


def _takes_bool(annotation: Any) -> bool:
    """Whether a field may hold a boolean: a bool field, Any, or a section (a nested model
    checks its own fields)."""
    leaves = _leaf_types(annotation)
    return (
        bool in leaves
        or Any in leaves
        or any(isinstance(t, type) and issubclass(t, BaseModel) for t in leaves)
    )


def _holds_bool(v: Any) -> bool:
    if isinstance(v, bool):
        return True
    if isinstance(v, list | tuple):
        return any(_holds_bool(x) for x in v)
    if isinstance(v, dict):
        return any(_holds_bool(x) for x in v.values())
    return False


def _non_negative_seed(v: int) -> int:
    """numpy's generators refuse negative seeds deep inside data preparation: refuse them here."""
    if v < 0:
        raise ValueError("a seed must be >= 0")
    return v


# ----------------------------------------------------------------------------- data
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


class SplitConfig(Strict):
    """Carving val/test out of sources without official splits; both balanced per class."""

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


class GroupsConfig(Strict):
    """head/medium/tail: OLTR thresholds (many > 100, few < 20) or frequency thirds."""

    rule: Literal["auto", "oltr", "thirds"] = "auto"
    """How classes are grouped into head/medium/tail: oltr (thresholds below), thirds (frequency
    thirds), or auto (oltr unless it leaves a group empty, then thirds)."""
    many_above: int = Field(100, ge=1)
    """oltr: a class with more training images than this is head (many-shot)."""
    few_below: int = Field(20, ge=1)
    """oltr: a class with fewer training images than this is tail (few-shot)."""

    @model_validator(mode="after")
    def _consistent(self) -> GroupsConfig:
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
    """Exact duplicates (the same decoded pixels) and, optionally, near-duplicates (a difference
    hash of the decoded image within a Hamming distance): found by `data stats`."""

    action: Literal["report", "drop", "group"] = "report"
    """report: list them only; drop: keep one image of each set (none of a set filed under two
    classes); group: keep each set in one split (as a data.group_by group)."""
    near: bool = False
    """Also find near-duplicates: 64-bit difference hashes (9x8 grey, area-averaged) of the
    decoded images within near_threshold bits."""
    near_threshold: int = Field(4, ge=0, le=16)
    """Largest Hamming distance (of 64 bits) between the hashes of two near-duplicates."""


class DataConfig(Strict):
    source: Literal[
        "digits",
        "folder",
        "list",
        "cifar10",
        "cifar100",
        "cifar10_subset",
        "awa2",
        "agrinet",
        "npz",
    ] = "digits"
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
    groups: GroupsConfig = Field(default_factory=GroupsConfig)
    """The head/medium/tail grouping of classes used by the per-group results."""
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
    """Where each image's group id comes from (a path pattern or a list column); None: images
    are split one by one."""
    duplicates: DuplicatesConfig = Field(default_factory=DuplicatesConfig)
    """What `data stats` and the study do with duplicate images."""

    @model_validator(mode="after")
    def _needs(self) -> DataConfig:
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


# ----------------------------------------------------------------------------- training
class OptimizerConfig(Strict):
    name: Literal["sgd", "lars", "adamw"] = "sgd"
    """Optimizer: sgd, lars or adamw."""
    lr: float = Field(0.05, gt=0)
    """Base learning rate (warm-up then cosine decay over the steps)."""
    momentum: float = Field(0.9, ge=0, lt=1)
    """Momentum of sgd and lars (adamw: beta1)."""
    nesterov: bool = False
    """Nesterov momentum (sgd)."""
    weight_decay: float = Field(5e-4, ge=0)
    """Weight decay."""


class TrainConfig(Strict):
    """Settings of the one training loop; a method may override epochs, batch size and lr."""

    epochs: int = Field(20, ge=1)
    """Pretraining epochs (a method may override)."""
    batch_size: int = Field(128, ge=2)
    """Images per step, over all processes (a method may override)."""
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    """The optimizer and its settings."""
    warmup_epochs: float = Field(0.0, ge=0)
    """Epochs of linear learning-rate warm-up before the cosine decay (may be fractional)."""
    grad_clip: float | None = Field(None, gt=0)
    """Clip the gradient norm to this value; None: no clipping."""
    checkpoint_every: int = Field(5, ge=1)
    """Write a resumable checkpoint every this many epochs (and at the end)."""
    log_every: int = Field(10, ge=1)
    """Write a row to steps.csv every this many steps (and at each epoch's last step)."""


class BackboneConfig(Strict):
    """resnet18 / resnet50 (torchvision), resnet_tiny (reduced, CPU-sized) or timm:<name>."""

    name: str = "resnet_tiny"
    """The network: resnet18, resnet50 (torchvision), resnet_tiny (reduced, CPU-sized) or
    timm:<name> (needs the timm extra)."""
    width: int = Field(16, ge=4)
    """resnet_tiny: channels of the first stage (doubling at each stage)."""
    layers: list[int] = Field(default_factory=lambda: [1, 1, 1, 1])
    """resnet_tiny: residual blocks in each of the 4 stages."""
    small_stem: bool | None = None
    """3x3 stride-1 stem without max-pool; None: automatic, on for images <= 64 px."""

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in ("resnet18", "resnet50", "resnet_tiny") and not v.startswith("timm:"):
            raise ValueError("must be resnet18, resnet50, resnet_tiny or timm:<model name>")
        if v == "timm:":
            raise ValueError("timm: needs a model name, e.g. timm:resnet18")
        return v

    @field_validator("layers")
    @classmethod
    def _four_stages(cls, v: list[int]) -> list[int]:
        if len(v) != 4 or min(v) < 1:
            raise ValueError("needs 4 block counts, each >= 1, e.g. [1, 1, 1, 1]")
        return v


class AugmentationConfig(Strict):
    """Study-wide adjustments of every method's augmentations (None keeps a method's default).

    Low-resolution or orientation-sensitive data (digits, text, some medical images) need
    gentler crops than ImageNet's 0.2 (or 0.08) lower bound, and no flips.
    """

    crop_min_scale: float | None = Field(None, gt=0, le=1)
    """Lower bound of the random-resized-crop scale for every method; None: each method's
    default."""
    flip: bool = True
    """Random horizontal flips; false for orientation-sensitive data (digits, text)."""
    color: bool = True
    """Colour jitter and random grayscale (where a method uses them)."""


class SAMConfig(Strict):
    """Sharpness-aware minimisation around any method's step (Foret et al. 2021; engine/sam.py),
    and rwSAM (Liu et al. 2022): the inner maximisation re-weighted towards rare examples."""

    rho: float = Field(0.05, gt=0)
    """Radius of the weight perturbation (Foret et al. use 0.05; adaptive SAM needs larger)."""
    adaptive: bool = False
    """ASAM (Kwon et al. 2021): the perturbation scaled per weight by T = |w|:
    e = rho T^2 g / ||T g||."""
    weights: Literal["none", "kde", "label"] = "none"
    """Per-example weights of the inner maximisation only: none (plain SAM), kde (rwSAM: inverse
    kernel density of each example's embedding, no labels) or label (oracle inverse class
    frequency, an ablation)."""
    alpha: float = Field(1.0, ge=0)
    """Weights are density ** -alpha (kde) or class frequency ** -alpha (label), normalised to
    mean 1 over the batch."""
    memory: int = Field(4096, ge=1)
    """kde: how many recent L2-normalised embeddings of this epoch the density is estimated
    against (emptied at each epoch's start, so it never holds an image's own earlier
    embedding, and a resumed run equals an uninterrupted one)."""
    bandwidth: float | None = Field(None, gt=0)
    """kde: Gaussian kernel width; None: bandwidth_scale x the median distance of the batch to
    the memory (the median heuristic), re-estimated every step."""
    bandwidth_scale: float = Field(0.25, gt=0)
    """kde, bandwidth None: the kernel width as a fraction of the median distance. Distances of
    high-dimensional embeddings concentrate near their median, so the plain median heuristic
    (1.0) leaves the weights almost flat: on 128-d unit vectors of 5 frequent and 5 rare
    (10x) clusters, 1.0 gave the rare 1.04x the mean weight, 0.3 gave 2.5x, 0.2 gave 4.8x."""


# Every method's settings subclass MethodBase and name themselves with a `name` literal; the
# subclass registers itself here, and the study config's `methods` list accepts exactly the
# registered names (a discriminated union rebuilt on each registration). The classes stay in
# torch-free modules, so a config validates before torch is imported; the method's code,
# views and kind are registered by its own file under `methods/` (see methods/registry.py).
_METHOD_CONFIGS: dict[str, type[MethodBase]] = {}


def _method_union() -> Any:
    """What one `methods` item validates as: the registered settings, told apart by `name`."""
    types = tuple(_METHOD_CONFIGS.values())
    if len(types) == 1:
        return types[0]
    return Annotated[Union[types], Field(discriminator="name")]  # noqa: UP007 - a runtime tuple


def _rebuild_study_config() -> None:
    study = globals().get("StudyConfig")
    if study is None or not _METHOD_CONFIGS:  # still being defined: done once it is
        return
    study.model_fields["methods"] = FieldInfo.from_annotated_attribute(
        list[_method_union()],
        Field(default_factory=list, description=study.model_fields["methods"].description),
    )
    study.model_rebuild(force=True)


class MethodBase(Strict, OmitsUnset):
    epochs: int | None = Field(None, ge=1)
    """Training epochs of this method; None: pretrain.epochs."""
    batch_size: int | None = Field(None, ge=2)
    """Batch size of this method; None: pretrain.batch_size."""
    lr: float | None = Field(None, gt=0)
    """Learning rate of this method; None: pretrain.optimizer.lr."""
    sam: SAMConfig | None = None
    """Train with SAM / rwSAM (two passes per step); None: plain training."""

    omit_when_none: ClassVar[tuple[str, ...]] = ("sam",)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        field = cls.model_fields.get("name")
        # a method names itself; a subclass that keeps its parent's name is not a new method
        if "name" not in cls.__dict__.get("__annotations__", {}) or field is None:
            return
        name = field.default
        held = _METHOD_CONFIGS.get(name)
        if held is not None and (held.__module__, held.__qualname__) != (
            cls.__module__,
            cls.__qualname__,
        ):
            raise TypeError(f"method name {name!r} is taken by {held.__module__}.{held.__name__}")
        _METHOD_CONFIGS[name] = cls
        _rebuild_study_config()

    @property
    def label(self) -> str:
        return self.name + self.sam_suffix  # type: ignore[attr-defined]

    @property
    def sam_suffix(self) -> str:
        """`-sam`, `-asam`, `-rwsam_kde` ...: set apart in tables from the plain method."""
        if self.sam is None:
            return ""
        kind = "asam" if self.sam.adaptive else "sam"
        default_rho = SAMConfig.model_fields["rho"].default
        rho = f"{self.sam.rho:g}" if self.sam.rho != default_rho else ""
        return (
            f"-rw{kind}{rho}_{self.sam.weights}" if self.sam.weights != "none" else f"-{kind}{rho}"
        )


def method_config_types() -> dict[str, type[MethodBase]]:
    """The registered method settings by method name, in registration order."""
    return dict(_METHOD_CONFIGS)


def unregister_method_config(name: str) -> None:
    """Forget a registered method (tests that register a method of their own clean up)."""
    _METHOD_CONFIGS.pop(name, None)
    _rebuild_study_config()


LossName = Literal["ce", "cb", "balanced_softmax", "logit_adjusted", "ldam_drw"]
SamplerName = Literal["instance", "class_balanced", "sqrt"]


class SupervisedConfig(MethodBase):
    name: Literal["supervised"] = "supervised"
    """Supervised training with labels (scenario SL)."""
    loss: LossName = "ce"
    """Loss: ce, cb (class-balanced CE), balanced_softmax, logit_adjusted or ldam_drw."""
    sampler: SamplerName = "instance"
    """Batch sampling: instance (uniform over images), class_balanced, or sqrt (class frequency **
    0.5)."""
    cb_beta: float = Field(0.9999, gt=0, lt=1)
    """cb loss: beta of the effective number of samples (Cui et al. 2019)."""
    tau: float = Field(1.0, ge=0)
    """logit_adjusted loss: scale tau of the log class prior added to the logits."""
    ldam_max_margin: float = Field(0.5, gt=0)
    """ldam_drw loss: the largest class margin (the rarest class's)."""
    ldam_scale: float = Field(30.0, gt=0)
    """ldam_drw loss: scale of the normalised logits."""
    drw_start: float = Field(0.8, ge=0, le=1)
    """ldam_drw loss: fraction of training after which the class weights are re-weighted (deferred
    re-weighting)."""

    @property
    def label(self) -> str:
        extra = [
            x
            for x in (
                self.loss if self.loss != "ce" else "",
                self.sampler if self.sampler != "instance" else "",
            )
            if x
        ]
        return "-".join(["supervised", *extra]) + self.sam_suffix

    @model_validator(mode="after")
    def _sam_weights(self) -> SupervisedConfig:
        """The supervised loss gives no per-example embedding for kde; label weights of the
        supervised loss are what the `loss`/`sampler` settings already offer."""
        if self.sam is not None and self.sam.weights != "none":
            raise ValueError(
                f"sam.weights: {self.sam.weights!r} is for the self-supervised methods; "
                "supervised takes plain SAM (weights: none)"
            )
        return self


class TemperatureScheduleConfig(Strict):
    """Kukleva et al. (ICLR 2023), "Temperature Schedules for Self-Supervised Contrastive Methods
    on Long-Tail Data": the temperature follows a cosine from tau_max down to tau_min and back,
    tau(t) = tau_min + (tau_max - tau_min) (1 + cos(2 pi t / T)) / 2."""

    tau_min: float = Field(0.1, gt=0)
    """Lowest temperature (instance discrimination), reached mid-cycle; the paper's 0.1."""
    tau_max: float = Field(1.0, gt=0)
    """Highest temperature (group-wise discrimination), at each cycle's start; the paper's 1.0."""
    period: float = Field(0.1, gt=0, le=1)
    """Length T of one cycle as a fraction of training, stepped per batch: the paper's T = 200 of
    2000 epochs on CIFAR-LT (0.25: its 200 of 800 on ImageNet-100-LT). A fraction, so a shorter run
    keeps the paper's 10 cycles (20 epochs: one every 2 epochs), not its 200-epoch period."""

    @model_validator(mode="after")
    def _ordered(self) -> TemperatureScheduleConfig:
        if self.tau_min > self.tau_max:
            raise ValueError(f"tau_min {self.tau_min} is above tau_max {self.tau_max}")
        return self

    @property
    def suffix(self) -> str:
        """`-ts` at the paper's settings, else with them (`-ts0.2-0.5p0.25`): in tables."""
        if self == TemperatureScheduleConfig():
            return "-ts"
        return f"-ts{self.tau_min:g}-{self.tau_max:g}p{self.period:g}"


class ContrastiveMethodBase(MethodBase):
    """A contrastive method's settings: its temperature may follow a schedule (not a method of
    its own: no `name`, so it registers nothing)."""

    temperature_schedule: TemperatureScheduleConfig | None = None
    """Cosine temperature schedule (Kukleva et al. 2023) in place of `temperature`; labelled
    `{name}-ts`. None: the fixed temperature."""

    omit_when_none: ClassVar[tuple[str, ...]] = ("temperature_schedule",)

    @property
    def label(self) -> str:
        ts = self.temperature_schedule
        return self.name + (ts.suffix if ts is not None else "") + self.sam_suffix


class MocoV2Config(ContrastiveMethodBase):
    name: Literal["mocov2"] = "mocov2"
    """MoCo v2 (He et al. 2020; Chen et al. 2020): contrastive against a queue of momentum-encoded
    keys."""
    proj_dim: int = Field(128, ge=2)
    """Output size of the projection head."""
    hidden_dim: int | None = Field(None, ge=2)
    """Hidden size of the projection head; None: the backbone's feature size."""
    projector_bn: bool = True
    """Batch norm in the projection head; false: the original MoCo v2 head (collapsed at CPU scale
    here)."""
    queue_size: int = Field(4096, ge=1)
    """Negative keys in the queue (capped at half the training set)."""
    temperature: float = Field(0.2, gt=0)
    """Softmax temperature of the contrastive loss."""
    momentum: float = Field(0.99, ge=0, lt=1)
    """Momentum of the key encoder's moving average."""
    symmetric: bool = True
    """Symmetrised loss (both views as queries)."""
    shuffle_bn_splits: int = Field(8, ge=1)
    """One process has no shuffle-BN: keys are batch-normalised in this many sub-batches, shuffled
    against the queries' (He et al. 2020, 3.3; the official CIFAR demo); 1 turns it off."""


class SimSiamConfig(MethodBase):
    name: Literal["simsiam"] = "simsiam"
    """SimSiam (Chen & He 2021): a predictor and a stop-gradient, no negatives."""
    proj_dim: int | None = Field(None, ge=2)
    """Output size of the projector; None: the backbone's feature size, at least 128."""
    pred_hidden_dim: int | None = Field(None, ge=2)
    """Hidden size of the predictor; None: a quarter of proj_dim, at least 32."""
    fix_predictor_lr: bool = True
    """Keep the predictor's learning rate fixed (no cosine decay), as in the paper."""


class SimCLRConfig(ContrastiveMethodBase):
    name: Literal["simclr"] = "simclr"
    """SimCLR (Chen et al. 2020): contrastive with the other images of the batch as negatives."""
    proj_dim: int = Field(128, ge=2)
    """Output size of the projection head."""
    hidden_dim: int | None = Field(None, ge=2)
    """Hidden size of the projection head; None: the backbone's feature size."""
    temperature: float = Field(0.2, gt=0)
    """Softmax temperature of the NT-Xent loss."""


class BYOLConfig(MethodBase):
    name: Literal["byol"] = "byol"
    """BYOL (Grill et al. 2020): an online network predicts a momentum target network."""
    proj_dim: int = Field(128, ge=2)
    """Output size of the projector and the predictor."""
    hidden_dim: int | None = Field(None, ge=2)
    """Hidden size of the projector and the predictor; None: twice the backbone's feature size."""
    momentum_base: float = Field(0.99, ge=0, lt=1)
    """Starting momentum of the target network (raised to 1 on a cosine schedule)."""


class SDCLRConfig(SimCLRConfig):
    name: Literal["sdclr"] = "sdclr"
    """SDCLR (Jiang et al., ICML 2021, "Self-Damaging Contrastive Learning"): SimCLR between the
    network (one view) and a magnitude-pruned copy of it with its own batch norm (the other)."""
    prune_ratio: float = Field(0.9, ge=0, lt=1)
    """Fraction of the backbone's weights pruned, smallest magnitudes under one threshold over all
    its layers, re-pruned at each epoch's start: the paper's 0.9 on CIFAR (0.3 on ImageNet)."""


class BCLConfig(SimCLRConfig):
    name: Literal["bcl"] = "bcl"
    """BCL (Zhou et al., ICML 2022, "Contrastive Learning with Boosted Memorization"): SimCLR whose
    least memorised images (highest momentum loss) get the strongest RandAugment."""
    loss_momentum: float = Field(0.95, ge=0, lt=1)
    """beta of each image's momentum loss, beta * before + (1 - beta) * this step's (the official
    code's 0.95)."""
    augment_ops: int = Field(1, ge=1, le=15)
    """RandAugment operations drawn per view, each applied with the image's strength as its
    probability (the paper's k = 1)."""
    max_strength: float = Field(1.0, gt=0, le=1)
    """Magnitude, as a fraction of each operation's range, of the least memorised image at most
    (the paper's 30 of RandAugment's 30)."""


IMPORT_ARCHS = ("resnet18", "resnet50")  # what models.checkpoints can check a file against


class ImportedConfig(Strict, OmitsUnset):
    """An SSL backbone pretrained elsewhere (scenario SSL-ImageNet)."""

    name: str
    """Label of the imported representation in the tables and the report."""
    path: Path | None = None
    """The checkpoint file; give exactly one of path and weights."""
    weights: str | None = None
    """A published ImageNet checkpoint by name (ResNet-50s: mocov2_800ep, simsiam_100ep_256bs,
    byol_200ep, swav_800ep, dino_resnet50, barlowtwins_resnet50; vision transformers: dino_vits16,
    dino_vitb16, dinov2_vits14, dinov2_vitb14, dinov2_vits14_reg, dinov2_vitb14_reg, mae_vitb16,
    mocov3_vits, mocov3_vitb, ibot_vits16, ibot_vitb16): downloaded once into
    $SSL_ROBUSTNESS_CACHE (else torch.hub's checkpoints folder) and checksum-verified on every
    use; its format and arch come with the name."""
    format: Literal[("auto", *CHECKPOINT_FORMATS)] = "auto"  # type: ignore[valid-type]
    """Checkpoint format; auto: detected from the file's keys (or the published one's)."""
    arch: str | None = None
    """resnet18, resnet50 or timm:<name>; None: inferred from the keys (or the published one's)."""
    image_size: int = Field(224, ge=8, le=1024)
    """The input size the weights were trained at: its own decoded cache, never the study's (tiny)
    image size, which would leave an ImageNet stem a 1x1 map. A vision transformer's must be a
    multiple of its patch size (16; DINOv2's 14): its position embeddings are interpolated from
    the grid it was trained at."""
    features: Literal["cls", "mean", "dino"] | None = None
    """What a probe sees of a vision transformer. cls (also None): the class token after the final
    norm; mean: the mean of the patch tokens; dino: DINO's linear-evaluation recipe, the class
    tokens of the last 4 blocks and the mean patch token concatenated (5 x dim). Part of the
    representation's identity; ResNets give their pooled features (leave it unset)."""

    omit_when_none: ClassVar[tuple[str, ...]] = ("weights", "path", "features")

    @field_validator("features")
    @classmethod
    def _default_features(cls, v: str | None) -> str | None:
        return None if v == "cls" else v  # the default, keyed as if unset

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, v: str | None) -> str | None:
        if v is None or v in IMPORT_ARCHS or (v.startswith("timm:") and v != "timm:"):
            return v
        raise ValueError(f"must be one of {', '.join(IMPORT_ARCHS)} or timm:<model name>")

    @field_validator("path")
    @classmethod
    def _exists(cls, v: Path | None) -> Path | None:
        if v is not None and not v.exists():
            raise ValueError(f"file does not exist: {v}")
        return v

    @field_validator("weights")
    @classmethod
    def _published(cls, v: str | None) -> str | None:
        if v is None or v in PUBLISHED_WEIGHTS:
            return v
        raise ValueError(f"unknown '{v}' (known: {', '.join(PUBLISHED_WEIGHTS)})")

    @model_validator(mode="after")
    def _one_source(self) -> ImportedConfig:
        if (self.path is None) == (self.weights is None):
            raise ValueError("give exactly one of path (a file) and weights (a published name)")
        return self


# ----------------------------------------------------------------------------- evaluation
class LinearProbeConfig(Strict):
    enabled: bool = True
    """Run the linear probe (L2-regularised logistic regression on frozen features)."""
    train_on: list[Literal["balanced", "own", "imbalanced"]] = Field(
        default_factory=lambda: ["balanced", "own"]
    )
    """Training sets of the probe. balanced: the probe set, disjoint from every pretraining subset
    (pretraining robustness); own: the arm's own subset (end-to-end); imbalanced: every
    representation on the main imbalanced subset (a cross-scenario comparison, no gap)."""
    l2_grid: list[float] = Field(default_factory=lambda: [1e-2, 1e-3, 1e-4, 1e-5])
    """L2 penalties tried; the best on val is kept."""
    max_iter: int = Field(300, ge=1)
    """Iterations of the solver at most."""

    @field_validator("l2_grid")
    @classmethod
    def _l2_values(cls, v: list[float]) -> list[float]:
        if not v:
            raise ValueError("must list at least one L2 penalty")
        if min(v) < 0:
            raise ValueError("every L2 penalty must be >= 0")
        return v


class LinearSGDConfig(Strict):
    """The literature's augmented-SGD probe (frozen backbone, augmented images); slow, off."""

    enabled: bool = False
    """Run the augmented-SGD linear probe."""
    epochs: int = Field(10, ge=1)
    """Training epochs of the SGD probe."""
    lr: float = Field(0.1, gt=0)
    """Learning rate of the SGD probe."""
    batch_size: int = Field(256, ge=2)
    """Batch size of the SGD probe."""


class KNNConfig(Strict):
    enabled: bool = True
    """Run the weighted cosine kNN classifier on frozen features of the probe set."""
    k: list[int] = Field(default_factory=lambda: [20, 200])
    """Neighbour counts, one result each."""
    temperature: float = Field(0.07, gt=0)
    """Temperature of the neighbours' similarity weights."""

    @field_validator("k")
    @classmethod
    def _positive_distinct(cls, v: list[int]) -> list[int]:
        if any(k < 1 for k in v):
            raise ValueError("every k must be >= 1")
        if len(set(v)) != len(v):
            raise ValueError("k values must be distinct")
        return v


class ViTFinetuneConfig(Strict):
    """How a vision transformer is fine-tuned: as MAE, BEiT and iBOT fine-tune theirs (AdamW,
    layer-wise learning-rate decay, no weight decay on biases, norms, tokens and position
    embeddings). Used for ViT backbones only; ResNets keep the SGD settings above."""

    lr: float = Field(5e-4, gt=0)
    """Base learning rate per 256 images (MAE's blr): the rate is lr x batch_size / 256."""
    layer_decay: float = Field(0.65, gt=0, le=1)
    """Layer-wise decay: block i of d learns at layer_decay^(d - i) of the head's rate (MAE ViT-B,
    iBOT ViT-B: 0.65; iBOT ViT-S: 0.75)."""
    weight_decay: float = Field(0.05, ge=0)
    """AdamW's weight decay (MAE, iBOT, MoCo v3)."""
    warmup_epochs: float = Field(0.5, ge=0)
    """Epochs of linear warm-up (MAE: 5 of 100; here 0.5 of the default 10)."""


class FinetuneConfig(Strict):
    enabled: bool = True
    """Fine-tune the whole network with a linear head (Liu et al.'s OOD protocol)."""
    epochs: int = Field(10, ge=1)
    """Fine-tuning epochs; the epoch kept is the best on val (balanced accuracy)."""
    batch_size: int = Field(128, ge=2)
    """Fine-tuning batch size."""
    lr: float = Field(0.05, gt=0)
    """Learning rate of the head."""
    backbone_lr_mult: float = Field(0.1, ge=0)
    """The backbone's learning rate as a multiple of lr."""
    weight_decay: float = Field(5e-4, ge=0)
    """Weight decay of fine-tuning."""
    loss: LossName = "ce"
    """Fine-tuning loss (as methods[supervised].loss)."""
    sampler: SamplerName = "instance"
    """Fine-tuning batch sampling (as methods[supervised].sampler)."""
    train_on: list[Literal["own", "imbalanced"]] = Field(default_factory=lambda: ["own"])
    """own: fine-tune on the arm's own subset (end-to-end gap); imbalanced: every representation on
    the main imbalanced subset (cross-scenario comparison, no gap)."""
    vit: ViTFinetuneConfig = Field(default_factory=ViTFinetuneConfig)
    """Fine-tuning of vision transformers (these replace lr, backbone_lr_mult, weight_decay)."""


class EvaluationConfig(Strict):
    linear: LinearProbeConfig = Field(default_factory=LinearProbeConfig)
    """The linear probe on frozen features."""
    linear_sgd: LinearSGDConfig = Field(default_factory=LinearSGDConfig)
    """The literature's augmented-SGD probe (frozen backbone); slow, off by default."""
    knn: KNNConfig = Field(default_factory=KNNConfig)
    """The weighted kNN classifier on frozen features."""
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    """Full fine-tuning."""
    probe_set: Literal["disjoint", "pool"] = "disjoint"
    """The balanced labelled set of the linear probe and kNN. disjoint: drawn apart from every
    pretraining subset; pool: Liu et al.'s protocol, the largest balanced set of the whole train
    pool (it overlaps the subsets)."""
    probe_per_class: int | None = Field(None, ge=1)
    """Images per class of the probe set; None: the largest the protocol allows (disjoint with n
    unset: half the smallest class)."""


class ConfirmatoryConfig(Strict):
    """The one comparison declared before the study runs: its SSL-vs-SL tests are one
    Holm-adjusted family; every other comparison is exploratory and says so."""

    evaluation: str = "linear-balanced"
    """Evaluation whose gap is confirmatory (default Liu et al.'s linear probe on the balanced
    probe set)."""
    comparison: Literal["pretraining", "end-to-end", "fixed-representation"] = "pretraining"
    """Gap kind of the confirmatory comparison."""


class ReportConfig(Strict):
    confirmatory: ConfirmatoryConfig = Field(default_factory=ConfirmatoryConfig)
    """The confirmatory comparison (one family of tests, Holm-adjusted); the rest is exploratory."""
    tsne: bool = True
    """Draw t-SNE maps of the cached test features (openTSNE, seeded): per method, its balanced
    and imbalanced representation of the first seed side by side."""
    tsne_max_points: int = Field(2000, ge=10)
    """Test images per t-SNE map at most (a seeded subsample above it)."""


class StudyConfig(Strict):
    name: str = "study"
    """Name of the study (the report's title; default output folder runs/<name>)."""
    output_dir: Path | None = None
    """Where everything goes; None: runs/<name>."""
    seeds: list[int] = Field(default_factory=lambda: [0])
    """Study seeds: one representation of each arm per seed; more seeds give intervals."""
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    """auto (cuda, then mps, then cpu), cpu, cuda or mps."""
    data: DataConfig = Field(default_factory=DataConfig)
    """The images, splits, long-tail subsets and class groups."""
    backbone: BackboneConfig = Field(default_factory=BackboneConfig)
    """The network every trained representation uses."""
    augmentation: AugmentationConfig = Field(default_factory=AugmentationConfig)
    """Study-wide adjustments of every method's augmentations."""
    pretrain: TrainConfig = Field(default_factory=TrainConfig)
    """Settings of the training loop of every method."""
    methods: list[MethodBase] = Field(default_factory=list)
    """Methods to train on every subset: a list of items with a name (the method kinds below) and
    their settings."""
    imported: list[ImportedConfig] = Field(default_factory=list)
    """SSL backbones pretrained elsewhere (scenario SSL-ImageNet), evaluated like the trained
    ones."""
    random_init: bool = True
    """Evaluate a randomly initialised backbone too: the floor every trained representation must
    beat."""
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    """How each representation is evaluated."""
    report: ReportConfig = Field(default_factory=ReportConfig)
    """What the report draws."""

    @field_validator("output_dir", mode="before")
    @classmethod
    def _named_folder(cls, v: Any) -> Any:
        """`output_dir: ""` would be the working directory, written into without a word."""
        if isinstance(v, str) and not v.strip():
            raise ValueError("empty: name a folder (or leave the key out for runs/<name>)")
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("must list at least one seed")
        if len(set(v)) != len(v):
            raise ValueError("seeds must be distinct")
        if min(v) < 0:
            raise ValueError("every seed must be >= 0")
        return v

    @model_validator(mode="after")
    def _defaults(self) -> StudyConfig:
        if self.output_dir is None:
            self.output_dir = Path("runs") / self.name
        labels = [m.label for m in self.methods]
        dup = {x for x in labels if labels.count(x) > 1}
        if dup:
            raise ValueError(f"methods: two methods share the label {sorted(dup)}; vary a setting")
        return self

    @property
    def out(self) -> Path:
        assert self.output_dir is not None
        return self.output_dir

    @property
    def layout(self) -> RunLayout:
        """Where the run's files are (layout.py owns every name under output_dir)."""
        return RunLayout(self.out)


_rebuild_study_config()


# ----------------------------------------------------------------------------- loading
def builtin_config_text(name: str = "quickstart") -> str:
    return resources.files("ssl_robustness").joinpath(f"configs/{name}.yaml").read_text()


def load_config(
    path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()
) -> StudyConfig:
    """Read a YAML study config (None: the built-in quick start), apply overrides, validate."""
    if path is None:
        source, text = "<built-in quickstart>", builtin_config_text()
    else:
        source, text = str(path), _read_config_text(Path(path))
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)
    except _TooLarge as exc:
        raise UserError(f"{source}:{exc.problem_mark.line + 1}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise UserError(
            f"{source}{where}: not valid YAML: {getattr(exc, 'problem', exc)}"
        ) from None
    if raw is None:  # an empty or comment-only file: never the quick start's defaults unasked
        raise UserError(
            f"{source}: the config file is empty (or only comments); give the study's settings, "
            "or leave out the file to run the built-in quick start"
        )
    if not isinstance(raw, dict):
        raise UserError(
            f"{source}: a study config must be a mapping of keys, got {type(raw).__name__}"
        )
    for item in overrides:
        apply_override(raw, item)
    return validate_config(raw, source)


def _read_config_text(p: Path) -> str:
    """The file's text, or a UserError saying why it cannot be read (missing, folder, encoding)."""
    if p.is_dir():
        raise UserError(f"{p}: is a folder, not a config file")
    if not p.is_file():
        raise UserError(f"{p}: config file not found")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise UserError(f"{p}: cannot read config file: {exc.strerror}") from None
    return utf8_text(data, p, "the config")


MAX_YAML_NODES = 100_000  # a study config has hundreds; aliases may not expand beyond this


class _TooLarge(yaml.MarkedYAMLError):
    """An alias expands the document past MAX_YAML_NODES (a "billion laughs" bomb)."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that refuses a key set twice in one mapping (plain YAML keeps the last one)
    and a document whose aliases expand it past MAX_YAML_NODES nodes: nine aliases of nine
    aliases ... are a 1 kB file that validation would walk for hours."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._expanded = 0
        self._sizes: dict[int, int] = {}

    def compose_node(self, parent: Any, index: Any) -> Any:
        alias = self.check_event(yaml.AliasEvent)
        mark = self.peek_event().start_mark
        node = super().compose_node(parent, index)
        self._expanded += self._size(node) if alias else 1
        if self._expanded > MAX_YAML_NODES:
            raise _TooLarge(
                None,
                None,
                f"this alias expands the config past {MAX_YAML_NODES} values (an alias "
                "bomb?); refused",
                mark,
            )
        return node

    def _size(self, node: yaml.Node) -> int:
        """Values in `node` with every alias expanded (memoised: aliases share nodes)."""
        known = self._sizes.get(id(node))
        if known is not None:
            return known
        size = 1
        if isinstance(node, yaml.SequenceNode):
            size += sum(self._size(n) for n in node.value)
        elif isinstance(node, yaml.MappingNode):
            size += sum(self._size(k) + self._size(v) for k, v in node.value)
        self._sizes[id(node)] = size = min(size, MAX_YAML_NODES + 1)
        return size

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                if key in first:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"duplicate key {key!r} (first set on line {first[key]})",
                        key_node.start_mark,
                    )
                first[key] = key_node.start_mark.line + 1
            except TypeError:  # unhashable key: the base class reports it
                continue
        return super().construct_mapping(node, deep=deep)


def validate_config(raw: dict[str, Any], source: str = "<config>") -> StudyConfig:
    try:
        return StudyConfig.model_validate(raw)
    except ValidationError as exc:
        raise UserError(f"{source}: invalid config\n" + format_validation_error(exc)) from None


def format_validation_error(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = [str(x) for x in err["loc"] if not _is_union_tag(x)]
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key" + _did_you_mean(err["loc"])
        if err["type"] == "list_type" and "," in str(err.get("input")):
            msg += f"; a list is written in brackets: [{err['input']}]"
        got = (
            ""
            if err["type"] in ("extra_forbidden", "missing", BOOL_ERROR)
            else f" (got {err.get('input')!r})"
        )
        if err["type"] == BOOL_ERROR:  # raised by the section: the key is in its context
            loc.append(str(err.get("ctx", {}).get("key", "")))
        if len(got) > 80:
            got = ""
        lines.append(f"  {'.'.join(loc) or '<root>'}: {msg}{got}")
    return "\n".join(lines)


def _did_you_mean(loc: tuple[Any, ...]) -> str:
    """'; did you mean 'epochs'?' for an unknown key close to a key of its own section."""
    model: Any = StudyConfig
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if part in _METHOD_CONFIGS:  # the union's tag: this item's method settings
            model = _METHOD_CONFIGS[part]
            continue
        field = model.model_fields.get(part)
        model = _section_model(field.annotation) if field is not None else None
        if model is None:
            return ""
    close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _section_model(annotation: Any) -> Any:
    """The config section class inside an annotation (X, X | None, list[X]), else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next(filter(None, map(_section_model, get_args(annotation))), None)


def _is_union_tag(x: Any) -> bool:
    return isinstance(x, str) and x in _METHOD_CONFIGS


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Apply `a.b.c=value` (value parsed as YAML) to the raw config dict; list items by index."""
    if "=" not in item:
        raise UserError(f"--set {item!r}: expected KEY=VALUE, e.g. data.image_size=32")
    key, value = item.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise UserError(f"--set {item!r}: empty key part in {key.strip()!r}")
    try:
        parsed = yaml.load(value, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        why = getattr(exc, "problem", None) if isinstance(exc, yaml.MarkedYAMLError) else None
        why = f" ({why})" if isinstance(why, str) and "duplicate key" in why else ""
        raise UserError(f"--set {item!r}: value is not valid YAML{why}") from None
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        if not isinstance(node, dict | list):
            raise UserError(
                f"--set {key}: {'.'.join(parts[:i])} is a value ({node!r}), not a section"
            )
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise UserError(f"--set {key}: no list item {'.'.join(parts[: i + 1])}")
            node = node[int(part)]
        else:
            if node.get(part) is None:  # absent, or `key:` left empty in the YAML
                node[part] = {}
            node = node[part]
    last = parts[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise UserError(f"--set {key}: no list item {key}")
        node[int(last)] = parsed
    elif isinstance(node, dict):
        node[last] = parsed
    else:
        raise UserError(f"--set {key}: {'.'.join(parts[:-1])} is a value ({node!r}), not a section")
