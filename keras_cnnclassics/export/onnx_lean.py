"""Lean ONNX graphs: the exporter's file through ONNX Runtime's offline optimisation and onnxslim.

Keras' ONNX export on the PyTorch backend traces every layer as Keras runs it:
``Cast`` nodes from float32 to float32, ``Identity`` nodes, shape subgraphs that
compute constant paddings, BatchNormalization as ``Sub``/``Mul``/``Add``, and a
pair of layout ``Transpose`` nodes around every NHWC convolution and pooling.
:func:`lean_onnx` rewrites such a file with maintained tools:

1. ONNX Runtime's basic graph optimisations (constant folding, redundant node
   elimination, its transpose optimizer, MatMul + Add to Gemm), saved as a
   model: the level whose output holds standard ONNX operators only and runs
   anywhere; twice, around two layout rewrites (:func:`layout_rewrites`) that
   leave one ``Transpose``, at the input;
2. operator rewrites (:func:`operator_rewrites`): BatchNorm back into one
   ``BatchNormalization`` node, paddings into the pool after them;
3. onnxslim (``onnxslim.slim``): BatchNormalization and ``Pad`` folded into the
   ``Conv`` before and after them, shape-aware constant folding.

Every rewrite here is exact: it computes the same numbers by the same IEEE
operations, or (BatchNorm folded into a ``Conv``) within float32 rounding.
What stays separate is what cannot fold: DenseNet's pre-activation BatchNorm
(one ``BatchNormalization`` node, as in torchvision's export), and a
``Transpose`` before a ``Flatten`` (NHWC order, which the Dense weights after it
expect). The exported file is
verified against the Keras model after this pass, as before.
``CNNCLASSICS_ONNX_LEAN=0`` keeps the exporter's graph as written.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

ENVIRONMENT_SWITCH = "CNNCLASSICS_ONNX_LEAN"
# NHWC <-> NCHW permutations of a rank-4 image tensor.
TO_NCHW = (0, 3, 1, 2)
TO_NHWC = (0, 2, 3, 1)


def lean_enabled():
    """The environment switch: ``CNNCLASSICS_ONNX_LEAN`` unset, ``1`` or ``0``."""
    value = os.environ.get(ENVIRONMENT_SWITCH, "1").strip() or "1"
    if value not in ("0", "1"):
        raise ValueError(
            f"{ENVIRONMENT_SWITCH}={value!r}: set it to 1 (lean graphs, the default) or 0 "
            "(the exporter's graph as written)."
        )
    return value == "1"


def lean_onnx(path):
    """Rewrite the float32 ONNX file at ``path`` in place as a lean graph (module docstring)."""
    import onnx

    slim = _onnxslim()
    with tempfile.TemporaryDirectory(prefix="cnnclassics-onnx-") as tmp:
        folded = os.path.join(tmp, "folded.onnx")
        ort_basic_optimization(path, folded)  # constants first: the rewrites read them
        model = onnx.load(folded)
        layout_rewrites(model)
        ort_basic_optimization(model.SerializeToString(), folded)
        model = onnx.load(folded)
    operator_rewrites(model)
    model = slim(model)
    drop_unused_opsets(model)
    onnx.checker.check_model(model)
    onnx.save(model, path)


def _onnxslim():
    try:
        from onnxslim import slim
    except ImportError:
        raise ImportError(
            "onnxslim is not installed (it folds BatchNorm and constants in ONNX exports): "
            f"pip install onnxslim (or keras-cnnclassics[export]), or set {ENVIRONMENT_SWITCH}=0 "
            "for the exporter's graph as written."
        ) from None
    return slim


def ort_basic_optimization(source, target):
    """ONNX Runtime's basic graph optimisations of ``source`` (a path or bytes), saved as the model ``target``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = target
    options.log_severity_level = 3
    ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def drop_unused_opsets(model):
    """Keep only the operator sets the nodes use (ONNX Runtime declares all of its own)."""
    used = {node.domain for node in model.graph.node} | {""}
    keep = [opset for opset in model.opset_import if opset.domain in used]
    del model.opset_import[:]
    model.opset_import.extend(keep)


# ---------------------------------------------------------------- exact rewrites


