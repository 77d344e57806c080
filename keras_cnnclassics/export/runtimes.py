"""The runtimes that run exported files: ONNX Runtime (CPU), OpenCV's DNN module and the ``ai-edge-litert`` interpreter."""

from __future__ import annotations

import os

import numpy as np


class _OnnxRuntime:
    """An .onnx file in an ONNX Runtime CPU session."""

    def __init__(self, path, threads=None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        spec = self.session.get_inputs()[0]
        self.name = spec.name
        self.batch = spec.shape[0] if isinstance(spec.shape[0], int) else None
        self.image_shape = tuple(int(s) for s in spec.shape[1:])
        self.input_dtype = "float32"
        self.input_quantization = None

    def __call__(self, x):
        return self.session.run(None, {self.name: x})[0].astype("float32")


class _OpenCVRuntime:
    """An .onnx file in OpenCV's DNN module (``opencv-python-headless``) on the CPU.

    ``engine`` None is OpenCV's default; ``"classic"`` asks OpenCV 5 for its
    classic engine (the only one of OpenCV 4), which runs int8 QDQ files that
    OpenCV 5.0's new engine does not.
    """

    def __init__(self, path, threads=None, engine=None):
        import cv2
        import onnx

        if threads:
            cv2.setNumThreads(threads)
        classic = engine == "classic" and hasattr(cv2.dnn, "ENGINE_CLASSIC")  # OpenCV 4: the only engine
        self.net = cv2.dnn.readNetFromONNX(path, *([cv2.dnn.ENGINE_CLASSIC] if classic else []))
        spec = onnx.load(path, load_external_data=False).graph.input[0]
        dims = [d.dim_value if d.HasField("dim_value") else None for d in spec.type.tensor_type.shape.dim]
        self.batch = dims[0]
        self.image_shape = tuple(dims[1:])
        self.input_dtype = "float32"
        self.input_quantization = None

    def __call__(self, x):
        self.net.setInput(np.ascontiguousarray(x, dtype="float32"))
        return np.asarray(self.net.forward(), dtype="float32")


class _LiteRTRuntime:
    """A .tflite file in the LiteRT interpreter; uint8 input/output (de)quantized."""

    def __init__(self, path, threads=None):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=path, num_threads=threads or os.cpu_count())
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        dynamic = self.input["shape_signature"][0] == -1
        self.batch = None if dynamic else int(self.input["shape"][0])
        self.image_shape = tuple(int(s) for s in self.input["shape"][1:])
        self.input_dtype = np.dtype(self.input["dtype"]).name
        scale, zero = self.input["quantization"]
        self.input_quantization = (float(scale), int(zero)) if self.input_dtype != "float32" else None

    def __call__(self, x):
        interp = self.interpreter
        if x.shape[0] != self.input["shape"][0]:
            interp.resize_tensor_input(self.input["index"], list(x.shape))
            interp.allocate_tensors()
            self.input = interp.get_input_details()[0]
            self.output = interp.get_output_details()[0]
        if self.input_quantization:
            scale, zero = self.input_quantization
            info = np.iinfo(self.input["dtype"])
            x = np.clip(np.round(x / scale + zero), info.min, info.max).astype(self.input["dtype"])
        interp.set_tensor(self.input["index"], x)
        interp.invoke()
        y = interp.get_tensor(self.output["index"])
        if np.dtype(self.output["dtype"]) != np.float32:
            scale, zero = self.output["quantization"]
            y = (y.astype("float32") - zero) * scale
        return y.astype("float32")


# The runtimes of each file format; the first is the format's default.
RUNTIMES = {".onnx": ("onnxruntime", "opencv", "opencv-classic"), ".tflite": ("litert",)}


def load_runtime(path, threads=None, runtime=None):
    """A callable ``runtime(x_nhwc_float32) -> outputs`` for an .onnx or .tflite file.

    ``runtime``: ``"onnxruntime"`` (CPU; the default for .onnx), ``"opencv"``
    (OpenCV's DNN module with its default engine), ``"opencv-classic"``
    (OpenCV 5's classic engine) or ``"litert"`` (the ``ai-edge-litert``
    interpreter; the default for .tflite), with ``threads`` threads (None: the
    runtime's default, all cores). Quantized uint8 inputs/outputs are
    (de)quantized with the file's scale and zero point. ``runtime.batch`` is the
    file's fixed batch size (None when dynamic), ``runtime.image_shape`` the
    ``(H, W, C)`` of one input image.
    """
    path = os.fspath(path)
    suffix = os.path.splitext(path)[1]
    if suffix not in RUNTIMES:
        raise ValueError(f"{path!r}: expected an .onnx or .tflite file.")
    runtime = runtime or RUNTIMES[suffix][0]
    if runtime not in RUNTIMES[suffix]:
        raise ValueError(f"runtime {runtime!r} does not run {suffix} files; choose one of {', '.join(RUNTIMES[suffix])}.")
    if runtime == "onnxruntime":
        return _OnnxRuntime(path, threads)
    if runtime == "litert":
        return _LiteRTRuntime(path, threads)
    return _OpenCVRuntime(path, threads, engine="classic" if runtime == "opencv-classic" else None)


def run_batches(runtime, x):
    """Outputs of ``runtime`` on every image of ``x`` (fixed batches padded, then cut)."""
    step = runtime.batch or 1
    outputs = []
    for start in range(0, len(x), step):
        chunk = x[start : start + step]
        if len(chunk) < step:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], step - len(chunk), 0)])
        outputs.append(runtime(chunk))
    return np.concatenate(outputs)[: len(x)]
