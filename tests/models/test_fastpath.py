"""keras_cnnclassics._fastpath: Keras' Conv2D/BatchNormalization/pooling layers with a
PyTorch fast path must compute exactly what Keras' own layers compute, on every backend,
be saved as Keras' own layers, and be used only where switched on and tested."""

import warnings

import numpy as np
import pytest
from support.capabilities import needs_channels_first

import keras
from keras_cnnclassics import _fastpath as fastpath

CONVS = [
    dict(filters=8, kernel_size=3, padding="same"),
    dict(filters=8, kernel_size=3, strides=2, padding="valid", activation="relu"),
    dict(filters=8, kernel_size=3, strides=2, padding="same"),  # Keras pads unevenly: Keras' path
    dict(filters=8, kernel_size=(1, 5), padding="same", use_bias=False),
    dict(filters=8, kernel_size=3, dilation_rate=2, padding="same"),
    dict(filters=8, kernel_size=3, groups=2, padding="same", activation="relu"),
    dict(filters=8, kernel_size=2, padding="same"),  # even kernel: Keras' path
]


def _pair(ours_class, keras_class, data_format, **config):
    if data_format is None:  # BatchNormalization: its axis picks the layout
        data_format = "channels_last" if config["axis"] == -1 else "channels_first"
    else:
        config["data_format"] = data_format
    shape = (9, 11, 4) if data_format == "channels_last" else (4, 9, 11)
    ours = ours_class(**config)
    ours.build((None, *shape))
    theirs = keras_class(**{**ours.get_config(), "name": "reference"})
    theirs.build((None, *shape))
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=w.shape).astype("float32") for w in ours.get_weights()]
    if isinstance(ours, keras.layers.BatchNormalization):
        weights[-1] = np.abs(weights[-1]) + 0.5  # a variance
    ours.set_weights(weights)
    theirs.set_weights(weights)
    x = rng.normal(size=(2, *shape)).astype("float32")
    return ours, theirs, x


def _run(layer, x):
    return keras.ops.convert_to_numpy(layer(keras.ops.convert_to_tensor(x), training=False)
                                      if isinstance(layer, keras.layers.BatchNormalization)
                                      else layer(keras.ops.convert_to_tensor(x)))


def _inference(layer, x):
    if keras.backend.backend() != "torch":
        return _run(layer, x)
    import torch

    with torch.inference_mode():
        return _run(layer, x)


@pytest.mark.parametrize(
    "data_format", ["channels_last", pytest.param("channels_first", marks=needs_channels_first)])
@pytest.mark.parametrize("config", CONVS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_conv2d_equals_keras_conv2d(config, data_format):
    ours, theirs, x = _pair(fastpath.Conv2D, keras.layers.Conv2D, data_format, **config)
    np.testing.assert_allclose(_inference(ours, x), _inference(theirs, x), rtol=1e-5, atol=1e-5)
    if keras.backend.backend() == "torch":  # the fast path ran unless Keras pads unevenly
        assert (ours in fastpath._TORCH_KERNELS) == (fastpath._symmetric_padding(ours) is not None)


@pytest.mark.parametrize("axis", [-1, 1])
def test_batch_norm_equals_keras_batch_norm(axis):
    ours, theirs, x = _pair(fastpath.BatchNormalization, keras.layers.BatchNormalization, None,
                            axis=axis, epsilon=1e-5)
    np.testing.assert_allclose(_inference(ours, x), _inference(theirs, x), rtol=1e-5, atol=1e-5)
    # training mode normalises with the batch's statistics, as Keras' layer does
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(ours(x, training=True)),
        keras.ops.convert_to_numpy(theirs(x, training=True)), rtol=1e-4, atol=1e-4,
    )


