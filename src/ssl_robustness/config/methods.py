"""The `methods` section: every method's settings, registered by name as they are defined."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import (
    Field,
    model_validator,
)

from .base import OmitsUnset, Strict, register_once
from .training import SAMConfig

# Every method's settings subclass MethodBase and name themselves with a `name` literal; the
# subclass registers itself here, and the study config's `methods` list accepts exactly the
# registered names (a discriminated union rebuilt on each registration). The classes stay in
# torch-free modules, so a config validates before torch is imported; the method's code,
# views and kind are registered by its own file under `methods/` (see methods/registry.py).
_METHOD_CONFIGS: dict[str, type[MethodBase]] = {}


def method_union() -> Any:
    """What one `methods` item validates as: the registered settings, told apart by `name`."""
    types = tuple(_METHOD_CONFIGS.values())
    if len(types) == 1:
        return types[0]
    return Annotated[Union[types], Field(discriminator="name")]  # noqa: UP007 - a runtime tuple


_ON_CHANGE: list[Callable[[], None]] = []  # the study config's hook (config/study.py)


def on_methods_changed(hook: Callable[[], None]) -> None:
    """Call `hook` now and whenever a method registers or is forgotten."""
    _ON_CHANGE.append(hook)
    hook()


def _methods_changed() -> None:
    for hook in _ON_CHANGE:
        hook()


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
        register_once(_METHOD_CONFIGS, field.default, cls, "method name")
        _methods_changed()

    @property
    def label(self) -> str:
        return self.name + self.sam_suffix  # type: ignore[attr-defined]

    @property
    def key_revision(self) -> str | None:
        """A marker of a change of this method's code (not its settings) that must not reuse
        runs trained before it, added to its representation key (design section 2); None: none
        (the key is as it always was)."""
        return None

    @property
    def batch_sampler(self) -> SamplerName:
        """How its training batches are drawn: its `sampler` setting where it has one (the
        supervised methods), else uniformly over images."""
        return self.sampler if "sampler" in type(self).model_fields else "instance"  # type: ignore[attr-defined]

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
    _methods_changed()


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
    on Long-Tail Data", as their released code runs it (Annusha/temperature_schedules): the
    temperature follows a cosine from tau_max down to tau_min and back, set once per epoch,
    tau = tau_min + (tau_max - tau_min) (1 + cos(2 pi (e / E) / period)) / 2 at 1-based epoch e
    of E (the code's cos(pi e / t_max), t_max = 200 epochs = period / 2 of its 2000)."""

    tau_min: float = Field(0.1, gt=0)
    """Lowest temperature (instance discrimination), reached mid-cycle: 0.1, the paper's and the
    released code's."""
    tau_max: float = Field(1.0, gt=0)
    """Highest temperature (group-wise discrimination), at each cycle's end: 1.0, the paper's and
    the released README's commands (the script's argparse default is 0.5, which they override)."""
    period: float = Field(0.2, gt=0, le=1)
    """Length of one full cycle (tau_max -> tau_min -> tau_max) as a fraction of the run's epochs,
    the temperature stepped once per epoch: the released code's, t_max = 200 epochs being half a
    cycle, 400 of its 2000 on CIFAR-LT (0.5: 400 of its 800 on ImageNet-100-LT). The paper's text
    reads as a 200-epoch cycle, twice as many; the code is followed. A fraction, so a shorter run
    keeps the code's 5 cycles (30 epochs: one every 6, tau_min at epochs 3, 9, ...)."""

    @model_validator(mode="after")
    def _ordered(self) -> TemperatureScheduleConfig:
        if self.tau_min > self.tau_max:
            raise ValueError(f"tau_min {self.tau_min} is above tau_max {self.tau_max}")
        return self

    @property
    def suffix(self) -> str:
        """`-ts` at the released code's settings, else with them (`-ts0.2-0.5p0.25`): in
        tables."""
        if self == TemperatureScheduleConfig():
            return "-ts"
        return f"-ts{self.tau_min:g}-{self.tau_max:g}p{self.period:g}"


class ContrastiveMethodBase(MethodBase):
    """A contrastive method's settings: its temperature may follow a schedule (not a method of
    its own: no `name`, so it registers nothing)."""

    temperature_schedule: TemperatureScheduleConfig | None = None
    """Cosine temperature schedule (Kukleva et al. 2023) in place of `temperature` (setting both is
    refused); labelled `{name}-ts`. None: the fixed temperature."""

    omit_when_none: ClassVar[tuple[str, ...]] = ("temperature_schedule",)

    @model_validator(mode="after")
    def _one_temperature(self) -> ContrastiveMethodBase:
        """A schedule replaces the fixed temperature: both set would drop one without a word."""
        if self.temperature_schedule is not None and "temperature" in self.model_fields_set:
            raise ValueError(
                "temperature and temperature_schedule are both set: the schedule replaces the "
                "fixed temperature; set tau_min/tau_max in temperature_schedule, or drop it"
            )
        return self

    @property
    def key_revision(self) -> str | None:
        """A schedule is stepped per epoch with the released code's period since issue 34 (it
        was stepped per batch): scheduled runs trained before are not reused."""
        return "ts-per-epoch" if self.temperature_schedule is not None else None

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

    @property
    def key_revision(self) -> str | None:
        """One RandAugment magnitude per image for both views, 0 for an image without a loss
        yet, since issue 34 (a magnitude per view, 1/2): BCL runs trained before are not reused."""
        return "+".join(x for x in (super().key_revision, "bcl-per-image") if x)
