"""FractalNet (Larsson, Maire and Shakhnarovich, 2016): ultra-deep networks without residuals.

A fractal block with C columns is the expansion rule of Sec. 2::

    f_1(z) = conv(z)
    f_{C+1}(z) = join(f_C(f_C(z)), conv(z))

where ``conv`` is a 3x3 conv-BN-ReLU unit and ``join`` the element-wise mean
(:class:`~keras_cnnclassics.layers.FractalJoin`). Unrolled, column ``c`` (0 =
the shallowest) holds ``2**c`` convs, the deepest path ``2**(C-1)``, and a block
``2**C - 1`` convs. As in the paper's Figure 1 and the authors' Caffe
generator, joins that meet at the same depth are one join over all the columns
that end there (``mean(a, b, c)``, not ``mean(mean(a, b), c)``), which is what
lets global drop-path keep exactly one column. :func:`block_schedule` gives that
layout; the tests check it against the recursive rule.

The CIFAR network (Sec. 4): B blocks, each followed by 2x2 max pooling, filters
64, 128, 256, 512, 512, then global average pooling (the map is 1x1 for 32x32
input) and a linear classifier. B=5 with C=3 is the paper's 20-layer network
(deepest path 5 * 4 convs), C=4 its 40-layer network (5 * 8).

Parameters, by arithmetic (convs without bias, as each is followed by BN; BN's
scale and shift; the classifier), 10 classes:

* C=3 (``fractalnet20``): 33,724,618, equal to the independent PyTorch port
  ``pytorchcv`` (osmr/imgclsmob) ``fractalnet_cifar10``. The paper's Table 1
  reports 38.6M for its 20-layer network.
* C=4 (``fractalnet40``): 76,106,634. The paper's Table 1 reports 22.9M for the
  40-layer network, which these widths cannot give (the 64..512 filters alone
  make 76M); the paper does not state other widths, so the count here is the
  one the stated widths imply.

Regularisation (training only): local drop-path (``drop_rate``, paper 0.15),
global drop-path for a fraction ``global_ratio`` of the samples (paper: 50 %
local / 50 % global), and dropout per block (``dropout``, paper 0, 0.1, 0.2,
0.3, 0.4; the default, ``dropout=0`` turns it off). At inference every join is
the plain mean.

Layer names: ``block{b}_col{c}_conv{i}`` / ``_bn{i}`` (b, c, i from 1),
``block{b}_join{l}`` (depth level l), ``block{b}_pool``, ``fc``.
"""

from __future__ import annotations

import numbers

from keras import layers

from keras_cnnclassics.blocks import (
    batch_norm,
    classifier_output,
    conv2d,
    dense,
    global_pool,
    max_pool2d,
    relu,
    spatial_shape,
)
from keras_cnnclassics.initializers import host_he_normal
from keras_cnnclassics.layers import FractalColumnSampler, FractalJoin
from keras_cnnclassics.preprocessing import unit_preprocess_input as preprocess_input
from keras_cnnclassics.registry import register_model

__all__ = ["FractalNet20", "FractalNet40", "preprocess_input"]

FRACTALNET_PAPER = (
    "G. Larsson, M. Maire, G. Shakhnarovich. FractalNet: Ultra-Deep Neural Networks "
    "without Residuals. ICLR 2017 (arXiv:1605.07648, 2016)."
)

CIFAR_FILTERS = (64, 128, 256, 512, 512)


def block_schedule(columns):
    """The unrolled expansion rule: for each depth level, the columns with a conv there.

    Column ``c`` (0-based) has ``2**c`` convs spread over the ``2**(C-1)``
    levels: it has one at level ``l`` (1-based) when ``2**(C-1-c)`` divides
    ``l``. The columns that have a conv at a level are joined right after it
    when there are two or more. Returns, per level, the ascending tuple of
    those column indices; the deepest column ``C - 1`` is in every tuple.
    """
    levels = 2 ** (columns - 1)
    return [
        tuple(c for c in range(columns) if level % 2 ** (columns - 1 - c) == 0)
        for level in range(1, levels + 1)
    ]


def conv_bn_relu_drop(x, filters, dropout, *, name, index):
    """3x3 conv (no bias) - BN - ReLU [- dropout], one unit of a column."""
    x = conv2d(
        x, filters, 3, 1, 1, name=f"{name}_conv{index}", use_bias=False,
        kernel_initializer=host_he_normal(),
    )
    x = batch_norm(x, name=f"{name}_bn{index}")
    x = relu(x, f"{name}_relu{index}")
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_drop{index}")(x)
    return x


def fractal_block(x, filters, columns, dropout, drop_rate, global_column, *, name):
    """One fractal block f_C (module docstring); returns the final join's output."""
    heads = [x] * columns  # the current end of each column
    counts = [0] * columns
    for level, active in enumerate(block_schedule(columns), start=1):
        outputs = []
        for c in active:
            counts[c] += 1
            unit = conv_bn_relu_drop(
                heads[c], filters, dropout, name=f"{name}_col{c + 1}", index=counts[c]
            )
            outputs.append(unit)
        if len(outputs) > 1:
            joined = FractalJoin(drop_rate, columns=active, name=f"{name}_join{level}")(
                outputs, global_column=global_column
            )
            outputs = [joined] * len(active)
        for c, out in zip(active, outputs):
            heads[c] = out
    return heads[0]


def _positive_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1


