"""Per-layer profile of a Keras model: output shape, memory, parameters, multiply-adds.

``profile("alexnet", input_shape=(227, 227, 3))`` reproduces the table that
CS231n lecture 9 uses to teach AlexNet: for every layer its output
size, the memory that output takes, its parameters and its operations, plus the
totals. It reads the Keras graph only (layer configs and symbolic shapes), so it
gives the same numbers on the TensorFlow, JAX and PyTorch backends and needs no
backend profiler.

Conventions (also printed in the table header):

* **MACs** are the multiply-adds of convolution and dense layers, bias excluded:
  ``C_out x H_out x W_out x (C_in / groups) x k_h x k_w`` for a convolution,
  ``in x out`` for a dense layer. This is what CS231n lecture 9, the papers (ResNet's
  "3.8 x 10^9 FLOPs") and torchvision's ``GFLOPS`` metadata call FLOPs; the total
  MACs are the model's headline number.
* **ops** (default mode) is the per-layer "FLOPs" column of that AlexNet table: the MACs, plus
  one operation per window element per output for pooling layers
  (``C x H_out x W_out x k x k``, 419,904 for AlexNet's pool1) and per input
  element for global pooling. Everything else (BN, activations, additions) is 0.
* ``true_flops=True`` turns ``ops`` into real floating-point operations:
  ``2 x MACs`` plus bias additions, pooling window elements, BatchNorm (2 per
  element: the folded inference-time scale and shift), activations (1 per
  element; softmax 3), element-wise merges (one per element per extra input),
  LRN (size + 4 per element).
* **memory** is the layer's output at float32 (4 bytes per element), in KB of
  1,024 bytes, times ``batch_size``; parameters follow PyTorch's convention
  (:func:`keras_cnnclassics.counting.layer_params`: BN running statistics are
  buffers, not parameters).
* Padding layers that only exist because Keras' convolution and pooling have no
  symmetric/``-inf`` padding argument (``ZeroPadding2D``, ``PoolPadding2D`` named
  ``<layer>_pad`` by :mod:`keras_cnnclassics.blocks`) are *folded* into the layer
  they feed, as in PyTorch where the padding is part of ``Conv2d``/``MaxPool2d``:
  no row, no memory (PyTorch never stores the padded tensor), a ``note``
  ``+<name>_pad`` on the consumer. ``fold_padding=False`` shows them as rows with
  0 operations.
* Nested models are expanded: their layers appear as ``outer/inner`` rows.
* A layer type without a cost rule raises ``ValueError`` naming it; it is never
  counted as zero silently. :func:`register_cost` adds a rule.
* A registry name is built with deferred weights (:func:`shapes_only`): shapes
  and parameter counts without allocating or initialising a single weight.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import math
from typing import Callable

import keras

from keras_cnnclassics import layers as kc_layers
from keras_cnnclassics.applications import registry_name
from keras_cnnclassics.counting import layer_params

__all__ = ["profile", "ProfileResult", "LayerRow", "Cost", "register_cost", "shapes_only"]

BYTES_PER_ELEMENT = 4  # float32, the convention of CS231n lecture 9's table


@dataclasses.dataclass(frozen=True)
class Cost:
    """What one call of a layer costs.

    ``macs``: multiply-adds of conv/dense work; ``window``: pooling operations
    (one per window element per output); ``elementwise``: the other arithmetic
    that only ``true_flops`` counts (bias, BN, activations, merges).
    """

    macs: int = 0
    window: int = 0
    elementwise: int = 0


@dataclasses.dataclass
class LayerRow:
    """One row of a profile: one call of one layer."""

    name: str
    type: str
    output_shape: tuple
    memory_kb: float
    params: int
    macs: int
    ops: int
    note: str = ""

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------
# Cost rules: (layer, input shapes, output shapes) -> Cost. Shapes include the
# batch dimension (the requested batch size), so element counts scale with it.
# ----------------------------------------------------------------------------

CostRule = Callable[[keras.layers.Layer, list, list], Cost]
_RULES: dict[type, CostRule] = {}


def register_cost(*layer_classes):
    """Decorator registering a cost rule ``fn(layer, in_shapes, out_shapes) -> Cost``."""

    def decorator(fn):
        for cls in layer_classes:
            _RULES[cls] = fn
        return fn

    return decorator


def _numel(shape) -> int:
    return math.prod(int(d) for d in shape)


def _channels(layer, shape) -> int:
    data_format = getattr(layer, "data_format", None) or keras.config.image_data_format()
    return int(shape[1] if data_format == "channels_first" else shape[-1])


# Operations per element of each activation for true FLOPs; others cost 1.
_ACTIVATION_OPS = {"linear": 0, "softmax": 3, "log_softmax": 3}


def _activation_ops(activation, elements) -> int:
    if activation is None:
        return 0
    name = getattr(activation, "__name__", None) or str(activation)
    return _ACTIVATION_OPS.get(name, 1) * elements


def _bias_and_activation(layer, elements) -> int:
    bias = elements if getattr(layer, "use_bias", False) else 0
    return bias + _activation_ops(getattr(layer, "activation", None), elements)


@register_cost(keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
def _conv_cost(layer, ins, outs):
    """Each output element: (C_in / groups) x prod(kernel) multiply-adds."""
    per_output = _channels(layer, ins[0]) // layer.groups * math.prod(layer.kernel_size)
    elements = _numel(outs[0])
    return Cost(macs=elements * per_output, elementwise=_bias_and_activation(layer, elements))


@register_cost(keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose)
def _conv_transpose_cost(layer, ins, outs):
    """Each input element is scattered to C_out x prod(kernel) outputs."""
    per_input = _channels(layer, outs[0]) * math.prod(layer.kernel_size)
    return Cost(macs=_numel(ins[0]) * per_input, elementwise=_bias_and_activation(layer, _numel(outs[0])))


@register_cost(keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)
def _depthwise_cost(layer, ins, outs):
    """Each output element: prod(kernel) multiply-adds over its own channel."""
    elements = _numel(outs[0])
    return Cost(
        macs=elements * math.prod(layer.kernel_size),
        elementwise=_bias_and_activation(layer, elements),
    )


@register_cost(keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)
def _separable_cost(layer, ins, outs):
    """Depthwise (C_in x multiplier maps) then pointwise 1x1 convolution."""
    mid = _channels(layer, ins[0]) * layer.depth_multiplier
    positions = _numel(outs[0]) // _channels(layer, outs[0])
    depthwise = positions * mid * math.prod(layer.kernel_size)
    pointwise = _numel(outs[0]) * mid
    return Cost(macs=depthwise + pointwise, elementwise=_bias_and_activation(layer, _numel(outs[0])))


@register_cost(keras.layers.Dense)
def _dense_cost(layer, ins, outs):
    """Each output element: one multiply-add per input feature."""
    elements = _numel(outs[0])
    return Cost(macs=elements * int(ins[0][-1]), elementwise=_bias_and_activation(layer, elements))


@register_cost(kc_layers.ConnectionTableConv2D)
def _connection_table_cost(layer, ins, outs):
    """LeNet-5's C3: only the connected (input map, output map) pairs are computed."""
    connections = sum(len(row) for row in layer.table)
    positions = _numel(outs[0]) // len(layer.table)
    elements = _numel(outs[0])
    return Cost(
        macs=positions * connections * layer.kernel_size**2,
        elementwise=elements + _activation_ops(layer.activation, elements),
    )


