"""The study config: one YAML file, validated in full before any work starts.

Every section is a pydantic model with `extra="forbid"`, so a typo is an error naming its key
path (`data.imbalanse: unknown key`) instead of a silently ignored setting.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo

from .errors import UserError
from .layout import RunLayout
from .names import CHECKPOINT_FORMATS

SOURCES_WITH_ROOT = ("folder", "list", "cifar10", "cifar100", "awa2", "agrinet", "npz")


class Strict(BaseModel):
    """Unknown keys are errors; the docstring under each field is its documentation
    (`ssl-robustness config` prints it, and a test checks that every key has one)."""

    model_config = ConfigDict(
        extra="forbid", protected_namespaces=(), use_attribute_docstrings=True
    )


def _non_negative_seed(v: int) -> int:
    """numpy's generators refuse negative seeds deep inside data preparation: refuse them here."""
    if v < 0:
        raise ValueError("a seed must be >= 0")
    return v


# ----------------------------------------------------------------------------- data
class ListFilesConfig(Strict):
    """Split files: `path label` lines (ImageNet-LT style) or CSV/TSV with named columns."""

    train: Path
    val: Path | None = None
    test: Path | None = None
    path_column: str | int = 0
    label_column: str | int = 1
    delimiter: str | None = None  # None: whitespace for .txt, ',' for .csv, tab for .tsv
    classes: Path | None = None  # optional file of class names, one per line, in label order


class SplitConfig(Strict):
    """Carving val/test out of sources without official splits; both balanced per class."""

    val_per_class: int = Field(10, ge=0)
    test_per_class: int = Field(30, ge=1)
    seed: int = 0
    use_official: bool = True

    @field_validator("seed")
    @classmethod
    def _seed_range(cls, v: int) -> int:
        return _non_negative_seed(v)


class ImbalanceConfig(Strict):
    """The long-tail profile of the pretraining subsets D(n, r) and the matched balanced D(n, 1)."""

    profile: Literal["natural", "exp", "step", "pareto", "power"] = "exp"
    ratio: float = 0.1
    exponent: float = 1.0
    sweep: list[float] = Field(default_factory=list)
    pareto_alpha: float = Field(6.0, gt=0)
    n: int | None = Field(None, ge=1)
    n_max: int | None = Field(None, ge=1)
    class_order: Literal["frequency", "random", "index"] = "frequency"
    seed: int = 0
    # Each study seed draws its own nested subsets from the pool (val, test and the probe set
    # stay fixed), so an interval over seeds covers the sampling of the rare images too.
    resample_per_seed: bool = True
    # With class_order 'random': also draw which classes are rare anew for every study seed.
    class_order_per_seed: bool = False
    # profile natural/power: also pretrain on the whole (unmatched) pretraining pool, the data
    # as it is; it has no same-size balanced twin, so it gets no gap.
    full_natural: bool = False

    @field_validator("seed")
    @classmethod
    def _seed_range(cls, v: int) -> int:
        return _non_negative_seed(v)

    @field_validator("ratio")
    @classmethod
    def _ratio_range(cls, v: float) -> float:
        if not 0 < v <= 1:
            raise ValueError("must be in (0, 1]")
        return v

    @field_validator("exponent")
    @classmethod
    def _exponent_range(cls, v: float) -> float:
        if v < 0:
            raise ValueError("must be >= 0")
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
    many_above: int = Field(100, ge=1)
    few_below: int = Field(20, ge=1)


class DataConfig(Strict):
    source: Literal["digits", "folder", "list", "cifar10", "cifar100", "awa2", "agrinet", "npz"] = (
        "digits"
    )
    root: Path | None = None
    download: bool = False
    list: ListFilesConfig | None = None
    image_size: int = Field(16, ge=8, le=1024)
    split: SplitConfig = Field(default_factory=SplitConfig)
    imbalance: ImbalanceConfig = Field(default_factory=ImbalanceConfig)
    groups: GroupsConfig = Field(default_factory=GroupsConfig)
    skip_bad_images: bool = False
    decode_workers: int = Field(4, ge=1)

    @model_validator(mode="after")
    def _needs(self) -> DataConfig:
        if self.source in SOURCES_WITH_ROOT and self.root is None:
            raise ValueError(f"root: required for source '{self.source}'")
        if self.source == "list" and self.list is None:
            raise ValueError("list: required for source 'list' (train/val/test split files)")
        if self.root is not None and not self.root.exists() and not self.download:
            raise ValueError(f"root: path does not exist: {self.root}")
        return self