def layout_rewrites(model):
    """Two rewrites after which ONNX Runtime's transpose optimizer leaves one layout ``Transpose``.

    * ``Pad`` then ``Transpose`` (the NHWC stem padding before the first
      convolution) becomes ``Transpose`` then ``Pad`` of the permuted paddings,
      which onnxslim folds into the ``Conv``;
    * a spatial ``ReduceMean`` over axes (1, 2) of an NHWC tensor (the global
      average pool) becomes a ``ReduceMean`` over (2, 3) of its NCHW transpose,
      which the optimizer cancels against the exporter's transposes (it pushes
      none through a ``ReduceMean`` that drops the reduced axes).
    """
    import onnx

    shapes, readers = _shapes(model), _readers(model)
    nodes = []
    for node in model.graph.node:
        before, after = [], []
        if node.op_type == "ReduceMean" and _rank4(shapes, node.input[0]):
            before, after = _channels_first_mean(model, node)
        elif node.op_type == "Pad" and _rank4(shapes, node.input[0]):
            _transpose_first(model, node, readers.get(node.output[0], []))
        nodes += [*before, _copy(node), *after]
    del model.graph.node[:]
    model.graph.node.extend(nodes)


def operator_rewrites(model):
    """Rewrites of the NCHW graph that let onnxslim fold BatchNorm, and pools take their padding.

    * BatchNorm as Keras computes it, ``(x - mean) * scale + beta`` (``Sub``,
      ``Mul``, ``Add`` of per-channel constants), becomes one
      ``BatchNormalization`` (variance 1, epsilon 0: the same operations);
    * ``Pad`` with zeros before a pool becomes the pool's own padding: a max
      pool's after a ReLU (ONNX pads a max pool with -inf; after a ReLU no
      window's maximum is below zero), an average pool's counted in the mean;
    * ``Pad`` replicating the bottom/right edge before a max pool (Keras' uneven
      "same" padding) becomes the pool's ``ceil_mode`` where that is exact.
    """
    shapes, readers = _shapes(model), _readers(model)
    producers = {name: node for node in model.graph.node for name in node.output}
    outputs = {o.name for o in model.graph.output}
    removed = set()  # (operator, first output) of each node a rewrite replaced
    for node in model.graph.node:
        if node.op_type == "Sub" and _rank4(shapes, node.input[0]):
            removed.update(_as_batchnorm(model, node, readers, outputs))
        elif node.op_type in ("MaxPool", "AveragePool") and _rank4(shapes, node.input[0]):
            pad = producers.get(node.input[0])
            if pad is not None and pad.op_type == "Pad" and _only_reader(pad.output[0], readers, outputs, node.op_type) is node:
                removed.update(_padding_into_pool(model, node, pad, producers.get(pad.input[0]))
                               or _edge_padding_as_ceil_mode(model, node, pad, shapes.get(pad.input[0])))
    keep = [_copy(node) for node in model.graph.node if (node.op_type, node.output[0]) not in removed]
    del model.graph.node[:]
    model.graph.node.extend(keep)


def _readers(model):
    """The nodes that read each tensor, by name."""
    readers = {}
    for node in model.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    return readers


def _only_reader(name, readers, outputs, op_type):
    """The one node reading ``name`` if it is an ``op_type`` (and ``name`` no graph output), else None."""
    found = readers.get(name, [])
    return found[0] if len(found) == 1 and found[0].op_type == op_type and name not in outputs else None


def _per_channel(model, node, data):
    """The constant input of ``node`` (the other one is ``data``) as (C,) when shaped (C, 1, 1) or (1, C, 1, 1)."""
    names = [name for name in node.input if name != data]
    constant = _initializer(model, names[0]) if len(names) == 1 and len(node.input) == 2 else None
    if constant is None or constant.dtype != np.float32 or constant.ndim not in (3, 4):
        return None
    if constant.shape[-2:] != (1, 1) or (constant.ndim == 4 and constant.shape[0] != 1):
        return None
    return constant.reshape(-1)


