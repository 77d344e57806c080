"""``cnnclassics predict``: the top-k classes of each image.

    cnnclassics predict RUN_OR_MODEL IMAGE...                  a run folder or .keras file
    cnnclassics predict --model resnet50 [--weights imagenet] IMAGE...   a registry model

With ``--model`` the registry model is built with ``--weights`` (``imagenet`` by
default: a published tag, a URL or a local weights file), each image is preprocessed
as the weights were evaluated (:func:`keras_cnnclassics.pretrained.preprocessing`:
resize, centre crop, normalise) and the ImageNet class names are printed.
"""

import json


def register(subparsers):
    parser = subparsers.add_parser("predict", help="top-k classes of image files with a trained or pretrained model")
    parser.add_argument("source", metavar="MODEL", help="run folder or .keras file (with --model: an image file)")
    parser.add_argument("images", metavar="IMAGE", nargs="*", help="image files (png, jpg, bmp, gif)")
    parser.add_argument("--model", metavar="NAME", help="registry model to build, e.g. resnet50")
    parser.add_argument("--weights", default="imagenet",
                        help="with --model: imagenet (default), a published tag, a URL or a weights file")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best")
    parser.add_argument("--json", action="store_true", help="print JSON")
    # TensorFlow decodes the image files (see keras_cnnclassics.images).
    parser.set_defaults(func=run, backend_modules=lambda args: ("tensorflow",), parser=parser)


def run(args):
    if args.model:
        results = predict_registry_model(args.model, args.weights, [args.source, *args.images], args.top_k)
    else:
        from keras_cnnclassics.training import predict

        if not args.images:
            args.parser.error("the following arguments are required: IMAGE")
        results = predict(args.source, args.images, top_k=args.top_k, checkpoint=args.checkpoint)
    if args.json:
        print(json.dumps([{"image": p, "top": [{"class": c, "probability": q} for c, q in top]}
                          for p, top in results], indent=2))
        return 0
    for path, top in results:
        print(path)
        for name, prob in top:
            print(f"  {prob:7.2%}  {name}")
    return 0


def predict_registry_model(name, weights, images, top_k=5):
    """``[(path, [(class_name, probability), ...]), ...]`` of registry model ``name``."""
    import contextlib
    import sys

    import numpy as np

    from keras_cnnclassics.imagenet import NUM_CLASSES, imagenet_classes
    from keras_cnnclassics.registry import get_model, get_spec
    from keras_cnnclassics.training.inference import top_classes

    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top-k must be an integer >= 1; got {top_k!r}.")
    spec = get_spec(name)
    with contextlib.redirect_stdout(sys.stderr):  # download progress: stdout holds the results only
        model = get_model(spec.name, weights=weights)
    prepare = image_preparation(spec, weights)
    probs = np.asarray(model.predict(np.concatenate([prepare(p) for p in images]), verbose=0))
    if probs.shape[1] == NUM_CLASSES:
        names = [n for _, n in imagenet_classes()]
    else:
        names = [f"class {i}" for i in range(probs.shape[1])]
    return top_classes(images, probs, names, top_k)


def image_preparation(spec, weights):
    """``path -> (1, ...) batch`` as ``weights`` expect: a published tag's preprocessing
    (the model's default tag for a URL or a file), else the model's own
    ``preprocess_input`` at its input size."""
    from keras_cnnclassics import pretrained
    from keras_cnnclassics.images import decode_image_file, load_image_file

    tags = pretrained.published_weights(spec.name)
    if tags:
        tag = weights if isinstance(weights, str) and weights.lower() in tags else "imagenet"
        prep = pretrained.preprocessing(spec.name, tag)
        return lambda path: prep(decode_image_file(path, 3).numpy())
    return lambda path: own_preprocessing(spec, load_image_file(path, spec.input_shape[0], spec.input_shape[2]))


def own_preprocessing(spec, image):
    """``spec.preprocess_input`` of one ``uint8`` HWC image, as a batch in the data format."""
    import keras

    batch = image[None].astype("float32")
    if keras.config.image_data_format() == "channels_first":
        batch = batch.transpose(0, 3, 1, 2)
    return keras.ops.convert_to_numpy(spec.preprocess_input(batch))
