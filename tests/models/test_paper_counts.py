"""Parameter counts of the models that exist only in their papers, derived here.

No torchvision/timm model exists for lenet5, alexnet_original, zfnet, zfnet_wide
or googlenet_original, so each one's layer table is written out below as the
paper gives it (kernel, input depth seen by each kernel, output maps), the
weights and biases are counted by arithmetic, and the result is compared with
the built model layer by layer and in total -- nothing is read from the package's
own tables or registry. (NiN's Caffe-model table has the same check in
``test_nin.py``.) Models are built with shapes only: no weight initialisation.
"""

from __future__ import annotations

import pytest

import keras
import keras_cnnclassics as kc
from keras_cnnclassics.layers import LocalResponseNormalization
from keras_cnnclassics.profiler import shapes_only

from test_layer_references import table_i_connections


def conv_params(kernel, depth, maps, bias=True):
    """A conv layer of ``maps`` kernels of size ``kernel x kernel x depth``."""
    return kernel * kernel * depth * maps + (maps if bias else 0)


def fc_params(inputs, outputs):
    return inputs * outputs + outputs


def build(name, **kwargs):
    with shapes_only():
        return kc.get_model(name, **kwargs)


def weighted_layers(model, kind):
    """Layers of ``kind`` in graph order (grouped-conv fallbacks are Conv2D subclasses)."""
    return [layer for layer in model.layers if isinstance(layer, kind)]


def assert_model_follows_table(name, convs, fcs):
    """``convs``: (kernel, depth, maps, output side) per conv in order, as the paper lists
    them; ``fcs``: (inputs, outputs) per FC layer. Returns the model and the arithmetic total."""
    model = build(name)
    conv_layers = weighted_layers(model, keras.layers.Conv2D)
    assert len(conv_layers) == len(convs)
    for layer, (kernel, depth, maps, side) in zip(conv_layers, convs):
        assert tuple(layer.kernel.shape) == (kernel, kernel, depth, maps), layer.name
        assert tuple(layer.output.shape[1:3]) == (side, side), layer.name
    assert [tuple(layer.kernel.shape) for layer in weighted_layers(model, keras.layers.Dense)] == fcs
    total = sum(conv_params(*row[:3]) for row in convs) + sum(fc_params(*row) for row in fcs)
    assert kc.count_params(model) == total
    return model, total


# --------------------------------------------------------------------------- LeNet-5


def test_lenet5_counts_are_lecun_1998_section_ii_b():
    """Sec. II.B: C1 156, S2 12, C3 1,516, S4 32, C5 48,120, F6 10,164 trainable
    parameters: 60,000. The paper's output layer is 10 Euclidean RBF units with
    fixed 84-weight prototypes (840 values, not trained); the package's is a
    trainable softmax Dense(84 -> 10), 850 parameters: 60,850 in total."""
    paper = {
        "c1": conv_params(5, 1, 6),
        "s2": 6 * 2,  # per map: one trainable coefficient and one bias
        "c3": 5 * 5 * table_i_connections().sum() + 16,
        "s4": 16 * 2,
        "c5": conv_params(5, 16, 120),
        "f6": fc_params(120, 84),
    }
    assert paper == {"c1": 156, "s2": 12, "c3": 1_516, "s4": 32, "c5": 48_120, "f6": 10_164}
    assert sum(paper.values()) == 60_000
    model = build("lenet5")
    assert {name: kc.count_params(model.get_layer(name)) for name in paper} == paper
    output = fc_params(84, 10)
    assert kc.count_params(model.get_layer("output")) == output == 84 * 10 + 10
    assert kc.count_params(model) == sum(paper.values()) + output == 60_850


# --------------------------------------------------------------------------- AlexNet


def test_alexnet_original_counts_are_krizhevsky_2012_section_3_5():
    """Sec. 3.5 / Figure 2: kernels 11x11x3 (96), 5x5x48 (256), 3x3x256 (384),
    3x3x192 (384), 3x3x192 (256) -- depth 48 and 192 where a GPU's kernels see
    only its own half of the maps (grouped convolutions); conv3 and the FC layers
    see both. 227x227 input: maps of 55, 27, 13, 13, 13, pooled to 6x6x256."""
    convs = [(11, 3, 96, 55), (5, 48, 256, 27), (3, 256, 384, 13), (3, 192, 384, 13), (3, 192, 256, 13)]
    fcs = [(6 * 6 * 256, 4096), (4096, 4096), (4096, 1000)]
    model, total = assert_model_follows_table("alexnet_original", convs, fcs)
    assert [layer.groups for layer in weighted_layers(model, keras.layers.Conv2D)] == [1, 2, 1, 2, 2]
    assert total == 60_965_224  # "60 million parameters"


