"""The training configuration: every option, its default and its rule, checked up front.

:class:`TrainConfig` holds what the user chose (``cnnclassics train`` flags or
Python arguments). :func:`TrainConfig.validate` raises a ``ValueError`` that
states the rule for any bad value *before* data is read or a layer is built.
Defaults that depend on the model or the data (image size, learning rate, weight
decay, augmentation) are filled in by :meth:`TrainConfig.resolved`, and the
resolved configuration is what the run folder's ``config.json`` records, so a
run can be repeated or resumed exactly.
"""

from __future__ import annotations

import dataclasses
import numbers
import os
from typing import Any

from keras_cnnclassics.training.datasets import DATASETS, is_dataset
from keras_cnnclassics.training.recipes import recipe_settings

__all__ = ["TrainConfig", "CHOICES", "DEFAULT_LR", "DEFAULT_WEIGHT_DECAY"]

CHOICES = {
    "optimizer": ("sgd", "adamw"),
    "schedule": ("cosine", "step", "piecewise"),
    "augment": ("none", "basic", "strong"),
    "mixed_precision": ("auto", "off", "float16", "bfloat16"),
    "distribute": ("none", "data-parallel"),
    "recipe": ("none", "paper"),
    "milestone_unit": ("epochs", "steps"),
}
# Values of the options left unset, where neither the model, the data nor a recipe decides.
FALLBACKS = {"epochs": 20, "batch_size": 32, "optimizer": "sgd", "schedule": "cosine",
             "label_smoothing": 0.1}
# SGD with momentum 0.9 as in AlexNet/VGG/ResNet; AdamW's usual 1e-3 / 0.05.
DEFAULT_LR = {"sgd": 0.05, "adamw": 1e-3}
DEFAULT_WEIGHT_DECAY = {"sgd": 5e-4, "adamw": 0.05}
# The step schedule divides the rate by 10 at 50 % and 75 % of training
# (He et al., 2016, CIFAR-10: at 32k and 48k of 64k iterations).
STEP_MILESTONES = (0.5, 0.75)
# GoogLeNet (Szegedy et al., 2015, sec. 5): auxiliary losses weighted by 0.3.
AUX_LOSS_WEIGHT = 0.3
DIGITS = "digits"
# Recipe values that belong to its optimizer (dropped when another one is chosen).
SGD_SETTINGS = ("lr", "weight_decay", "nesterov")
# Choices that may stay None until resolved (then the recipe, model or data decides).
UNSET_CHOICES = ("augment", "optimizer", "schedule", "milestone_unit")


