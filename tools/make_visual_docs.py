"""Make the pictures of the visualisation docs: docs/visualize_*.png.

    python tools/make_visual_docs.py [--out docs] [--epochs 10] [--backend jax]

Two sources, each named in its picture's title:

* LeNet-5 trained for ``--epochs`` on scikit-learn's handwritten digits (``cnnclassics
  train lenet5``, a few seconds on a CPU): its C1 filters, its feature maps of a
  validation digit at three depths and a Grad-CAM of that digit. Weights that learned
  something, so the pictures mean something.
* ResNet-18 and AlexNet with their random initial weights (no downloads here), on
  scikit-learn's sample photo china.jpg: feature maps at three depths, AlexNet's 64
  conv1 filters (random noise until trained) and a Grad-CAM overlay, to show what the
  pictures look like. Run ``cnnclassics show ... --weights imagenet`` where the
  published weights can be downloaded for the trained versions.

Existing pictures are replaced.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join(ROOT, "docs"), help="folder of the pictures (default docs/)")
    parser.add_argument("--epochs", type=int, default=10, help="LeNet-5 training epochs (default 10)")
    parser.add_argument("--backend", choices=("tensorflow", "jax", "torch"), help="Keras backend")
    return parser.parse_args(argv)


def trained_lenet5(folder, epochs):
    """LeNet-5 trained on the digits by ``cnnclassics train``; its best checkpoint."""
    from keras_cnnclassics import cli
    from keras_cnnclassics.weights import load_model_file

    run = os.path.join(folder, "lenet5")
    code = cli.main(["train", "lenet5", "--epochs", str(epochs), "--output", run, "--seed", "0"])
    if code != 0:
        raise SystemExit(f"training LeNet-5 failed (exit code {code}).")
    return load_model_file(os.path.join(run, "best.keras"))


def validation_digit():
    """A validation digit (uint8, LeNet-5's 32x32x1) and its label."""
    from keras_cnnclassics.images import load_digits_data

    data = load_digits_data(32, 1)
    return data.x_val[0], int(data.y_val[0])


def lenet5_pictures(model, out):
    from keras_cnnclassics import visualize
    from keras_cnnclassics.commands.predict import own_preprocessing
    from keras_cnnclassics.registry import get_spec

    digit, label = validation_digit()
    image = own_preprocessing(get_spec("lenet5"), digit)
    note = "LeNet-5 trained on scikit-learn's digits"
    visualize.plot_filters(visualize.filters(model, "c1"), _path(out, "lenet5_filters"), overwrite=True,
                           title=f"{note}: the six 5x5 C1 filters")
    maps = visualize.feature_maps(model, image, ["c1", "c3", "s4"])
    visualize.plot_feature_maps(maps, _path(out, "lenet5_features"), overwrite=True,
                                title=f"{note}: feature maps of a '{label}' at three depths")
    heat = visualize.grad_cam(model, image, class_index=label)
    visualize.plot_heat_map(digit, heat, _path(out, "lenet5_gradcam"), overwrite=True,
                            title=f"{note}: Grad-CAM of class '{label}' at s4 (5x5)")


def random_weight_pictures(work, out):
    import keras_cnnclassics as kc
    from keras_cnnclassics import visualize
    from keras_cnnclassics.commands.show import prepared_image
    from keras_cnnclassics.registry import get_spec

    resnet = kc.get_model("resnet18")
    image, picture = prepared_image(get_spec("resnet18"), None, _china_file(work))
    note = "random initial weights"
    maps = visualize.feature_maps(resnet, image, ["layer1_1_out", "layer2_1_out", "layer3_1_out"])
    visualize.plot_feature_maps(maps, _path(out, "resnet18_features"), max_channels=8, overwrite=True,
                                title=f"ResNet-18, {note}: feature maps at three depths")
    visualize.plot_heat_map(picture, visualize.grad_cam(resnet, image), _path(out, "resnet18_gradcam"),
                            overwrite=True, title=f"ResNet-18, {note}: Grad-CAM of its top class at layer4")
    alexnet = kc.get_model("alexnet", include_top=False)
    visualize.plot_filters(visualize.filters(alexnet), _path(out, "alexnet_filters"), overwrite=True,
                           title=f"AlexNet, {note}: the 64 conv1 filters (11x11x3), noise until trained")


def _china_file(folder):
    from PIL import Image
    from sklearn.datasets import load_sample_images

    path = os.path.join(folder, "china.png")
    Image.fromarray(load_sample_images().images[0]).save(path)
    return path


def _path(out, stem):
    return os.path.join(out, f"visualize_{stem}.png")


def main(argv=None):
    args = parse_args(argv)
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend
    sys.path.insert(0, ROOT)
    with tempfile.TemporaryDirectory() as work:
        lenet5_pictures(trained_lenet5(work, args.epochs), args.out)
        random_weight_pictures(work, args.out)
    for name in sorted(os.listdir(args.out)):
        if name.startswith("visualize_") and name.endswith(".png"):
            print(f"{os.path.join(args.out, name)}  {os.path.getsize(os.path.join(args.out, name)) // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
