"""LiteRT specifics: the TFLite converter's options per quantization, and the builtin-ops check.

``model.export(format="litert")`` runs the TFLite converter with builtin ops
only (no Flex / SELECT_TF_OPS), with ``optimizations``,
``supported_types=[float16]``, or a representative dataset and
``TFLITE_BUILTINS_INT8`` for full-integer int8 (input/output ``uint8`` or float).
"""

from __future__ import annotations

from keras_cnnclassics.export.calibration import calibration_batches
from keras_cnnclassics.export.report import ExportError


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


def check_builtin_ops(path):
    """Raise ``ExportError`` when a .tflite file needs Flex (Select TF) or custom ops.

    Reads the flatbuffer's operator codes: the LiteRT interpreter on a phone runs
    builtin operators only (a mixed-precision graph, for instance, turns into
    Flex ops). Returns the sorted builtin operator names.
    """
    from ai_edge_litert import schema_py_generated as schema

    with open(path, "rb") as f:
        model = schema.ModelT.InitFromPackedBuf(f.read(), 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    builtin, foreign = set(), set()
    for code in model.operatorCodes or []:
        op = max(code.builtinCode, code.deprecatedBuiltinCode)
        if op == schema.BuiltinOperator.CUSTOM:
            custom = code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode
            foreign.add(custom)
        else:
            builtin.add(names.get(op, str(op)))
    if foreign:
        raise ExportError(
            f"{path}: the file needs non-builtin operators {', '.join(sorted(foreign))} "
            "(Flex/Select TF ops are not in the LiteRT runtime of a phone). Export from a "
            "float32 model with builtin operators only."
        )
    return sorted(builtin)
