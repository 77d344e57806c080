"""Standard datasets by name (``--data cifar10``), read by ``keras.datasets``.

``keras.datasets.<name>.load_data()`` downloads each dataset once into
``$KERAS_HOME/datasets`` (default ``~/.keras/datasets``) and reads it from there
afterwards. Its training split is trained on and its official test split is the
validation split (``--val-split`` does not apply). Images stay ``uint8`` as
stored (CIFAR-10's 50,000 training images: 150 MB); resizing to the model's
input size (bilinear, as for the digits) and the channel conversion (grey
replicated to RGB, RGB to grey with the ITU-R BT.601 luma weights) happen per
batch, when the images are indexed (:class:`ConvertedImages`).

* CIFAR-10 and CIFAR-100 (Krizhevsky, 2009, "Learning Multiple Layers of
  Features from Tiny Images"): 32x32 RGB, 50,000 / 10,000 images; CIFAR-100 with
  its 100 fine labels.
* MNIST (LeCun et al., 1998): 28x28 grey handwritten digits, 60,000 / 10,000.
* Fashion-MNIST (Xiao et al., 2017): 28x28 grey clothing, 60,000 / 10,000.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from keras_cnnclassics.images import ImageData, bilinear_matrix, to_uint8

__all__ = ["DATASETS", "Dataset", "ConvertedImages", "load_dataset_data", "dataset_images",
           "is_dataset"]

_KERAS_DATASETS = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
# ITU-R BT.601 luma, as tf.image.rgb_to_grayscale and PIL's "L" conversion.
LUMA = np.array([0.299, 0.587, 0.114])


@dataclasses.dataclass(frozen=True)
class Dataset:
    """One named dataset: its ``keras.datasets`` module, layout and classes.

    ``files`` are the names ``keras.datasets`` caches under ``$KERAS_HOME/datasets``
    (what to place there by hand when there is no internet).
    """

    module: str
    url: str
    files: tuple
    channels: int
    size: int
    class_names: tuple
    train_size: int
    augment: str = "basic"  # the default --augment: "none" where a flip makes another class


CIFAR100_CLASSES = (
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus "
    "butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch "
    "crab crocodile cup dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo "
    "keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle mountain mouse "
    "mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy "
    "porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper "
    "snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television "
    "tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm"
).split()
_FASHION_FILES = ("train-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz",
                  "t10k-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz")

DATASETS = {
    "cifar10": Dataset(
        "cifar10", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        ("cifar-10-batches-py-target_archive (the .tar.gz renamed)",), 3, 32,
        ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
        50000,
    ),
    "cifar100": Dataset(
        "cifar100", "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        ("cifar-100-python-target_archive (the .tar.gz renamed)",), 3, 32, tuple(CIFAR100_CLASSES),
        50000,
    ),
    "mnist": Dataset("mnist", _KERAS_DATASETS + "mnist.npz", ("mnist.npz",), 1, 28,
                     tuple(str(d) for d in range(10)), 60000, augment="none"),
    "fashion_mnist": Dataset(
        "fashion_mnist", _KERAS_DATASETS,
        tuple(f"fashion-mnist/{f}" for f in _FASHION_FILES), 1, 28,
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
         "Bag", "Ankle boot"), 60000,
    ),
}


def is_dataset(data) -> bool:
    """True when ``data`` names one of :data:`DATASETS` (not a folder path)."""
    return data in DATASETS


def cache_folder() -> str:
    """Where ``keras.datasets`` keeps its files: ``$KERAS_HOME/datasets`` (``~/.keras/datasets``)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, "datasets")


def _read(name):
    """``(x_train, y_train, x_test, y_test)`` as stored: uint8 NHWC, int32 labels."""
    import importlib

    import keras

    entry = DATASETS[name]
    module = importlib.import_module(f"keras.datasets.{entry.module}")
    try:
        (x_train, y_train), (x_test, y_test) = module.load_data()
    except Exception as err:  # get_file raises bare Exceptions for network failures
        reason = " ".join(str(err).split()) or type(err).__name__
        raise ValueError(
            f"could not load {name} with keras.datasets ({reason[:200]}); it downloads "
            f"{entry.url} into {cache_folder()}: connect once, or place the file(s) there by "
            f"hand as {', '.join(entry.files)}."
        ) from None
    if x_train.ndim == 3:  # MNIST-style (N, H, W)
        x_train, x_test = x_train[..., None], x_test[..., None]
    elif keras.config.image_data_format() == "channels_first":  # CIFAR follows the format
        x_train, x_test = x_train.transpose(0, 2, 3, 1), x_test.transpose(0, 2, 3, 1)
    return x_train, _labels(y_train), x_test, _labels(y_test)


def _labels(y):
    return np.asarray(y).reshape(-1).astype("int32")


class ConvertedImages:
    """``uint8`` NHWC images shown at another size / channel count, converted when indexed.

    A numpy-like stand-in (``len``, ``shape``, ``dtype``, integer, slice and
    index-array indexing) that keeps only the stored images in memory.
    """

    dtype = np.dtype("uint8")
    ndim = 4

    def __init__(self, images, image_size, channels):
        self.images, self.image_size, self.channels = images, image_size, channels
        self._resize = bilinear_matrix(images.shape[1], image_size)

    def __len__(self):
        return len(self.images)

    @property
    def shape(self):
        return (len(self), self.image_size, self.image_size, self.channels)

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            return self.convert(self.images[int(key)][None])[0]
        return self.convert(self.images[key])

    def convert(self, images):
        """``images`` (uint8 NHWC, stored size) resized bilinearly and channel-converted."""
        pixels = images.astype("float32")
        if images.shape[-1] == 3 and self.channels == 1:
            pixels = pixels @ LUMA.astype("float32")[:, None]
        elif images.shape[-1] == 1 and self.channels == 3:
            pixels = np.repeat(pixels, 3, axis=-1)
        if images.shape[1] != self.image_size:
            pixels = np.einsum("oh,nhwc,pw->nopc", self._resize, pixels, self._resize)
        return to_uint8(pixels)


def _as_model_input(images, image_size, channels):
    """``images`` themselves when they already fit, else a :class:`ConvertedImages` view."""
    if images.shape[1] == image_size and images.shape[-1] == channels:
        return images
    return ConvertedImages(images, image_size, channels)


def load_dataset_data(name, image_size, channels) -> ImageData:
    """Dataset ``name``: training split to train on, official test split to validate on."""
    x_train, y_train, x_test, y_test = _read(name)
    return ImageData(
        _as_model_input(x_train, image_size, channels), y_train,
        _as_model_input(x_test, image_size, channels), y_test,
        class_names=list(DATASETS[name].class_names),
        source=f"{name} (keras.datasets; validation: its official test split)",
    )


def dataset_images(name, image_size, channels, split="test"):
    """``(images, labels)`` of ``name``'s test split, or of both splits (``split="all"``)."""
    x_train, y_train, x_test, y_test = _read(name)
    if split == "all":
        x_test, y_test = np.concatenate([x_train, x_test]), np.concatenate([y_train, y_test])
    return _as_model_input(x_test, image_size, channels), y_test
