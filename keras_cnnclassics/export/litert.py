"""The TFLite converter's options per quantization, for ``model.export(format="litert")``.

``model.export(format="litert")`` runs the TFLite converter with builtin ops
only (no Flex / SELECT_TF_OPS), with ``optimizations``,
``supported_types=[float16]``, or a representative dataset and
``TFLITE_BUILTINS_INT8`` for full-integer int8 (input/output ``uint8`` or float).

A float16 file stores every weight in float16, each read by one ``DEQUANTIZE``
operator that gives the float32 tensor the layer takes, and is marked
``reduced_precision_support = fp16accfp32``: a runtime may compute in float16
where the hardware has float16 arithmetic; XNNPACK on a CPU without it (x86
without AVX512-FP16) dequantizes the weights once and computes in float32
(see :mod:`~keras_cnnclassics.export.tflite_graph`).
"""

from __future__ import annotations

from keras_cnnclassics.export.calibration import calibration_batches


def converter_options(quantize, calibration, int8_io, batch):
    """TFLite converter attributes for ``model.export(format="litert", **options)``."""
    import tensorflow as tf

    builtins = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize == "none":
        return {"target_spec": {"supported_ops": builtins}}
    options = {"optimizations": [tf.lite.Optimize.DEFAULT]}
    if quantize == "float16":
        options["target_spec"] = {"supported_ops": builtins, "supported_types": [tf.float16]}
    elif quantize == "dynamic-int8":
        options["target_spec"] = {"supported_ops": builtins}
    else:
        def representative_dataset():
            for images in calibration_batches(calibration, batch):
                yield [images]

        io_type = tf.uint8 if int8_io == "uint8" else tf.float32
        options.update(
            target_spec={"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]},
            representative_dataset=representative_dataset,
            inference_input_type=io_type,
            inference_output_type=io_type,
        )
    return options
