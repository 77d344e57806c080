"""Image folders streamed from disk: batches are decoded when asked for, batch ``g`` is a
pure function of ``(seed, g)`` whatever the worker count or the order of access,
unreadable files are skipped and counted, and memory follows the batch, not the folder.
"""

from __future__ import annotations

import os
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np
import pytest

from keras_cnnclassics import cli
from keras_cnnclassics.training.augment import Augmenter
from keras_cnnclassics.training.data import TrainBatches, load_image_file, open_folder_data
from keras_cnnclassics.training.runfolder import RunFolder
from keras_cnnclassics.training.stream import ImageFiles, list_image_folder

pytest.importorskip("tensorflow", reason="image files are decoded by TensorFlow's decoders")
from PIL import Image  # noqa: E402  (the train extra; tensorflow checked first)


def _write_images(folder, classes, per_class, size, rng):
    """Class folders of small JPEG and PNG files, some not square (exercises the crop)."""
    for label in range(classes):
        os.makedirs(folder / f"class_{label}", exist_ok=True)
        for i in range(per_class):
            height = size + 8 * (i % 2)
            gradient = np.linspace(0, 255, size)[None, :, None] * (label + 1) / classes
            pixels = gradient + rng.uniform(0, 60, (height, size, 3))
            ext = "jpg" if i % 2 else "png"
            Image.fromarray(np.clip(pixels, 0, 255).astype("uint8")).save(folder / f"class_{label}" / f"{i}.{ext}")
    return folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return _write_images(tmp_path_factory.mktemp("stream") / "images", 3, 12, 36, np.random.default_rng(0))


def _batches(x, y, steps, start_step=0, order=None, threads=1):
    stream = TrainBatches(x, y, 3, batch_size=4, seed=7, start_step=start_step,
                          augment=Augmenter("basic", 3))
    order = list(range(steps)) if order is None else order
    with ThreadPoolExecutor(threads) as pool:
        got = dict(zip(order, pool.map(stream.__getitem__, order)))
    return [got[i] for i in range(steps)]


def _assert_same(batches, expected):
    assert len(batches) == len(expected)
    for (images, target), (want_images, want_target) in zip(batches, expected):
        np.testing.assert_array_equal(images, want_images)
        np.testing.assert_array_equal(target, want_target)


def test_streamed_batches_equal_the_in_memory_ones_in_any_order(folder):
    data = open_folder_data(str(folder), 32, 3, val_split=0.25, seed=0)
    assert isinstance(data.x_train, ImageFiles) and data.x_train.shape == (27, 32, 32, 3)
    decoded = np.stack([load_image_file(data.x_train.path(i), 32, 3) for i in range(len(data.x_train))])
    steps = 14  # two epochs of 6 steps and two more: crosses the epoch boundaries
    expected = _batches(decoded, data.y_train, steps)
    _assert_same(_batches(data.x_train, data.y_train, steps), expected)
    backwards = list(range(steps))[::-1]
    _assert_same(_batches(data.x_train, data.y_train, steps, order=backwards, threads=4), expected)
    _assert_same(_batches(data.x_train, data.y_train, steps - 5, start_step=5), expected[5:])
    # the epoch's order and the augmentation really change from batch to batch
    assert not np.array_equal(expected[0][0], expected[6][0])


def test_validation_split_is_fixed_by_the_seed(folder):
    def split(seed):
        data = open_folder_data(str(folder), 32, 1, val_split=0.25, seed=seed)
        return [data.x_train.path(i) for i in range(len(data.x_train))], \
            [data.x_val.path(i) for i in range(len(data.x_val))]

    train, val = split(0)
    assert split(0) == (train, val) and len(val) == 9
    assert sorted(train + val) == sorted(str(p) for p in folder.rglob("*.*"))
    assert split(1)[1] != val


def test_unreadable_files_are_skipped_and_counted(tmp_path, capsys):
    folder = _write_images(tmp_path / "images", 2, 6, 32, np.random.default_rng(1))
    (folder / "class_0" / "notes.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (folder / "class_1" / ".hidden.jpg").write_bytes(b"")  # hidden: not listed at all
    whole = (folder / "class_1" / "1.jpg").read_bytes()
    scan_start = whole.index(b"\xff\xda")  # JPEG's start of scan: the header ends here
    (folder / "class_1" / "1.jpg").write_bytes(whole[: scan_start + 40])  # a sound header

    listing = list_image_folder(folder)
    assert listing.unreadable == [os.path.join("class_0", "notes.png")]
    assert len(listing.paths) == 12
    data = open_folder_data(str(folder), 32, 3, val_split=0.25, seed=0)
    assert data.skipped == 1 and "Skipped 1 unreadable image(s)" in capsys.readouterr().out
    # the truncated file is found when read, and replaced by the next file of its split
    files = data.x_train if str(folder / "class_1" / "1.jpg") in map(data.x_train.path, range(9)) else data.x_val
    broken = next(i for i in range(len(files)) if files.path(i).endswith(os.path.join("class_1", "1.jpg")))
    following = (broken + 1) % len(files)
    np.testing.assert_array_equal(files[broken], load_image_file(files.path(following), 32, 3))
    np.testing.assert_array_equal(files[[broken, broken]][1], files[following])
    assert files.unreadable == {str(folder / "class_1" / "1.jpg")}


def test_memory_follows_the_batch_not_the_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNCLASSICS_DATA_WORKERS", "2")  # 2 threads, 4 batches ahead
    folder = _write_images(tmp_path / "many", 2, 1000, 32, np.random.default_rng(2))
    data = open_folder_data(str(folder), 32, 3, val_split=0.2, seed=0)
    stream = TrainBatches(data.x_train, data.y_train, 2, batch_size=16, seed=0)
    whole_folder = len(data.x_train) * 32 * 32 * 3  # bytes as uint8: what a decoded split takes
    batch = 16 * 32 * 32 * 3 * 4  # one float32 batch
    for holder in (stream, data.x_train):
        arrays = [v for v in vars(holder).values() if isinstance(v, np.ndarray)]
        assert all(a.nbytes < whole_folder / 20 for a in arrays), holder
    tracemalloc.start()
    try:
        for g in range(stream.steps_per_epoch):
            stream[g]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stream.steps_per_epoch == 100
    in_flight = 1 + 2 * 2 + 1  # the one asked for, those ahead, one being stacked
    assert peak < in_flight * batch < whole_folder / 3, (peak, batch, whole_folder)


def _train(folder, out, workers, monkeypatch):
    monkeypatch.setenv("CNNCLASSICS_DATA_WORKERS", str(workers))
    args = ["train", "lenet5", "--data", str(folder), "--epochs", "2", "--batch-size", "4",
            "--val-split", "0.25", "--seed", "1", "--output", str(out)]
    assert cli.main(args) == 0
    model = keras.saving.load_model(RunFolder(out).file("last.keras"), compile=False)
    return model.get_weights()


def test_training_on_a_folder_does_not_depend_on_the_worker_count(folder, tmp_path, monkeypatch, capsys):
    one = _train(folder, tmp_path / "one", 1, monkeypatch)
    out = capsys.readouterr().out
    assert "data: folder" in out and "27 training / 9 validation images" in out
    three = _train(folder, tmp_path / "three", 3, monkeypatch)
    for a, b in zip(one, three):
        np.testing.assert_array_equal(a, b)
    info = RunFolder(tmp_path / "three").read_json("config.json")
    assert info["data"]["skipped_unreadable"] == 0 and info["steps_per_epoch"] == 6
