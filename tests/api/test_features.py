"""feature_extractor: stage-end feature maps (timm's features_only) for every family that declares them."""

import pytest

import keras
import keras_cnnclassics as kc
from keras_cnnclassics.registry import all_specs

from support.model_cases import EVERY_BACKEND, heavy


def _stage_specs():
    return [
        pytest.param(
            s,
            id=s.name,
            marks=[] if s.name in EVERY_BACKEND and not s.heavy else [heavy(f"features-{s.name}", s.name)],
        )
        for s in all_specs()
        if s.feature_layers
    ]


@pytest.mark.parametrize("spec", _stage_specs())
def test_stage_outputs_shrink_and_are_named(spec):
    h, w, c = spec.input_shape
    extractor = kc.feature_extractor(spec.name, input_shape=(h, w, c))
    shapes = [tuple(o.shape) for o in extractor.outputs]
    assert len(shapes) == len(spec.stage_outputs())
    sizes = [s[1] for s in shapes]
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == len(sizes)


def test_vgg16_stage_strides_and_channels():
    extractor = kc.feature_extractor("vgg16", input_shape=(64, 64, 3))
    assert [tuple(o.shape[1:]) for o in extractor.outputs] == [
        (16, 16, 128), (8, 8, 256), (4, 4, 512), (2, 2, 512)
    ]
    info = kc.feature_info("vgg16", input_shape=(64, 64, 3))
    assert [i["reduction"] for i in info] == [4, 8, 16, 32]
    assert [i["channels"] for i in info] == [128, 256, 512, 512]


def test_out_indices_and_model_input():
    model = kc.VGG11(include_top=False, input_shape=(32, 32, 3))
    extractor = kc.feature_extractor(model, out_indices=(2, 3))
    assert [tuple(o.shape[1:]) for o in extractor.outputs] == [(2, 2, 512), (1, 1, 512)]
    with pytest.raises(ValueError, match="out of range"):
        kc.feature_extractor(model, out_indices=(4,))


def test_unknown_model_object_is_refused():
    inputs = keras.Input((8, 8, 3))
    with pytest.raises(ValueError, match="pass the registry name"):
        kc.feature_extractor(keras.Model(inputs, keras.layers.Conv2D(2, 3)(inputs), name="mine"))


def test_a_renamed_model_still_finds_its_registry_entry():
    """The registry name of a model built here is remembered outside the model object."""
    model = kc.VGG11(include_top=False, input_shape=(32, 32, 3), name="my_backbone")
    assert not any(name.startswith("_cnnclassics") for name in vars(model))
    extractor = kc.feature_extractor(model, out_indices=(3,))
    assert extractor.name == "my_backbone_features"
    assert [tuple(o.shape[1:]) for o in extractor.outputs] == [(1, 1, 512)]
