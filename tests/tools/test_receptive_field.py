"""Receptive fields (Araujo et al., Distill 2019): hand-derived values of the classic
networks, an empirical cross-check on small networks, alignment of multi-path graphs,
and the profiler/CLI columns.

Sizes are the theoretical, unclipped fields. Per layer and axis, with the input
field r_in and jump j_in (r = 1, j = 1 at the image):

    r_out = r_in + (k - 1) * j_in        j_out = j_in * s

(k: kernel, dilated; s: stride). Padding moves the field, never resizes it.
"""

from __future__ import annotations

import csv
import io

import keras
import numpy as np
import pytest

import keras_cnnclassics as kc
from keras_cnnclassics import blocks, cli
from keras_cnnclassics.receptive_fields import ReceptiveField


def test_alexnet_after_last_pool_sees_195_pixels_at_stride_32():
    # torchvision AlexNet, (k, s): conv1 (11, 4): r = 11, j = 4; pool (3, 2): 11 + 2*4 = 19, j = 8;
    # conv2 (5, 1): 19 + 4*8 = 51; pool (3, 2): 51 + 2*8 = 67, j = 16; conv3-5 (3, 1):
    # 67 + 3 * 2*16 = 163; pool (3, 2): 163 + 2*16 = 195, j = 32.
    field = kc.receptive_field("alexnet", "features_12")
    assert (field.size, field.jump) == ((195, 195), (32, 32))
    # The first unit's centre: conv1 padding 2 puts it at -2 + (11 - 1) / 2 = 3, then each
    # unpadded 3x3 stride-2 pool moves it by j_in: 3 + 4 = 7; 7 + 8 = 15; 15 + 16 = 31.
    assert field.start == (31, 31) and field.aligned


def test_vgg16_after_pool5_sees_212_pixels_at_stride_32():
    # VGG-16: conv 3x3 adds 2*j, pool 2x2/2 adds 1*j and doubles j.
    # 1 + 2*2*1 = 5; pool1: 6, j2; +2*2*2 = 14; pool2: 16, j4; +3*2*4 = 40; pool3: 44, j8;
    # +3*2*8 = 92; pool4: 100, j16; +3*2*16 = 196; pool5: 196 + 16 = 212, j32.
    field = kc.receptive_field("vgg16", "features_30")
    assert (field.size, field.jump) == ((212, 212), (32, 32))


def test_resnet50_final_stage_v1_5_sees_427_and_v1_483_pixels():
    # Stem: conv 7x7/2: r = 7, j = 2; max pool 3x3/2: 7 + 2*2 = 11, j = 4.
    # v1.5 (stride on the 3x3): each bottleneck adds 2 * j_in of its 3x3.
    #   layer1: 3 blocks at j4: 11 + 3*8 = 35;
    #   layer2: 3x3/2 at j4: 35 + 8 = 43, j8; 3 blocks: 43 + 3*16 = 91;
    #   layer3: 91 + 16 = 107, j16; 5 blocks: 107 + 5*32 = 267;
    #   layer4: 267 + 32 = 299, j32; 2 blocks: 299 + 2*64 = 427.
    # v1 (stride on the first 1x1, which sets j before the 3x3 adds 2*j):
    #   layer2: 35 + 16 = 51, j8; + 3*16 = 99; layer3: 99 + 32 = 131, j16; + 5*32 = 291;
    #   layer4: 291 + 64 = 355, j32; + 2*64 = 483.
    v1_5 = kc.receptive_field("resnet50", "layer4_2_out")
    v1 = kc.receptive_field("resnet50", "layer4_2_out", stride_in_1x1=True)
    assert (v1_5.size, v1_5.jump, v1.size, v1.jump) == ((427, 427), (32, 32), (483, 483), (32, 32))
    # Shortcuts (1x1, stride 2) and main paths share their centres: the network is aligned.
    assert v1_5.aligned and v1.aligned and v1_5.start == (0, 0)


def _image_input(height, width, channels=1):
    shape = (height, width, channels)
    if keras.config.image_data_format() == "channels_first":
        shape = (channels, height, width)
    return keras.Input(shape)


def _positive_conv(x, kernel, **kwargs):
    """A convolution whose weights are all positive, so no input can cancel another."""
    return keras.layers.Conv2D(
        2, kernel, kernel_initializer=keras.initializers.RandomUniform(0.1, 1.0, seed=1), **kwargs
    )(x)


@pytest.mark.parametrize("layers", [2, 3])
def test_stacked_3x3_convolutions_see_what_one_5x5_or_7x7_sees(layers):
    # VGG's argument: 1 + 2 + 2 = 5, 1 + 2 + 2 + 2 = 7, at stride 1.
    inputs = x = _image_input(16, 16)
    for _ in range(layers):
        x = _positive_conv(x, 3, padding="same")
    field = kc.receptive_field(keras.Model(inputs, x), x._keras_history.operation.name)
    assert field.size == (2 * layers + 1,) * 2 and field.jump == (1, 1) and field.start == (0, 0)


