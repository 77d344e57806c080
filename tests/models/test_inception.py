"""Inception v3: exact counts and logits parity with torchvision, the auxiliary head, stage outputs."""

import numpy as np
import pytest

import keras
import keras_cnnclassics as kc
from keras_cnnclassics.convert import state_dict_to_keras

from support.parity_tolerance import assert_logits_close, calibration_images, condition_batchnorm
from support.reference import torch_logits, torch_reference, torchvision_models


def _torch_params(**kwargs):
    model = torchvision_models().inception_v3(weights=None, init_weights=False, **kwargs)
    return sum(p.numel() for p in model.parameters())


def test_counts_equal_live_torchvision():
    assert kc.count_params(kc.InceptionV3()) == _torch_params(aux_logits=False) == 23_834_568
    with_aux = kc.InceptionV3(aux_logits=True)
    assert kc.count_params(with_aux) == _torch_params(aux_logits=True) == 27_161_264
    assert with_aux.output_names == ["predictions", "AuxLogits_predictions"]


def _assert_close(got, expected):
    assert_logits_close(got, expected)


def test_logits_match_torchvision_at_smallest_input():
    """75x75 is the smallest input torchvision's inception_v3 accepts (its meta min_size)."""
    reference = torch_reference("torchvision:inception_v3", aux_logits=False, init_weights=False)
    condition_batchnorm(reference, calibration_images(75))
    model = kc.InceptionV3(input_shape=(75, 75, 3), classifier_activation=None)
    state_dict_to_keras(model, reference.state_dict())
    x = np.random.default_rng(0).normal(size=(2, 75, 75, 3)).astype("float32")
    _assert_close(model.predict(x, verbose=0), torch_logits(reference, x))


@pytest.mark.heavy("parity-inception_v3-aux")
def test_aux_head_and_transform_input_match_torchvision_at_299():
    import torch

    reference = torch_reference(
        "torchvision:inception_v3", aux_logits=True, transform_input=True, init_weights=False
    )
    condition_batchnorm(reference, calibration_images(299))
    model = kc.InceptionV3(classifier_activation=None, aux_logits=True, transform_input=True)
    state_dict_to_keras(model, reference.state_dict())
    x = np.random.default_rng(1).normal(size=(2, 299, 299, 3)).astype("float32")
    taps = {}
    hook = reference.Mixed_6e.register_forward_hook(lambda m, a, out: taps.__setitem__("6e", out))
    main = torch_logits(reference, x)  # eval forward: the aux head is not run
    hook.remove()
    with torch.no_grad():
        aux = reference.AuxLogits(taps["6e"]).numpy()
    got_main, got_aux = model.predict(x, verbose=0)
    _assert_close(got_main, main)
    _assert_close(got_aux, aux)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"aux_logits": True, "input_shape": (298, 298, 3)}, "at least 299x299"),
        ({"aux_logits": True, "include_top": False}, "needs include_top=True"),
        ({"aux_logits": 1}, "aux_logits must be True or False"),
        ({"transform_input": "no"}, "transform_input must be True or False"),
        ({"input_shape": (74, 74, 3)}, "too small"),
    ],
)
def test_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        kc.InceptionV3(**kwargs)


def test_stage_outputs_at_299():
    extractor = kc.feature_extractor("inception_v3")
    assert [tuple(o.shape[1:]) for o in extractor.outputs] == [
        (71, 71, 192), (35, 35, 288), (17, 17, 768), (8, 8, 2048)
    ]


@pytest.mark.heavy("fit-inception_v3-aux")
def test_aux_training_step_returns_two_losses():
    model = kc.InceptionV3(classes=3, aux_logits=True)
    model.compile(
        optimizer=keras.optimizers.SGD(1e-3),
        loss=["sparse_categorical_crossentropy"] * 2,
        loss_weights=[1.0, 0.3],
    )
    x = np.random.default_rng(2).uniform(size=(1, 299, 299, 3)).astype("float32")
    y = np.array([2])
    history = model.fit(x, [y, y], epochs=1, batch_size=1, verbose=0).history
    assert len([k for k in history if k.endswith("_loss")]) == 2 and np.isfinite(history["loss"][0])