def test_cached_kernel_follows_new_weights():
    ours, theirs, x = _pair(fastpath.Conv2D, keras.layers.Conv2D, "channels_last", filters=8, kernel_size=3)
    before = _inference(ours, x)
    new = [w * 2 for w in ours.get_weights()]
    ours.set_weights(new)
    theirs.set_weights(new)
    after = _inference(ours, x)
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, _inference(theirs, x), rtol=1e-5, atol=1e-5)
    ours.kernel.assign(ours.kernel * 0)  # an in-place update of the same storage
    np.testing.assert_allclose(_inference(ours, x), np.broadcast_to(new[1], after.shape), atol=1e-6)


def test_training_gradients_and_mixed_precision_take_kerass_path():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        ours, theirs, x = _pair(fastpath.Conv2D, keras.layers.Conv2D, "channels_last", filters=8, kernel_size=3)
        np.testing.assert_array_equal(_inference(ours, x), _inference(theirs, x))
    finally:
        keras.config.set_dtype_policy(previous)
    model = keras.Sequential([keras.Input((6, 6, 3)), fastpath.Conv2D(4, 3), fastpath.BatchNormalization(),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    before = [w.copy() for w in model.get_weights()]
    rng = np.random.default_rng(2)
    model.train_on_batch(rng.normal(size=(4, 6, 6, 3)).astype("float32"), rng.normal(size=(4, 2)).astype("float32"))
    after = model.get_weights()
    assert not np.allclose(before[0], after[0])  # the conv kernel got a gradient
    assert not np.allclose(before[4], after[4])  # BN moving mean updated in training


POOLS = [
    (fastpath.MaxPooling2D, keras.layers.MaxPooling2D, dict(pool_size=3, strides=2)),
    (fastpath.MaxPooling2D, keras.layers.MaxPooling2D, dict(pool_size=3, strides=1, padding="same")),
    (fastpath.MaxPooling2D, keras.layers.MaxPooling2D, dict(pool_size=2, strides=2)),
    (fastpath.MaxPooling2D, keras.layers.MaxPooling2D, dict(pool_size=3, strides=2, padding="same")),  # uneven
    (fastpath.AveragePooling2D, keras.layers.AveragePooling2D, dict(pool_size=2, strides=2)),
    (fastpath.AveragePooling2D, keras.layers.AveragePooling2D, dict(pool_size=5, strides=3)),
    # "same": the border windows average only the cells inside the input, in both
    (fastpath.AveragePooling2D, keras.layers.AveragePooling2D, dict(pool_size=3, strides=1, padding="same")),
]


@pytest.mark.parametrize(
    "data_format", ["channels_last", pytest.param("channels_first", marks=needs_channels_first)])
@pytest.mark.parametrize("ours_class, keras_class, config", POOLS,
                         ids=lambda p: p.__name__ if isinstance(p, type) else "-".join(f"{k}={v}" for k, v in p.items()))
def test_pooling_equals_keras_pooling_forward_and_backward(ours_class, keras_class, config, data_format):
    ours, theirs, x = _pair(ours_class, keras_class, data_format, **config)
    np.testing.assert_allclose(_inference(ours, x), _inference(theirs, x), rtol=1e-6, atol=1e-6)
    if keras.backend.backend() != "torch":
        return
    import torch

    grads, outputs = [], []
    for layer in (ours, theirs):
        tensor = torch.tensor(x, requires_grad=True)
        y = layer(tensor)
        (y * torch.arange(y.numel(), dtype=y.dtype).reshape(y.shape)).sum().backward()
        grads.append(tensor.grad.numpy())
        outputs.append(y)
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-6, atol=1e-6)
    assert outputs[0].shape == outputs[1].shape
    if ours._torch_padding(tensor) is not None:  # the fast path ran: contiguous in the data format
        assert outputs[0].is_contiguous()


def test_layers_are_saved_as_kerass_own_and_load_as_them(tmp_path):
    model = keras.Sequential([keras.Input((6, 6, 3)), fastpath.Conv2D(4, 3), fastpath.BatchNormalization(),
                              fastpath.MaxPooling2D(2), fastpath.AveragePooling2D(2)])
    for layer in model.layers:
        twin = layer.__class__.from_config(layer.get_config())
        assert type(twin) is layer._keras_class  # Keras' own class ...
        saved, twin_saved = (keras.saving.serialize_keras_object(item) for item in (layer, twin))
        saved.pop("build_config", None)  # the twin is not built
        assert saved == twin_saved  # ... saved alike
    path = tmp_path / "m.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert [type(layer) for layer in restored.layers] == [
        keras.layers.Conv2D, keras.layers.BatchNormalization, keras.layers.MaxPooling2D, keras.layers.AveragePooling2D]
    x = np.random.default_rng(1).normal(size=(2, 6, 6, 3)).astype("float32")
    np.testing.assert_allclose(model.predict(x, verbose=0), restored.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_files_saved_with_the_former_package_layer_names_still_load():
    config = keras.saving.serialize_keras_object(keras.layers.ReLU(name="r"))
    config.update(module="keras_cnnclassics.fastpath", registered_name="keras_cnnclassics>ReLU")
    assert type(keras.saving.deserialize_keras_object(config)) is keras.layers.ReLU


def test_layer_class_is_the_fast_one_only_on_pytorch_with_a_tested_keras_when_switched_on(monkeypatch):
    expected = fastpath.Conv2D if keras.backend.backend() == "torch" else keras.layers.Conv2D
    monkeypatch.delenv(fastpath.ENVIRONMENT_SWITCH, raising=False)
    assert fastpath.layer_class(keras.layers.Conv2D) is expected
    assert fastpath.layer_class(keras.layers.Dense) is keras.layers.Dense  # no fast path for it
    monkeypatch.setenv(fastpath.ENVIRONMENT_SWITCH, "0")
    assert fastpath.layer_class(keras.layers.Conv2D) is keras.layers.Conv2D
    monkeypatch.setenv(fastpath.ENVIRONMENT_SWITCH, "off")
    with pytest.raises(ValueError, match="KERAS_CNNCLASSICS_FASTPATH='off': set it to 1 .* or 0"):
        fastpath.layer_class(keras.layers.Conv2D)


@pytest.mark.parametrize("version, tested", [("3.15.1", True), ("3.15.0.dev2026", True), ("3.16.0", False),
                                             ("3.14.9", False), ("4.0.0", False)])
def test_only_tested_keras_versions_get_the_fast_path_others_warn_once(monkeypatch, version, tested):
    monkeypatch.setattr(keras, "version", lambda: version)
    monkeypatch.delenv(fastpath.ENVIRONMENT_SWITCH, raising=False)
    fastpath.tested_keras.cache_clear()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert fastpath.tested_keras() is tested
            assert fastpath.tested_keras() is tested
        assert len(caught) == (0 if tested else 1)
        if not tested:
            assert f"with Keras {version} models use Keras' own layers" in str(caught[0].message)
            assert fastpath.layer_class(keras.layers.ReLU) is keras.layers.ReLU
    finally:
        fastpath.tested_keras.cache_clear()


def test_a_model_built_with_the_switch_off_holds_kerass_layers_and_computes_the_same(monkeypatch):
    import keras_cnnclassics as kc

    x = np.random.default_rng(4).normal(size=(2, 64, 64, 3)).astype("float32")
    keras.utils.set_random_seed(5)
    fast = kc.get_model("googlenet", input_shape=(64, 64, 3))
    monkeypatch.setenv(fastpath.ENVIRONMENT_SWITCH, "0")
    keras.utils.set_random_seed(5)
    plain = kc.get_model("googlenet", input_shape=(64, 64, 3))
    assert all(type(layer) is layer.__class__ for layer in plain.layers)
    assert all(type(layer).__module__.startswith("keras.") for layer in plain.layers)
    if keras.backend.backend() == "torch":
        assert any(isinstance(layer, fastpath.Conv2D) for layer in fast.layers)
    np.testing.assert_allclose(fast.predict(x, verbose=0), plain.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def _count_direct_calls(monkeypatch):
    """Record (layer class, whether Keras' bookkeeping was skipped) for every fast-path layer call."""
    calls = []
    original = fastpath._bookkeeping_idle

    def spy(layer, args, kwargs):
        idle = original(layer, args, kwargs)
        calls.append((type(layer).__name__, idle))
        return idle

    monkeypatch.setattr(fastpath, "_bookkeeping_idle", spy)
    return calls


def _small_net():
    inputs = keras.Input((12, 12, 3))
    x = fastpath.Conv2D(4, 3, padding="same")(inputs)
    x = fastpath.BatchNormalization()(x)
    x = fastpath.ReLU()(x)
    branch = fastpath.MaxPooling2D(3, 1, padding="same")(x)
    x = fastpath.Concatenate()([x, branch])
    x = fastpath.Add()([x, fastpath.Conv2D(8, 1)(x)])
    x = fastpath.AveragePooling2D(2)(x)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))


