"""Input pipeline images/s against a model's training images/s, on the current backend.

    KERAS_BACKEND=jax python tools/pipeline_bench.py --count 2000 --size 224 --model resnet50

Writes (or reuses) a folder of generated JPEGs, then times, one after the other:

* the training input of ``cnnclassics train --data DIR``: the streamed folder
  (decode, crop/resize) with ``--augment basic`` and the family's preprocessing,
  batch after batch through the same :class:`TrainBatches` the trainer uses,
  with ``CNNCLASSICS_DATA_WORKERS`` threads;
* decode alone (``--augment none``), to show what augmentation costs;
* ``model.train_on_batch`` of the model on one such batch (float32, SGD).

The pipeline is not the bottleneck when its images/s exceed the model's.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def images_per_second(step, batch, steps) -> float:
    """Images/s of ``steps`` calls of ``step()`` after one warm-up call."""
    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - start)


def pipeline(data, spec, batch, augment):
    """The trainer's batches over the streamed folder, with augmentation ``augment``."""
    from keras_cnnclassics.training.augment import Augmenter
    from keras_cnnclassics.training.data import TrainBatches

    augmenter = Augmenter(augment, 3)
    return TrainBatches(data.x_train, data.y_train, len(data.class_names), batch, seed=0,
                        augment=augmenter or None, preprocess=spec.preprocess_input)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--batches", type=int, default=8, help="timed batches of the input pipeline")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps of the model")
    parser.add_argument("--root", default=os.path.join(tempfile.gettempdir(), "cnnclassics-stream"))
    args = parser.parse_args(argv)

    import keras

    import keras_cnnclassics as kc
    from keras_cnnclassics.training.data import data_workers, open_folder_data
    from stream_memory import write_folder

    folder = write_folder(args.root, args.count, args.size)
    spec = kc.registry.get_spec(args.model)
    data = open_folder_data(folder, args.size, 3, 0.1, seed=0)
    rows = []
    for augment in ("basic", "none"):
        batches = pipeline(data, spec, args.batch, augment)
        counter = iter(range(args.batches + 1))
        rows.append((f"input, augment {augment}", images_per_second(
            lambda: batches[next(counter)], args.batch, args.batches)))
    x, y = pipeline(data, spec, args.batch, "none")[0]
    model = kc.get_model(args.model, input_shape=(args.size, args.size, 3), classes=len(data.class_names))
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="categorical_crossentropy")
    rows.append((f"{args.model} train_on_batch", images_per_second(
        lambda: model.train_on_batch(x, y), args.batch, args.steps)))
    print(f"\nbackend {keras.backend.backend()}, {args.size} px JPEGs, batch {args.batch}, "
          f"{data_workers()} data worker thread(s), {os.cpu_count()} CPUs\n")
    print("| stage | images/s |\n|---|---|")
    for name, rate in rows:
        print(f"| {name} | {rate:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
