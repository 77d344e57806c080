"""Representative images: calibration of the int8 quantizations and verification of every file.

A folder of images (decoded as in training, through the model's own
``preprocess_input``), scikit-learn's bundled ``"digits"`` (real handwritten
digits; calibration on the training split, verification on the held-out split)
or ``"random"`` images.
"""

from __future__ import annotations

import os

import numpy as np

from keras_cnnclassics.images import IMAGE_SUFFIXES, image_files, load_digits_data, load_image_file

CALIBRATION_SOURCES = ("digits", "random")
CALIBRATION_IMAGES = 200
VERIFY_FLOAT_IMAGES = 8
VERIFY_INT8_IMAGES = 200


def calibration_files(folder):
    """The image files of a calibration folder (ValueError when there are none)."""
    files = image_files(folder)
    if not files:
        raise ValueError(
            f"calibration folder {os.fspath(folder)!r} holds no images "
            f"({', '.join(IMAGE_SUFFIXES)})."
        )
    return files


def _square_side(shape, what):
    """The side of a square ``(H, W, C)`` input (ValueError naming ``what`` otherwise)."""
    height, width, _ = shape
    if height != width:
        raise ValueError(f"{what} needs a square input; got {shape}.")
    return height


def _folder_images(folder, shape, count):
    side = _square_side(shape, "calibration from a folder")
    images, bad = [], []
    for path in calibration_files(folder)[:count]:
        try:
            images.append(load_image_file(path, side, shape[2]))
        except ValueError:
            bad.append(os.path.relpath(path, os.fspath(folder)))
    if bad:
        raise ValueError(
            f"calibration folder {os.fspath(folder)!r}: {len(bad)} unreadable image file(s): "
            f"{', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}. Remove or fix them."
        )
    return np.stack(images).astype("float32")


def calibration_images(source, shape, count=CALIBRATION_IMAGES, seed=0):
    """Raw images in [0, 255], NHWC float32, for calibration and verification.

    Returns ``(calibration, verification, verification_labels_or_None)``:
    ``"digits"`` gives the training split and the held-out split with labels,
    a folder gives its images for both, ``"random"`` two independent draws.
    """
    if source == "digits":
        data = load_digits_data(_square_side(shape, "digits calibration"), shape[2], seed=seed)
        return (data.x_train[:count].astype("float32"), data.x_val[:count].astype("float32"),
                data.y_val[:count])
    if source == "random":
        rng = np.random.default_rng(seed)
        draw = lambda: rng.uniform(0, 255, (count, *shape)).astype("float32")  # noqa: E731
        return draw(), draw(), None
    images = _folder_images(source, shape, count)
    return images, images, None


def calibration_batches(images, batch):
    """The calibration images in whole batches of the file's batch size (1 when dynamic)."""
    step = batch or 1
    for start in range(0, len(images) - step + 1, step):
        yield images[start : start + step]


def preprocess_function(preprocess, registry_name, notes):
    """The model's own ``preprocess_input`` (declared on its registry entry), or what was asked."""
    if callable(preprocess):
        return preprocess
    from keras_cnnclassics import registry

    name = preprocess or registry_name
    if name == "none":
        return lambda x: np.asarray(x, "float32")
    if name is None:
        notes.append("not a registry model: images are fed unscaled in [0, 255] (pass preprocess=)")
        return lambda x: np.asarray(x, "float32")
    return registry.get_spec(name).preprocess_input


def datasets(request, shape, preprocess):
    """Preprocessed calibration images (or None), verification images, labels, their source."""
    if request.quantize in ("int8", "dynamic-int8"):
        source = request.calibration or "random"
        calib, verify, labels = calibration_images(source, shape, CALIBRATION_IMAGES)
        verify = verify[:VERIFY_INT8_IMAGES]
        described = "held-out digits" if source == "digits" else (
            "random" if source == "random" else "calibration-folder")
        calib = np.asarray(preprocess(calib), "float32") if request.quantize == "int8" else None
        return calib, np.asarray(preprocess(verify), "float32"), labels, described
    _, verify, _ = calibration_images("random", shape, VERIFY_FLOAT_IMAGES)
    return None, np.asarray(preprocess(verify), "float32"), None, "random"
