"""Copying PyTorch (torchvision/timm) weights into the package's Keras models.

Our layer names are the torch module paths with "." written as "_" (Keras'
PyTorch backend forbids dots in variable paths): ``layer3.2.conv2`` is the Keras
layer ``layer3_2_conv2``. Conversion is therefore a per-layer copy with a layout
change per layer type:

* Conv2D: ``weight`` OIHW -> kernel HWIO (grouped kernels keep their per-group
  input size, which is Keras' grouped layout too); ``bias``.
* DepthwiseConv2D: ``weight`` (C*m, 1, H, W) -> (H, W, C, m).
* Dense: ``weight.T``; the first Dense after a flatten of a (C, H, W) map gets its
  rows permuted from torch's (C, H, W) order to Keras' (H, W, C) order.
* BatchNormalization: weight, bias, running_mean, running_var (eps 1e-5 is
  already PyTorch's in our models).

``state_dict_to_keras(model, state_dict)`` assigns everything in place and is
strict: every Keras weight filled, every source tensor used, else a ValueError
listing the missing, unexpected and shape-mismatched names.

What differs per model is declared on its registry entry (``torch_mapping``, a
:class:`~keras_cnnclassics.mapping.TorchMapping` or a function of the options): key
renames such as DenseNet's legacy ``norm.1`` names, source tensors the Keras model
deliberately lacks such as auxiliary classifiers, and the torchvision/timm
constructor arguments that match the Keras options.

:func:`convert_checkpoint` is the whole tool (``cnnclassics convert``,
``tools/convert_weights.py``): read a ``.pth``/``.safetensors`` file
(:mod:`keras_cnnclassics.checkpoints`), copy it strictly into the registry model,
check the logits against the torchvision/timm model when those are importable,
then write a ``.weights.h5`` atomically; on any failure nothing is written.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import keras

from keras_cnnclassics.checkpoints import progress_bar, read_checkpoint
from keras_cnnclassics.mapping import TorchMapping, aux_head_mapping  # noqa: F401  (public here too)
from keras_cnnclassics.weights import _leaf_layers, atomic_path, check_output_path, file_manifest, model_manifest

__all__ = [
    "CheckpointMismatch",
    "ConversionResult",
    "TorchMapping",
    "convert_checkpoint",
    "family_mapping",
    "head_layer",
    "import_reference_library",
    "keras_name",
    "read_checkpoint",
    "state_dict_to_keras",
    "torch_prefix_lookup",
]

SOURCES = ("torchvision", "timm")
# Files at least this large get a progress bar.
PROGRESS_BYTES = 64 * 2**20

_BN_KEYS = ("weight", "bias", "running_mean", "running_var")
_IGNORED_SUFFIXES = ("num_batches_tracked",)


class CheckpointMismatch(ValueError):
    """A checkpoint whose tensors do not fit the model; ``missing`` holds Keras layer names."""

    def __init__(self, message, missing=(), mismatched=(), unexpected=()):
        super().__init__(message)
        self.missing, self.mismatched, self.unexpected = list(missing), list(mismatched), list(unexpected)


def _to_numpy(tensor):
    if hasattr(tensor, "detach"):
        tensor = tensor.detach().cpu()
        tensor = (tensor.float() if tensor.is_floating_point() else tensor).numpy()
    return np.asarray(tensor)


def _as_linear(w):
    """A torch Linear weight (out, in) from a Linear or a 1x1 Conv2d (timm SE) weight."""
    return w[:, :, 0, 0] if w.ndim == 4 and w.shape[2:] == (1, 1) else w


def _as_conv(w):
    """A torch Conv2d weight (out, in, kh, kw) from a Conv2d or a Linear weight (1x1 conv)."""
    return w[:, :, None, None] if w.ndim == 2 else w


def _producer(tensor):
    history = getattr(tensor, "_keras_history", None)
    return history.operation if history else None


def _flatten_source_shape(model, dense_layer):
    """(C, H, W) of the map flattened right before ``dense_layer``, or None."""
    producer = _producer(dense_layer.input)
    while isinstance(producer, (keras.layers.Dropout, keras.layers.Activation)):
        producer = _producer(producer.input)
    if not isinstance(producer, keras.layers.Flatten):
        return None
    shape = producer.input.shape[1:]
    if keras.config.image_data_format() == "channels_first":
        c, h, w = shape
    else:
        h, w, c = shape
    return (c, h, w) if h * w > 1 else None


def _convert_layer(model, layer, get):
    """Keras weight arrays for ``layer`` from torch tensors fetched by ``get(suffix)``."""
    if isinstance(layer, keras.layers.BatchNormalization):
        return [get(k) for k in _BN_KEYS]
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        w = get("weight")  # (C*m, 1, kh, kw)
        c = layer.input.shape[-1 if keras.config.image_data_format() == "channels_last" else 1]
        kernel = w.reshape(c, -1, *w.shape[2:]).transpose(2, 3, 0, 1)
        return [kernel] + ([get("bias")] if layer.use_bias else [])
    if isinstance(layer, keras.layers.Conv2D):
        kernel = _as_conv(get("weight")).transpose(2, 3, 1, 0)
        return [kernel] + ([get("bias")] if layer.use_bias else [])
    if isinstance(layer, keras.layers.Dense):
        w = _as_linear(get("weight"))  # (out, in)
        chw = _flatten_source_shape(model, layer)
        if chw is not None and w.shape[1] == np.prod(chw):  # else the shape check reports it
            c, h, w_ = chw
            w = w.reshape(w.shape[0], c, h, w_).transpose(0, 2, 3, 1).reshape(w.shape[0], -1)
        return [w.T] + ([get("bias")] if layer.use_bias else [])
    raise ValueError(
        f"No torch conversion rule for layer {layer.name!r} of type {type(layer).__name__}."
    )


def keras_name(torch_path: str) -> str:
    """The Keras layer name of a torch module path: ``layer3.2.conv2`` -> ``layer3_2_conv2``."""
    return torch_path.replace(".", "_")


def torch_prefix_lookup(source):
    """``keras_name -> torch module path`` for the modules of a state dict."""
    prefixes = {key.rsplit(".", 1)[0] for key in source}
    lookup = {}
    for prefix in prefixes:
        name = keras_name(prefix)
        if lookup.get(name, prefix) != prefix:
            raise ValueError(f"Ambiguous torch module names {lookup[name]!r} and {prefix!r}.")
        lookup[name] = prefix
    return lambda name: lookup.get(name, name)


def state_dict_to_keras(model, state_dict, name_map=None, progress=False):
    """Copy a torch ``state_dict`` into ``model`` (strict; see module docstring).

    ``name_map(keras_layer_name) -> torch_prefix`` renames where a family's Keras
    names differ from the torch module paths (default: the module whose path,
    with "." written as "_", is the Keras name). ``progress`` shows a tqdm bar.
    """
    source = {k: _to_numpy(v) for k, v in state_dict.items() if not k.endswith(_IGNORED_SUFFIXES)}
    name_map = name_map or torch_prefix_lookup(source)
    used, missing, mismatched, assignments = set(), [], [], []
    for layer in progress_bar(list(_leaf_layers(model)), progress, "copying", "layer"):
        if not layer.weights:
            continue
        prefix = name_map(layer.name)

        def get(suffix, prefix=prefix):
            key = f"{prefix}.{suffix}"
            if key not in source:
                raise KeyError(key)
            used.add(key)
            return source[key]

        try:
            arrays = _convert_layer(model, layer, get)
        except KeyError as err:
            missing.append(f"{layer.name} (needs {err.args[0]})")
            continue
        expected = [tuple(v.shape) for v in layer.weights]
        if [a.shape for a in arrays] != expected:
            mismatched.append(f"{layer.name}: keras {expected} vs source {[a.shape for a in arrays]}")
            continue
        assignments.append((layer, arrays))
    unexpected = sorted(set(source) - used)
    if missing or mismatched or unexpected:
        parts = [
            f"{title} ({len(items)}): {'; '.join(items[:8])}{' ...' if len(items) > 8 else ''}"
            for title, items in (
                ("missing in the checkpoint", missing),
                ("shape mismatch", mismatched),
                ("unexpected in the checkpoint", unexpected),
            )
            if items
        ]
        counts = ", ".join(
            f"{len(items)} {word}"
            for word, items in (("missing", missing), ("mismatched", mismatched), ("unexpected", unexpected))
            if items
        )
        raise CheckpointMismatch(
            f"Checkpoint does not match {model.name!r} ({counts}; another architecture or "
            "depth?): " + " | ".join(parts),
            missing=[m.split(" ", 1)[0] for m in missing], mismatched=mismatched, unexpected=unexpected,
        )
    for layer, arrays in assignments:
        layer.set_weights([a.astype(np.float32) for a in arrays])
    return model


# ----------------------------------------------------------------------------------
# Family rules
# ----------------------------------------------------------------------------------


def family_mapping(spec, options=None) -> TorchMapping:
    """The :class:`TorchMapping` declared on ``spec``'s registry entry for ``options``
    (the generic rule where it declares none)."""
    return spec.mapping(options)


def head_layer(model):
    """The layer with weights that produces the class scores, traced back from
    ``predictions`` (``fc``, ``classifier_6``, SqueezeNet's 1x1 ``classifier_1``)."""
    try:
        layer = model.get_layer("predictions")
    except ValueError:
        return None
    while layer is not None and not layer.weights:
        inputs = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
        layer = _producer(inputs[0]) if len(inputs) == 1 else None
    return layer


def _checkpoint_classes(model, state_dict):
    """Output size of the checkpoint's head, or None when it has no such tensor."""
    head = head_layer(model)
    if head is None:
        return None
    key = f"{torch_prefix_lookup(state_dict)(head.name)}.weight"
    return int(state_dict[key].shape[0]) if key in state_dict else None


# ----------------------------------------------------------------------------------
# The torchvision/timm model that checks a conversion
# ----------------------------------------------------------------------------------

_TORCHVISION_OPS = []  # keeps the operator-schema library of the CPU workaround alive


def import_reference_library(library):
    """``torchvision.models`` or ``timm``, or None when not installed.

    torchvision wheels built for CUDA fail to import on a CPU-only torch ("operator
    torchvision::nms does not exist") although their model code is pure Python;
    in exactly that case the two operator schemas are declared first, so the models
    can be built (no operator is ever run).
    """
    try:
        import torch
    except ImportError:
        return None
    try:
        import torchvision.models
    except ImportError:
        return None
    except RuntimeError as err:
        if "torchvision::nms" not in str(err):
            raise
        lib = torch.library.Library("torchvision", "DEF")
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _TORCHVISION_OPS.append(lib)
        import torchvision.models
    if library == "torchvision":
        return torchvision.models
    try:
        import timm
    except ImportError:
        return None
    return timm


def source_model(spec, state_dict, classes, mapping):
    """The torchvision/timm model of ``spec`` holding ``state_dict`` (eval mode), or None
    when torch or that library is not importable."""
    library, name = spec.reference.split(":", 1)
    lib = import_reference_library(library)
    if lib is None:
        return None
    import torch

    kwargs = {"num_classes": classes, **mapping.reference_kwargs}

    def build():
        if library == "torchvision":
            return getattr(lib, name)(weights=None, **kwargs)
        return lib.create_model(name, pretrained=False, **kwargs)

    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state_dict.items()}
    try:
        with torch.device("meta"):  # no random initialisation: every tensor comes from the file
            model = build()
        model.load_state_dict(tensors, strict=True, assign=True)
        if any(t.is_meta for t in (*model.parameters(), *model.buffers())):
            model = build()  # a buffer outside the state dict: build for real
            model.load_state_dict(tensors, strict=True)
    except RuntimeError as err:
        raise ValueError(
            f"The checkpoint does not load into {spec.reference}({kwargs}): "
            + " ".join(str(err).split())[:600]
        ) from None
    return model.eval()


