#!/usr/bin/env python
"""Export a model to ONNX, verified in ONNX Runtime (= ``cnnclassics export --format onnx``).

    python tools/export_onnx.py squeezenet1_1 --output squeezenet1_1.onnx \\
        [--weights W] [--input-shape 224,224,3] [--batch-size 1|dynamic] \\
        [--quantize none|float16|dynamic-int8|int8 --calibration DIR|digits|random] \\
        [--seed N] [--force]

``--backend tensorflow|jax|torch`` (anywhere) picks the Keras backend; ``--debug``
shows tracebacks; ``--verbose`` shows the converters' and TensorFlow's own log
lines. Errors: one line on stderr, exit code 2, no file written.
"""

import sys

from keras_cnnclassics.commands.export import tool_main

if __name__ == "__main__":
    sys.exit(tool_main(sys.argv[1:], "onnx", "tools/export_onnx.py"))