def _as_batchnorm(model, sub, readers, outputs):
    """``sub`` -> ``Mul`` -> ``Add`` of per-channel constants as one BatchNormalization.

    Returns ``(operator, first output)`` of the nodes it replaces (none when the pattern is not there).
    """
    from onnx import helper, numpy_helper

    mul = _only_reader(sub.output[0], readers, outputs, "Mul")
    add = mul and _only_reader(mul.output[0], readers, outputs, "Add")
    if add is None or sub.input[0] == sub.input[1]:
        return []
    mean = _per_channel(model, sub, sub.input[0])  # x - mean: the constant second
    scale, beta = _per_channel(model, mul, sub.output[0]), _per_channel(model, add, mul.output[0])
    if any(c is None for c in (mean, scale, beta)) or not mean.size == scale.size == beta.size:
        return []
    name = f"{add.output[0]}_batchnorm"
    values = {"scale": scale, "beta": beta, "mean": mean, "variance": np.ones_like(mean)}
    model.graph.initializer.extend(numpy_helper.from_array(v, f"{name}_{k}") for k, v in values.items())
    sub.CopyFrom(helper.make_node("BatchNormalization", [sub.input[0], *(f"{name}_{k}" for k in values)],
                                  [add.output[0]], name=name, epsilon=0.0))
    return [("Mul", mul.output[0]), ("Add", add.output[0])]


def _zero_padding(model, pad):
    """The (top, left, bottom, right) zeros ``pad`` adds to an NCHW tensor, or None for another Pad."""
    from onnx import helper

    mode = next((helper.get_attribute_value(a) for a in pad.attribute if a.name == "mode"), b"constant")
    pads = _initializer(model, pad.input[1])
    value = _initializer(model, pad.input[2]) if len(pad.input) > 2 and pad.input[2] else np.zeros(1)
    if mode != b"constant" or len(pad.input) > 3 or pads is None or pads.size != 8 or value is None:
        return None
    return None if pads[[0, 1, 4, 5]].any() or value.any() else [int(p) for p in pads[[2, 3, 6, 7]]]


def _pool_attributes(pool):
    from onnx import helper

    attributes = {a.name: helper.get_attribute_value(a) for a in pool.attribute}
    if attributes.get("auto_pad", b"NOTSET") != b"NOTSET" or any(d != 1 for d in attributes.get("dilations", [])):
        return None
    return attributes


def _set_attribute(node, name, value):
    from onnx import helper

    keep = [a for a in node.attribute if a.name != name]
    del node.attribute[:]
    node.attribute.extend([*keep, helper.make_attribute(name, value)])


def _padding_into_pool(model, pool, pad, producer):
    """A zero ``pad`` before ``pool`` moved into its pads; ``[("Pad", its output)]``.

    A max pool takes it after a ReLU (``producer``) only; an average pool without
    pads of its own takes it as padding it counts (``count_include_pad``).
    """
    padding, attributes = _zero_padding(model, pad), _pool_attributes(pool)
    if padding is None or attributes is None:
        return []
    if pool.op_type == "MaxPool" and (producer is None or producer.op_type != "Relu"):
        return []
    if pool.op_type == "AveragePool":
        if any(attributes.get("pads", [])):
            return []
        _set_attribute(pool, "count_include_pad", 1)
    merged = [int(p) for p in np.add(attributes.get("pads", [0, 0, 0, 0]), padding)]
    if any(p >= k for p, k in zip(merged, list(attributes["kernel_shape"]) * 2)):  # ONNX: pads < kernel
        return []
    _set_attribute(pool, "pads", merged)
    pool.input[0] = pad.input[0]
    return [("Pad", pad.output[0])]