@dataclasses.dataclass
class TrainConfig:
    """Options of one training run (``cnnclassics train MODEL ...``).

    Attributes:
        model: registry name, e.g. ``"lenet5"``.
        data: ``"digits"`` (scikit-learn's handwritten digits), a standard
            dataset by name (``"cifar10"``, ``"cifar100"``, ``"mnist"``,
            ``"fashion_mnist"``: downloaded once by ``keras.datasets`` into
            ``$KERAS_HOME/datasets``, validated on its official test split) or an
            image folder with one subfolder per class (a folder named like a
            dataset is given as ``./cifar10``).
        epochs: passes over the training split; default 20.
        batch_size: images per optimisation step (the global batch when
            distributed: it must divide by the number of devices); default 32.
        image_size: input height = width; default: the model's default size.
        lr: peak learning rate; default 0.05 (sgd) or 1e-3 (adamw).
        optimizer: ``"sgd"`` (momentum 0.9) or ``"adamw"``; default sgd.
        nesterov: Nesterov momentum for SGD (a paper recipe that states it
            turns it on).
        schedule: ``"cosine"`` (default), ``"step"`` (/10 at 50 % and 75 %) or
            ``"piecewise"`` (``lr * lr_factors[k]`` once ``k`` of ``milestones``
            have passed), after a linear warm-up of ``warmup_epochs``.
        milestones: the piecewise schedule's boundaries, increasing, counted in
            ``milestone_unit`` (``"epochs"`` or ``"steps"``, i.e. iterations).
        lr_factors: the piecewise schedule's multipliers of ``lr``, one more
            than ``milestones``.
        recipe: ``"none"`` or ``"paper"``: the model's paper recipe on CIFAR
            (:mod:`keras_cnnclassics.training.recipes`) fills every option
            left unset (None); options given explicitly win.
        warmup_epochs: epochs of linear warm-up from 0 to ``lr`` (may be 0);
            default 1 (0 for a one-epoch run).
        label_smoothing: in [0, 1); default 0.1 (Szegedy et al., 2016), 0
            under a paper recipe.
        augment: ``"none"``, ``"basic"`` or ``"strong"``; default none for
            digits and mnist (a flipped digit is another digit), basic for
            folders and the other named datasets.
        mixed_precision: ``"auto"``, ``"off"``, ``"float16"`` or ``"bfloat16"``.
        weights: a local weights file to start from (the head may differ).
        freeze_backbone: train only the classifier head(s).
        distribute: ``"none"`` or ``"data-parallel"``.
        output: run folder; default ``runs/<model>-<timestamp>``.
        seed: seeds initialisation, data order, augmentation and dropout.
        weight_decay: decoupled weight decay (biases and BN excluded);
            default 5e-4 (sgd) or 0.05 (adamw).
        val_split: fraction of the data held out for validation (digits and
            folders; a named dataset validates on its official test split).
        limit: use at most this many training and validation images each (quick
            trials); default all.
        model_options: family options passed to the constructor.
    """

    model: str
    data: str = DIGITS
    epochs: int | None = None
    batch_size: int | None = None
    image_size: int | None = None
    lr: float | None = None
    optimizer: str | None = None
    schedule: str | None = None
    warmup_epochs: float | None = None
    label_smoothing: float | None = None
    augment: str | None = None
    mixed_precision: str = "auto"
    weights: str | None = None
    freeze_backbone: bool = False
    distribute: str = "none"
    output: str | None = None
    seed: int = 0
    weight_decay: float | None = None
    val_split: float = 0.2
    limit: int | None = None
    model_options: dict = dataclasses.field(default_factory=dict)
    recipe: str = "none"
    nesterov: bool = False
    milestones: list | None = None
    milestone_unit: str | None = None
    lr_factors: list | None = None

    def validate(self) -> "TrainConfig":
        """Check every option; raise ``ValueError`` naming the rule. Returns self."""
        _check_str("model", self.model)
        _check_str("data", self.data)
        if not _named(self.data) and not os.path.isdir(self.data):
            raise ValueError(
                f"--data must be 'digits' or an existing image folder (one subfolder per class) "
                f"or a dataset name ({', '.join(DATASETS)}); {self.data!r} is none of these."
            )
        for key in ("epochs", "batch_size"):
            if getattr(self, key) is not None:
                _check_int(key, getattr(self, key), minimum=1)
        if self.image_size is not None:
            _check_int("image_size", self.image_size, minimum=1)
        if self.lr is not None:
            _check_number("lr", self.lr, low=0.0, low_open=True)
        if self.weight_decay is not None:
            _check_number("weight_decay", self.weight_decay, low=0.0)
        if self.warmup_epochs is not None:
            _check_number("warmup_epochs", self.warmup_epochs, low=0.0)
        if None not in (self.warmup_epochs, self.epochs) and self.warmup_epochs >= self.epochs:
            raise ValueError(
                f"warmup_epochs ({self.warmup_epochs}) must be smaller than epochs ({self.epochs})."
            )
        if self.label_smoothing is not None:
            _check_number("label_smoothing", self.label_smoothing, low=0.0, high=1.0)
        _check_number("val_split", self.val_split, low=0.0, high=1.0, low_open=True)
        _check_int("seed", self.seed, minimum=0)
        if self.limit is not None:
            _check_int("limit", self.limit, minimum=1)
        for key, choices in CHOICES.items():
            value = getattr(self, key)
            if value is None and key in UNSET_CHOICES:
                continue
            if value not in choices:
                raise ValueError(
                    f"{key.replace('_', '-')} must be one of {', '.join(choices)}; got {value!r}."
                )
        for key in ("freeze_backbone", "nesterov"):
            if not isinstance(getattr(self, key), bool):
                raise ValueError(f"{key} must be True or False; got {getattr(self, key)!r}.")
        if self.schedule == "piecewise" or self.milestones is not None or self.lr_factors is not None:
            _check_piecewise(self.milestones, self.lr_factors)
        if self.weights is not None and not os.path.isfile(os.fspath(self.weights)):
            raise ValueError(f"weights file {self.weights!r} does not exist.")
        if not isinstance(self.model_options, dict):
            raise ValueError(f"model_options must be a dict; got {self.model_options!r}.")
        return self

    def resolved(self, spec) -> "TrainConfig":
        """A copy with the recipe's, the model's and the data's defaults filled in."""
        self.validate()
        cfg = dataclasses.replace(self, **self._recipe_values(spec.name))
        cfg = dataclasses.replace(cfg, **{k: v for k, v in FALLBACKS.items() if getattr(cfg, k) is None})
        piecewise = cfg.schedule == "piecewise"
        cfg = dataclasses.replace(
            cfg,
            image_size=cfg.image_size or spec.input_shape[0],
            warmup_epochs=(
                float(cfg.epochs > 1) if cfg.warmup_epochs is None else float(cfg.warmup_epochs)
            ),
            lr=DEFAULT_LR[cfg.optimizer] if cfg.lr is None else float(cfg.lr),
            weight_decay=(
                DEFAULT_WEIGHT_DECAY[cfg.optimizer]
                if cfg.weight_decay is None
                else float(cfg.weight_decay)
            ),
            label_smoothing=float(cfg.label_smoothing),
            milestones=list(cfg.milestones) if piecewise else None,
            lr_factors=[float(f) for f in cfg.lr_factors] if piecewise else None,
            milestone_unit=(cfg.milestone_unit or "epochs") if piecewise else None,
            augment=cfg.augment or _default_augment(cfg.data),
            weights=None if self.weights is None else os.path.abspath(self.weights),
            data=self.data if _named(self.data) else os.path.abspath(self.data),
            model_options=dict(self.model_options),
        )
        return cfg.validate()

    def _recipe_values(self, model) -> dict:
        """The paper recipe's values for the options left unset (``{}`` without a recipe)."""
        if self.recipe != "paper":
            return {}
        size = DATASETS[self.data].train_size if is_dataset(self.data) else None
        if size is not None and self.limit:
            size = min(size, self.limit)
        settings = recipe_settings(model, size, self.batch_size)
        if self.epochs is None and "epochs" not in settings:
            raise ValueError(
                f"the paper recipe of {model} counts iterations; its epochs follow from the size "
                f"of a named dataset ({', '.join(DATASETS)}): use one, or give --epochs."
            )
        if self.optimizer not in (None, settings["optimizer"]):  # its lr and decay are SGD's
            settings = {k: v for k, v in settings.items() if k not in SGD_SETTINGS}
        return {k: v for k, v in settings.items()
                if getattr(self, k) is None or (k == "nesterov" and not self.nesterov)}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown training option(s): {', '.join(unknown)}.")
        return cls(**values)

    def differences(self, other: "TrainConfig", keys) -> list[str]:
        """``"key: self -> other"`` for each of ``keys`` whose values differ."""
        return [
            f"{k}: {getattr(self, k)!r} -> {getattr(other, k)!r}"
            for k in keys
            if getattr(self, k) != getattr(other, k)
        ]


