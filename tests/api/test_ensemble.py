"""keras_cnnclassics.ensemble: (weighted) probability averaging, .keras round trip, validation."""

import numpy as np
import pytest

import keras
import keras_cnnclassics as kc

SHAPE = (32, 32, 3)


def _members(classes=5, names=("squeezenet1_1", "squeezenet1_0")):
    return [kc.get_model(name, input_shape=SHAPE, classes=classes) for name in names]


def _pair():
    return _members(names=("squeezenet1_1", "squeezenet1_1"))


def _two_outputs():
    """A member with an auxiliary output, like GoogLeNet(aux_logits=True)."""
    inputs = keras.Input(SHAPE)
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    return keras.Model(inputs, [keras.layers.Dense(5)(pooled), keras.layers.Dense(5)(pooled)], name="two")


def _images(batch=2):
    return np.random.default_rng(0).uniform(size=(batch, *SHAPE)).astype("float32")


def test_mean_and_weighted_mean_of_member_probabilities(tmp_path):
    members = _members()
    x = _images()
    probs = [np.asarray(m.predict(x, verbose=0)) for m in members]
    assert np.max(np.abs(probs[0] - probs[1])) > 1e-3  # different members, a real average

    plain = kc.ensemble(members)
    np.testing.assert_allclose(plain.predict(x, verbose=0), (probs[0] + probs[1]) / 2, atol=1e-6)

    weighted = kc.ensemble(members, weights=[3, 1], name="weighted")
    expected = (3 * probs[0] + probs[1]) / 4
    got = np.asarray(weighted.predict(x, verbose=0))
    np.testing.assert_allclose(got, expected, atol=1e-6)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)
    assert weighted.name == "weighted" and weighted.output_shape == (None, 5)
    assert kc.count_params(weighted) == sum(kc.count_params(m) for m in members)

    path = tmp_path / "ensemble.keras"
    weighted.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), got, rtol=0, atol=1e-7)


def test_members_with_the_same_name_are_kept_apart(tmp_path):
    members = _members(names=("squeezenet1_1", "squeezenet1_1", "squeezenet1_1"))
    model = kc.ensemble(members, weights=[1, 0, 1])
    nested = [layer.name for layer in model.layers if isinstance(layer, keras.Model)]
    assert nested == ["squeezenet1_1", "squeezenet1_1_1", "squeezenet1_1_2"]
    x = _images(1)
    probs = [np.asarray(m.predict(x, verbose=0)) for m in members]
    np.testing.assert_allclose(model.predict(x, verbose=0), (probs[0] + probs[2]) / 2, atol=1e-6)
    path = tmp_path / "same.keras"
    model.save(path)
    np.testing.assert_allclose(
        keras.saving.load_model(path).predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-7
    )


def test_ensemble_trains_as_one_model():
    model = kc.ensemble(_pair())
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="sparse_categorical_crossentropy")
    history = model.fit(_images(), np.array([0, 4]), epochs=1, batch_size=2, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize(
    "make, kwargs, message",
    [
        (lambda: _pair()[:1], {}, "at least 2 models"),
        (lambda: _pair()[0], {}, "list or tuple"),
        (lambda: [_pair()[0], "resnet"], {}, "must be a keras.Model"),
        (
            lambda: [kc.SqueezeNet1_1(input_shape=SHAPE), kc.SqueezeNet1_1(input_shape=(48, 48, 3))],
            {},
            "same shape",
        ),
        (
            lambda: [kc.SqueezeNet1_1(input_shape=SHAPE, classes=5), kc.SqueezeNet1_1(input_shape=SHAPE)],
            {},
            "same number of classes",
        ),
        (lambda: [_two_outputs(), _pair()[0]], {}, "has 2 outputs"),
        (_pair, {"weights": [1]}, "list of 2 numbers"),
        (_pair, {"weights": [1, -1]}, "non-negative"),
        (_pair, {"weights": [0, 0]}, "positive sum"),
        (_pair, {"weights": [1, "2"]}, "must be numbers"),
        (_pair, {"name": ""}, "non-empty string"),
    ],
)
def test_bad_arguments(make, kwargs, message):
    with pytest.raises(ValueError, match=message):
        kc.ensemble(make(), **kwargs)


@pytest.mark.heavy("export-ensemble")
def test_ensemble_with_transform_input_member_exports_to_tflite(tmp_path):
    """WeightedAverage and a Rescaling per channel (GoogLeNet's transform_input) convert with builtin ops."""
    from keras_cnnclassics.export import export_model

    members = [
        kc.GoogLeNet(input_shape=SHAPE, classes=5, transform_input=True, name="g"),
        kc.SqueezeNet1_1(input_shape=SHAPE, classes=5, name="s"),
    ]
    report = export_model(
        kc.ensemble(members, weights=[2, 1]), "tflite", str(tmp_path / "ensemble.tflite"),
        preprocess="none", verbose=False,
    )
    assert report.max_abs_diff <= 1e-4
