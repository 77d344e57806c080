"""Passes over a written ONNX file: output name, float16 weights, ONNX Runtime's int8 quantization."""

from __future__ import annotations

import os
import tempfile

import numpy as np

from keras_cnnclassics.export.calibration import calibration_batches
from keras_cnnclassics.export.options import INPUT_NAME, OUTPUT_NAME


def name_output(path):
    """Name the graph output ``predictions`` (torch.onnx numbers it)."""
    import onnx

    model = onnx.load(path)
    graph = model.graph
    old = graph.output[0].name
    if old != OUTPUT_NAME:
        for node in graph.node:
            node.output[:] = [OUTPUT_NAME if o == old else o for o in node.output]
            node.input[:] = [OUTPUT_NAME if i == old else i for i in node.input]
        graph.output[0].name = OUTPUT_NAME
        onnx.save(model, path)


def float16_weights(path):
    """Store float32 initializers as float16, each followed by a Cast back to float32.

    The file halves; ONNX Runtime folds the casts when the session starts and
    computes in float32 (its CPU kernels have no float16 convolutions), which is
    what LiteRT does with a float16-quantized file on CPU.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(path)
    graph = model.graph
    casts, keep = [], []
    for init in graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT:
            keep.append(init)
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), f"{init.name}_fp16")
        keep.append(half)
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=onnx.TensorProto.FLOAT,
                                      name=f"{init.name}_cast"))
    del graph.initializer[:]
    graph.initializer.extend(keep)
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, path)


def quantize_int8(path, quantize, calibration, batch):
    """ONNX Runtime's dynamic or static (QDQ, per-channel) int8 quantization, in place."""
    from onnxruntime import quantization as q

    with tempfile.TemporaryDirectory() as tmp:
        prepared = os.path.join(tmp, "prepared.onnx")
        q.quant_pre_process(path, prepared, skip_symbolic_shape=True)
        if quantize == "dynamic-int8":
            q.quantize_dynamic(prepared, path, weight_type=q.QuantType.QInt8)
            return
        feeds = ({INPUT_NAME: images} for images in calibration_batches(calibration, batch))

        class Reader(q.CalibrationDataReader):
            def get_next(self):
                return next(feeds, None)

        q.quantize_static(
            prepared, path, Reader(), quant_format=q.QuantFormat.QDQ, per_channel=True,
            activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8,
            nodes_to_exclude=final_softmax(prepared),
        )


def final_softmax(path):
    """The output Softmax node, kept in float: 8-bit probabilities of many classes tie."""
    import onnx

    graph = onnx.load(path, load_external_data=False).graph
    return [n.name for n in graph.node if OUTPUT_NAME in n.output and n.op_type == "Softmax"]
