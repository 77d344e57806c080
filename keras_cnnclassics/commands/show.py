"""``cnnclassics show``: pictures of what a model sees, written as PNG.

    cnnclassics show features --model resnet18 IMAGE --out maps.png     stage-end feature maps
    cnnclassics show filters  --model alexnet --out conv1.png            first-layer filters
    cnnclassics show gradcam  --model resnet50 --weights imagenet IMAGE --out cam.png
    cnnclassics show saliency --model resnet50 --weights imagenet IMAGE --out grad.png

Without ``--weights`` the model has its random initial weights. Images are preprocessed
as ``cnnclassics predict`` does: a published tag's preprocessing (resize, centre crop,
normalise), else the model's own ``preprocess_input`` at its input size.
"""

import os

from keras_cnnclassics.commands import CommandError

KINDS = {
    "features": "feature maps of chosen layers for one image",
    "filters": "a convolution's kernels as tiles",
    "gradcam": "Grad-CAM heat map over the image (Selvaraju et al. 2017)",
    "saliency": "gradient saliency over the image (Simonyan et al. 2014)",
}
LAYER_HELP = {
    "filters": "convolution to draw (default: the first one)",
    "gradcam": "layer to explain (default: the last spatial layer)",
}


def register(subparsers):
    parser = subparsers.add_parser("show", help="draw feature maps, filters, Grad-CAM or saliency of a model")
    kinds = parser.add_subparsers(dest="kind", metavar="KIND")
    kinds.required = True
    for kind, help_text in KINDS.items():
        _add_kind(kinds, kind, help_text)


def _add_kind(kinds, kind, help_text):
    parser = kinds.add_parser(kind, help=help_text)
    if kind != "filters":
        parser.add_argument("image", metavar="IMAGE", help="image file (png, jpg, bmp, gif)")
    parser.add_argument("--model", metavar="NAME", required=True, help="registry model, e.g. resnet18")
    parser.add_argument("--weights", default=None,
                        help="imagenet, a published tag, a URL or a weights file (default: random weights)")
    parser.add_argument("--out", metavar="FILE.png", required=True, help="picture to write")
    parser.add_argument("--force", action="store_true", help="replace FILE.png if it exists")
    if kind == "features":
        parser.add_argument("--layer", action="append", metavar="L",
                            help="layer to draw, repeat for several (default: the stage ends)")
    elif kind != "saliency":
        parser.add_argument("--layer", metavar="L", help=LAYER_HELP[kind])
    if kind in ("gradcam", "saliency"):
        parser.add_argument("--class-index", type=int, metavar="K", help="class to explain (default: the top class)")
    # TensorFlow decodes the image files (see keras_cnnclassics.images).
    parser.set_defaults(func=run, backend_modules=lambda args: ("tensorflow",))


def _check_arguments(args):
    if not args.out.lower().endswith(".png"):
        raise CommandError(f"--out {args.out!r}: give a file name ending in .png.")
    if os.path.exists(args.out) and not args.force:
        raise CommandError(f"{args.out!r} already exists; pass --force to replace it.")


def run(args):
    import contextlib
    import sys

    from keras_cnnclassics import visualize
    from keras_cnnclassics.registry import get_model, get_spec

    _check_arguments(args)
    spec = get_spec(args.model)
    with contextlib.redirect_stdout(sys.stderr):  # download progress stays off stdout
        model = get_model(spec.name, weights=args.weights)
    title = f"{spec.name}, {args.weights or 'random'} weights"
    if args.kind == "filters":
        visualize.plot_filters(visualize.filters(model, args.layer), args.out, overwrite=args.force, title=title)
    else:
        image, picture = prepared_image(spec, args.weights, args.image)
        if args.kind == "features":
            maps = visualize.feature_maps(model, image, args.layer)
            visualize.plot_feature_maps(maps, args.out, overwrite=args.force, title=title)
        else:
            heat = (visualize.grad_cam(model, image, args.class_index, args.layer) if args.kind == "gradcam"
                    else visualize.saliency(model, image, args.class_index))
            visualize.plot_heat_map(picture, heat, args.out, overwrite=args.force, title=f"{args.kind}: {title}")
    print(args.out)
    return 0


def prepared_image(spec, weights, path):
    """The model's input batch for the image file ``path`` and the same crop in [0, 1] to draw."""
    from keras_cnnclassics.commands.predict import image_preparation

    image = image_preparation(spec, weights)(path)
    return image, _picture(spec, weights, image)


def _picture(spec, weights, image):
    """The preprocessed ``image`` back in [0, 1] RGB where the normalisation is known
    (a published tag's mean and std), else stretched to [0, 1]."""
    import keras
    import numpy as np

    from keras_cnnclassics import pretrained
    from keras_cnnclassics.visualize import display_image

    tags = pretrained.published_weights(spec.name)
    if not tags:
        return display_image(image)
    tag = weights if isinstance(weights, str) and weights.lower() in tags else "imagenet"
    prep = pretrained.preprocessing(spec.name, tag)
    x = image[0] if keras.config.image_data_format() == "channels_last" else np.moveaxis(image[0], 0, -1)
    return np.clip(x * np.asarray(prep.std) + np.asarray(prep.mean), 0.0, 1.0)
