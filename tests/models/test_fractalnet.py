"""FractalNet: the expansion rule, layer and parameter counts, the join layer's drop-path, bad options.

Parameter counts (Larsson et al. 2016 have no torchvision/timm counterpart) are
checked by arithmetic from the architecture of Sec. 4 (B=5 blocks, filters 64,
128, 256, 512, 512, 3x3 conv-BN-ReLU units, linear classifier): 33,724,618 for
C=3 (the paper's 20-layer net; Table 1 says 38.6M) and 76,106,634 for C=4 (the
40-layer net; Table 1 says 22.9M, which these widths cannot give).
"""

import numpy as np
import pytest

import keras
import keras_cnnclassics as kc
from keras_cnnclassics.layers import FractalColumnSampler, FractalJoin
from keras_cnnclassics.models.fractalnet import block_schedule
from keras_cnnclassics.registry import get_spec

# --------------------------------------------------------------------------- expansion rule


def _join(parts):
    return parts[0] if len(parts) == 1 else "join(" + ",".join(sorted(parts)) + ")"


def _recursive_paths(columns, z):
    """f_1(z) = conv(z); f_{C+1}(z) = join(f_C(f_C(z)), conv(z)), as the inputs of the last join.

    The join closing the outer f_C and the new one meet at the same place, so
    they are one join (the paper's Figure 1), hence a list of paths.
    """
    if columns == 1:
        return [f"conv({z})"]
    inner = _join(_recursive_paths(columns - 1, z))
    return _recursive_paths(columns - 1, inner) + [f"conv({z})"]


def _scheduled_block(columns, z):
    """The block as fractalnet.block_schedule lays it out, symbolically."""
    heads = [z] * columns
    for active in block_schedule(columns):
        outs = [f"conv({heads[c]})" for c in active]
        joined = _join(outs)
        for c, out in zip(active, outs):
            heads[c] = joined if len(outs) > 1 else out
    return heads[0]


@pytest.mark.parametrize("columns", [1, 2, 3, 4, 5])
def test_schedule_is_the_expansion_rule(columns):
    assert _scheduled_block(columns, "z") == _join(_recursive_paths(columns, "z"))
    schedule = block_schedule(columns)
    per_column = [sum(c in level for level in schedule) for c in range(columns)]
    assert per_column == [2**c for c in range(columns)]  # deepest column: 2^(C-1) convs
    assert sum(per_column) == 2**columns - 1


def _conv_depths(model):
    """Longest chain of Conv2D layers from the input to each layer (graph walk)."""
    depth = {}

    def visit(tensor):
        layer = tensor._keras_history.operation
        if layer.name in depth:
            return depth[layer.name]
        parents = [t for node in layer._inbound_nodes for t in node.input_tensors]
        value = max((visit(t) for t in parents), default=0)
        depth[layer.name] = value + isinstance(layer, keras.layers.Conv2D)
        return depth[layer.name]

    visit(model.outputs[0])
    return depth


def test_forty_layer_network_counts():
    model = kc.FractalNet40(include_top=False)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == 5 * (2**4 - 1)  # 75 convs in all
    assert max(_conv_depths(model).values()) == 5 * 2**3  # 40 on the deepest path
    per_column = [sum(f"block3_col{c}_" in layer.name for layer in convs) for c in (1, 2, 3, 4)]
    assert per_column == [1, 2, 4, 8]
    joins = [layer for layer in model.layers if isinstance(layer, FractalJoin)]
    assert len(joins) == 5 * 4 and {len(j.columns) for j in joins} == {2, 3, 4}


def fractal_params(columns, filters=(64, 128, 256, 512, 512), classes=10, in_channels=3):
    """Per block: C convs read the block input, the other 2^C - 1 - C read `width` maps."""
    total, cin = 0, in_channels
    for width in filters:
        convs = 2**columns - 1
        total += columns * 9 * cin * width + (convs - columns) * 9 * width * width
        total += convs * 2 * width  # BN scale and shift
        cin = width
    return total + cin * classes + classes


@pytest.mark.parametrize("name, columns, count", [("fractalnet20", 3, 33_724_618), ("fractalnet40", 4, 76_106_634)])
def test_parameter_counts_by_arithmetic(name, columns, count):
    assert fractal_params(columns) == get_spec(name).params == count


def test_small_configuration_count_and_stages():
    model = kc.FractalNet20(columns=2, blocks=3, filters=(8, 16, 32), classes=4)
    assert kc.count_params(model) == fractal_params(2, (8, 16, 32), classes=4)
    assert model.output_shape == (None, 4)
    info = kc.feature_info("fractalnet20")
    assert [(i["reduction"], i["channels"]) for i in info] == [(4, 128), (8, 256), (16, 512), (32, 512)]


# --------------------------------------------------------------------------- FractalJoin


def _three_inputs(batch=64, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(batch, 3, 3, 2)).astype("float32") for _ in range(3)]


def _subset_means(inputs):
    masks = [m for m in np.ndindex(2, 2, 2) if any(m)]
    return masks, [sum(x * k for x, k in zip(inputs, m)) / sum(m) for m in masks]


def test_join_is_the_mean_at_inference():
    inputs = _three_inputs()
    out = keras.ops.convert_to_numpy(FractalJoin(0.5)(inputs, training=False))
    np.testing.assert_allclose(out, sum(inputs) / 3, atol=1e-6)


