"""Named datasets (``--data cifar10`` ...) through ``keras.datasets``' own code, offline.

Each test writes small files in the dataset's own on-disk format where
``keras.datasets.<name>.load_data()`` looks for them (``$KERAS_HOME/datasets``,
see ``keras.utils.get_file``): the pickled CIFAR batches packed as the
``.tar.gz`` keras downloads, ``mnist.npz``, Fashion-MNIST's gzipped IDX files.
``get_file`` then finds them in its cache, extracts the archives and Keras'
loaders read them; nothing is downloaded. Two things are redirected, both in
Keras itself: its cache folder (read from ``KERAS_HOME`` once, when Keras is
imported) and, for the three datasets whose ``load_data`` passes a SHA-256 of
the real file, the hash check, which a small stand-in file cannot pass.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import tarfile
import urllib.error

import numpy as np
import pytest
from keras.src.backend import config as keras_config
from keras.src.utils import file_utils

from keras_cnnclassics import cli
from keras_cnnclassics.training import TrainConfig, evaluate, train
from keras_cnnclassics.training.datasets import DATASETS, ConvertedImages, load_dataset_data

CIFAR_TRAIN_LABELS = (3, 1, 4, 1, 5)  # one image per data_batch_i (Keras fills 10,000 rows each)
TEST_IMAGES = 12


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    """A fresh ``KERAS_HOME`` for keras.datasets, with the real-file hash check accepted."""
    home = tmp_path / "keras_home"
    (home / "datasets").mkdir(parents=True)
    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(home))
    monkeypatch.setattr(file_utils, "validate_file", lambda *args, **kwargs: True)
    return home / "datasets"


def images(n, seed, shape=(32, 32, 3)):
    return np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype="uint8")


def cifar_batch(x, **labels):
    """A CIFAR python batch as the dataset ships it: bytes keys, rows of 3072 (CHW) bytes."""
    record = {b"data": x.transpose(0, 3, 1, 2).reshape(len(x), -1)}
    record.update({key.encode(): list(map(int, value)) for key, value in labels.items()})
    return pickle.dumps(record, protocol=4)  # 5 would pickle numpy arrays through _frombuffer


def write_tar_gz(path, folder, members):
    with tarfile.open(path, "w:gz") as archive:
        for name, payload in members.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))


def make_cifar10(cache):
    """data_batch_1..5 of one image each and a test_batch of TEST_IMAGES."""
    train_x = images(5, 0)
    test_x, test_y = images(TEST_IMAGES, 1), np.arange(TEST_IMAGES) % 10
    members = {f"data_batch_{i + 1}": cifar_batch(train_x[i : i + 1], labels=[label])
               for i, label in enumerate(CIFAR_TRAIN_LABELS)}
    members["test_batch"] = cifar_batch(test_x, labels=test_y)
    write_tar_gz(cache / "cifar-10-batches-py-target_archive", "cifar-10-batches-py", members)
    return train_x, test_x, test_y


def make_cifar100(cache):
    train_x, train_y = images(20, 2), np.arange(20) * 5
    test_x, test_y = images(TEST_IMAGES, 3), np.arange(TEST_IMAGES) * 8
    members = {
        "train": cifar_batch(train_x, fine_labels=train_y, coarse_labels=train_y // 5),
        "test": cifar_batch(test_x, fine_labels=test_y, coarse_labels=test_y // 5),
    }
    write_tar_gz(cache / "cifar-100-python-target_archive", "cifar-100-python", members)
    return train_x, train_y, test_x, test_y


def make_mnist(cache):
    arrays = {"x_train": images(40, 4, (28, 28)), "y_train": np.arange(40, dtype="uint8") % 10,
              "x_test": images(TEST_IMAGES, 5, (28, 28)),
              "y_test": np.arange(TEST_IMAGES, dtype="uint8") % 10}
    np.savez(cache / "mnist.npz", **arrays)
    return arrays


def make_fashion_mnist(cache):
    """The four gzipped IDX files (8-byte label header, 16-byte image header)."""
    folder = cache / "fashion-mnist"
    folder.mkdir()
    arrays = {"train": (images(64, 6, (28, 28)), np.arange(64, dtype="uint8") % 10),
              "t10k": (images(TEST_IMAGES, 7, (28, 28)), np.arange(TEST_IMAGES, dtype="uint8") % 10)}
    for split, (x, y) in arrays.items():
        with gzip.open(folder / f"{split}-labels-idx1-ubyte.gz", "wb") as handle:
            handle.write(b"\0\0\x08\x01" + len(y).to_bytes(4, "big") + y.tobytes())
        with gzip.open(folder / f"{split}-images-idx3-ubyte.gz", "wb") as handle:
            handle.write(b"\0\0\x08\x03" + len(x).to_bytes(4, "big") + b"\0\0\0\x1c\0\0\0\x1c"
                         + x.tobytes())
    return arrays


def test_cifar10_is_read_by_keras_with_its_test_split_for_validation(keras_home):
    train_x, test_x, test_y = make_cifar10(keras_home)
    data = load_dataset_data("cifar10", 32, 3)
    assert data.x_train.shape == (50000, 32, 32, 3) and data.x_train.dtype == np.uint8
    for batch, label in enumerate(CIFAR_TRAIN_LABELS):
        rows = slice(batch * 10000, (batch + 1) * 10000)
        assert (data.y_train[rows] == label).all()
        np.testing.assert_array_equal(data.x_train[batch * 10000 + 7], train_x[batch])
    np.testing.assert_array_equal(data.x_val, test_x)
    np.testing.assert_array_equal(data.y_val, test_y)
    assert data.y_val.dtype == np.int32
    assert data.class_names[:2] == ["airplane", "automobile"] and data.num_classes == 10
    assert "official test split" in data.source


def test_cifar100_has_its_100_fine_classes(keras_home):
    train_x, train_y, test_x, test_y = make_cifar100(keras_home)
    data = load_dataset_data("cifar100", 32, 3)
    assert data.num_classes == 100 and len(set(data.class_names)) == 100
    assert data.class_names[0] == "apple" and data.class_names[-1] == "worm"
    np.testing.assert_array_equal(data.x_train, train_x)
    np.testing.assert_array_equal(data.y_train, train_y)
    np.testing.assert_array_equal(data.x_val, test_x)
    np.testing.assert_array_equal(data.y_val, test_y)


def test_mnist_is_resized_and_given_the_models_channels_per_batch(keras_home):
    arrays = make_mnist(keras_home)
    data = load_dataset_data("mnist", 32, 3)
    assert isinstance(data.x_train, ConvertedImages)
    assert data.x_train.shape == (40, 32, 32, 3) and data.x_val.shape == (TEST_IMAGES, 32, 32, 3)
    batch = data.x_train[np.array([3, 0])]
    assert batch.shape == (2, 32, 32, 3) and batch.dtype == np.uint8
    assert (batch[..., 0] == batch[..., 2]).all()  # grey replicated
    # the bilinear resize keeps the mean brightness within rounding
    assert abs(batch[0].mean() - arrays["x_train"][3].mean()) < 2.0
    np.testing.assert_array_equal(data.y_train, arrays["y_train"])
    native = load_dataset_data("mnist", 28, 1)
    np.testing.assert_array_equal(native.x_train[..., 0], arrays["x_train"])


def test_rgb_becomes_grey_with_the_bt601_weights():
    rgb = np.zeros((1, 32, 32, 3), "uint8")
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    grey = ConvertedImages(rgb, 32, 1)[0]
    assert grey.shape == (32, 32, 1)
    assert (grey == round(0.299 * 200 + 0.587 * 100 + 0.114 * 50)).all()


@pytest.mark.slow  # ~11 s: one backend per run in the default tier
def test_fashion_mnist_trains_lenet5_and_evaluates_from_the_command_line(keras_home, tmp_path, capsys):
    arrays = make_fashion_mnist(keras_home)
    run = tmp_path / "run"
    code = cli.main(["train", "lenet5", "--data", "fashion_mnist", "--epochs", "1", "--limit", "32",
                     "--batch-size", "16", "--output", str(run)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "fashion_mnist (keras.datasets; validation: its official test split)" in out
    config = json.loads((run / "config.json").read_text())
    assert config["config"]["data"] == "fashion_mnist" and config["config"]["augment"] == "basic"
    assert config["data"]["train"] == 32 and config["data"]["val"] == TEST_IMAGES
    assert config["data"]["class_names"][-1] == "Ankle boot"
    result = evaluate(str(run))  # the run's own data again: its test split
    assert result["split"] == "validation" and result["images"] == TEST_IMAGES
    everything = evaluate(str(run), data="fashion_mnist", split="all")
    assert everything["images"] == len(arrays["train"][1]) + TEST_IMAGES


@pytest.mark.slow  # ~10 s: one backend per run in the default tier
def test_cifar10_trains_resnet20_through_the_python_api(keras_home, tmp_path):
    make_cifar10(keras_home)
    result = train(TrainConfig("resnet20", data="cifar10", epochs=1, limit=32, batch_size=16,
                               output=str(tmp_path / "run")), verbose=0)
    assert result.config.data == "cifar10" and result.config.augment == "basic"
    assert len(result.history) == 1 and np.isfinite(result.history[0]["loss"])
    assert result.evaluation["images"] == TEST_IMAGES


def test_offline_download_failure_is_one_line_naming_the_url_and_the_file(keras_home, monkeypatch):
    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(file_utils, "urlretrieve", offline)
    with pytest.raises(ValueError) as caught:
        load_dataset_data("cifar10", 32, 3)
    message = str(caught.value)
    assert "\n" not in message
    assert DATASETS["cifar10"].url in message
    assert str(keras_home) in message
    assert "cifar-10-batches-py-target_archive" in message
    assert "Temporary failure in name resolution" in message


def test_unknown_data_name_lists_the_datasets():
    with pytest.raises(ValueError, match="cifar10, cifar100, mnist, fashion_mnist"):
        TrainConfig("lenet5", data="cifar1O").validate()
