"""The profiler, the model-table cache, the docs model table and the complexity chart.

Numbers asserted: the AlexNet rows of CS231n lecture 9's table exactly; torchvision's
GFLOPS metadata within 0.5 %; the ResNet paper's FLOPs with the v1 option; the
GoogLeNet paper's arithmetic (1x1 reductions, global average pooling); exact
equality with a multiply-add count taken by hooks on the torchvision/timm
reference model. Profiling is symbolic and backend-independent (checked on every
backend by the AlexNet and layer-zoo tests), so the per-registry-model cases are
marked ``heavy("profile-<name>")``: each is sampled (``model_cases.heavy``).
"""

from __future__ import annotations

import csv
import inspect
import io
import os

import numpy as np
import pytest
from support.capabilities import needs_channels_first

import keras
import keras_cnnclassics as kc
from keras_cnnclassics import layers as kc_layers
from keras_cnnclassics import profiler, stats
from keras_cnnclassics.cli import main as cli_main
from keras_cnnclassics.registry import all_specs, get_spec

from support.model_cases import heavy
from support.reference import require

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL_TABLE = os.path.join(ROOT, "docs", "models.md")


def sampled(name, *values):
    """A case that builds registry model ``name``, sampled (``model_cases.heavy``)."""
    return pytest.param(name, *values, id=name, marks=[heavy(f"profile-{name}", name)])


# --- CS231n lecture 9's AlexNet table (torchvision's 64-filter AlexNet at 3x227x227)


@pytest.fixture(scope="module")
def alexnet_227():
    return kc.profile("alexnet", input_shape=(227, 227, 3))


def test_alexnet_rows_are_the_lecture_table(alexnet_227):
    conv1 = alexnet_227.row("features_0")
    assert conv1.output_shape == (56, 56, 64)
    assert conv1.memory_kb == 784
    assert conv1.params == 23_296
    assert conv1.macs == conv1.ops == 72_855_552
    pool1 = alexnet_227.row("features_2")
    assert pool1.output_shape == (27, 27, 64)
    assert pool1.memory_kb == 182.25
    assert (pool1.params, pool1.macs, pool1.ops) == (0, 0, 419_904)
    assert alexnet_227.row("flatten").output_shape == (9216,)
    fc6 = alexnet_227.row("classifier_1")
    assert fc6.macs == 37_748_736 and fc6.params == 9216 * 4096 + 4096


def test_alexnet_totals(alexnet_227):
    assert alexnet_227.total_params == 61_100_840
    assert alexnet_227.total_macs == 716_767_232
    pool_ops = 419_904 + 192 * 13 * 13 * 9 + 256 * 6 * 6 * 9
    assert alexnet_227.total_ops == alexnet_227.total_macs + pool_ops
    assert [r.name for r in alexnet_227.rows][:3] == ["input_layer", "features_0", "features_2"]


def test_padding_is_folded_by_default_and_shown_on_request():
    folded = kc.profile("alexnet", input_shape=(227, 227, 3))
    assert folded.row("features_0").note == "+features_0_pad"
    assert "features_0_pad" not in [r.name for r in folded.rows]
    shown = kc.profile("alexnet", input_shape=(227, 227, 3), fold_padding=False)
    pad = shown.row("features_0_pad")
    assert (pad.type, pad.output_shape, pad.macs, pad.ops) == ("ZeroPadding2D", (231, 231, 3), 0, 0)
    assert pad.memory_kb == 231 * 231 * 3 * 4 / 1024
    assert shown.total_macs == folded.total_macs
    assert shown.total_memory_kb == folded.total_memory_kb + pad.memory_kb