def logit_difference(keras_model, torch_model, input_shape, batch=2, seed=0):
    """``(max |keras - torch| logits, max |torch logits|)`` on one random normal batch.

    ``input_shape`` is (H, W, C); the Keras model must output logits.
    """
    import torch

    x = np.random.default_rng(seed).standard_normal((batch, *input_shape)).astype("float32")
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))))
    expected = (expected[0] if isinstance(expected, (tuple, list)) else expected).numpy()
    if keras.config.image_data_format() == "channels_first":
        x = x.transpose(0, 3, 1, 2)
    got = keras_model(x, training=False)
    got = keras.ops.convert_to_numpy(got[0] if isinstance(got, (list, tuple)) else got)
    return float(np.max(np.abs(got - expected))), float(np.max(np.abs(expected)))


# ----------------------------------------------------------------------------------
# The tool
# ----------------------------------------------------------------------------------


@dataclasses.dataclass
class ConversionResult:
    """What :func:`convert_checkpoint` did (also printed line by line)."""

    arch: str
    reference: str
    output: str
    tensors: int  # source tensors copied
    checkpoint_classes: int | None
    dropped: list = dataclasses.field(default_factory=list)  # source keys left out on purpose
    reinitialised: list = dataclasses.field(default_factory=list)  # Keras layers not from the file
    max_abs_diff: float | None = None  # None when not verified
    logit_scale: float | None = None
    skipped: str = ""  # why verification was skipped