@register_cost(
    keras.layers.MaxPooling1D, keras.layers.MaxPooling2D, keras.layers.MaxPooling3D,
    keras.layers.AveragePooling1D, keras.layers.AveragePooling2D, keras.layers.AveragePooling3D,
)
def _pool_cost(layer, ins, outs):
    """One operation per window element per output (the pool1 row of CS231n lecture 9's AlexNet table)."""
    return Cost(window=_numel(outs[0]) * math.prod(layer.pool_size))


@register_cost(
    keras.layers.GlobalMaxPooling1D, keras.layers.GlobalMaxPooling2D, keras.layers.GlobalMaxPooling3D,
    keras.layers.GlobalAveragePooling1D, keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalAveragePooling3D,
)
def _global_pool_cost(layer, ins, outs):
    """The window is the whole map: one operation per input element."""
    return Cost(window=_numel(ins[0]))


@register_cost(keras.layers.UpSampling2D)
def _upsampling_cost(layer, ins, outs):
    """Nearest upsampling (an adaptive average pool whose bins are single cells): one
    window element per output, as PyTorch's bins count it."""
    if layer.interpolation != "nearest":
        raise ValueError(f"profile: no cost rule for {layer.interpolation} UpSampling2D ({layer.name}).")
    return Cost(window=_numel(outs[0]))


