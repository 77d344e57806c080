"""What a .tflite file holds, read from its flatbuffer with ``ai_edge_litert``'s schema.

Operators by type (:func:`op_counts`) and what the float16 weights of a
float16-quantized file are (:func:`float16_weights`): the TFLite converter
stores each float32 weight as a float16 constant read by one ``DEQUANTIZE``
operator, whose float32 result the layers take, so the file halves and the
layers compute in float32 (XNNPACK on CPU dequantizes those constants once,
when the delegate is applied).
"""

from __future__ import annotations

import collections


def read_model(path):
    """The file's flatbuffer as ``schema_py_generated.ModelT``."""
    from ai_edge_litert import schema_py_generated as schema

    with open(path, "rb") as f:
        return schema.ModelT.InitFromPackedBuf(f.read(), 0)


def operator_names(model):
    """The name of each operator code of ``model`` (a builtin's name or the custom code), by index."""
    from ai_edge_litert import schema_py_generated as schema

    builtin = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    names = []
    for code in model.operatorCodes or []:
        op = max(code.builtinCode, code.deprecatedBuiltinCode)
        if op == schema.BuiltinOperator.CUSTOM:
            custom = code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode
            names.append(f"CUSTOM:{custom}")
        else:
            names.append(builtin.get(op, str(op)))
    return names


def op_counts(path):
    """``Counter`` of the operators of every subgraph of the file, by type name."""
    model = read_model(path)
    names = operator_names(model)
    return collections.Counter(names[op.opcodeIndex] for graph in model.subgraphs for op in graph.operators or [])


def float16_weights(path):
    """Where a file's float16 tensors sit; a dict of counts over the main subgraph.

    ``float16_constants``: float16 tensors with data in the file (weights);
    ``float32_constants``: float32 ones (weights the converter kept in float32);
    ``float16_activations``: float16 tensors computed at run time (layers
    computing in float16); ``dequantize``: ``DEQUANTIZE`` operators;
    ``dequantize_of_float16_constants``: those that read a float16 weight and
    give float32 (the format's own, one per weight).
    """
    from ai_edge_litert import schema_py_generated as schema

    model = read_model(path)
    graph, names = model.subgraphs[0], operator_names(model)
    tensors = graph.tensors or []
    constant = lambda index: _is_constant(model, tensors[index])  # noqa: E731
    half = [i for i, t in enumerate(tensors) if t.type == schema.TensorType.FLOAT16]
    single = [i for i, t in enumerate(tensors) if t.type == schema.TensorType.FLOAT32]
    dequantize = [op for op in graph.operators or [] if names[op.opcodeIndex] == "DEQUANTIZE"]
    return {
        "float16_constants": sum(constant(i) for i in half),
        "float16_activations": sum(not constant(i) for i in half),
        "float32_constants": sum(constant(i) for i in single),
        "dequantize": len(dequantize),
        "dequantize_of_float16_constants": sum(
            tensors[op.inputs[0]].type == schema.TensorType.FLOAT16 and constant(op.inputs[0])
            and tensors[op.outputs[0]].type == schema.TensorType.FLOAT32
            for op in dequantize
        ),
    }


def float32_activations(path):
    """How many float32 tensors of the main subgraph are computed at run time (the input excluded).

    Zero in a full-integer int8 file with uint8 input/output: no layer fell back to float.
    """
    from ai_edge_litert import schema_py_generated as schema

    model = read_model(path)
    graph = model.subgraphs[0]
    inputs = set(graph.inputs or [])
    return sum(
        tensor.type == schema.TensorType.FLOAT32 and i not in inputs and not _is_constant(model, tensor)
        for i, tensor in enumerate(graph.tensors or [])
    )


def _is_constant(model, tensor):
    """Whether ``tensor`` holds data in the file (a weight), not a value computed at run time."""
    buffer = model.buffers[tensor.buffer] if tensor.buffer else None
    return buffer is not None and (buffer.data is not None and len(buffer.data) > 0 or bool(buffer.size))