def _check_piecewise(milestones, factors):
    rule = ("the piecewise schedule needs milestones (increasing numbers > 0) and lr_factors "
            "(numbers > 0, one more than milestones)")
    ok = isinstance(milestones, (list, tuple)) and isinstance(factors, (list, tuple))
    ok = ok and len(milestones) >= 1 and len(factors) == len(milestones) + 1
    ok = ok and all(isinstance(v, numbers.Real) and not isinstance(v, bool) and v > 0
                    for v in (*milestones, *factors))
    if not ok or list(milestones) != sorted(set(milestones)):
        raise ValueError(f"{rule}; got milestones={milestones!r}, lr_factors={factors!r}.")


def _named(data) -> bool:
    """True for ``digits`` and the dataset names (not folder paths)."""
    return data == DIGITS or is_dataset(data)


def _default_augment(data) -> str:
    if data == DIGITS:
        return "none"
    return DATASETS[data].augment if is_dataset(data) else "basic"


def _check_str(key, value):
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key} must be a non-empty string; got {value!r}.")


def _check_int(key, value, minimum):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(
            f"{key.replace('_', '-')} must be an integer >= {minimum}; got {value!r}."
        )


def _check_number(key, value, low=None, high=None, low_open=False):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and value == value
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high
    if not ok:
        left = "(" if low_open else "["
        interval = f"{left}{low}, {high if high is not None else 'inf'})"
        raise ValueError(f"{key.replace('_', '-')} must be a number in {interval}; got {value!r}.")