def _spatial_dims(layer, shape):
    data_format = getattr(layer, "data_format", None) or keras.config.image_data_format()
    return tuple(shape[2:]) if data_format == "channels_first" else tuple(shape[1:-1])


@register_cost(
    kc_layers.AdaptiveAveragePooling2D,
    keras.layers.AdaptiveAveragePooling1D, keras.layers.AdaptiveAveragePooling2D,
    keras.layers.AdaptiveAveragePooling3D, keras.layers.AdaptiveMaxPooling1D,
    keras.layers.AdaptiveMaxPooling2D, keras.layers.AdaptiveMaxPooling3D,
)
def _adaptive_pool_cost(layer, ins, outs):
    """PyTorch's adaptive bins: the sum of all bins' sizes per channel."""
    in_sizes, out_sizes = _spatial_dims(layer, ins[0]), _spatial_dims(layer, outs[0])
    window = math.prod(
        sum(sum(1 for v in row if v) for row in kc_layers.adaptive_pool_matrix(int(i), int(o)))
        for i, o in zip(in_sizes, out_sizes)
    )
    maps = _numel(outs[0]) // math.prod(int(o) for o in out_sizes)
    return Cost(window=maps * window)


@register_cost(
    keras.layers.BatchNormalization, keras.layers.Rescaling, keras.layers.Normalization,
    kc_layers.ChannelAffine,
)
def _affine_cost(layer, ins, outs):
    """Inference-time scale and shift: 2 operations per element."""
    return Cost(elementwise=2 * _numel(outs[0]))


@register_cost(
    keras.layers.Activation, keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.ELU,
    keras.layers.PReLU, keras.layers.Softmax,
)
def _activation_cost(layer, ins, outs):
    activation = getattr(layer, "activation", None)
    if activation is None:
        activation = "softmax" if isinstance(layer, keras.layers.Softmax) else "relu"
    return Cost(elementwise=_activation_ops(activation, _numel(outs[0])))


@register_cost(
    keras.layers.Add, keras.layers.Subtract, keras.layers.Multiply, keras.layers.Maximum,
    keras.layers.Minimum,
)
def _merge_cost(layer, ins, outs):
    """One operation per output element per extra input."""
    return Cost(elementwise=(len(ins) - 1) * _numel(outs[0]))


@register_cost(keras.layers.Average)
def _average_cost(layer, ins, outs):
    """n - 1 additions and one division per output element."""
    return Cost(elementwise=len(ins) * _numel(outs[0]))


@register_cost(kc_layers.FractalJoin)
def _fractal_join_cost(layer, ins, outs):
    """Inference: the mean of the joined columns (``global_column`` is not an input here)."""
    joined = sum(1 for shape in ins if shape == outs[0])
    return Cost(elementwise=joined * _numel(outs[0]))


@register_cost(kc_layers.WeightedAverage)
def _weighted_average_cost(layer, ins, outs):
    """n multiplications and n - 1 additions per output element."""
    return Cost(elementwise=(2 * len(ins) - 1) * _numel(outs[0]))


@register_cost(kc_layers.LocalResponseNormalization)
def _lrn_cost(layer, ins, outs):
    """Square, window sum (size - 1), scale and shift (2), power, division."""
    return Cost(elementwise=(layer.size + 4) * _numel(outs[0]))