# ----------------------------------------------------------------------------- training
class OptimizerConfig(Strict):
    name: Literal["sgd", "lars", "adamw"] = "sgd"
    lr: float = Field(0.05, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = False
    weight_decay: float = Field(5e-4, ge=0)


class TrainConfig(Strict):
    """Settings of the one training loop; a method may override epochs, batch size and lr."""

    epochs: int = Field(20, ge=1)
    batch_size: int = Field(128, ge=2)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    warmup_epochs: float = Field(0.0, ge=0)
    grad_clip: float | None = Field(None, gt=0)
    checkpoint_every: int = Field(5, ge=1)
    log_every: int = Field(10, ge=1)


class BackboneConfig(Strict):
    """resnet18 / resnet50 (torchvision), resnet_tiny (reduced, CPU-sized) or timm:<name>."""

    name: str = "resnet_tiny"
    width: int = Field(16, ge=4)
    layers: list[int] = Field(default_factory=lambda: [1, 1, 1, 1])
    small_stem: bool | None = None  # None: automatic, 3x3 stride-1 stem for images <= 64 px

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
    flip: bool = True
    color: bool = True


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
        list[_method_union()], Field(default_factory=list)
    )
    study.model_rebuild(force=True)


class MethodBase(Strict):
    epochs: int | None = Field(None, ge=1)
    batch_size: int | None = Field(None, ge=2)
    lr: float | None = Field(None, gt=0)

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
        return self.name  # type: ignore[attr-defined]


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
    loss: LossName = "ce"
    sampler: SamplerName = "instance"
    cb_beta: float = Field(0.9999, gt=0, lt=1)
    tau: float = Field(1.0, ge=0)
    ldam_max_margin: float = Field(0.5, gt=0)
    ldam_scale: float = Field(30.0, gt=0)
    drw_start: float = Field(0.8, ge=0, le=1)

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
        return "-".join(["supervised", *extra])


class MocoV2Config(MethodBase):
    name: Literal["mocov2"] = "mocov2"
    proj_dim: int = Field(128, ge=2)
    hidden_dim: int | None = Field(None, ge=2)
    projector_bn: bool = True  # False: the original MoCo v2 head (collapsed at CPU scale here)
    queue_size: int = Field(4096, ge=1)
    temperature: float = Field(0.2, gt=0)
    momentum: float = Field(0.99, ge=0, lt=1)
    symmetric: bool = True
    # One process has no shuffle-BN: keys are batch-normalised in this many sub-batches, shuffled
    # against the queries' (He et al. 2020, 3.3; the official CIFAR demo); 1 turns it off.
    shuffle_bn_splits: int = Field(8, ge=1)


class SimSiamConfig(MethodBase):
    name: Literal["simsiam"] = "simsiam"
    proj_dim: int | None = Field(None, ge=2)
    pred_hidden_dim: int | None = Field(None, ge=2)
    fix_predictor_lr: bool = True


class SimCLRConfig(MethodBase):
    name: Literal["simclr"] = "simclr"
    proj_dim: int = Field(128, ge=2)
    hidden_dim: int | None = Field(None, ge=2)
    temperature: float = Field(0.2, gt=0)


class BYOLConfig(MethodBase):
    name: Literal["byol"] = "byol"
    proj_dim: int = Field(128, ge=2)
    hidden_dim: int | None = Field(None, ge=2)
    momentum_base: float = Field(0.99, ge=0, lt=1)


IMPORT_ARCHS = ("resnet18", "resnet50")  # what models.checkpoints can check a file against


class ImportedConfig(Strict):
    """An SSL backbone pretrained elsewhere (scenario SSL-ImageNet)."""

    name: str
    path: Path
    format: Literal[("auto", *CHECKPOINT_FORMATS)] = "auto"  # type: ignore[valid-type]
    arch: str | None = None  # resnet18 / resnet50 / timm:<name>; inferred from the keys if None
    # The input size the weights were trained at: its own decoded cache, never the study's
    # (tiny) image size, which would leave an ImageNet stem a 1x1 map.
    image_size: int = Field(224, ge=8, le=1024)

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, v: str | None) -> str | None:
        if v is None or v in IMPORT_ARCHS or (v.startswith("timm:") and v != "timm:"):
            return v
        raise ValueError(f"must be one of {', '.join(IMPORT_ARCHS)} or timm:<model name>")

    @field_validator("path")
    @classmethod
    def _exists(cls, v: Path) -> Path:
        if not v.exists():
            raise ValueError(f"file does not exist: {v}")
        return v


