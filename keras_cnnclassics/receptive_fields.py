"""Theoretical receptive fields of every layer, read from a Keras graph.

Araujo, Norris and Sim, "Computing Receptive Fields of Convolutional Neural
Networks", Distill 2019. Per spatial axis, a layer with kernel ``k``, dilation
``d`` (effective kernel ``k' = d (k - 1) + 1``), stride ``s`` and padding ``p``
before the first input cell maps the field of its input units to its own:

* size ``r_out = r_in + (k' - 1) j_in``;
* jump (effective stride, input pixels between neighbouring units) ``j_out = j_in s``;
* the first unit's field spans input pixels ``[u_in - p j_in, v_in + (k' - 1 - p) j_in]``
  (pixel ``i`` centred at ``i``), so its centre ("start") moves by ``((k' - 1) / 2 - p) j_in``.

Conventions:

* Sizes are *theoretical and unclipped*: a field may extend over the zero padding
  past the image border (AlexNet's last pool sees 195 px of a 224 px image).
* Padding comes from the graph: explicit ``ZeroPadding2D``/``PoolPadding2D`` layers
  (how :mod:`keras_cnnclassics.blocks` writes PyTorch's symmetric padding and
  ``ceil_mode``), Keras' ``"same"`` (TensorFlow's rule for the layer's input size),
  cropping as negative padding. ``ceil_mode`` pads after the last cell only, so it
  never moves the first unit.
* Global pooling and ``Flatten`` are windows over the whole map: every unit after them
  sees the whole input (``whole_input``, no longer ``positional``: the table shows no
  jump); a merge with such a path (a squeeze-and-excitation gate) is ``whole_input``
  too, and its size, jump, start and alignment are those of its positional paths.
* Multi-path graphs (residual adds, Inception and DenseNet concatenations, SE
  multiplies): the field of a merge is the union of its inputs' fields, i.e. the
  largest field over all paths when they are aligned. Paths are *aligned* when
  their fields share centre and jump (Araujo et al., Sec. "Alignment"); a unit is
  ``aligned`` when every path to it is, and the merge where paths first disagree
  says how in ``note``.
* Nested models are expanded (``outer/inner`` rows); a layer type without a rule
  raises ``ValueError`` naming it: :func:`register_field_rule` adds one.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import Callable

import keras

from keras_cnnclassics import layers as kc_layers
from keras_cnnclassics._fastpath import same_padding
from keras_cnnclassics.profiler import _input_specs, _resolve_model, _Tracer

__all__ = ["receptive_field", "ReceptiveField", "ReceptiveFieldTable", "register_field_rule"]

FIELD_HEADERS = ("RF", "jump", "start")
FIELD_CONVENTIONS = (
    "RF = theoretical receptive field of one unit in input pixels, unclipped (HxW where they "
    "differ; '(whole)': also sees the whole input through global pooling/Flatten/SE); jump = "
    "effective stride in input pixels; start = centre of the first unit's field (pixel i at i)"
)


@dataclasses.dataclass(frozen=True)
class _Span:
    """Exact working form of a field, per spatial axis: the first unit's edges and the jump."""

    left: tuple
    right: tuple
    jump: tuple
    aligned: bool = True
    whole_input: bool = False
    positional: bool = True
    note: str = ""

    def centre(self):
        return tuple((u + v) / 2 for u, v in zip(self.left, self.right))

    def moved(self, before, after, stride=None, **changes):
        """Edges moved by ``before``/``after`` input cells per axis, jump times ``stride``."""
        stride = stride or (1,) * len(self.jump)
        return dataclasses.replace(
            self,
            left=tuple(u - b * j for u, b, j in zip(self.left, before, self.jump)),
            right=tuple(v + a * j for v, a, j in zip(self.right, after, self.jump)),
            jump=tuple(j * Fraction(s) for j, s in zip(self.jump, stride)),
            note="",
            **changes,
        )


def _pixel(axes) -> _Span:
    """The field of an input pixel: itself, jump 1."""
    zero = (Fraction(0),) * axes
    return _Span(zero, zero, (Fraction(1),) * axes)


def _number(value):
    value = Fraction(value)
    return int(value) if value.denominator == 1 else float(value)