def test_local_drop_path_keeps_at_least_one_input():
    inputs = _three_inputs(batch=256)
    join = FractalJoin(0.9, seed=3)  # all three dropped in 73 % of the samples before the rescue
    out = keras.ops.convert_to_numpy(join(inputs, training=True))
    masks, means = _subset_means(inputs)
    kept = []
    for i in range(out.shape[0]):
        match = [m for m, mean in zip(masks, means) if np.allclose(out[i], mean[i], atol=1e-5)]
        assert len(match) == 1  # exactly a mean over a non-empty subset
        kept.append(sum(match[0]))
    assert min(kept) >= 1 and kept.count(1) > out.shape[0] // 2


def test_global_drop_path_keeps_one_column_consistently():
    inputs = _three_inputs(batch=32)
    tensors = [keras.ops.convert_to_tensor(x) for x in inputs]
    choice = FractalColumnSampler(3, global_ratio=1.0, seed=5)(tensors[0], training=True)
    columns = keras.ops.convert_to_numpy(choice).astype(int)
    assert set(columns) <= {0, 1, 2} and len(set(columns)) > 1
    full = keras.ops.convert_to_numpy(
        FractalJoin(0.5, columns=(0, 1, 2))(tensors, global_column=choice, training=True)
    )
    partial = keras.ops.convert_to_numpy(
        FractalJoin(0.5, columns=(1, 2))(tensors[1:], global_column=choice, training=True)
    )
    for i, c in enumerate(columns):
        np.testing.assert_allclose(full[i], inputs[c][i], atol=1e-6)
        expected = inputs[c][i] if c > 0 else np.zeros_like(inputs[0][i])  # column 0 not joined
        np.testing.assert_allclose(partial[i], expected, atol=1e-6)


def test_mixing_ratio_zero_and_inference_select_no_global_column():
    x = keras.ops.ones((16, 4, 4, 3))
    sampler = FractalColumnSampler(4, global_ratio=0.0)
    assert np.all(keras.ops.convert_to_numpy(sampler(x, training=True)) == -1)
    sampler = FractalColumnSampler(4, global_ratio=1.0)
    assert np.all(keras.ops.convert_to_numpy(sampler(x, training=False)) == -1)


def test_join_and_sampler_round_trip_in_a_saved_model(tmp_path):
    inputs = keras.Input((4, 4, 2))
    branches = [keras.layers.Conv2D(2, 1, name=f"b{i}")(inputs) for i in range(3)]
    choice = FractalColumnSampler(3, 0.25, seed=1, name="sampler")(inputs)
    out = FractalJoin(0.2, columns=(0, 1, 2), seed=2, name="join")(branches, global_column=choice)
    model = keras.Model(inputs, out)
    x = np.random.default_rng(1).normal(size=(2, 4, 4, 2)).astype("float32")
    model.save(tmp_path / "join.keras")
    reloaded = keras.saving.load_model(tmp_path / "join.keras")
    assert reloaded.get_layer("join").get_config()["columns"] == (0, 1, 2)
    assert reloaded.get_layer("sampler").get_config()["global_ratio"] == 0.25
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_small_fractalnet_trains_with_drop_path():
    model = kc.FractalNet20(
        columns=3, blocks=2, filters=(4, 8), classes=3, drop_rate=0.5, global_ratio=0.5,
    )
    before = [np.array(w) for w in model.get_weights()]
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(2).uniform(size=(8, 32, 32, 3)).astype("float32")
    history = model.fit(x, np.arange(8) % 3, epochs=2, batch_size=4, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert any(not np.allclose(a, b) for a, b in zip(before, model.get_weights()))


# --------------------------------------------------------------------------- bad options


@pytest.mark.parametrize(
    "options, rule",
    [
        ({"columns": 0}, r"columns \(C\) must be an integer >= 1"),
        ({"blocks": 0}, r"blocks \(B\) must be an integer >= 1"),
        ({"columns": 2.5}, r"columns \(C\) must be an integer >= 1"),
        ({"blocks": 2.5}, r"blocks \(B\) must be an integer >= 1"),
        ({"filters": 64}, "one positive width per block"),
        ({"filters": (64, 128)}, "one positive width per block"),
        ({"dropout": 1.0}, r"dropout must be a rate in \[0, 1\)"),
        ({"dropout": (0.1, 0.2)}, "or one per block"),
        ({"drop_rate": 1.0}, r"drop_rate \(local drop-path\) must be in \[0, 1\)"),
        ({"global_ratio": 1.5}, r"global_ratio must be in \[0, 1\]"),
    ],
)
def test_bad_options_state_the_rule_before_building(options, rule):
    spec = get_spec("fractalnet20")
    with pytest.raises(ValueError, match=rule):  # img_input=None: nothing may be built first
        spec.builder(None, include_top=True, classes=10, classifier_activation=None, pooling=None,
                     **{**spec.options, **options})


def test_bad_join_arguments():
    with pytest.raises(ValueError, match=r"drop_rate must be in \[0, 1\)"):
        FractalJoin(1.0)
    with pytest.raises(ValueError, match="num_columns must be >= 1"):
        FractalColumnSampler(0)
    with pytest.raises(ValueError, match="2 column indices for 3 inputs"):
        FractalJoin(0.1, columns=(0, 1))(_three_inputs(batch=2))