def _check_request(spec, source, output_path, classes, include_top, force, tolerance=1e-4):
    """Every argument rule, before any file is read or model built."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}; got {source!r}.")
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or tolerance != tolerance:
        raise ValueError(f"tolerance must be a number; got {tolerance!r}.")
    if spec.reference is None:
        raise ValueError(
            f"{spec.name} has no torchvision/timm counterpart, so no checkpoint layout "
            "to convert from (see `cnnclassics list`: the reference column)."
        )
    library = spec.reference.split(":", 1)[0]
    if source != library:
        raise ValueError(
            f"--source {source} does not fit {spec.name}: its weights are laid out as "
            f"{spec.reference}; use --source {library}."
        )
    if classes is not None and (not isinstance(classes, int) or isinstance(classes, bool) or classes < 1):
        raise ValueError(f"classes must be a positive integer; got {classes!r}.")
    if classes is not None and not include_top:
        raise ValueError("classes and include_top=False (--no-top) exclude each other: the head is dropped.")
    output_path = os.fspath(output_path)
    if not output_path.endswith(".weights.h5"):
        raise ValueError(f"Output file name must end in .weights.h5; got {output_path!r}.")
    check_output_path(output_path, force, "pass force=True (--force) to replace it")


def _copy_matching_layers(source_model, target_model):
    """Copy weights layer by layer where name and shapes agree; names of the others."""
    source_layers = {layer.name: layer for layer in _leaf_layers(source_model) if layer.weights}
    fresh = []
    for layer in _leaf_layers(target_model):
        if not layer.weights:
            continue
        other = source_layers.get(layer.name)
        if other is not None and [v.shape for v in other.weights] == [v.shape for v in layer.weights]:
            layer.set_weights(other.get_weights())
        else:
            fresh.append(layer.name)
    return fresh


def convert_checkpoint(
    arch,
    source,
    input_path,
    output_path,
    classes=None,
    include_top=True,
    force=False,
    verify=True,
    tolerance=1e-4,
    log=print,
    options=None,
) -> ConversionResult:
    """Convert a torchvision/timm checkpoint into a Keras ``.weights.h5`` for ``arch``.

    Args:
        arch: registry name (``"resnet50"``).
        source: ``"torchvision"`` or ``"timm"``: must be the library of the
            model's registry reference.
        input_path: ``.pth``/``.pt`` state dict or ``.safetensors`` file.
        output_path: the ``.weights.h5`` to write (temporary file + rename).
        classes: head size of the written file. None: the checkpoint's own head
            (1000 for ImageNet weights, N for a model fine-tuned on N classes).
            Another number re-initialises the head on purpose.
        include_top: False writes the backbone only (``include_top=False`` models).
        force: replace an existing ``output_path``.
        verify: compare logits with the torchvision/timm model holding the same
            checkpoint, when torch and that library are importable.
        tolerance: largest accepted ``max |logit difference|``, relative to the
            logits' size: ``diff <= tolerance * max(1, max |torch logit|)``.
        log: function receiving progress lines (None: silent).
        options: family options of the Keras model (``spec.options`` by default).

    The checkpoint is copied strictly into the full model with the checkpoint's
    head (every tensor used once, every weight filled), verified, and only then
    reduced to the requested head and written. Any failure raises
    ``ValueError``/``FileExistsError`` and leaves ``output_path`` untouched.
    """
    from keras_cnnclassics.registry import get_spec

    log = log or (lambda *_: None)
    spec = get_spec(arch)
    _check_request(spec, source, output_path, classes, include_top, force, tolerance)
    if not isinstance(input_path, (str, os.PathLike)):
        raise ValueError(f"input must be the path of a .pth/.pt/.safetensors file; got {input_path!r}.")
    options = dict(options or {})
    mapping = family_mapping(spec, options)
    progress = os.path.isfile(input_path) and os.path.getsize(input_path) >= PROGRESS_BYTES
    state, dropped = mapping.apply(read_checkpoint(input_path, progress=progress))
    log(f"read {len(state)} tensors from {os.fspath(input_path)}" + (
        f" (left out on purpose: {len(dropped)} tensors of {_summary(dropped)})" if dropped else ""))
    model, ckpt_classes = _copy_into_registry_model(spec, state, options, include_top, input_path, progress)
    result = ConversionResult(
        arch=spec.name, reference=spec.reference, output=os.fspath(output_path),
        tensors=sum(not k.endswith(_IGNORED_SUFFIXES) for k in state),
        checkpoint_classes=ckpt_classes, dropped=dropped,
    )
    if ckpt_classes is None:
        result.skipped = "the checkpoint has no classifier head, so there are no logits to compare"
        log(f"verification skipped: {result.skipped}")
    elif verify:
        _verify(result, spec, model, state, ckpt_classes, mapping, tolerance, log)
    target = _with_requested_head(spec, model, options, include_top, classes, result, log)
    _write(target, result.output, force)
    log(f"wrote {result.output} ({spec.name}, "
        f"{'no top' if not include_top else f'{classes or ckpt_classes} classes'})")
    return result


def _build(spec, options, classes=None, include_top=True, logits=True):
    from keras_cnnclassics.registry import get_model

    activation = {"classifier_activation": None} if logits else {}
    return get_model(spec.name, classes=classes or spec.default_classes, include_top=include_top,
                     **activation, **options)


def _copy_into_registry_model(spec, state, options, include_top, path, progress):
    """``(model holding the checkpoint, its number of classes)``, strictly.

    The model is the full one with the checkpoint's head size (logits), or, for a
    checkpoint saved without its head and ``include_top=False``, the backbone
    (classes None).
    """
    model = _build(spec, options)
    ckpt_classes = _checkpoint_classes(model, state)
    if ckpt_classes is None and not include_top:
        model = _build(spec, options, include_top=False)
    elif ckpt_classes not in (None, spec.default_classes):
        model = _build(spec, options, ckpt_classes)
    try:
        state_dict_to_keras(model, state, progress=progress)
    except CheckpointMismatch as err:
        head = head_layer(model)
        headless = head is not None and err.missing == [head.name] and not (err.mismatched or err.unexpected)
        hint = " A checkpoint without its classifier head converts with --no-top." if headless else ""
        raise ValueError(f"{os.fspath(path)!r} does not fit {spec.name}: {err}{hint}") from None
    return model, ckpt_classes


def _with_requested_head(spec, model, options, include_top, classes, result, log):
    """``model`` itself, or a model with the requested head whose other layers are copied."""
    if result.checkpoint_classes is None or (include_top and classes in (None, result.checkpoint_classes)):
        return model
    target = _build(spec, options, classes, include_top=include_top, logits=False)
    result.reinitialised = _copy_matching_layers(model, target)
    log("dropped the head" if not include_top else
        f"re-initialised the head for {classes} classes ({', '.join(result.reinitialised)})")
    return target


def _summary(keys):
    """``aux1, aux2`` for keys ``aux1.conv.weight, aux2.fc.bias, ...``."""
    return ", ".join(sorted({k.split(".", 1)[0] for k in keys}))


def _verify(result, spec, keras_model, state, classes, mapping, tolerance, log):
    torch_model = source_model(spec, state, classes, mapping)
    if torch_model is None:
        result.skipped = f"torch or {spec.reference.split(':')[0]} is not installed"
        log(f"verification skipped: {result.skipped}")
        return
    diff, scale = logit_difference(keras_model, torch_model, spec.input_shape)
    result.max_abs_diff, result.logit_scale = diff, scale
    limit = tolerance * max(1.0, scale)
    log(f"verified against {spec.reference}: max |logit difference| {diff:.3g} "
        f"(largest |logit| {scale:.3g}, batch of 2 at {spec.input_shape[0]}x{spec.input_shape[1]}; "
        f"limit {limit:.3g})")
    if not diff <= limit:
        raise ValueError(
            f"Conversion check failed: max |logit difference| {diff:.3g} against {spec.reference} "
            f"exceeds {limit:.3g}; nothing was written."
        )


def _write(model, path, force):
    """Atomic ``.weights.h5`` write, re-read before it is renamed into place."""
    with atomic_path(path, overwrite=force) as tmp:
        model.save_weights(tmp, overwrite=True)
        if file_manifest(tmp) != model_manifest(model):
            raise ValueError(f"The written weights file does not read back as {model.name!r}.")