@dataclasses.dataclass(frozen=True)
class ReceptiveField:
    """The receptive field of one layer's units, per spatial axis (H, W).

    ``size``: theoretical (unclipped) field in input pixels; ``jump``: effective
    stride; ``start``: centre of the first unit's field, input pixel ``i`` centred
    at ``i``; ``left``/``right``: the first unit's first and last input pixel (unit
    ``n`` adds ``n * jump``); ``aligned``: every path to the unit has the same
    centre and jump; ``whole_input``: a global path (global pooling, Flatten, an SE
    gate) reaches it; ``positional``: some path keeps positions (False after global
    pooling or Flatten, where ``jump`` is the whole map's span); ``note``: how the
    paths disagree at the merge where they first do.
    """

    size: tuple
    jump: tuple
    start: tuple
    left: tuple
    right: tuple
    aligned: bool = True
    whole_input: bool = False
    positional: bool = True
    note: str = ""

    @classmethod
    def from_span(cls, span: _Span) -> "ReceptiveField":
        return cls(
            size=tuple(_number(v - u + 1) for u, v in zip(span.left, span.right)),
            jump=tuple(_number(j) for j in span.jump),
            start=tuple(_number(c) for c in span.centre()),
            left=tuple(_number(u) for u in span.left),
            right=tuple(_number(v) for v in span.right),
            aligned=span.aligned,
            whole_input=span.whole_input,
            positional=span.positional,
            note=span.note,
        )

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def cells(self) -> list:
        """The RF, jump and start cells of a table row."""
        size = _axes_text(self.size) + (" (whole)" if self.whole_input else "")
        jump = _axes_text(self.jump) if self.positional else "-"
        return [size, jump, _axes_text(self.start)]


def _axes_text(values) -> str:
    return f"{values[0]:g}" if len(set(values)) == 1 else "x".join(f"{v:g}" for v in values)


# ----------------------------------------------------------------------------
# Rules: (layer, input spans, input shapes) -> span of the outputs. Shapes
# include the batch dimension. A span of None marks a tensor without positions.
# ----------------------------------------------------------------------------

FieldRule = Callable[[keras.layers.Layer, list, list], "_Span | None"]
_RULES: dict[type, FieldRule] = {}


def register_field_rule(*layer_classes):
    """Decorator registering ``fn(layer, in_spans, in_shapes) -> span`` for layer classes."""

    def decorator(fn):
        for cls in layer_classes:
            _RULES[cls] = fn
        return fn

    return decorator


def _spatial(layer, shape):
    data_format = getattr(layer, "data_format", None) or keras.config.image_data_format()
    return tuple(shape[2:]) if data_format == "channels_first" else tuple(shape[1:-1])


def _single(layer, spans):
    if len(spans) != 1:
        raise ValueError(f"receptive_field: {layer.name} expects one positional input; got {len(spans)}.")
    return spans[0]


def _window(span, sizes, kernel, strides, dilation, padding):
    """A convolution or pooling window: Araujo et al.'s recurrence for each axis."""
    effective = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    if padding == "same":
        before = [same_padding(n, k, s)[0] for n, k, s in zip(sizes, effective, strides)]
    elif padding == "causal":
        before = [k - 1 for k in effective]
    else:
        before = [0] * len(effective)
    return span.moved(before, [k - 1 - b for k, b in zip(effective, before)], strides)


@register_field_rule(
    keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D,
    keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv1D, keras.layers.SeparableConv2D,
)
def _conv_field(layer, spans, shapes):
    return _window(
        _single(layer, spans), _spatial(layer, shapes[0]), layer.kernel_size, layer.strides,
        layer.dilation_rate, layer.padding,
    )


@register_field_rule(
    keras.layers.MaxPooling1D, keras.layers.MaxPooling2D, keras.layers.MaxPooling3D,
    keras.layers.AveragePooling1D, keras.layers.AveragePooling2D, keras.layers.AveragePooling3D,
)
def _pool_field(layer, spans, shapes):
    ones = (1,) * len(layer.pool_size)
    return _window(
        _single(layer, spans), _spatial(layer, shapes[0]), layer.pool_size, layer.strides, ones,
        layer.padding,
    )


@register_field_rule(kc_layers.ConnectionTableConv2D)
def _connection_table_field(layer, spans, shapes):
    """LeNet-5's C3: a square ``valid`` convolution of stride 1."""
    k = layer.kernel_size
    return _window(_single(layer, spans), _spatial(layer, shapes[0]), (k, k), (1, 1), (1, 1), "valid")


def _pairs(padding):
    return [(p, p) if isinstance(p, int) else tuple(p) for p in padding]