def test_true_flops_and_batch_size():
    result = kc.profile("alexnet", input_shape=(227, 227, 3), true_flops=True, batch_size=3)
    conv1 = result.row("features_0")
    outputs = 3 * 56 * 56 * 64
    assert conv1.macs == 3 * 72_855_552
    assert conv1.ops == 2 * conv1.macs + outputs + outputs  # bias add + fused ReLU
    assert conv1.memory_kb == 3 * 784
    assert result.row("features_2").ops == 3 * 419_904
    assert result.row("predictions").ops == 3 * 3 * 1000  # softmax: 3 per element
    assert result.total_params == 61_100_840  # parameters do not scale with the batch


# --- torchvision's GFLOPS metadata and the ResNet paper --------------------------

TORCHVISION_GFLOPS = [
    ("alexnet", 0.714), ("vgg16", 15.47), ("googlenet", 1.498), ("resnet18", 1.814),
    ("resnet50", 4.089), ("resnet152", 11.514), ("wide_resnet50_2", 11.398),
    ("resnext50_32x4d", 4.23), ("densenet121", 2.834), ("squeezenet1_0", 0.819),
    ("squeezenet1_1", 0.349), ("inception_v3", 5.713),
]


@pytest.mark.parametrize("name, gflops", [sampled(n, g) for n, g in TORCHVISION_GFLOPS])
def test_macs_match_torchvision_gflops(name, gflops):
    result = kc.profile(name)  # default input: 224x224, 299x299 for inception_v3
    assert abs(result.total_macs / 1e9 - gflops) <= 0.005 * gflops


# He et al. 2016, Table 1: "FLOPs" (multiply-adds) of ResNet-18 ... 152, given to two
# significant figures. The paper's bottleneck puts the stride on the first 1x1 conv.
RESNET_PAPER_GFLOPS = [("resnet18", 1.8), ("resnet34", 3.6), ("resnet50", 3.8), ("resnet101", 7.6),
                       ("resnet152", 11.3)]
RESNET_V1_OPTION = {"stride_in_1x1": True}


@pytest.mark.parametrize("name, gflops", [sampled(n, g) for n, g in RESNET_PAPER_GFLOPS])
def test_resnet_paper_flops_with_the_v1_option(name, gflops):
    result = kc.profile(name, **RESNET_V1_OPTION)
    assert abs(result.total_macs / 1e9 - gflops) <= 0.02 * gflops


# --- The GoogLeNet paper's argument (1x1 reductions, global average pooling) -----


def _macs_of(build, shape):
    with profiler.shapes_only():  # no weight initialisation: the profile needs shapes only
        inputs = keras.Input(shape)
        model = keras.Model(inputs, build(inputs))
    return kc.profile(model)


def test_googlenet_1x1_reduction_saves_multiply_adds():
    def naive(x):
        return keras.layers.Conv2D(32, 5, padding="same", name="conv5x5")(x)

    def reduced(x):
        x = keras.layers.Conv2D(16, 1, name="reduce1x1")(x)
        return keras.layers.Conv2D(32, 5, padding="same", name="conv5x5")(x)

    assert _macs_of(naive, (28, 28, 192)).total_macs == 120_422_400
    result = _macs_of(reduced, (28, 28, 192))
    assert result.row("reduce1x1").macs == 2_408_448
    assert result.total_macs == 12_443_648


def test_global_average_pooling_instead_of_fc_saves_51m_weights():
    flatten_fc = _macs_of(lambda x: keras.layers.Dense(1024, name="fc")(keras.layers.Flatten()(x)), (7, 7, 1024))
    gap = _macs_of(lambda x: keras.layers.GlobalAveragePooling2D(name="gap")(x), (7, 7, 1024))
    assert flatten_fc.row("fc").params == 51_380_224 + 1024  # weights + biases
    assert flatten_fc.row("fc").macs == 51_380_224
    assert gap.total_params == 0 and gap.total_macs == 0
    assert gap.row("gap").ops == 7 * 7 * 1024


# --- Every layer type, nested models, shared layers, channels_first ----------------


