"""Lean ONNX graphs: the exporter's file through ONNX Runtime's offline optimisation and onnxslim.

Keras' ONNX export on the PyTorch backend traces every layer as Keras runs it:
``Cast`` nodes from float32 to float32, ``Identity`` nodes, shape subgraphs that
compute constant paddings, BatchNormalization as ``Sub``/``Mul``/``Add``, and a
pair of layout ``Transpose`` nodes around every NHWC convolution and pooling.
:func:`lean_onnx` rewrites such a file with maintained tools:

1. three exact rewrites that let the tools below do the rest (:func:`exact_rewrites`);
2. ONNX Runtime's basic graph optimisations (constant folding, redundant node
   elimination, its transpose optimizer, MatMul + Add to Gemm), saved as a model:
   the level whose output holds standard ONNX operators only and runs anywhere;
3. onnxslim (``onnxslim.slim``): shape-aware constant folding, BatchNorm and
   ``Mul``/``Add`` folded into the preceding ``Conv``, ``Pad`` into ``Conv``.

What stays separate is what cannot fold: DenseNet's pre-activation BatchNorm
(``Add``, ``Mul``, ``Add``). The exported
file is verified against the Keras model after this pass, as before.
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
        ort_basic_optimization(path, folded)  # constants first: the hints need constant paddings
        model = onnx.load(folded)
        exact_rewrites(model)
        ort_basic_optimization(model.SerializeToString(), folded)
        model = slim(onnx.load(folded))
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


# ------------------------------------------------------------------ layout hints


def exact_rewrites(model):
    """Three rewrites, each exact, after which the tools reach one layout and fold BatchNorm.

    * ``Sub`` of a constant (BatchNorm's ``x - mean``) becomes ``Add`` of its
      negation, which onnxslim folds into a ``Conv`` before it, as it folds the
      ``Mul`` and ``Add`` that follow;
    * ``Pad`` then ``Transpose`` (the NHWC stem padding before the first
      convolution) becomes ``Transpose`` then ``Pad`` of the permuted paddings,
      which onnxslim folds into the ``Conv``;
    * a spatial ``ReduceMean`` over axes (1, 2) of an NHWC tensor (the global
      average pool) becomes a ``ReduceMean`` over (2, 3) of its NCHW transpose,
      which the optimizer cancels against the exporter's transposes (it pushes
      none through a ``ReduceMean`` that drops the reduced axes).
    """
    import onnx

    ranks = _ranks(model)
    readers = {}
    for node in model.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    nodes = []
    for node in model.graph.node:
        before, after = [], []
        if node.op_type == "ReduceMean" and ranks.get(node.input[0]) == 4:
            before, after = _channels_first_mean(model, node)
        elif node.op_type == "Pad" and ranks.get(node.input[0]) == 4:
            _transpose_first(model, node, readers.get(node.output[0], []))
        elif node.op_type == "Sub":
            _add_the_negation(model, node)
        nodes += [*before, _copy(node), *after]
    del model.graph.node[:]
    model.graph.node.extend(nodes)


def _copy(node):
    import onnx

    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    return copy


def _ranks(model):
    """Rank of every tensor whose shape ONNX's shape inference finds, by name.

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
    return {v.name: len(v.type.tensor_type.shape.dim) for v in values if v.type.tensor_type.HasField("shape")}


def _initializer(model, name):
    """The initializer ``name`` as an array, or None."""
    from onnx import numpy_helper

    return next((numpy_helper.to_array(i) for i in model.graph.initializer if i.name == name), None)


def _add_the_negation(model, sub):
    """``x - c`` as ``x + (-c)`` for a float constant ``c`` (the same number in IEEE arithmetic)."""
    from onnx import numpy_helper

    constant = _initializer(model, sub.input[1])
    if constant is None or constant.dtype.kind != "f" or _initializer(model, sub.input[0]) is not None:
        return
    name = f"{sub.input[1]}_negated"
    if _initializer(model, name) is None:
        model.graph.initializer.append(numpy_helper.from_array(-constant, name))
    sub.op_type, sub.input[1] = "Add", name


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
