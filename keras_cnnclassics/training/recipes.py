"""Paper training recipes (``--recipe paper``) of the CIFAR-designed models.

Each recipe is what its paper states for CIFAR: optimizer, batch, learning-rate
schedule, weight decay, training length and augmentation, with the paper's
reported test error (%) on CIFAR-10 / CIFAR-100 with standard augmentation
("C10+" / "C100+"). :func:`recipe_settings` turns a recipe into
:class:`~keras_cnnclassics.training.config.TrainConfig` values; an option the
user sets explicitly wins over the recipe.

Shared by every recipe here: SGD with momentum 0.9, no label smoothing, no
warm-up other than the one a paper states, and the ``basic`` augmentation
(horizontal flip + random shift of up to 4 px at 32 px, the papers' "pad 4,
random 32x32 crop, flip"; the shift here fills with reflected borders, as
Zagoruyko & Komodakis do, where He et al. pad with zeros). Schedules are
piecewise constant: ``lr * lr_factors[k]`` once ``k`` of the ``milestones``
(in iterations or epochs, as the paper counts) have passed.

Models without a recipe: LeNet-5 and the ImageNet models (their papers train
on other data), and NiN (Lin et al., 2014), whose paper lowers the rate by hand
"when the accuracy on the training set stops improving" and states no numbers.
"""

from __future__ import annotations

import math

__all__ = ["RECIPES", "recipe_for", "models_with_recipe", "recipe_settings"]

_SGD = {"optimizer": "sgd", "augment": "basic", "label_smoothing": 0.0, "warmup_epochs": 0.0}

# He, Zhang, Ren, Sun. Deep Residual Learning for Image Recognition. CVPR 2016, sec. 4.2:
# batch 128, lr 0.1, /10 at 32k and 48k iterations, stop at 64k; weight decay 1e-4,
# momentum 0.9; 4-px padding, random 32x32 crop, horizontal flip.
HE2016 = {
    **_SGD, "paper": "He et al., Deep Residual Learning for Image Recognition, CVPR 2016, sec. 4.2",
    "batch_size": 128, "lr": 0.1, "weight_decay": 1e-4, "nesterov": False,
    "iterations": 64000, "milestone_unit": "steps", "milestones": [32000, 48000],
    "lr_factors": [1.0, 0.1, 0.01],
}
# sec. 4.2: for ResNet-110, "0.01 to warm up the training until the training error is below
# 80% (about 400 iterations), and then go back to 0.1".
HE2016_WARM = {**HE2016, "milestones": [400, 32000, 48000], "lr_factors": [0.1, 1.0, 0.1, 0.01]}
# He, Zhang, Ren, Sun. Identity Mappings in Deep Residual Networks. ECCV 2016, appendix: as
# above, and "for all CIFAR experiments we warm up the training by using a smaller learning
# rate of 0.01 at the beginning 400 iterations"; batch 128, weight decay 1e-4.
HE2016_PREACT = {
    **HE2016_WARM,
    "paper": "He et al., Identity Mappings in Deep Residual Networks, ECCV 2016, appendix",
}
# Huang, Sun, Liu, Sedra, Weinberger. Deep Networks with Stochastic Depth. ECCV 2016, sec. 4:
# 500 epochs, batch 128, lr 0.1 /10 after epochs 250 and 375, weight decay 1e-4, Nesterov
# momentum 0.9 (dampening 0).
STOCHASTIC_DEPTH = {
    **_SGD, "paper": "Huang et al., Deep Networks with Stochastic Depth, ECCV 2016, sec. 4",
    "batch_size": 128, "lr": 0.1, "weight_decay": 1e-4, "nesterov": True, "epochs": 500,
    "milestone_unit": "epochs", "milestones": [250, 375], "lr_factors": [1.0, 0.1, 0.01],
}
# Zagoruyko, Komodakis. Wide Residual Networks. BMVC 2016: SGD with Nesterov momentum
# 0.9, lr 0.1 multiplied by 0.2 at epochs 60, 120 and 160, 200 epochs, weight decay 5e-4,
# batch 128; flips and random crops of the image padded by 4 px with reflections. Dropout is
# the model's option (dropout=0.3 for the paper's dropout rows).
WRN = {
    **_SGD, "paper": "Zagoruyko & Komodakis, Wide Residual Networks, BMVC 2016",
    "batch_size": 128, "lr": 0.1, "weight_decay": 5e-4, "nesterov": True, "epochs": 200,
    "milestone_unit": "epochs", "milestones": [60, 120, 160], "lr_factors": [1.0, 0.2, 0.04, 0.008],
}
# Xie, Girshick, Dollar, Tu, He. Aggregated Residual Transformations for Deep Neural Networks.
# CVPR 2017, CIFAR experiments: batch 128, lr 0.1 /10 at epochs 150 and 225 of 300, weight
# decay 5e-4, momentum 0.9; 32x32 crops of the zero-padded 40x40 image, flip.
RESNEXT = {
    **_SGD, "paper": "Xie et al., Aggregated Residual Transformations for Deep Neural Networks, "
    "CVPR 2017 (CIFAR)", "batch_size": 128, "lr": 0.1, "weight_decay": 5e-4, "nesterov": False,
    "epochs": 300, "milestone_unit": "epochs", "milestones": [150, 225],
    "lr_factors": [1.0, 0.1, 0.01],
}
# Huang, Liu, van der Maaten, Weinberger. Densely Connected Convolutional Networks. CVPR 2017,
# sec. 4.2: batch 64, 300 epochs, lr 0.1 /10 at 50 % and 75 % of the epochs, weight decay
# 1e-4, Nesterov momentum 0.9 without dampening (dropout 0.2 only without augmentation).
DENSENET = {
    **_SGD, "paper": "Huang et al., Densely Connected Convolutional Networks, CVPR 2017, sec. 4.2",
    "batch_size": 64, "lr": 0.1, "weight_decay": 1e-4, "nesterov": True, "epochs": 300,
    "milestone_unit": "epochs", "milestones": [150, 225], "lr_factors": [1.0, 0.1, 0.01],
}
# Larsson, Maire, Shakhnarovich. FractalNet: Ultra-Deep Neural Networks without Residuals.
# ICLR 2017, sec. 4: 400 epochs, lr 0.02, batch 100, momentum 0.9, "drop the learning rate by
# a factor of 10 whenever the number of remaining epochs halves" (epochs 200, 300, 350, 375).
# The paper states no weight decay: the package default applies.
FRACTALNET = {
    **_SGD, "paper": "Larsson et al., FractalNet: Ultra-Deep Neural Networks without Residuals, "
    "ICLR 2017, sec. 4", "batch_size": 100, "lr": 0.02, "nesterov": False, "epochs": 400,
    "milestone_unit": "epochs", "milestones": [200, 300, 350, 375],
    "lr_factors": [1.0, 0.1, 0.01, 0.001, 0.0001],
}

