"""Every custom layer of ``keras_cnnclassics.layers`` against an independent reference.

The references are PyTorch (CPU, whatever the Keras backend), timm's ``drop_path``,
the tables of the papers written out here, or a few lines of NumPy that restate
the layer's definition. Tolerances: float32 rounding of one layer, ``rtol=1e-5``
and ``atol=1e-5`` unless stated; exact equality where the layer only moves or
selects values.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import keras
import keras_cnnclassics as kc
from keras_cnnclassics.layers import (
    AdaptiveAveragePooling2D,
    ChannelAffine,
    ConnectionTableConv2D,
    DropPath,
    FractalColumnSampler,
    FractalJoin,
    GroupedConv2D,
    LocalResponseNormalization,
    PoolPadding2D,
    WeightedAverage,
    ZeroPadChannels,
)

from support.reference import torchvision_models

RTOL = ATOL = 1e-5
FORMATS = ("channels_last", "channels_first")


def numpy_of(tensor):
    return np.asarray(keras.ops.convert_to_numpy(tensor))


def nchw(x, data_format):
    """The NCHW view torch wants of an array laid out in ``data_format``."""
    return np.ascontiguousarray(x if data_format == "channels_first" else x.transpose(0, 3, 1, 2))


def from_nchw(x, data_format):
    return x if data_format == "channels_first" else x.transpose(0, 2, 3, 1)


def random_images(shape, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype("float32")


def four_sigma(p, n):
    """Four standard deviations of the frequency of an event of probability ``p`` in ``n`` draws."""
    return 4 * math.sqrt(p * (1 - p) / n)


# --------------------------------------------------------------------------- LRN


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize(
    "size, alpha, beta, k",
    [
        (5, 1e-4, 0.75, 2.0),  # AlexNet (Krizhevsky et al. 2012, sec. 3.3)
        (5, 1e-4, 0.75, 1.0),  # GoogLeNet's stem (Caffe's default k)
        (4, 0.5, 0.6, 1.5),  # an even window: torch pads size // 2 before, (size - 1) // 2 after
        (3, 2.0, 1.0, 0.5),  # a large alpha, so the normaliser dominates
    ],
)
def test_lrn_equals_torch_local_response_norm(data_format, size, alpha, beta, k):
    keras.config.set_image_data_format(data_format)
    x = random_images((2, 7, 7, 11), seed=1, scale=3.0)
    x = x if data_format == "channels_last" else x.transpose(0, 3, 1, 2)
    got = numpy_of(LocalResponseNormalization(size, alpha=alpha, beta=beta, k=k)(x))
    reference = torch.nn.LocalResponseNorm(size, alpha=alpha, beta=beta, k=k)
    expected = reference(torch.from_numpy(nchw(x, data_format))).numpy()
    np.testing.assert_allclose(got, from_nchw(expected, data_format), rtol=RTOL, atol=ATOL)


def krizhevsky_lrn(x, n, alpha, beta, k):
    """Sec. 3.3 of the AlexNet paper, channels last: ``alpha`` is *not* divided by ``n``."""
    channels = x.shape[-1]
    out = np.empty_like(x, dtype="float64")
    for i in range(channels):
        window = slice(max(0, i - n // 2), min(channels - 1, i + n // 2) + 1)
        out[..., i] = x[..., i] / (k + alpha * np.sum(x[..., window] ** 2, axis=-1)) ** beta
    return out


def test_lrn_with_alpha_times_size_is_the_alexnet_papers_formula():
    """torch/Caffe divide alpha by the window size, the 2012 paper does not: the paper's
    constants (n=5, alpha=1e-4) are this layer with ``alpha = 5 * 1e-4``."""
    x = random_images((2, 5, 5, 9), seed=2, scale=20.0)
    got = numpy_of(LocalResponseNormalization(5, alpha=5 * 1e-4, beta=0.75, k=2.0)(x))
    np.testing.assert_allclose(got, krizhevsky_lrn(x, 5, 1e-4, 0.75, 2.0), rtol=RTOL, atol=ATOL)


# --------------------------------------------------------------------------- LeNet-5 C3

# LeCun et al. (1998), Table I: row = S2 feature map, column = C3 feature map,
# "X" where the C3 map takes that S2 map as input.
TABLE_I = (
    #0123456789012345
    "X   XXX  XXXX XX",  # S2 map 0
    "XX   XXX  XXXX X",  # S2 map 1
    "XXX   XXX  X XXX",  # S2 map 2
    " XXX  XXXX  X XX",  # S2 map 3
    "  XXX  XXXX XX X",  # S2 map 4
    "   XXX  XXXX XXX",  # S2 map 5
)


def table_i_connections():
    """Table I as a (6, 16) boolean matrix."""
    return np.array([[mark == "X" for mark in row] for row in TABLE_I])


def table_i_as_lists():
    """Table I as, for each C3 map, the S2 maps it reads (the layer's ``table`` argument)."""
    connected = table_i_connections()
    return [tuple(np.flatnonzero(connected[:, j])) for j in range(connected.shape[1])]


def test_table_i_as_written_has_the_papers_60_connections():
    connected = table_i_connections()
    assert connected.shape == (6, 16)
    # Paper, sec. II.B: the first six C3 maps read 3 contiguous S2 maps, the next six 4
    # contiguous, the next three 4 discontinuous, the last one all six.
    assert list(connected.sum(axis=0)) == [3] * 6 + [4] * 9 + [6]
    assert connected.sum() == 60


def test_lenet5_c3_connections_are_table_i():
    """Probe the built model: light one S2 map, see which C3 maps change."""
    c3 = kc.get_model("lenet5").get_layer("c3")
    height, width, maps = c3.input.shape[1:]
    assert maps == 6
    zeros = np.zeros((1, height, width, maps), "float32")
    baseline = numpy_of(c3(zeros))
    seen = np.zeros((6, 16), bool)
    for i in range(maps):
        probe = zeros.copy()
        probe[..., i] = 1.0
        seen[i] = np.any(numpy_of(c3(probe)) != baseline, axis=(0, 1, 2))
    np.testing.assert_array_equal(seen, table_i_connections())


def test_lenet5_c3_parameter_count_follows_from_table_i():
    c3 = kc.get_model("lenet5").get_layer("c3")
    assert c3.count_params() == 5 * 5 * table_i_connections().sum() + 16 == 1_516
    full = kc.get_model("lenet5", connection_table=False).get_layer("c3")
    assert full.count_params() == 5 * 5 * 6 * 16 + 16 == 2_416


@pytest.mark.parametrize("data_format", FORMATS)
def test_connection_table_conv_equals_a_masked_torch_conv(data_format):
    """The layer is a 5x5 convolution whose kernel is zero wherever Table I has no X."""
    keras.config.set_image_data_format(data_format)
    layer = ConnectionTableConv2D(table_i_as_lists(), 5)
    x = random_images((2, 14, 14, 6), seed=3)
    x = x if data_format == "channels_last" else x.transpose(0, 3, 1, 2)
    layer.build(x.shape)
    layer.bias.assign(random_images((16,), seed=4))
    got = numpy_of(layer(x))
    kernel = numpy_of(layer.dense_kernel())  # (kh, kw, in, out)
    np.testing.assert_array_equal(np.any(kernel != 0, axis=(0, 1)), table_i_connections())
    weight = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
    bias = torch.from_numpy(numpy_of(layer.bias))
    expected = torch.nn.functional.conv2d(torch.from_numpy(nchw(x, data_format)), weight, bias).numpy()
    np.testing.assert_allclose(got, from_nchw(expected, data_format), rtol=RTOL, atol=ATOL)


# --------------------------------------------------------------------------- DropPath


def timm_drop_path():
    """timm's reference ``drop_path(x, drop_prob, training, scale_by_keep)``."""
    torchvision_models()  # timm imports torchvision: apply the CPU-only workaround first
    from timm.layers import drop_path

    return drop_path


def kept_samples(y, x, keep):
    """Per sample: True if ``y`` is ``x / keep``, False if it is all zeros (else fail)."""
    y, x = y.reshape(len(y), -1), x.reshape(len(x), -1)
    kept = np.all(y != 0, axis=1)
    assert np.all(kept | np.all(y == 0, axis=1)), "a sample was partly dropped"
    np.testing.assert_allclose(y[kept], x[kept] / keep, rtol=1e-6)
    return kept


def test_drop_path_is_the_identity_at_inference_like_timm():
    drop_path = timm_drop_path()
    x = random_images((8, 3, 3, 4), seed=5)
    layer = DropPath(0.3, seed=1)
    np.testing.assert_array_equal(numpy_of(layer(x)), x)
    np.testing.assert_array_equal(numpy_of(layer(x, training=False)), x)
    np.testing.assert_array_equal(drop_path(torch.from_numpy(x), 0.3, training=False).numpy(), x)
    np.testing.assert_array_equal(numpy_of(DropPath(0.0)(x, training=True)), x)
    np.testing.assert_array_equal(drop_path(torch.from_numpy(x), 0.0, training=True).numpy(), x)


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_drop_path_training_statistics_match_timm(rate):
    """Per-sample Bernoulli(1 - rate) keep, survivors scaled by 1 / (1 - rate): the
    definition, checked on both timm's output and ours, and the keep rates agree."""
    drop_path = timm_drop_path()
    keep, n = 1.0 - rate, 20_000
    x = random_images((n, 2, 2, 3), seed=6) + 3.0  # no zero entries: zeros mean dropped
    ours = kept_samples(numpy_of(DropPath(rate, seed=2)(x, training=True)), x, keep)
    torch.manual_seed(0)
    theirs = kept_samples(drop_path(torch.from_numpy(x), rate, training=True).numpy(), x, keep)
    for kept in (ours, theirs):
        assert abs(kept.mean() - keep) < four_sigma(keep, n)
    assert abs(ours.mean() - theirs.mean()) < 4 * math.sqrt(2 * keep * rate / n)
    # Independent per sample: neighbours are kept together as often as chance says.
    both = np.mean(ours[:-1] & ours[1:])
    assert abs(both - keep**2) < four_sigma(keep**2, n - 1)


# --------------------------------------------------------------------------- FractalJoin


def probed_inputs(branches, seed):
    """``branches`` random (batch, 2, 2, 3) inputs, each with ``branches`` probe channels
    appended: input ``i`` carries 1 in probe channel ``i``, so the join's probe channels
    are ``keep_i / kept`` -- the drop mask can be read off the output."""
    batch = 4000
    rng = np.random.default_rng(seed)
    inputs = []
    for i in range(branches):
        probe = np.zeros((batch, 2, 2, branches), "float32")
        probe[..., i] = 1.0
        inputs.append(np.concatenate([rng.standard_normal((batch, 2, 2, 3)).astype("float32"), probe], -1))
    return inputs


def read_mask(output, branches):
    """The (batch, branches) 0/1 keep mask encoded in the probe channels."""
    probes = output[:, 0, 0, -branches:]
    mask = (probes > 0).astype("float32")
    kept = mask.sum(axis=1, keepdims=True)
    # The probes must be exactly keep_i / kept: a join that is not a mean fails here.
    np.testing.assert_allclose(probes, mask / np.maximum(kept, 1), rtol=1e-6)
    return mask


def numpy_join(inputs, mask):
    """Larsson et al. (2016), sec. 2: the join is the mean of the active inputs (zeros if none)."""
    stacked = np.stack(inputs)  # (branches, batch, ...)
    weights = mask.T.reshape(mask.shape[1], mask.shape[0], 1, 1, 1)
    return (stacked * weights).sum(0) / np.maximum(weights.sum(0), 1)


def test_fractal_join_at_inference_is_the_mean():
    inputs = probed_inputs(3, seed=7)
    got = numpy_of(FractalJoin(0.5)(inputs, training=False))
    np.testing.assert_allclose(got, np.mean(inputs, axis=0), rtol=RTOL, atol=ATOL)


def test_fractal_join_local_drop_path_matches_numpy_and_the_papers_rule():
    """Local drop-path (sec. 3.1): each input dropped independently with probability p,
    at least one kept. With p = 0.5 and 3 inputs the number kept is 3 with
    probability 1/8, 2 with 3/8, and 1 with 3/8 + 1/8 (the all-dropped samples keep one)."""
    branches, rate = 3, 0.5
    inputs = probed_inputs(branches, seed=8)
    got = numpy_of(FractalJoin(rate, seed=3)(inputs, training=True))
    mask = read_mask(got, branches)
    np.testing.assert_allclose(got, numpy_join(inputs, mask), rtol=RTOL, atol=ATOL)
    n = len(mask)
    counts = mask.sum(axis=1)
    assert counts.min() >= 1
    for kept, p in ((1, 3 / 8 + 1 / 8), (2, 3 / 8), (3, 1 / 8)):
        assert abs(np.mean(counts == kept) - p) < four_sigma(p, n), kept
    for i in range(branches):  # every input alike: kept with 1 - p, plus its third of the rescues
        p = (1 - rate) + rate**branches / branches
        assert abs(mask[:, i].mean() - p) < four_sigma(p, n)


def test_fractal_join_global_drop_path_keeps_only_the_chosen_column():
    """Global drop-path (sec. 3.1): a sample keeps the one column chosen for the whole
    network; a join the column does not pass through outputs zeros; samples with
    column -1 use local drop-path."""
    inputs = probed_inputs(3, seed=9)
    n = len(inputs[0])
    chosen = np.random.default_rng(10).integers(-1, 3, size=n).astype("float32")
    for columns in ((0, 1, 2), (1, 2)):
        selected = [inputs[c] for c in columns]
        join = FractalJoin(0.5, columns=columns, seed=4)
        got = numpy_of(join(selected, global_column=chosen, training=True))
        local = read_mask(got, 3)[:, list(columns)]  # probe channels of the joined columns
        global_mask = (chosen[:, None] == np.array(columns)[None, :]).astype("float32")
        mask = np.where(chosen[:, None] >= 0, global_mask, local)
        np.testing.assert_allclose(got, numpy_join(selected, mask), rtol=RTOL, atol=ATOL)
        if columns == (1, 2):  # column 0 does not pass through this join
            assert np.any(chosen == 0) and np.all(got[chosen == 0] == 0)


def test_fractal_column_sampler_mixes_global_and_local_as_asked():
    n, ratio, columns = 20_000, 0.5, 4
    x = np.zeros((n, 1), "float32")
    sampler = FractalColumnSampler(columns, global_ratio=ratio, seed=5)
    chosen = numpy_of(sampler(x, training=True))
    assert set(np.unique(chosen)) <= {-1.0, 0.0, 1.0, 2.0, 3.0}
    assert abs(np.mean(chosen >= 0) - ratio) < four_sigma(ratio, n)
    for c in range(columns):
        p = ratio / columns
        assert abs(np.mean(chosen == c) - p) < four_sigma(p, n)
    np.testing.assert_array_equal(numpy_of(sampler(x, training=False)), -np.ones(n))


# --------------------------------------------------------------------------- grouped conv


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize(
    "groups, strides, dilation, padding",
    [(2, 1, 1, "valid"), (4, 2, 1, "valid"), (4, 1, 2, "valid"), (8, 1, 1, "same"), (2, 1, 2, "same")],
)
def test_grouped_conv_fallback_equals_torch_grouped_conv(data_format, groups, strides, dilation, padding):
    keras.config.set_image_data_format(data_format)
    shape = (2, 11, 11, 16) if data_format == "channels_last" else (2, 16, 11, 11)
    layer = GroupedConv2D(
        24, 3, strides=strides, dilation_rate=dilation, padding=padding, groups=groups,
        bias_initializer="random_normal",
    )
    x = random_images(shape, seed=11)
    got = numpy_of(layer(x))
    kernel = numpy_of(layer.kernel)
    assert kernel.shape == (3, 3, 16 // groups, 24)
    weight = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
    torch_padding = dilation * (3 - 1) // 2 if padding == "same" else 0
    expected = torch.nn.functional.conv2d(
        torch.from_numpy(nchw(x, data_format)), weight, torch.from_numpy(numpy_of(layer.bias)),
        stride=strides, padding=torch_padding, dilation=dilation, groups=groups,
    ).numpy()
    np.testing.assert_allclose(got, from_nchw(expected, data_format), rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- padding and pooling


@pytest.mark.parametrize("data_format", FORMATS)
def test_pool_padding_replicates_the_border_like_numpy_edge_padding(data_format):
    keras.config.set_image_data_format(data_format)
    x = random_images((2, 5, 6, 3), seed=12)
    x = x if data_format == "channels_last" else x.transpose(0, 3, 1, 2)
    padding = ((1, 2), (0, 1))
    spatial = [(0, 0), *padding, (0, 0)] if data_format == "channels_last" else [(0, 0), (0, 0), *padding]
    got = numpy_of(PoolPadding2D(padding)(x))
    np.testing.assert_array_equal(got, np.pad(x, spatial, mode="edge"))


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize(
    "size, kernel, stride, pad, ceil_mode",
    [(8, 3, 2, 1, False), (8, 3, 2, 1, True), (10, 3, 2, 0, True), (7, 2, 2, 1, True), (11, 5, 3, 2, True)],
)
def test_pool_padding_then_valid_max_pool_equals_torch_max_pool(data_format, size, kernel, stride, pad, ceil_mode):
    """PyTorch's padded / ceil-mode max pooling as PoolPadding2D + a 'valid' Keras pool;
    the extra bottom/right padding is whatever makes the 'valid' pool give torch's size."""
    keras.config.set_image_data_format(data_format)
    x = random_images((2, size, size, 4), seed=13)
    x = x if data_format == "channels_last" else x.transpose(0, 3, 1, 2)
    expected = torch.nn.functional.max_pool2d(
        torch.from_numpy(nchw(x, data_format)), kernel, stride, pad, ceil_mode=ceil_mode
    ).numpy()
    out = expected.shape[-1]
    extra = (out - 1) * stride + kernel - (size + 2 * pad)  # cells past the padded input
    padded = PoolPadding2D(((pad, pad + max(extra, 0)),) * 2)(x)
    got = numpy_of(keras.layers.MaxPooling2D(kernel, stride, padding="valid")(padded))
    np.testing.assert_array_equal(got, from_nchw(expected, data_format))


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("size, output", [((7, 7), (3, 3)), ((13, 10), (6, 4)), ((5, 3), (7, 6)), ((4, 4), (1, 1))])
def test_adaptive_average_pooling_equals_torch(data_format, size, output):
    keras.config.set_image_data_format(data_format)
    x = random_images((2, *size, 5), seed=14)
    x = x if data_format == "channels_last" else x.transpose(0, 3, 1, 2)
    got = numpy_of(AdaptiveAveragePooling2D(output)(x))
    expected = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(nchw(x, data_format)), output).numpy()
    np.testing.assert_allclose(got, from_nchw(expected, data_format), rtol=RTOL, atol=ATOL)


# --------------------------------------------------------------------------- channel-wise layers


@pytest.mark.parametrize("data_format", FORMATS)
def test_channel_affine_is_scale_and_offset_per_channel(data_format):
    keras.config.set_image_data_format(data_format)
    scale, offset = (0.5, -2.0, 3.0), (1.0, 0.0, -0.25)
    x = random_images((2, 4, 4, 3), seed=15)
    x = x if data_format == "channels_last" else x.transpose(0, 3, 1, 2)
    shape = (1, 1, 1, 3) if data_format == "channels_last" else (1, 3, 1, 1)
    expected = x * np.reshape(scale, shape) + np.reshape(offset, shape)
    got = numpy_of(ChannelAffine(scale, offset)(x))
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("data_format", FORMATS)
def test_zero_pad_channels_equals_torch_pad(data_format):
    """He et al. (2015) option A: zero maps appended on the channel axis."""
    keras.config.set_image_data_format(data_format)
    x = random_images((2, 3, 3, 4), seed=16)
    x = x if data_format == "channels_last" else x.transpose(0, 3, 1, 2)
    got = numpy_of(ZeroPadChannels((1, 3))(x))
    expected = torch.nn.functional.pad(torch.from_numpy(nchw(x, data_format)), (0, 0, 0, 0, 1, 3)).numpy()
    np.testing.assert_array_equal(got, from_nchw(expected, data_format))


def test_weighted_average_is_the_normalised_weighted_sum():
    members = [random_images((3, 10), seed=s) for s in range(3)]
    weights = (1.0, 2.0, 5.0)
    expected = sum(w * m for w, m in zip(weights, members)) / sum(weights)
    got = numpy_of(WeightedAverage(weights)(members))
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
