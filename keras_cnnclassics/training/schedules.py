"""Learning-rate schedules with linear warm-up, driven by the optimizer's step count.

The rate is a function of ``optimizer.iterations`` only, so restoring the
optimizer's variables on ``--resume`` restores the schedule's position.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from keras_cnnclassics.layers import PACKAGE

__all__ = ["WarmupSchedule", "schedule_for"]
KINDS = ("cosine", "step", "piecewise")


@keras.saving.register_keras_serializable(package=PACKAGE)
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``peak_lr`` over ``warmup_steps``, then cosine, step or piecewise.

    * ``cosine`` (Loshchilov and Hutter, 2017, SGDR without restarts):
      ``0.5 * peak * (1 + cos(pi * t))`` with ``t`` from 0 to 1 after warm-up.
    * ``step`` (He et al., 2016): ``peak * gamma ** k`` after ``k`` of the
      ``milestones`` (fractions of ``total_steps``) have passed.
    * ``piecewise`` (the papers' recipes, e.g. He et al., 2016, sec. 4.2):
      ``peak * factors[k]`` from step ``boundaries[k - 1]`` on, ``factors[0]``
      before the first boundary (steps, absolute).

    Warm-up (Goyal et al., 2017) rises linearly: step ``s < warmup_steps`` uses
    ``peak * (s + 1) / warmup_steps``.
    """

    def __init__(self, peak_lr, total_steps, warmup_steps=0, kind="cosine",
                 milestones=(0.5, 0.75), gamma=0.1, boundaries=(), factors=()):
        if kind not in KINDS:
            raise ValueError(f"schedule must be one of {', '.join(KINDS)}; got {kind!r}.")
        if kind == "piecewise" and len(factors) != len(boundaries) + 1:
            raise ValueError(f"piecewise: need one factor more than boundaries; got "
                             f"{list(factors)} for {list(boundaries)}.")
        if total_steps < 1 or not 0 <= warmup_steps < total_steps:
            raise ValueError(
                f"need 0 <= warmup_steps ({warmup_steps}) < total_steps ({total_steps})."
            )
        self.peak_lr = float(peak_lr)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.kind = kind
        self.milestones = tuple(float(m) for m in milestones)
        self.gamma = float(gamma)
        self.boundaries = tuple(int(b) for b in boundaries)
        self.factors = tuple(float(f) for f in factors)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warmup = float(max(self.warmup_steps, 1))
        warm = self.peak_lr * (step + 1.0) / warmup
        if self.kind == "cosine":
            span = float(max(self.total_steps - self.warmup_steps, 1))
            progress = ops.clip((step - self.warmup_steps) / span, 0.0, 1.0)
            decayed = 0.5 * self.peak_lr * (1.0 + ops.cos(math.pi * progress))
        elif self.kind == "piecewise":
            passed = sum(ops.cast(step >= boundary, "int32") for boundary in self.boundaries)
            decayed = ops.take(ops.convert_to_tensor(self.factors, "float32"), passed) * self.peak_lr
        else:
            passed = sum(
                ops.cast(step >= round(m * self.total_steps), "float32") for m in self.milestones
            )
            decayed = self.peak_lr * ops.power(self.gamma, passed)
        return ops.where(step < self.warmup_steps, warm, decayed)

    def get_config(self):
        return {
            "peak_lr": self.peak_lr,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "kind": self.kind,
            "milestones": self.milestones,
            "gamma": self.gamma,
            "boundaries": self.boundaries,
            "factors": self.factors,
        }


def schedule_for(cfg, steps_per_epoch, step_milestones) -> WarmupSchedule:
    """The schedule of a resolved training configuration (``step_milestones``: the
    ``step`` schedule's fractions); piecewise milestones in epochs become steps."""
    per = steps_per_epoch if cfg.milestone_unit == "epochs" else 1
    return WarmupSchedule(
        cfg.lr,
        total_steps=cfg.epochs * steps_per_epoch,
        warmup_steps=round(cfg.warmup_epochs * steps_per_epoch),
        kind=cfg.schedule,
        milestones=step_milestones,
        boundaries=[round(m * per) for m in cfg.milestones or ()],
        factors=cfg.lr_factors or (),
    )