def test_predict_skips_kerass_bookkeeping_only_where_it_is_idle_and_outputs_are_unchanged(monkeypatch):
    model = _small_net()
    rng = np.random.default_rng(3)
    model.set_weights([rng.normal(size=w.shape).astype("float32") + (w.ndim == 1) for w in model.get_weights()])
    x = rng.normal(size=(2, 12, 12, 3)).astype("float32")
    calls = _count_direct_calls(monkeypatch)
    fast = model.predict_on_batch(x)
    if keras.backend.backend() == "torch":  # every fast-path layer of predict skips it
        assert sorted(calls) == sorted((name, True) for name in (
            "Conv2D", "BatchNormalization", "ReLU", "MaxPooling2D", "Concatenate", "Conv2D", "Add",
            "AveragePooling2D"))
    else:
        assert not any(idle for _, idle in calls)
    monkeypatch.setattr(fastpath, "_bookkeeping_idle", lambda layer, args, kwargs: False)
    np.testing.assert_allclose(fast, model.predict_on_batch(x), rtol=1e-6, atol=1e-6)


@pytest.mark.skipif(keras.backend.backend() != "torch", reason="the PyTorch backend's bypass; elsewhere Keras' call always runs (test above)")
def test_bookkeeping_runs_for_gradients_hooks_masks_autocast_and_context_training():
    import torch

    bn = fastpath.BatchNormalization()
    relu = fastpath.ReLU()
    x = torch.ones(2, 3, 3, 4)
    bn(x), relu(x)  # build
    with torch.no_grad():
        assert fastpath._bookkeeping_idle(bn, (x,), {"training": False})
        assert fastpath._bookkeeping_idle(relu, (x,), {})
        # training from the call context (not passed) or True: Keras resolves it
        assert not fastpath._bookkeeping_idle(bn, (x,), {})
        assert not fastpath._bookkeeping_idle(bn, (x,), {"training": True})
        assert not fastpath._bookkeeping_idle(relu, (x.double(),), {})
        assert not fastpath._bookkeeping_idle(relu, (x,), {"mask": torch.ones(2, 3, 3)})
        handle = relu.register_forward_hook(lambda module, args, output: None)
        assert not fastpath._bookkeeping_idle(relu, (x,), {})
        handle.remove()
        from keras.src.backend.common.variables import AutocastScope

        with AutocastScope("bfloat16"):
            assert not fastpath._bookkeeping_idle(relu, (x,), {})
    assert not fastpath._bookkeeping_idle(relu, (x,), {})  # gradients recorded
    hooked = []
    relu.register_forward_hook(lambda module, args, output: hooked.append(output.shape))
    with torch.no_grad():
        relu(x)
    assert hooked == [x.shape]  # a registered PyTorch hook still runs