def _rate(value, high_inclusive=False):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    return ok and (0 <= value <= 1 if high_inclusive else 0 <= value < 1)


def paper_dropout(blocks):
    """The paper's dropout per block, 0, 0.1, 0.2, 0.3, 0.4 (0.4 beyond the fifth block)."""
    return tuple(min(0.1 * b, 0.4) for b in range(blocks))


def default_filters(blocks):
    """The paper's widths 64, 128, 256, 512, 512 (doubling up to 512) for B blocks."""
    return tuple(min(64 * 2**b, 512) for b in range(blocks))


def resolve_options(columns, blocks, filters, dropout, drop_rate, global_ratio):
    """Check the options (ValueError stating the rule) and fill in the paper's defaults.

    Returns ``(filters, dropout)`` with one width and one dropout rate per block.
    """
    if not _positive_int(columns):
        raise ValueError(f"fractalnet: columns (C) must be an integer >= 1; got {columns!r}.")
    if not _positive_int(blocks):
        raise ValueError(f"fractalnet: blocks (B) must be an integer >= 1; got {blocks!r}.")
    filters = default_filters(blocks) if filters is None else filters
    if (
        not isinstance(filters, (list, tuple)) or len(filters) != blocks
        or not all(_positive_int(f) for f in filters)
    ):
        raise ValueError(
            f"fractalnet: filters must list one positive width per block ({blocks}); "
            f"got {filters!r}."
        )
    dropout = paper_dropout(blocks) if dropout is None else dropout
    rates = tuple(dropout) if isinstance(dropout, (list, tuple)) else (dropout,) * blocks
    if len(rates) != blocks or not all(_rate(r) for r in rates):
        raise ValueError(
            f"fractalnet: dropout must be a rate in [0, 1) or one per block ({blocks}); "
            f"got {dropout!r}."
        )
    if not _rate(drop_rate):
        raise ValueError(
            f"fractalnet: drop_rate (local drop-path) must be in [0, 1); got {drop_rate!r}."
        )
    if not _rate(global_ratio, high_inclusive=True):
        raise ValueError(f"fractalnet: global_ratio must be in [0, 1]; got {global_ratio!r}.")
    return tuple(int(f) for f in filters), tuple(float(r) for r in rates)


def _fractalnet(
    img_input, *, include_top, classes, classifier_activation, pooling,
    columns=4, blocks=5, filters=None, dropout=None, drop_rate=0.15, global_ratio=0.5,
):
    """B fractal blocks of C columns, each followed by 2x2 max pooling; GAP + linear head."""
    filters, rates = resolve_options(columns, blocks, filters, dropout, drop_rate, global_ratio)
    spatial = spatial_shape(img_input)
    smallest = 2**blocks  # each block ends in a 2x2/2 max pooling
    if any(size is not None and size < smallest for size in spatial):
        raise ValueError(
            f"fractalnet: {blocks} blocks halve the input {blocks} times, so height and width "
            f"must be >= {smallest}; got {tuple(spatial)}. Use fewer blocks or a larger input."
        )
    global_column = None
    if global_ratio > 0 and columns > 1:
        sampler = FractalColumnSampler(columns, global_ratio, name="global_drop_path")
        global_column = sampler(img_input)
    x = img_input
    for b, (width, rate) in enumerate(zip(filters, rates), start=1):
        x = fractal_block(x, width, columns, rate, drop_rate, global_column, name=f"block{b}")
        x = max_pool2d(x, 2, 2, name=f"block{b}_pool")
    if not include_top:
        return global_pool(x, pooling)
    x = layers.GlobalAveragePooling2D(name="avgpool")(x)
    return classifier_output(dense(x, classes, name="fc"), classifier_activation)


def _stage_layers(options):
    """The pools after blocks 2..B (strides 4, 8, 16, 32 for B=5); block 1's if B == 1."""
    blocks = options.get("blocks", 5)
    return tuple(f"block{b}_pool" for b in range(min(2, blocks), blocks + 1))


def _fractalnet_entry(name, columns, params, paper_params):
    """``register_model`` for the CIFAR FractalNet with ``columns`` columns and B=5 blocks."""
    depth = 5 * 2 ** (columns - 1)
    return register_model(
        name, family="fractalnet", builder=_fractalnet, preprocess_input=preprocess_input,
        options={"columns": columns, "blocks": 5}, paper=FRACTALNET_PAPER, year=2016, params=params,
        input_shape=(32, 32, 3), min_size=32, default_classes=10, feature_layers=_stage_layers,
        notes=(
            f"CIFAR FractalNet, C={columns}, B=5, filters 64-128-256-512-512: {depth} convs on the "
            f"deepest path; the paper's Table 1 lists {paper_params} parameters (see module doc)."
        ),
    )


@_fractalnet_entry("fractalnet20", 3, 33_724_618, "38.6M")
def FractalNet20(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                 classes=10, classifier_activation="softmax", name=None, **kwargs):
    """The 20-layer CIFAR FractalNet (C=3 columns, B=5 blocks)."""
    return FractalNet20.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                                   classifier_activation, name, **kwargs)


@_fractalnet_entry("fractalnet40", 4, 76_106_634, "22.9M")
def FractalNet40(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                 classes=10, classifier_activation="softmax", name=None, **kwargs):
    """The 40-layer CIFAR FractalNet (C=4 columns, B=5 blocks)."""
    return FractalNet40.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                                   classifier_activation, name, **kwargs)