def _zoo(x):
    """One of each layer type with hand-computed costs (see test_layer_zoo)."""
    a = keras.layers.Conv2D(8, 3, padding="same", groups=2, use_bias=False, name="grouped")(x)
    a = keras.layers.BatchNormalization(name="bn")(a)
    a = keras.layers.ReLU(name="relu")(a)
    b = keras.layers.DepthwiseConv2D(3, padding="same", name="depthwise")(x)
    b = keras.layers.Conv2D(8, 1, name="pointwise")(b)
    merged = keras.layers.Add(name="add")([a, b])
    product = keras.layers.Multiply(name="mul")([a, b])
    mean = keras.layers.Average(name="avg")([a, b, merged])
    cat = keras.layers.Concatenate(name="cat")([merged, product, mean])
    y = kc_layers.LocalResponseNormalization(3, name="lrn")(cat)
    y = kc_layers.PoolPadding2D(((0, 1), (0, 1)), name="pool_pad")(y)
    y = keras.layers.MaxPooling2D(2, name="pool")(y)
    y = kc_layers.AdaptiveAveragePooling2D((3, 3), name="adaptive")(y)
    y = kc_layers.DropPath(0.1, name="droppath")(y)
    y = keras.layers.SeparableConv2D(6, 3, name="separable")(y)
    y = keras.layers.GlobalAveragePooling2D(name="gap")(y)
    return keras.layers.Dense(5, activation="softmax", name="head")(y)