@register_field_rule(
    keras.layers.ZeroPadding1D, keras.layers.ZeroPadding2D, keras.layers.ZeroPadding3D,
    kc_layers.PoolPadding2D,
)
def _padding_field(layer, spans, shapes):
    """Output cell ``i`` is input cell ``i - before``: the field moves, its size stays."""
    pads = _pairs(layer.padding if isinstance(layer.padding, tuple) else (layer.padding,))
    before = [b for b, _ in pads]
    return _single(layer, spans).moved(before, [-b for b in before])


@register_field_rule(keras.layers.Cropping1D, keras.layers.Cropping2D, keras.layers.Cropping3D)
def _cropping_field(layer, spans, shapes):
    """Output cell ``i`` is input cell ``i + before``."""
    before = [b for b, _ in _pairs(layer.cropping)]
    return _single(layer, spans).moved([-b for b in before], before)


def _whole_map(layer, span, shape):
    """A window over the whole map (global pooling, Flatten): every unit sees all of it."""
    sizes = _spatial(layer, shape)
    return span.moved([0] * len(sizes), [n - 1 for n in sizes], sizes, whole_input=True, positional=False)


@register_field_rule(
    keras.layers.GlobalMaxPooling1D, keras.layers.GlobalMaxPooling2D, keras.layers.GlobalMaxPooling3D,
    keras.layers.GlobalAveragePooling1D, keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalAveragePooling3D,
)
def _global_pool_field(layer, spans, shapes):
    return _whole_map(layer, _single(layer, spans), shapes[0])


@register_field_rule(keras.layers.Flatten)
def _flatten_field(layer, spans, shapes):
    span = _single(layer, spans)
    if not span.positional or len(shapes[0]) <= 2:
        return span
    return _whole_map(layer, span, shapes[0])


@register_field_rule(keras.layers.Dense)
def _dense_field(layer, spans, shapes):
    """A Dense layer on features sees what they see; on a channels_last map it is a 1x1 conv."""
    span = _single(layer, spans)
    if len(shapes[0]) > 2 and span.positional and keras.config.image_data_format() != "channels_last":
        raise ValueError(
            f"receptive_field: Dense layer {layer.name} acts on the width axis of a "
            "channels_first map; flatten or pool the map first."
        )
    return span


@register_field_rule(
    keras.layers.Activation, keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.ELU,
    keras.layers.PReLU, keras.layers.Softmax, keras.layers.BatchNormalization,
    keras.layers.LayerNormalization, keras.layers.Rescaling, keras.layers.Normalization,
    keras.layers.Dropout, keras.layers.SpatialDropout1D, keras.layers.SpatialDropout2D,
    keras.layers.SpatialDropout3D, keras.layers.Identity, kc_layers.ChannelAffine,
    kc_layers.LocalResponseNormalization, kc_layers.DropPath, kc_layers.ZeroPadChannels,
)
def _pointwise_field(layer, spans, shapes):
    """Per position (element-wise or across channels only): the field is unchanged."""
    return _single(layer, spans)


@register_field_rule(kc_layers.FractalColumnSampler)
def _control_field(layer, spans, shapes):
    """A per-sample control value without positions (FractalNet's global drop-path column)."""
    return None


@register_field_rule(keras.layers.UpSampling1D, keras.layers.UpSampling2D, keras.layers.UpSampling3D)
def _upsampling_field(layer, spans, shapes):
    """Nearest upsampling by ``f``: unit ``i`` copies input unit ``i // f`` (jump / f)."""
    if getattr(layer, "interpolation", "nearest") != "nearest":
        raise ValueError(
            f"receptive_field: no rule for {layer.interpolation} upsampling ({layer.name}); "
            "only nearest upsampling has one."
        )
    size = layer.size if isinstance(layer.size, tuple) else (layer.size,)
    none = [0] * len(size)
    return _single(layer, spans).moved(none, none, [Fraction(1, f) for f in size])