@register_cost(
    keras.layers.InputLayer, keras.layers.Flatten, keras.layers.Reshape, keras.layers.Permute,
    keras.layers.Concatenate, keras.layers.Dropout, keras.layers.SpatialDropout1D,
    keras.layers.SpatialDropout2D, keras.layers.SpatialDropout3D, keras.layers.Identity,
    keras.layers.ZeroPadding1D, keras.layers.ZeroPadding2D, keras.layers.ZeroPadding3D,
    keras.layers.Cropping1D, keras.layers.Cropping2D, keras.layers.Cropping3D,
    kc_layers.PoolPadding2D, kc_layers.DropPath, kc_layers.ZeroPadChannels,
    kc_layers.FractalColumnSampler,
)
def _no_arithmetic(layer, ins, outs):
    """Data movement only (and identities at inference: dropout, drop-path)."""
    return Cost()


PADDING_LAYERS = (
    keras.layers.ZeroPadding1D, keras.layers.ZeroPadding2D, keras.layers.ZeroPadding3D,
    kc_layers.PoolPadding2D,
)


def rule_for(layer) -> CostRule | None:
    """The cost rule of ``layer``'s class or its nearest registered base class."""
    for cls in type(layer).__mro__:
        if cls is keras.layers.Layer:
            return None
        if cls in _RULES:
            return _RULES[cls]
    return None


# ----------------------------------------------------------------------------
# Graph traversal
# ----------------------------------------------------------------------------


@dataclasses.dataclass
class _Call:
    """One traced call: the layer, its rows' data, and its tensors' identities."""

    row: LayerRow
    layer: object
    cost: Cost
    input_ids: list
    output_ids: list


class _Tracer:
    """Re-runs a functional graph symbolically, recording every layer call."""

    def __init__(self):
        self.seen_layers: set[int] = set()
        self.unknown: list[str] = []

    def trace(self, model, inputs, prefix=""):
        calls: list[_Call] = []
        graph = getattr(model, "_functional", model)  # Sequential wraps a Functional
        if not hasattr(graph, "_run_through_graph"):
            raise ValueError(
                f"profile: cannot read the graph of {model.name!r} ({type(model).__name__}); "
                "only functional and Sequential models (nested included) are supported."
            )

        def operation_fn(operation):
            def record(*args, **kwargs):
                if isinstance(operation, keras.Model):
                    out, nested = self.trace(operation, args[0], f"{prefix}{operation.name}/")
                    calls.extend(nested)
                    return out
                out = operation.compute_output_spec(*args, **kwargs)
                calls.append(self._call(operation, args, kwargs, out, prefix))
                return out

            return record

        outputs = graph._run_through_graph(inputs, operation_fn=operation_fn)
        return outputs, calls

    def _call(self, layer, args, kwargs, out, prefix):
        tensors_in = [t for t in keras.tree.flatten(args) if isinstance(t, keras.KerasTensor)]
        tensors_kw = [t for t in keras.tree.flatten(kwargs) if isinstance(t, keras.KerasTensor)]
        tensors_out = keras.tree.flatten(out)
        in_shapes = [tuple(t.shape) for t in tensors_in]
        out_shapes = [tuple(t.shape) for t in tensors_out]
        rule = rule_for(layer)
        if rule is None:
            self.unknown.append(f"{prefix}{layer.name} ({type(layer).__name__})")
            cost = Cost()
        else:
            cost = rule(layer, in_shapes, out_shapes)
        first_call = id(layer) not in self.seen_layers
        self.seen_layers.add(id(layer))
        row = LayerRow(
            name=prefix + layer.name,
            type=type(layer).__name__,
            output_shape=out_shapes[0][1:] if len(out_shapes) == 1 else tuple(s[1:] for s in out_shapes),
            memory_kb=sum(_numel(s) for s in out_shapes) * BYTES_PER_ELEMENT / 1024,
            params=layer_params(layer) if first_call else 0,
            macs=cost.macs,
            ops=0,
            note="" if first_call else "shared weights (counted at first call)",
        )
        input_ids = [id(t) for t in tensors_in + tensors_kw]
        return _Call(row, layer, cost, input_ids, [id(t) for t in tensors_out])