# ---------------------------------------------------------------- empirical cross-check


def _strided_pools(height, width):
    """PyTorch-style padding (explicit ZeroPadding2D), ceil-mode pools over a ReLU and over a
    conv (PoolPadding2D), a dilated conv and a Keras 'same' average pool."""
    inputs = x = _image_input(height, width)
    x = blocks.conv2d(x, 2, 3, 2, 1, name="c1", kernel_initializer=keras.initializers.RandomUniform(0.1, 1.0, seed=2))
    x = blocks.relu(x, "c1_relu")
    x = blocks.max_pool2d(x, 3, 2, 1, name="p1", ceil_mode=True)
    x = _positive_conv(x, 3, dilation_rate=2, padding="same")
    x = blocks.max_pool2d(x, 2, 2, 1, name="p2", ceil_mode=True)
    x = keras.layers.AveragePooling2D(2, 1, padding="same")(x)
    return keras.Model(inputs, x)


def _non_square(height, width):
    """Inception v3's 1x7 and 7x1 convolutions, an even kernel of stride 2 under 'same'."""
    inputs = x = _image_input(height, width)
    x = _positive_conv(x, (1, 7), padding="same")
    x = _positive_conv(x, (7, 1), padding="same")
    x = _positive_conv(x, 2, strides=2, padding="same")
    x = _positive_conv(x, (3, 5), strides=(1, 2))
    return keras.Model(inputs, x)


def _branches(height, width):
    """Residual and concatenated branches of different sizes, then a merge of both."""
    inputs = _image_input(height, width)
    a = _positive_conv(inputs, 5, strides=2, padding="same")
    b = keras.layers.MaxPooling2D(3, 2, padding="same")(inputs)
    b = _positive_conv(b, 1)
    added = keras.layers.Add()([a, b])
    c = _positive_conv(added, 3, padding="same")
    joined = blocks.concat([added, c], "join")
    return keras.Model(inputs, _positive_conv(joined, 3, strides=2))


def _influence(model, height, width, unit):
    """Which input pixels change output unit ``unit`` (summed over channels) when raised by 1000."""
    rng = np.random.default_rng(0)
    base = rng.uniform(0.1, 1.0, (height, width)).astype("float32")
    batch = np.repeat(base[None], height * width + 1, axis=0)
    rows, cols = np.divmod(np.arange(height * width), width)
    batch[np.arange(1, height * width + 1), rows, cols] += 1000.0
    channels_last = keras.config.image_data_format() == "channels_last"
    out = keras.ops.convert_to_numpy(model(batch[..., None] if channels_last else batch[:, None]))
    cell = out[:, unit[0], unit[1], :] if channels_last else out[:, :, unit[0], unit[1]]
    change = np.abs(cell.sum(axis=-1)[1:] - cell.sum(axis=-1)[0])
    return (change > 1e-2).reshape(height, width)


def _expected_region(field, height, width, unit):
    """The computed field of output unit ``unit``, clipped to the image."""
    mask = np.zeros((height, width), bool)
    (top, left), (bottom, right) = (
        [edge + n * j for edge, n, j in zip(edges, unit, field.jump)] for edges in (field.left, field.right)
    )
    mask[max(top, 0): bottom + 1, max(left, 0): right + 1] = True
    return mask