def test_alexnet_original_normalises_after_conv1_and_conv2():
    """Sec. 3.3-3.4: response normalisation (n=5, beta=0.75, k=2) after the ReLU of
    the first and second conv layers, before their max pooling."""
    model = build("alexnet_original")
    order = [layer for layer in model.layers if isinstance(layer, (keras.layers.Conv2D, LocalResponseNormalization))]
    kinds = ["lrn" if isinstance(layer, LocalResponseNormalization) else "conv" for layer in order]
    assert kinds == ["conv", "lrn", "conv", "lrn", "conv", "conv", "conv"]
    for layer in order:
        if isinstance(layer, LocalResponseNormalization):
            assert (layer.size, layer.beta, layer.k) == (5, 0.75, 2.0)


# --------------------------------------------------------------------------- ZFNet


@pytest.mark.parametrize(
    "name, conv345, total",
    [("zfnet", (384, 384, 256), 62_357_608), ("zfnet_wide", (512, 1024, 512), 107_627_624)],
)
def test_zfnet_counts_are_zeiler_fergus_figure_3_and_table_1(name, conv345, total):
    """Figure 3: 224x224 input, 96 7x7 kernels stride 2 (110x110), pool (55), 256
    5x5 stride 2 (26), pool (13), 384, 384, 256 3x3 (13), pool 6x6x256, two FC 4096,
    output 1000; one GPU, so every layer is dense (no AlexNet towers). Table 1's
    variant (Table 2's best single model) has 512, 1024, 512 maps in layers 3-5."""
    a, b, c = conv345
    convs = [(7, 3, 96, 110), (5, 96, 256, 26), (3, 256, a, 13), (3, a, b, 13), (3, b, c, 13)]
    fcs = [(6 * 6 * c, 4096), (4096, 4096), (4096, 1000)]
    assert assert_model_follows_table(name, convs, fcs)[1] == total


# --------------------------------------------------------------------------- GoogLeNet

# Szegedy et al. 2014, Table 1: for each Inception module, its output size and the
# columns #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj.
TABLE_1_MODULES = {
    "3a": (28, 256, (64, 96, 128, 16, 32, 32)),
    "3b": (28, 480, (128, 128, 192, 32, 96, 64)),
    "4a": (14, 512, (192, 96, 208, 16, 48, 64)),
    "4b": (14, 512, (160, 112, 224, 24, 64, 64)),
    "4c": (14, 512, (128, 128, 256, 24, 64, 64)),
    "4d": (14, 528, (112, 144, 288, 32, 64, 64)),
    "4e": (14, 832, (256, 160, 320, 32, 128, 128)),
    "5a": (7, 832, (256, 160, 320, 32, 128, 128)),
    "5b": (7, 1024, (384, 192, 384, 48, 128, 128)),
}


def inception_params(depth, columns):
    """One module of Figure 2(b) on ``depth`` input maps; every conv has a bias."""
    c1, r3, c3, r5, c5, proj = columns
    return (conv_params(1, depth, c1) + conv_params(1, depth, r3) + conv_params(3, r3, c3)
            + conv_params(1, depth, r5) + conv_params(5, r5, c5) + conv_params(1, depth, proj))


def googlenet_table_1_params():
    """Stem (conv 7x7/2 64; conv 3x3 192 with its 1x1 64 reduction), the nine modules,
    linear 1024 -> 1000; checks that each row's output depth is the sum of its
    branch columns (the next row's input depth)."""
    total = conv_params(7, 3, 64) + conv_params(1, 64, 64) + conv_params(3, 64, 192)
    depth = 192
    for key, (_, out_depth, columns) in TABLE_1_MODULES.items():
        assert columns[0] + columns[2] + columns[4] + columns[5] == out_depth, key
        total += inception_params(depth, columns)
        depth = out_depth
    return total + fc_params(1024, 1000)


def test_googlenet_original_counts_are_table_1():
    """Table 1's "params" column lists weights without biases in K = 1024 units, with
    slips in a few rows (conv1 2.7K for 7*7*3*64 = 9.2K; 4c, 5a), summing to
    6,797.7K; counted from the table's depth columns the network holds 6,998,552
    parameters with biases (6,990,272 weights)."""
    total = googlenet_table_1_params()
    model = build("googlenet_original")
    for key, (side, out_depth, _) in TABLE_1_MODULES.items():
        assert tuple(model.get_layer(f"inception{key}").output.shape[1:]) == (side, side, out_depth)
    assert kc.count_params(model) == total == 6_998_552
    biases = 64 + 64 + 192 + sum(sum(columns) for _, _, columns in TABLE_1_MODULES.values()) + 1000
    assert total - biases == 6_990_272


def test_googlenet_original_auxiliary_heads_are_section_5():
    """Sec. 5: on 4a and 4d, 5x5/3 average pool (4x4 maps), 1x1 conv with 128 filters,
    FC 1024, dropout 70 %, linear 1000."""
    main = googlenet_table_1_params()
    heads = sum(
        conv_params(1, TABLE_1_MODULES[key][1], 128) + fc_params(4 * 4 * 128, 1024) + fc_params(1024, 1000)
        for key in ("4a", "4d")
    )
    model = build("googlenet_original", aux_logits=True)
    assert kc.count_params(model) == main + heads