@register_field_rule(
    kc_layers.AdaptiveAveragePooling2D,
    keras.layers.AdaptiveAveragePooling1D, keras.layers.AdaptiveAveragePooling2D,
    keras.layers.AdaptiveAveragePooling3D, keras.layers.AdaptiveMaxPooling1D,
    keras.layers.AdaptiveMaxPooling2D, keras.layers.AdaptiveMaxPooling3D,
)
def _adaptive_pool_field(layer, spans, shapes):
    """PyTorch's bins ``[floor(i n / o), ceil((i + 1) n / o))``: the first bin, mean jump ``n / o``."""
    sizes = _spatial(layer, shapes[0])
    outs = layer.output_size if isinstance(layer.output_size, tuple) else (layer.output_size,) * len(sizes)
    first_bin = [-(-n // o) for n, o in zip(sizes, outs)]
    span = _single(layer, spans).moved([0] * len(sizes), [b - 1 for b in first_bin],
                                       [Fraction(n, o) for n, o in zip(sizes, outs)])
    if any(n % o for n, o in zip(sizes, outs)):
        return dataclasses.replace(span, note="uneven adaptive bins: first bin, mean jump")
    return span


@register_field_rule(
    keras.layers.Add, keras.layers.Subtract, keras.layers.Multiply, keras.layers.Average,
    keras.layers.Maximum, keras.layers.Minimum, keras.layers.Concatenate,
    kc_layers.FractalJoin, kc_layers.WeightedAverage,
)
def _merge_field(layer, spans, shapes):
    """The union of the inputs' fields; flags paths that disagree in centre or jump."""
    positional = [s for s in spans if s.positional] or spans
    left = tuple(map(min, zip(*(s.left for s in positional))))
    right = tuple(map(max, zip(*(s.right for s in positional))))
    centres = sorted({s.centre() for s in positional})
    jumps = sorted({s.jump for s in positional})
    agree = len(centres) == 1 and len(jumps) == 1
    note = "" if agree else (
        "paths disagree: centres " + ", ".join(_axes_text([_number(c) for c in cs]) for cs in centres)
        + "; jumps " + ", ".join(_axes_text([_number(j) for j in js]) for js in jumps)
    )
    return _Span(
        left=left, right=right, jump=tuple(map(max, zip(*jumps))),
        aligned=agree and all(s.aligned for s in spans),
        whole_input=any(s.whole_input for s in spans),
        positional=any(s.positional for s in spans), note=note,
    )


def rule_for(layer) -> FieldRule | None:
    """The field rule of ``layer``'s class or its nearest registered base class."""
    for cls in type(layer).__mro__:
        if cls in _RULES:
            return _RULES[cls]
    return None


# ----------------------------------------------------------------------------
# Graph traversal: the profiler's tracer, following the spans along the tensors
# ----------------------------------------------------------------------------


class FieldTracer(_Tracer):
    """The profiler's symbolic re-run of a graph, recording each call's field."""

    def __init__(self):
        super().__init__()
        self.spans: dict[int, _Span | None] = {}  # id(tensor) -> its span
        self.alive: list = []  # keeps traced tensors alive, so their ids stay unique
        self.by_row: dict[int, _Span | None] = {}  # id(row) -> its span
        self.no_rule: list[str] = []

    def trace(self, model, inputs, prefix=""):
        for tensor in keras.tree.flatten(inputs):
            if id(tensor) not in self.spans:
                axes = len(tensor.shape) - 2
                if axes < 1:
                    raise ValueError(
                        f"receptive_field: input {tensor.shape} has no spatial axes; "
                        "receptive fields need image (or sequence) inputs."
                    )
                self._keep(tensor, _pixel(axes))
        return super().trace(model, inputs, prefix)

    def _keep(self, tensor, span):
        self.alive.append(tensor)
        self.spans[id(tensor)] = span

    def _call(self, layer, args, kwargs, out, prefix):
        call = super()._call(layer, args, kwargs, out, prefix)
        tensors = [t for t in keras.tree.flatten((args, kwargs)) if isinstance(t, keras.KerasTensor)]
        known = [(t, self.spans[id(t)]) for t in tensors if self.spans.get(id(t)) is not None]
        rule = rule_for(layer)
        span = None
        if rule is None:
            self.no_rule.append(f"{prefix}{layer.name} ({type(layer).__name__})")
        elif known:
            span = rule(layer, [s for _, s in known], [tuple(t.shape) for t, _ in known])
        for tensor in keras.tree.flatten(out):
            self._keep(tensor, span)
        self.by_row[id(call.row)] = span
        return call

    def check_rules(self):
        if self.no_rule:
            raise ValueError(
                "receptive_field: no rule for layer(s) " + ", ".join(self.no_rule)
                + "; add one with keras_cnnclassics.receptive_fields.register_field_rule(LayerClass)."
            )

    def fields(self, rows) -> list:
        """The field of each profile row (input rows: one pixel); merges note disagreements."""
        self.check_rules()
        pixel = self.spans[id(self.alive[0])]
        fields = []
        for row in rows:
            span = self.by_row.get(id(row), pixel if row.type == "InputLayer" else None)
            fields.append(None if span is None else ReceptiveField.from_span(span))
            if span is not None and span.note:
                row.note = "; ".join(filter(None, [row.note, span.note]))
        return fields


# ----------------------------------------------------------------------------
# Public entry point
# ----------------------------------------------------------------------------


@dataclasses.dataclass
class ReceptiveFieldTable:
    """The field of every layer of a model; ``table["layer"]`` is one ``ReceptiveField``."""

    model_name: str
    input_shape: tuple
    rows: list  # (layer name, layer type, ReceptiveField or None)

    def __getitem__(self, name) -> ReceptiveField:
        for row_name, _, field in self.rows:
            if row_name == name:
                return field
        raise KeyError(f"no layer {name!r} in {self.model_name!r}")

    def to_dicts(self) -> list[dict]:
        return [
            {"name": name, "type": kind, **(field.as_dict() if field else {})}
            for name, kind, field in self.rows
        ]

    def to_table(self) -> str:
        """An aligned terminal table: layer, type, RF, jump, start, note."""
        headers = ["layer", "type", *FIELD_HEADERS, "note"]
        body = [
            [name, kind, *(field.cells() if field else ["-"] * 3), field.note if field else ""]
            for name, kind, field in self.rows
        ]
        widths = [max(len(r[i]) for r in [headers, *body]) for i in range(len(headers))]

        def line(cells):
            return "  ".join(c.rjust(w) if 2 <= i <= 4 else c.ljust(w)
                             for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

        shape = "x".join(str(d) for d in self.input_shape)
        return "\n".join([f"{self.model_name}: input {shape}", FIELD_CONVENTIONS,
                          line(headers), *(line(r) for r in body)]) + "\n"

    def __str__(self):
        return self.to_table()


def _table(model_or_name, input_shape, model_kwargs) -> ReceptiveFieldTable:
    from keras_cnnclassics.applications import registry_name

    try:
        model, shape = _resolve_model(model_or_name, input_shape, model_kwargs)
        specs = _input_specs(model, shape, 1)
    except ValueError as error:
        raise ValueError(str(error).replace("profile:", "receptive_field:", 1)) from None
    tracer = FieldTracer()
    _, calls = tracer.trace(model, specs[0] if len(specs) == 1 else specs)
    tracer.check_rules()
    rows = [(c.row.name, c.row.type, tracer.by_row[id(c.row)]) for c in calls]
    inputs = [(t.name, "InputLayer", tracer.spans[id(s)]) for t, s in zip(model.inputs, specs)]
    return ReceptiveFieldTable(
        model_name=registry_name(model) or model.name,
        input_shape=tuple(specs[0].shape[1:]),
        rows=[(n, k, s and ReceptiveField.from_span(s)) for n, k, s in inputs + rows],
    )


def receptive_field(model_or_name, layer=None, input_shape=None, **model_kwargs):
    """Theoretical receptive field, jump and start of a layer (or every layer) of a model.

    Araujo et al., "Computing Receptive Fields of Convolutional Neural Networks",
    Distill 2019; see the module docstring for the conventions (unclipped sizes,
    union over paths, alignment).

    Args:
        model_or_name: a functional or Sequential ``keras.Model`` or a registry name
            (built without weights, shapes only, from ``input_shape`` and ``model_kwargs``).
        layer: a layer name (``outer/inner`` inside nested models); None for all layers.
        input_shape: input shape without batch; "same" padding depends on it.

    Returns:
        A :class:`ReceptiveField` for ``layer``, else a :class:`ReceptiveFieldTable`.
    """
    table = _table(model_or_name, input_shape, model_kwargs)
    if layer is None:
        return table
    names = [name for name, _, _ in table.rows]
    if layer not in names:
        raise ValueError(
            f"receptive_field: no layer {layer!r} in {table.model_name!r}; its layers include "
            f"{', '.join(names[-5:])} (receptive_field(model) lists them all)."
        )
    field = table[layer]
    if field is None:
        raise ValueError(f"receptive_field: layer {layer!r} outputs no positional data.")
    return field