@pytest.mark.parametrize("build", [_strided_pools, _non_square, _branches])
def test_perturbing_one_pixel_changes_exactly_the_computed_field(build):
    height, width = 23, 26
    model = build(height, width)
    field = kc.receptive_field(model, model.layers[-1].name)
    out_h, out_w = blocks.spatial_shape(model.outputs[0])
    for unit in [(0, 0), (out_h // 2, out_w // 2), (out_h - 1, out_w - 1)]:
        seen = _influence(model, height, width, unit)
        np.testing.assert_array_equal(seen, _expected_region(field, height, width, unit), err_msg=str(unit))
    # A middle unit whose field lies inside the image: its centre is start + n * jump.
    middle = (out_h // 2, out_w // 2)
    rows, cols = np.nonzero(_influence(model, height, width, middle))
    if rows.min() > 0 and cols.min() > 0 and rows.max() < height - 1 and cols.max() < width - 1:
        centre = ((rows.min() + rows.max()) / 2, (cols.min() + cols.max()) / 2)
        assert centre == tuple(s + n * j for s, n, j in zip(field.start, middle, field.jump))


def test_non_square_kernels_give_per_axis_fields():
    # H: 1 + 0 + 6 = 7, then 2x2/2: + 1 = 8, j2, then (3, s1): + 2*2 = 12.
    # W: 1 + 6 + 0 = 7, + 1 = 8, j2, then (5, s2): + 4*2 = 16, j4.
    model = _non_square(23, 26)
    field = kc.receptive_field(model, model.layers[-1].name)
    assert field.size == (12, 16) and field.jump == (2, 4)


# ---------------------------------------------------------------- alignment


def test_branches_that_disagree_in_centre_are_flagged():
    # A 3x3 'same' conv centres unit 0 on pixel 0; a 2x2 'same' conv (TensorFlow pads after)
    # on pixel 0.5: the added paths are misaligned (Araujo et al., Sec. "Alignment").
    inputs = _image_input(16, 16)
    a = _positive_conv(inputs, 3, padding="same", name="a")
    b = _positive_conv(inputs, 2, padding="same", name="b")
    x = keras.layers.Add(name="add")([a, b])
    x = _positive_conv(x, 3, padding="same", name="after")
    table = kc.receptive_field(keras.Model(inputs, x))
    assert table["a"].start == (0, 0) and table["b"].start == (0.5, 0.5)
    added = table["add"]
    assert not added.aligned and added.note == "paths disagree: centres 0, 0.5; jumps 1"
    # The union of both paths: pixels 0..1 (2x2) and -1..1 (3x3).
    assert added.size == (3, 3) and added.left == (-1, -1) and added.right == (1, 1)
    assert not table["after"].aligned and table["after"].note == ""
    assert table["a"].aligned and table["b"].aligned


def test_aligned_branches_report_the_largest_field():
    inputs = _image_input(16, 16)
    a = _positive_conv(inputs, 5, padding="same", name="a")
    b = _positive_conv(inputs, 1, name="b")
    joined = blocks.concat([a, b], "join")
    field = kc.receptive_field(keras.Model(inputs, joined), "join")
    assert field.size == (5, 5) and field.aligned and field.note == ""


def test_global_paths_see_the_whole_input_and_keep_positional_fields():
    # A squeeze-and-excitation gate: the map times a gate from its global average.
    inputs = _image_input(16, 16)
    x = _positive_conv(inputs, 3, padding="same", name="conv")
    gate = keras.layers.GlobalAveragePooling2D(keepdims=True, name="squeeze")(x)
    gated = keras.layers.Multiply(name="gate")([x, gate])
    head = keras.layers.Dense(3, name="fc")(keras.layers.Flatten(name="flatten")(gated))
    table = kc.receptive_field(keras.Model(inputs, head))
    squeeze = table["squeeze"]
    # 16 positions of jump 1 around 3x3 fields: pixels -1..16, 18 wide, no positions left.
    assert squeeze.size == (18, 18) and squeeze.whole_input and not squeeze.positional
    assert table["gate"].size == (3, 3) and table["gate"].whole_input and table["gate"].aligned
    assert table["fc"].whole_input and not table["fc"].positional


# ---------------------------------------------------------------- graphs and errors


def test_nested_models_are_expanded():
    inner_in = _image_input(7, 7, 2)
    inner = keras.Model(inner_in, _positive_conv(inner_in, 3, name="c"), name="inner")
    inputs = _image_input(16, 16)
    x = inner(_positive_conv(inputs, 3, strides=2, name="stem"))
    table = kc.receptive_field(keras.Model(inputs, x))
    # stem: 3, j2; inner 3x3 valid: 3 + 2*2 = 7.
    assert table["inner/c"].size == (7, 7) and table["inner/c"].jump == (2, 2)


def test_a_layer_without_a_rule_is_named():
    class Shift(keras.layers.Layer):
        def call(self, x):
            return x

    inputs = _image_input(8, 8)
    x = Shift(name="mystery")(inputs)
    with pytest.raises(ValueError, match=r"mystery \(Shift\).*register_field_rule"):
        kc.receptive_field(keras.Model(inputs, x))


def test_an_unknown_layer_name_is_a_clear_error():
    with pytest.raises(ValueError, match="no layer 'pool9' in 'alexnet'"):
        kc.receptive_field("alexnet", "pool9")


# ---------------------------------------------------------------- profiler and CLI


def test_profile_adds_the_columns_of_receptive_field():
    result = kc.profile("alexnet", receptive_field=True)
    field = result.receptive_fields[[r.name for r in result.rows].index("features_12")]
    assert isinstance(field, ReceptiveField) and field == kc.receptive_field("alexnet", "features_12")
    rows = list(csv.DictReader(io.StringIO(result.to_csv())))
    pool = next(row for row in rows if row["name"] == "features_12")
    assert (pool["rf"], pool["jump"], pool["start"]) == ("195", "32", "31")
    assert "RF" in result.headers() and "RF" not in kc.profile("alexnet").headers()


def test_cli_profile_receptive_field(capsys):
    assert cli.main(["profile", "vgg16", "--receptive-field"]) == 0
    lines = capsys.readouterr().out.splitlines()
    pool5 = next(line for line in lines if line.startswith("features_30 "))
    assert pool5.split()[-3:] == ["212", "32", "15.5"]
    flatten = next(line for line in lines if line.startswith("flatten "))
    assert "(whole)" in flatten