def _fold_padding(calls, protected_ids):
    """Drop padding rows whose output feeds exactly one layer; note it on that layer."""
    consumers: dict[int, list[_Call]] = {}
    for call in calls:
        for tensor_id in call.input_ids:
            consumers.setdefault(tensor_id, []).append(call)
    kept = []
    for call in calls:
        if isinstance(call.layer, PADDING_LAYERS) and len(call.output_ids) == 1:
            users = consumers.get(call.output_ids[0], [])
            if len(users) == 1 and call.output_ids[0] not in protected_ids:
                target = users[0].row
                target.note = "; ".join(filter(None, [target.note, f"+{call.row.name}"]))
                target.params += call.row.params
                continue
        kept.append(call)
    return kept


# ----------------------------------------------------------------------------
# Result
# ----------------------------------------------------------------------------

COLUMNS = ("name", "type", "output_shape", "memory_kb", "params", "macs", "ops", "note")


@dataclasses.dataclass
class ProfileResult:
    """Rows and totals of :func:`profile`; ``str()`` gives the aligned table."""

    model_name: str
    input_shape: tuple
    batch_size: int
    true_flops: bool
    rows: list
    receptive_fields: list | None = None  # per row, with profile(receptive_field=True)

    @property
    def total_params(self) -> int:
        return sum(r.params for r in self.rows)

    @property
    def total_macs(self) -> int:
        """Multiply-adds of conv/dense layers: torchvision's GFLOPS x 1e9."""
        return sum(r.macs for r in self.rows)

    @property
    def total_ops(self) -> int:
        return sum(r.ops for r in self.rows)

    @property
    def total_memory_kb(self) -> float:
        return sum(r.memory_kb for r in self.rows)

    @property
    def gmacs(self) -> float:
        return self.total_macs / 1e9

    def totals(self) -> dict:
        return {
            "params": self.total_params,
            "macs": self.total_macs,
            "ops": self.total_ops,
            "memory_kb": self.total_memory_kb,
        }

    def row(self, name) -> LayerRow:
        """The row of the layer called ``name``."""
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(f"no layer {name!r} in the profile of {self.model_name!r}")

    def to_dicts(self) -> list[dict]:
        return [r.as_dict() for r in self.rows]

    @property
    def ops_label(self) -> str:
        return "FLOPs" if self.true_flops else "ops"

    def conventions(self) -> str:
        """The header line stating what every column means."""
        ops = (
            "FLOPs = true floating-point operations: 2 x MACs + bias, pooling windows, "
            "BN 2/elem, activations 1/elem (softmax 3), merges, LRN"
            if self.true_flops
            else "ops = MACs + pooling (1 per window element per output), CS231n lecture 9's FLOPs column"
        )
        return (
            "MACs = multiply-adds of conv/dense layers, bias excluded (the 'FLOPs' of "
            f"CS231n lecture 9, the papers and torchvision's GFLOPS); {ops}; memory = layer output at "
            "float32, KB of 1024 B; params = PyTorch's count (BN running stats excluded); "
            "padding layers folded into the layer they feed"
        ) + (f"; {_field_module().FIELD_CONVENTIONS}" if self.receptive_fields is not None else "")

    def _field_cells(self, index) -> list:
        """The receptive-field cells of row ``index`` (none without receptive_field=True)."""
        if self.receptive_fields is None:
            return []
        field = self.receptive_fields[index]
        return field.cells() if field is not None else ["-"] * 3

    def _field_headers(self) -> list:
        return list(_field_module().FIELD_HEADERS) if self.receptive_fields is not None else []

    def title(self) -> str:
        shape = "x".join("?" if d is None else str(d) for d in self.input_shape)
        return (
            f"{self.model_name}: input {shape}, batch {self.batch_size}, "
            f"{keras.config.image_data_format()}"
        )

    def _cells(self, thousands=True):
        fmt_int = (lambda v: f"{v:,}") if thousands else str
        fmt_kb = (lambda v: f"{v:,.2f}") if thousands else (lambda v: f"{v:.2f}")
        body = [
            [r.name, r.type, _shape_text(r.output_shape), fmt_kb(r.memory_kb),
             fmt_int(r.params), fmt_int(r.macs), fmt_int(r.ops), *self._field_cells(i), r.note]
            for i, r in enumerate(self.rows)
        ]
        total = ["TOTAL", f"{len(self.rows)} layers", "", fmt_kb(self.total_memory_kb),
                 fmt_int(self.total_params), fmt_int(self.total_macs), fmt_int(self.total_ops),
                 *[""] * len(self._field_headers()), ""]
        return body, total

    def headers(self):
        return ["layer", "type", "output", "memory (KB)", "params", "MACs", self.ops_label,
                *self._field_headers(), "note"]

    def to_csv(self) -> str:
        """CSV with a header row, one row per layer and a TOTAL row (plain numbers)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        fields = [h.lower() for h in self._field_headers()]
        writer.writerow(list(COLUMNS[:-2]) + [self.ops_label.lower(), *fields, "note"])
        body, total = self._cells(thousands=False)
        writer.writerows(body + [total])
        return buffer.getvalue()

    def to_markdown(self) -> str:
        """A Markdown table with the conventions above it and a bold totals row."""
        body, total = self._cells()
        lines = [f"**{self.title()}**", "", f"_{self.conventions()}._", ""]
        lines.append("| " + " | ".join(self.headers()) + " |")
        numeric = 4 + len(self._field_headers())
        lines.append("|" + "|".join(["---", "---", "---"] + ["---:"] * numeric + ["---"]) + "|")
        for cells in body:
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        lines.append("| " + " | ".join(f"**{c}**" if c else "" for c in total) + " |")
        return "\n".join(lines) + "\n"

    def to_table(self) -> str:
        """An aligned terminal table: numbers right-aligned with thousands separators."""
        body, total = self._cells()
        headers = self.headers()
        widths = [max(len(row[i]) for row in [headers, total, *body]) for i in range(len(headers))]
        right = set(range(3, 7 + len(self._field_headers())))

        def line(cells):
            parts = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))]
            return "  ".join(parts).rstrip()

        rule = "-" * len(line(["-" * w for w in widths]))
        return "\n".join(
            [self.title(), _wrap(self.conventions(), len(rule)), rule, line(headers), rule,
             *(line(c) for c in body), rule, line(total)]
        ) + "\n"

    def __str__(self):
        return self.to_table()


def _shape_text(shape) -> str:
    if shape and isinstance(shape[0], tuple):
        return ", ".join(_shape_text(s) for s in shape)
    return "x".join("?" if d is None else str(d) for d in shape)


def _wrap(text, width):
    import textwrap

    return "\n".join(textwrap.wrap(text, max(width, 60)))


# ----------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------


@contextlib.contextmanager
def shapes_only():
    """Build layers without allocating or initialising their weights.

    Variables created inside a ``keras.StatelessScope`` are *deferred*: they
    know their shape but hold no value. The profiler needs shapes only, so a
    registry model is built this way (VGG-16: about 0.3 s instead of 10-60 s of
    random initialisation), and the deferred variables are forgotten on exit so
    nothing initialises them later.
    """
    from keras.src.backend.common import global_state

    key = "uninitialized_variables"
    pending = list(global_state.get_global_attribute(key) or [])
    try:
        with keras.StatelessScope(initialize_variables=False):
            yield
    finally:
        global_state.set_global_attribute(key, pending)


def _resolve_model(model_or_name, input_shape, model_kwargs):
    if isinstance(model_or_name, str):
        from keras_cnnclassics.registry import get_model

        if model_kwargs.get("weights") is not None:
            raise ValueError("profile: weights are not needed; the profile depends on shapes only.")
        with shapes_only():
            model = get_model(model_or_name, input_shape=input_shape, **model_kwargs)
        return model, None
    if model_kwargs:
        raise ValueError(
            f"profile: model options {sorted(model_kwargs)} only apply to a registry name."
        )
    if not isinstance(model_or_name, keras.Model):
        raise ValueError(
            f"profile: expected a keras.Model or a registry name; got {type(model_or_name).__name__}."
        )
    return model_or_name, input_shape


def _input_specs(model, input_shape, batch_size):
    if len(model.inputs) != 1 and input_shape is not None:
        raise ValueError("profile: input_shape only applies to single-input models.")
    specs = []
    for tensor in model.inputs:
        shape = tuple(tensor.shape[1:])
        if input_shape is not None:
            wanted = tuple(input_shape)
            if len(wanted) != len(shape) or any(s is not None and s != w for s, w in zip(shape, wanted)):
                raise ValueError(
                    f"profile: {model.name!r} was built for inputs {shape}; input_shape "
                    f"{wanted} can only fill its None dimensions (rebuild the model, or pass "
                    "a registry name)."
                )
            shape = wanted
        if any(d is None for d in shape):
            raise ValueError(
                f"profile: input shape {shape} of {model.name!r} has unknown dimensions; "
                "pass input_shape=(H, W, C)."
            )
        specs.append(keras.KerasTensor((batch_size, *shape), dtype=tensor.dtype))
    return specs


def profile(
    model_or_name,
    input_shape=None,
    batch_size=1,
    true_flops=False,
    fold_padding=True,
    receptive_field=False,
    **model_kwargs,
) -> ProfileResult:
    """Per-layer output shape, memory, parameters and multiply-adds of a model.

    Args:
        model_or_name: a ``keras.Model`` (functional or Sequential, nested models
            included) or a registry name, built with ``input_shape`` and
            ``model_kwargs`` (e.g. ``classes``, ``include_top``, family options).
        input_shape: the input shape without batch, in the configured data
            format; for a model object it may only fill dimensions left None.
        batch_size: memory and operations are for this many images.
        true_flops: count real floating-point operations (2 x MACs plus bias,
            BN, activation and element-wise work) in the ``ops`` column.
        fold_padding: fold padding-only layers into the layer they feed.
        receptive_field: add the columns RF, jump and start
            (:mod:`keras_cnnclassics.receptive_fields`).

    Returns:
        A :class:`ProfileResult`; ``.rows``, ``.to_dicts()``, ``.to_csv()``,
        ``.to_markdown()``, ``.to_table()``, ``.total_macs`` ...

    See the module docstring for the conventions. Raises ``ValueError`` naming any
    layer whose type has no cost rule.
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"profile: batch_size must be a positive integer; got {batch_size!r}.")
    model, shape = _resolve_model(model_or_name, input_shape, model_kwargs)
    specs = _input_specs(model, shape, batch_size)
    tracer = _field_module().FieldTracer() if receptive_field else _Tracer()
    outputs, calls = tracer.trace(model, specs[0] if len(specs) == 1 else specs)
    if tracer.unknown:
        raise ValueError(
            "profile: no cost rule for layer(s) "
            + ", ".join(tracer.unknown)
            + "; add one with keras_cnnclassics.profiler.register_cost(LayerClass)."
        )
    input_rows = [
        LayerRow(
            name=t._keras_history.operation.name if hasattr(t, "_keras_history") else f"input_{i}",
            type="InputLayer",
            output_shape=tuple(s.shape[1:]),
            memory_kb=_numel(s.shape) * BYTES_PER_ELEMENT / 1024,
            params=0,
            macs=0,
            ops=0,
        )
        for i, (t, s) in enumerate(zip(model.inputs, specs))
    ]
    if fold_padding:
        calls = _fold_padding(calls, {id(t) for t in keras.tree.flatten(outputs)})
    for call in calls:
        cost = call.cost
        call.row.ops = (
            2 * cost.macs + cost.window + cost.elementwise if true_flops else cost.macs + cost.window
        )
    rows = input_rows + [c.row for c in calls]
    return ProfileResult(
        model_name=registry_name(model) or model.name,
        input_shape=tuple(specs[0].shape[1:]),
        batch_size=batch_size,
        true_flops=bool(true_flops),
        rows=rows,
        receptive_fields=tracer.fields(rows) if receptive_field else None,
    )


def _field_module():
    """:mod:`keras_cnnclassics.receptive_fields`, imported on first use (it imports this module)."""
    from keras_cnnclassics import receptive_fields

    return receptive_fields