# ----------------------------------------------------------------------------- evaluation
class LinearProbeConfig(Strict):
    enabled: bool = True
    # balanced: the probe set, disjoint from every pretraining subset (pretraining robustness);
    # own: the arm's own subset (end-to-end); imbalanced: every representation on the main
    # imbalanced subset (a cross-scenario comparison, no gap).
    train_on: list[Literal["balanced", "own", "imbalanced"]] = Field(
        default_factory=lambda: ["balanced", "own"]
    )
    l2_grid: list[float] = Field(default_factory=lambda: [1e-2, 1e-3, 1e-4, 1e-5])
    max_iter: int = Field(300, ge=1)


class LinearSGDConfig(Strict):
    """The literature's augmented-SGD probe (frozen backbone, augmented images); slow, off."""

    enabled: bool = False
    epochs: int = Field(10, ge=1)
    lr: float = Field(0.1, gt=0)
    batch_size: int = Field(256, ge=2)


class KNNConfig(Strict):
    enabled: bool = True
    k: list[int] = Field(default_factory=lambda: [20, 200])
    temperature: float = Field(0.07, gt=0)

    @field_validator("k")
    @classmethod
    def _positive_distinct(cls, v: list[int]) -> list[int]:
        if any(k < 1 for k in v):
            raise ValueError("every k must be >= 1")
        if len(set(v)) != len(v):
            raise ValueError("k values must be distinct")
        return v


class FinetuneConfig(Strict):
    enabled: bool = True
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(128, ge=2)
    lr: float = Field(0.05, gt=0)
    backbone_lr_mult: float = Field(0.1, ge=0)
    weight_decay: float = Field(5e-4, ge=0)
    loss: LossName = "ce"
    sampler: SamplerName = "instance"
    # own: fine-tune on the arm's own subset (end-to-end gap); imbalanced: every representation
    # on the main imbalanced subset (cross-scenario comparison, no gap).
    train_on: list[Literal["own", "imbalanced"]] = Field(default_factory=lambda: ["own"])


class EvaluationConfig(Strict):
    linear: LinearProbeConfig = Field(default_factory=LinearProbeConfig)
    linear_sgd: LinearSGDConfig = Field(default_factory=LinearSGDConfig)
    knn: KNNConfig = Field(default_factory=KNNConfig)
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    # The balanced labelled set of the linear probe and kNN. disjoint: drawn apart from every
    # pretraining subset; pool: Liu et al.'s protocol, the largest balanced set of the whole
    # train pool (it overlaps the subsets).
    probe_set: Literal["disjoint", "pool"] = "disjoint"
    probe_per_class: int | None = Field(None, ge=1)  # None: the largest the protocol allows


class ReportConfig(Strict):
    tsne: bool = True
    tsne_max_points: int = Field(2000, ge=10)


class StudyConfig(Strict):
    name: str = "study"
    output_dir: Path | None = None
    seeds: list[int] = Field(default_factory=lambda: [0])
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    data: DataConfig = Field(default_factory=DataConfig)
    backbone: BackboneConfig = Field(default_factory=BackboneConfig)
    augmentation: AugmentationConfig = Field(default_factory=AugmentationConfig)
    pretrain: TrainConfig = Field(default_factory=TrainConfig)
    methods: list[MethodBase] = Field(default_factory=list)  # the registered kinds: see below
    imported: list[ImportedConfig] = Field(default_factory=list)
    random_init: bool = True
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)

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
def config_hash(obj: Any, length: int = 10) -> str:
    """A stable short hash of a JSON-able description: keys run directories and caches."""
    if isinstance(obj, BaseModel):
        obj = obj.model_dump(mode="json")
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


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
        raw = yaml.load(text, Loader=_UniqueKeyLoader) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise UserError(
            f"{source}{where}: not valid YAML: {getattr(exc, 'problem', exc)}"
        ) from None
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
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UserError(
            f"{p}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "save the config as UTF-8"
        ) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that refuses a key set twice in one mapping (plain YAML keeps the last one)."""

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
            msg = "unknown key"
        got = (
            "" if err["type"] in ("extra_forbidden", "missing") else f" (got {err.get('input')!r})"
        )
        if len(got) > 80:
            got = ""
        lines.append(f"  {'.'.join(loc) or '<root>'}: {msg}{got}")
    return "\n".join(lines)


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
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        raise UserError(f"--set {item!r}: value is not valid YAML") from None
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