def test_layer_zoo_costs_are_hand_computed():
    with profiler.shapes_only():
        inputs = keras.Input((8, 8, 4))
        model = keras.Model(inputs, _zoo(inputs))
    result = kc.profile(model)
    pixels = 8 * 8
    expected_macs = {
        "grouped": pixels * 8 * (4 // 2) * 9,
        "depthwise": pixels * 4 * 9,
        "pointwise": pixels * 8 * 4,
        "separable": 1 * 1 * 24 * 9 + 1 * 1 * 6 * 24,
        "head": 6 * 5,
    }
    for name, macs in expected_macs.items():
        assert result.row(name).macs == macs, name
    # 8x8 -> pad to 9x9 -> 2x2 max pool -> 4x4; adaptive 4 -> 3 bins of 2 cells each way.
    assert result.row("pool").ops == 4 * 4 * 24 * 4
    assert result.row("adaptive").ops == 3 * 3 * 24 * 4
    assert result.row("pool").note == "+pool_pad"
    assert result.row("gap").ops == 6
    assert result.total_macs == sum(expected_macs.values())
    assert result.total_params == kc.count_params(model)


def test_true_flops_of_elementwise_layers():
    with profiler.shapes_only():
        inputs = keras.Input((8, 8, 4))
        model = keras.Model(inputs, _zoo(inputs))
    result = kc.profile(model, true_flops=True)
    n = 8 * 8 * 8
    assert result.row("bn").ops == 2 * n
    assert result.row("relu").ops == n
    assert result.row("add").ops == n
    assert result.row("mul").ops == n
    assert result.row("avg").ops == 3 * n
    assert result.row("cat").ops == 0
    assert result.row("lrn").ops == (3 + 4) * 3 * n
    assert result.row("grouped").ops == 2 * result.row("grouped").macs  # no bias, no activation


def test_grouped_conv_fallback_and_channel_padding():
    with profiler.shapes_only():
        inputs = keras.Input((6, 6, 8))
        x = kc_layers.GroupedConv2D(8, 3, groups=4, use_bias=False, name="grouped")(inputs)
        x = kc_layers.ZeroPadChannels((0, 8), name="pad_channels")(x)
        model = keras.Model(inputs, x)
    result = kc.profile(model, true_flops=True)
    assert result.row("grouped").macs == 4 * 4 * 8 * (8 // 4) * 9
    assert result.row("grouped").params == 8 * 2 * 9
    pad = result.row("pad_channels")  # a real tensor (ResNet option-A shortcut): kept as a row
    assert (pad.output_shape, pad.ops) == ((4, 4, 16), 0)


def test_fractal_join_counts_its_joined_columns_only():
    inputs = keras.Input((4, 4, 2))
    column = kc_layers.FractalColumnSampler(2, name="sampler")(inputs)
    a = keras.layers.Conv2D(2, 1, name="a")(inputs)
    joined = kc_layers.FractalJoin(columns=(0, 1), name="join")([a, inputs], global_column=column)
    result = kc.profile(keras.Model(inputs, joined), true_flops=True)
    assert result.row("join").ops == 2 * 4 * 4 * 2  # mean of 2 inputs, the column id excluded
    assert result.row("sampler").ops == 0 and result.row("sampler").output_shape == ()


def test_nested_and_shared_layers_and_none_dims():
    with profiler.shapes_only():
        inner_in = keras.Input((None, None, 3))
        inner = keras.Model(inner_in, keras.layers.Conv2D(4, 3, name="conv")(inner_in), name="inner")
        shared = keras.layers.Dense(2, name="shared")
        inputs = keras.Input((None, None, 3))
        x = keras.layers.GlobalMaxPooling2D(name="gmp")(inner(inputs))
        outer = keras.Model(inputs, keras.layers.Add(name="sum")([shared(x), shared(x)]), name="outer")
    result = kc.profile(outer, input_shape=(10, 10, 3))
    conv = result.row("inner/conv")
    assert conv.output_shape == (8, 8, 4) and conv.macs == 8 * 8 * 4 * 27
    assert [r.params for r in result.rows if r.name.startswith("shared")] == [10, 0]
    assert result.total_params == kc.count_params(outer) == 4 * 27 + 4 + 10
    assert result.total_macs == conv.macs + 2 * 4 * 2
    with pytest.raises(ValueError, match="unknown dimensions"):
        kc.profile(outer)


def test_input_shape_must_agree_with_a_built_model():
    with profiler.shapes_only():
        model = kc.get_model("lenet5_cs231n")
    with pytest.raises(ValueError, match="can only fill its None dimensions"):
        kc.profile(model, input_shape=(32, 32, 1))
    assert kc.profile(model, input_shape=(28, 28, 1)).total_params == 1_256_080


@needs_channels_first
def test_channels_first_gives_the_same_numbers():
    expected = kc.profile("alexnet", input_shape=(227, 227, 3)).to_dicts()
    keras.config.set_image_data_format("channels_first")
    result = kc.profile("alexnet", input_shape=(3, 227, 227))
    assert result.row("features_0").output_shape == (64, 56, 56)
    assert len(result.rows) == len(expected)
    for got, want in zip(result.to_dicts()[1:], expected[1:]):  # [0]: the auto-named input
        assert {k: got[k] for k in ("name", "params", "macs", "ops", "memory_kb")} == {
            k: want[k] for k in ("name", "params", "macs", "ops", "memory_kb")
        }


def test_unknown_layer_is_named_not_counted_as_zero():
    class Mystery(keras.layers.Layer):
        def call(self, x):
            return x * 2.0

    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, keras.layers.Flatten()(Mystery(name="mystery")(inputs)))
    with pytest.raises(ValueError, match=r"mystery \(Mystery\)"):
        kc.profile(model)
    lam = keras.Model(inputs, keras.layers.Lambda(lambda t: t + 1, name="plus_one")(inputs))
    with pytest.raises(ValueError, match=r"plus_one \(Lambda\)"):
        kc.profile(lam)


def test_every_package_layer_has_a_cost_rule():
    classes = [
        cls for _, cls in inspect.getmembers(kc_layers, inspect.isclass)
        if issubclass(cls, keras.layers.Layer) and cls.__module__ == kc_layers.__name__
    ]
    assert len(classes) >= 5
    missing = [cls.__name__ for cls in classes if profiler.rule_for(cls.__new__(cls)) is None]
    assert not missing, f"add a cost rule in profiler.py for {missing}"


def test_bad_arguments():
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        kc.profile("alexnet", batch_size=0)
    with profiler.shapes_only():
        model = kc.get_model("lenet5")
    with pytest.raises(ValueError, match="only apply to a registry name"):
        kc.profile(model, classes=3)
    with pytest.raises(ValueError, match="weights are not needed"):
        kc.profile("lenet5", weights="lenet5.weights.h5")
    with pytest.raises(ValueError, match="Unknown model name"):
        kc.profile("alexnot")


# --- Output formats and the command line --------------------------------------------


def test_csv_markdown_and_table(alexnet_227):
    rows = list(csv.reader(io.StringIO(alexnet_227.to_csv())))
    assert rows[0] == ["name", "type", "output_shape", "memory_kb", "params", "macs", "ops", "note"]
    conv1 = rows[[r[0] for r in rows].index("features_0")]
    assert conv1[2:7] == ["56x56x64", "784.00", "23296", "72855552", "72855552"]
    assert rows[-1][0] == "TOTAL" and rows[-1][4] == "61100840"
    assert len(rows) == len(alexnet_227.rows) + 2

    markdown = alexnet_227.to_markdown()
    assert "| features_2 | MaxPooling2D | 27x27x64 | 182.25 | 0 | 0 | 419,904 |  |" in markdown
    assert "| **TOTAL** |" in markdown and "multiply-adds" in markdown

    table = alexnet_227.to_table().splitlines()
    assert "multiply-adds" in table[1]
    header = next(i for i, line in enumerate(table) if set(line) == {"-"}) + 1
    body = [line for line in table[header + 2 :] if not line.startswith("---")]
    right_edges = {line.index("23,296") + len("23,296") for line in body if "23,296" in line}
    assert body[-1].startswith("TOTAL") and "61,100,840" in body[-1] and "716,767,232" in body[-1]
    params_col_end = table[header].index("params") + len("params")
    assert right_edges == {params_col_end}  # numbers right-aligned under their header
    assert alexnet_227.to_dicts()[1]["macs"] == 72_855_552


def test_cli_profile_formats(capsys):
    assert cli_main(["profile", "alexnet", "--input-shape", "227,227,3", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert "features_2,MaxPooling2D,27x27x64,182.25,0,0,419904," in out
    assert cli_main(["profile", "lenet5", "--true-flops"]) == 0
    assert "FLOPs" in capsys.readouterr().out
    assert cli_main(["profile", "alexnet", "--input-shape", "8,8,3"]) == 2
    assert "too small" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["profile", "alexnet", "--input-shape", "big"])


# --- The MACs cache, the docs model table and the chart -----------------------------


def test_every_registry_model_has_a_fresh_stats_entry():
    cached = stats.load_stats()
    assert stats.stale_names(cached) == [], "run `cnnclassics table --update-stats`"
    assert sorted(cached) == sorted(s.name for s in all_specs())


@pytest.mark.parametrize("name", [sampled(s.name) for s in all_specs()])
def test_cached_macs_equal_the_profiler(name):
    result = kc.profile(name)
    entry = stats.load_stats()[name]
    assert (result.total_params, result.total_macs) == (get_spec(name).params, entry["macs"])


def _torch_macs(reference, input_shape):
    """Multiply-adds of a torchvision/timm model's Conv2d and Linear calls, by forward hooks.

    The model is built and run on PyTorch's ``meta`` device: shapes only, no
    weights allocated, no arithmetic done.
    """
    import torch

    from support.reference import torchvision_models

    library, name = reference.split(":", 1)
    models = torchvision_models()  # before timm, which imports torchvision
    with torch.device("meta"):
        if library == "torchvision":
            model = getattr(models, name)(weights=None)
        else:
            model = require("timm").create_model(name, pretrained=False)
    total = [0]

    def hook(module, args, output):
        if isinstance(module, torch.nn.Conv2d):
            per_output = module.in_channels // module.groups * int(np.prod(module.kernel_size))
        else:
            per_output = module.in_features
        total[0] += output.numel() * per_output

    for module in model.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            module.register_forward_hook(hook)
    h, w, c = input_shape
    with torch.no_grad():
        model.eval()(torch.zeros(1, c, h, w, device="meta"))
    return total[0]


@pytest.mark.parametrize("name", [sampled(s.name) for s in all_specs() if s.reference])
def test_macs_equal_a_hook_count_on_the_torch_reference(name):
    spec = get_spec(name)
    assert stats.load_stats()[name]["macs"] == _torch_macs(spec.reference, spec.input_shape)


def test_docs_model_table_is_generated_from_the_registry_and_cache():
    assert stats.readme_table(MODEL_TABLE) == stats.model_table_markdown(), (
        "docs/models.md model table is stale: run `python tools/model_table.py --update-readme docs/models.md`"
    )
    assert stats.update_readme(MODEL_TABLE, check=True) is False


def test_readme_update_and_stale_detection(tmp_path):
    path = tmp_path / "README.md"
    path.write_text(f"# x\n{stats.TABLE_START}\nold\n{stats.TABLE_END}\nafter\n")
    assert stats.update_readme(path, check=True) is True
    assert stats.update_readme(path) is True
    text = path.read_text()
    assert text.startswith("# x\n") and text.endswith(f"{stats.TABLE_END}\nafter\n")
    assert "| `vgg16` | Simonyan & Zisserman | 2014 | 138,357,544 | 15.47 G | 224x224x3 |" in text
    assert stats.update_readme(path) is False
    plain = tmp_path / "plain.md"
    plain.write_text("no table here\n")
    with pytest.raises(ValueError, match="markers"):
        stats.update_readme(plain)
    with pytest.raises(ValueError, match="lacks or disagrees"):
        stats.model_table_markdown({})


@pytest.mark.parametrize(
    "paper, short",
    [
        ("K. Simonyan, A. Zisserman. Very Deep Convolutional Networks. ICLR 2015.", "Simonyan & Zisserman"),
        ("A. Krizhevsky, I. Sutskever, G. E. Hinton. ImageNet Classification. NeurIPS 2012.", "Krizhevsky et al."),
        ("M. D. Zeiler, R. Fergus. Visualizing. ECCV 2014.", "Zeiler & Fergus"),
        ("G. Huang, Z. Liu, L. van der Maaten, K. Q. Weinberger. Densely. CVPR 2017.", "Huang et al."),
        ("A. Krizhevsky. One weird trick. arXiv 2014. After A. Krizhevsky, I. Sutskever.", "Krizhevsky"),
        ("CS231n (Stanford) lecture 9, 'CNN Architectures'. After Y. LeCun, L. Bottou.", "CS231n"),
    ],
)
def test_short_citation(paper, short):
    assert stats.short_citation(paper) == short


def test_complexity_chart(tmp_path):
    require("matplotlib")
    names = ["alexnet", "vgg16", "lenet5", "googlenet"]
    path = tmp_path / "chart.png"
    points = kc.complexity_chart(path, names=names)
    assert [p["name"] for p in points] == ["alexnet", "vgg16", "googlenet"]  # lenet5: no top-1
    cached = stats.load_stats()
    assert [p["macs"] for p in points] == [cached[n]["macs"] for n in ("alexnet", "vgg16", "googlenet")]
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 20_000
    with pytest.raises(ValueError, match="published top-1"):
        kc.complexity_chart(tmp_path / "none.png", names=["lenet5"])
    out = tmp_path / "cli.png"
    assert cli_main(["chart", "--out", str(out), "alexnet", "vgg16"]) == 0
    assert cli_main(["chart", "--out", str(out), "alexnet"]) == 2  # refuses to overwrite