# model -> (recipe, the paper's reported test error in %: {"cifar10": C10+, "cifar100": C100+})
RECIPES = {
    # He et al. 2016, Table 6 (CIFAR-10, with augmentation)
    "resnet20": (HE2016, {"cifar10": 8.75}),
    "resnet32": (HE2016, {"cifar10": 7.51}),
    "resnet44": (HE2016, {"cifar10": 7.17}),
    "resnet56": (HE2016, {"cifar10": 6.97}),
    "resnet110": (HE2016_WARM, {"cifar10": 6.43}),
    "resnet1202": (HE2016, {"cifar10": 7.93}),
    # He et al. 2016b, Table 4 (pre-activation)
    "preact_resnet164": (HE2016_PREACT, {"cifar10": 5.46, "cifar100": 24.33}),
    "preact_resnet1001": (HE2016_PREACT, {"cifar10": 4.92, "cifar100": 22.71}),
    # Huang et al. 2016, Table 1 (110 layers, stochastic depth)
    "resnet110_stochastic_depth": (STOCHASTIC_DEPTH, {"cifar10": 5.25, "cifar100": 24.98}),
    # Zagoruyko & Komodakis 2016, comparison with the state of the art (no dropout)
    "wrn40_4": (WRN, {"cifar10": 4.53, "cifar100": 21.18}),
    "wrn16_8": (WRN, {"cifar10": 4.27, "cifar100": 20.43}),
    "wrn28_10": (WRN, {"cifar10": 4.00, "cifar100": 19.25}),
    # Xie et al. 2017, Table 7
    "resnext29_8x64d": (RESNEXT, {"cifar10": 3.65, "cifar100": 17.77}),
    "resnext29_16x64d": (RESNEXT, {"cifar10": 3.58, "cifar100": 17.31}),
    # Huang et al. 2017, Table 2 (C10+, C100+)
    "densenet40_k12_cifar": (DENSENET, {"cifar10": 5.24, "cifar100": 24.42}),
    "densenet_bc100_k12_cifar": (DENSENET, {"cifar10": 4.51, "cifar100": 22.27}),
    "densenet_bc190_k40_cifar": (DENSENET, {"cifar10": 3.46, "cifar100": 17.18}),
    # Larsson et al. 2017, Table 1 (C10+, C100+; no drop-path, no dropout)
    "fractalnet20": (FRACTALNET, {"cifar10": 5.22, "cifar100": 23.30}),
    "fractalnet40": (FRACTALNET, {"cifar10": 5.24, "cifar100": 22.49}),
}
# Recipe keys that are TrainConfig fields (the rest describe the recipe).
SETTINGS = ("optimizer", "nesterov", "batch_size", "lr", "weight_decay", "epochs", "schedule",
            "milestone_unit", "milestones", "lr_factors", "augment", "label_smoothing",
            "warmup_epochs")


def models_with_recipe() -> list:
    return list(RECIPES)


def recipe_for(name: str) -> dict | None:
    """The paper recipe of registry model ``name`` (with ``reported_error``), or None."""
    if name not in RECIPES:
        return None
    recipe, errors = RECIPES[name]
    return {**recipe, "schedule": "piecewise", "reported_error": dict(errors)}


def recipe_settings(name: str, train_size: int | None, batch_size: int | None = None) -> dict:
    """:class:`TrainConfig` values of ``name``'s recipe.

    A recipe counted in iterations gets ``epochs = ceil(iterations / steps per
    epoch)``, the steps from ``train_size`` and ``batch_size`` (default: the
    recipe's); without ``train_size`` (the data's size is not known before it is
    read) the values hold no ``epochs``.
    """
    recipe = recipe_for(name)
    if recipe is None:
        raise ValueError(
            f"{name} has no paper recipe (--recipe paper); models with one: "
            f"{', '.join(models_with_recipe())}."
        )
    settings = {key: recipe[key] for key in SETTINGS if key in recipe}
    if "iterations" in recipe and train_size is not None:
        steps = max(train_size // (batch_size or recipe["batch_size"]), 1)
        settings["epochs"] = math.ceil(recipe["iterations"] / steps)
    return settings
