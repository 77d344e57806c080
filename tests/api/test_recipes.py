"""``--recipe paper``: each CIFAR model's paper recipe, checked by its resolved settings
and learning rate at chosen iterations (not by training to the end)."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

import keras_cnnclassics as kc
from keras_cnnclassics import cli
from keras_cnnclassics.registry import get_spec
from keras_cnnclassics.training import TrainConfig
from keras_cnnclassics.training.config import STEP_MILESTONES
from keras_cnnclassics.training.recipes import RECIPES
from keras_cnnclassics.training.schedules import WarmupSchedule, schedule_for

CIFAR_STEPS = 50000 // 128  # steps per epoch of CIFAR's 50,000 training images at batch 128


def resolved(model, **options):
    return TrainConfig(model, recipe="paper", **options).resolved(get_spec(model))


def rates(cfg, steps_per_epoch, steps):
    schedule = schedule_for(cfg, steps_per_epoch, STEP_MILESTONES)
    return [float(keras.ops.convert_to_numpy(schedule(step))) for step in steps]


def test_resnet110_warms_up_at_0_01_for_400_iterations_then_divides_at_32k_and_48k():
    cfg = resolved("resnet110", data="cifar10")
    assert (cfg.optimizer, cfg.nesterov, cfg.batch_size, cfg.lr, cfg.weight_decay) == (
        "sgd", False, 128, 0.1, 1e-4)
    assert (cfg.augment, cfg.label_smoothing, cfg.warmup_epochs) == ("basic", 0.0, 0.0)
    assert cfg.epochs == 165  # the epoch that reaches 64k iterations at 390 steps an epoch
    got = rates(cfg, CIFAR_STEPS, [0, 399, 400, 31999, 32000, 47999, 48000, 63999])
    np.testing.assert_allclose(got, [0.01, 0.01, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rtol=1e-6)


def test_resnet20_has_no_warm_up():
    cfg = resolved("resnet20", data="cifar100")
    np.testing.assert_allclose(rates(cfg, CIFAR_STEPS, [0, 31999, 32000, 48000]),
                               [0.1, 0.1, 0.01, 0.001], rtol=1e-6)


def test_wide_resnet_multiplies_by_0_2_at_epochs_60_120_160_with_nesterov():
    cfg = resolved("wrn28_10", data="cifar10")
    assert (cfg.epochs, cfg.batch_size, cfg.weight_decay, cfg.nesterov) == (200, 128, 5e-4, True)
    steps = [0, 60 * CIFAR_STEPS - 1, 60 * CIFAR_STEPS, 120 * CIFAR_STEPS, 160 * CIFAR_STEPS]
    np.testing.assert_allclose(rates(cfg, CIFAR_STEPS, steps), [0.1, 0.1, 0.02, 0.004, 0.0008],
                               rtol=1e-5)


@pytest.mark.parametrize("model, epochs, batch, lr, decay, nesterov, milestones", [
    ("resnext29_8x64d", 300, 128, 0.1, 5e-4, False, [150, 225]),
    ("densenet_bc100_k12_cifar", 300, 64, 0.1, 1e-4, True, [150, 225]),
    ("resnet110_stochastic_depth", 500, 128, 0.1, 1e-4, True, [250, 375]),
    ("fractalnet20", 400, 100, 0.02, 5e-4, False, [200, 300, 350, 375]),
])
def test_epoch_recipes_resolve_to_the_papers_settings(model, epochs, batch, lr, decay, nesterov,
                                                     milestones):
    cfg = resolved(model, data="cifar10")
    assert (cfg.epochs, cfg.batch_size, cfg.lr, cfg.weight_decay, cfg.nesterov) == (
        epochs, batch, lr, decay, nesterov)
    assert (cfg.schedule, cfg.milestone_unit, cfg.milestones) == ("piecewise", "epochs", milestones)
    steps_per_epoch = 50000 // batch
    last = rates(cfg, steps_per_epoch, [m * steps_per_epoch - 1 for m in milestones])
    after = rates(cfg, steps_per_epoch, [m * steps_per_epoch for m in milestones])
    np.testing.assert_allclose(np.array(after) / np.array(last), 0.1, rtol=1e-5)


def test_explicit_options_win_over_the_recipe():
    cfg = resolved("resnet110", data="cifar10", lr=0.05, batch_size=64, epochs=3, augment="none")
    assert (cfg.lr, cfg.batch_size, cfg.epochs, cfg.augment) == (0.05, 64, 3, "none")
    assert cfg.weight_decay == 1e-4 and cfg.milestones == [400, 32000, 48000]
    np.testing.assert_allclose(rates(cfg, 781, [0, 400]), [0.005, 0.05], rtol=1e-6)
    cosine = resolved("resnet110", data="cifar10", schedule="cosine")
    assert cosine.milestones is None and cosine.lr_factors is None
    adamw = resolved("wrn16_8", data="cifar10", optimizer="adamw")
    assert (adamw.lr, adamw.weight_decay, adamw.nesterov) == (1e-3, 0.05, False)


def test_iteration_recipe_epochs_follow_the_limit_and_batch():
    assert resolved("resnet56", data="cifar10", limit=1280).epochs == 6400  # 10 steps an epoch
    with pytest.raises(ValueError, match="counts iterations.*give --epochs"):
        resolved("resnet56", data="digits")
    assert resolved("resnet56", data="digits", epochs=2).epochs == 2


def test_models_without_a_recipe_are_refused_with_the_list():
    with pytest.raises(ValueError) as caught:
        resolved("lenet5")
    message = str(caught.value)
    assert "\n" not in message and "lenet5 has no paper recipe" in message
    assert "resnet110" in message and "densenet_bc100_k12_cifar" in message


def test_model_info_records_the_recipe_and_the_papers_error():
    recipe = kc.model_info("resnet110")["recipe"]
    assert recipe["reported_error"] == {"cifar10": 6.43}
    assert recipe["milestones"] == [400, 32000, 48000] and "He et al." in recipe["paper"]
    assert kc.model_info("densenet_bc190_k40_cifar")["recipe"]["reported_error"]["cifar100"] == 17.18
    assert kc.model_info("resnet50")["recipe"] is None
    for name in RECIPES:  # every recipe names a registry model
        assert get_spec(name).name == name


def test_piecewise_schedule_survives_serialisation():
    schedule = WarmupSchedule(0.1, 1000, kind="piecewise", boundaries=[10, 20], factors=[0.1, 1, 0.1])
    again = WarmupSchedule.from_config(schedule.get_config())
    np.testing.assert_allclose([float(again(s)) for s in (9, 10, 20)], [0.01, 0.1, 0.01], rtol=1e-6)


@pytest.mark.slow  # ~25 s (resnet20's first compile): one backend per run in the default tier
def test_recipe_run_records_its_resolved_schedule_for_resume(tmp_path, capsys):
    run = tmp_path / "run"
    code = cli.main(["train", "resnet20", "--recipe", "paper", "--data", "digits", "--epochs", "1",
                     "--limit", "64", "--batch-size", "32", "--output", str(run)])
    out, err = capsys.readouterr()
    assert code == 0, err
    config = json.loads((run / "config.json").read_text())["config"]
    assert (config["recipe"], config["schedule"], config["milestones"]) == (
        "paper", "piecewise", [32000, 48000])
    assert (config["lr"], config["weight_decay"], config["label_smoothing"]) == (0.1, 1e-4, 0.0)
    stored = TrainConfig.from_dict(config)
    assert stored.resolved(get_spec("resnet20")) == stored  # resolving again changes nothing
