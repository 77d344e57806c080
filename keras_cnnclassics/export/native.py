"""Writing a file with Keras' own exporter of the backend running in this process."""

from __future__ import annotations

import keras

from keras_cnnclassics.export.litert import converter_options
from keras_cnnclassics.export.model import clone
from keras_cnnclassics.export.onnx_lean import lean_onnx
from keras_cnnclassics.export.options import INPUT_NAME


def grouped_conv_layer(layer):
    """TensorFlow runs grouped ``Conv2D`` through XLA, which neither TFLite nor tf2onnx take."""
    from keras_cnnclassics.layers import GroupedConv2D

    if isinstance(layer, keras.layers.Conv2D) and not isinstance(layer, GroupedConv2D) and layer.groups > 1:
        return GroupedConv2D.from_config(layer.get_config())
    return None


def write_native(model, fmt, path, batch, quantize="none", calibration=None, int8_io="float", lean=True):
    """Write ``path`` with Keras' exporter of the running backend (see ``writers.WRITER_BACKEND``).

    An ONNX file is then made lean (:func:`~keras_cnnclassics.export.onnx_lean.lean_onnx`)
    when ``lean``.
    """
    shape = (batch, *model.input_shape[1:])
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        if any(grouped_conv_layer(layer) for layer in model.layers):
            model = clone(model, grouped_conv_layer)
        signature = [tf.TensorSpec(shape, tf.float32, name=INPUT_NAME)]
    else:
        signature = [keras.InputSpec(shape=shape, dtype="float32", name=INPUT_NAME)]
    if fmt == "tflite":
        options = converter_options(quantize, calibration, int8_io, batch)
        model.export(path, format="litert", input_signature=signature, verbose=False, **options)
    else:
        model.export(path, format="onnx", input_signature=signature, verbose=False)
        if lean:
            lean_onnx(path)