def _edge_padding_as_ceil_mode(model, pool, pad, shape):
    """An edge ``pad`` at the bottom/right before ``pool`` as the pool's ``ceil_mode``; ``[("Pad", its output)]``.

    Exact where both give the same output size and every ceil-mode window starts
    inside the input: a window that runs past the edge then holds the last row
    (column), whose copies are all the edge padding adds.
    """
    from onnx import helper

    attributes = _pool_attributes(pool)
    mode = next((helper.get_attribute_value(a) for a in pad.attribute if a.name == "mode"), b"constant")
    pads = _initializer(model, pad.input[1]) if len(pad.input) > 1 else None
    if mode != b"edge" or attributes is None or pads is None or pads.size != 8:
        return []
    if pads[:6].any() or any(attributes.get("pads", [])) or attributes.get("ceil_mode", 0) or shape is None:
        return []
    for size, extra, k, s in zip(shape[2:], pads[6:], attributes["kernel_shape"], attributes.get("strides", [1, 1])):
        ceil_size = -(-(size - k) // s) + 1 if size is not None and size >= k else None
        if ceil_size is None or ceil_size != (size + extra - k) // s + 1 or (ceil_size - 1) * s > size - 1:
            return []
    _set_attribute(pool, "ceil_mode", 1)
    pool.input[0] = pad.input[0]
    return [("Pad", pad.output[0])]


def _copy(node):
    import onnx

    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    return copy


def _shapes(model):
    """Shape of every tensor whose shape ONNX's shape inference finds (None: unknown size), by name.

    Inferred on a copy without the weights' values (their dims are all it reads),
    which would otherwise be serialized once more.
    """
    import onnx

    skeleton = onnx.ModelProto(ir_version=model.ir_version, opset_import=model.opset_import)
    graph = skeleton.graph
    graph.node.extend(model.graph.node)
    graph.input.extend(model.graph.input)
    graph.output.extend(model.graph.output)
    for init in model.graph.initializer:
        if init.data_type == onnx.TensorProto.INT64:  # shapes, paddings, axes: their values count
            graph.initializer.append(init)
        else:
            graph.initializer.add(name=init.name, dims=init.dims, data_type=init.data_type)
    inferred = onnx.shape_inference.infer_shapes(skeleton).graph
    values = [*inferred.input, *inferred.value_info, *inferred.output]
    return {
        v.name: tuple(d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim)
        for v in values if v.type.tensor_type.HasField("shape")
    }


def _rank4(shapes, name):
    return len(shapes.get(name, ())) == 4


def _initializer(model, name):
    """The initializer ``name`` as an array, or None."""
    from onnx import numpy_helper

    return next((numpy_helper.to_array(i) for i in model.graph.initializer if i.name == name), None)


def _transpose_first(model, pad, readers):
    """Swap ``pad`` and its only reader when that is a ``Transpose`` (paddings permuted)."""
    from onnx import numpy_helper

    transpose = readers[0] if len(readers) == 1 else None
    outputs = {o.name for o in model.graph.output}
    if transpose is None or transpose.op_type != "Transpose" or pad.output[0] in outputs or len(pad.input) > 3:
        return
    pads = _initializer(model, pad.input[1])
    if pads is None or pads.size != 8:
        return
    perm = list(next(a.ints for a in transpose.attribute if a.name == "perm"))
    pads_name = f"{pad.input[1]}_{''.join(map(str, perm))}"
    permuted = np.concatenate([pads[:4][perm], pads[4:][perm]]).astype(pads.dtype)
    model.graph.initializer.append(numpy_helper.from_array(permuted, pads_name))
    source, padded, result = pad.input[0], pad.output[0], transpose.output[0]
    transpose.input[0], transpose.output[0] = source, padded
    pad.input[0], pad.input[1], pad.output[0] = padded, pads_name, result
    swapped = _copy(pad)  # each takes the other's place in the node order
    pad.CopyFrom(transpose)
    transpose.CopyFrom(swapped)


def _channels_first_mean(model, node):
    """Turn ``node`` (a ReduceMean over axes 1, 2 of NHWC) into one over NCHW.

    Returns the new nodes that go before and after it.
    """
    from onnx import helper, numpy_helper

    axes = _reduce_axes(model, node)
    if axes is None or sorted(a % 4 for a in axes) != [1, 2]:
        return [], []
    keepdims = next((a.i for a in node.attribute if a.name == "keepdims"), 1)
    nchw = f"{node.name or node.output[0]}_nchw_input"
    before = [helper.make_node("Transpose", [node.input[0]], [nchw], perm=TO_NCHW, name=f"{nchw}_transpose")]
    if len(node.input) > 1:  # opset >= 18: the axes are an input
        axes_name = f"{nchw}_axes"
        model.graph.initializer.append(numpy_helper.from_array(np.array([2, 3], np.int64), axes_name))
        node.input[:] = [nchw, axes_name]
    else:
        node.input[0] = nchw
        for attribute in node.attribute:
            if attribute.name == "axes":
                attribute.ints[:] = [2, 3]
    if not keepdims:
        return before, []
    result = node.output[0]  # (N, 1, 1, C) as before: the reduced NCHW tensor transposed back
    node.output[0] = f"{nchw}_reduced"
    return before, [helper.make_node("Transpose", [node.output[0]], [result], perm=TO_NHWC,
                                     name=f"{nchw}_back")]


def _reduce_axes(model, node):
    """The constant axes of a ReduceMean (attribute or initializer), or None."""
    for attribute in node.attribute:
        if attribute.name == "axes":
            return list(attribute.ints)
    axes = _initializer(model, node.input[1]) if len(node.input) > 1 and node.input[1] else None
    return None if axes is None else axes.tolist()
