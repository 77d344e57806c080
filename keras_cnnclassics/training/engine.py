"""``train``: data -> augmentation -> ``model.fit`` under a dtype policy and a
distribution -> run folder; ``evaluate`` and ``predict`` on a finished run.

The flow of :func:`train`:

1. validate every option and the input size against the model's minimum
   (``ValueError`` before anything is read or built);
2. lock the run folder, refuse to overwrite a previous run (unless ``resume`` or
   ``force``), load the data;
3. inside the distribution scope and dtype policy: build the model (``weights``
   loaded with a new head where the class count differs; backbone frozen if
   asked), compile (SGD/AdamW, warm-up + cosine/step schedule, label smoothing,
   GoogLeNet's auxiliary losses weighted 0.3), restore the resume state;
4. ``model.fit`` over :class:`~keras_cnnclassics.training.data.TrainBatches`; after
   every epoch :class:`EpochEnd` validates, saves best/last models, writes the
   resume checkpoint, the history CSV and the curves;
5. evaluate the best model on the validation split (top-1/top-5, confusion
   matrix).
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import sys
import time
import warnings

import keras
import numpy as np

from keras_cnnclassics import applications
from keras_cnnclassics import weights as weights_lib
from keras_cnnclassics.counting import count_params
from keras_cnnclassics.registry import get_spec
from keras_cnnclassics.training.augment import Augmenter
from keras_cnnclassics.training.config import AUX_LOSS_WEIGHT, DIGITS, STEP_MILESTONES, TrainConfig
from keras_cnnclassics.training.data import (
    EvalBatches,
    TrainBatches,
    limit_data,
    load_digits_data,
    open_folder_data,
    replaced_files,
)
from keras_cnnclassics.training.datasets import is_dataset, load_dataset_data
from keras_cnnclassics.training.distribute import (
    check_distribute,
    data_parallel,
    epoch_callbacks,
    join_processes,
)
from keras_cnnclassics.training.precision import dtype_policy, resolve_policy
from keras_cnnclassics.training.report import (
    MAX_CONFUSION_CLASSES,
    classification_metrics,
    plot_confusion,
    plot_curves,
)
from keras_cnnclassics.training.runfolder import RunFolder
from keras_cnnclassics.training.schedules import schedule_for

__all__ = ["train", "TrainResult", "predict_probs", "family_preprocess", "default_output"]

# Options that may differ between a run and its --resume (they do not change the result).
RESUME_FREE = ("output",)


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` returns: the run folder, per-epoch history, final evaluation
    (history empty and evaluation None in the processes other than 0 of a multi-process
    run: process 0 validates and evaluates)."""

    run_dir: str
    history: list
    evaluation: dict
    config: TrainConfig
    resumed_from: int = 0


def default_output(model_name: str) -> str:
    return os.path.join("runs", f"{model_name}-{time.strftime('%Y%m%d-%H%M%S')}")


def family_preprocess(spec):
    """The ``preprocess_input`` declared on the model's registry entry."""
    return spec.preprocess_input


def _builder_options(spec):
    return inspect.signature(spec.builder).parameters


def model_options(spec, cfg) -> dict:
    """Family options for training: GoogLeNet-style ``aux_logits`` on unless disabled."""
    options = dict(cfg.model_options)
    if "aux_logits" in _builder_options(spec):
        options.setdefault("aux_logits", True)
    applications._resolve_options(spec, options)  # unknown options: ValueError now
    return options


def input_shape_for(spec, cfg):
    """``(H, W, C)`` checked against the model's minimum (ValueError if too small)."""
    shape = (cfg.image_size, cfg.image_size, spec.input_shape[-1])
    applications.resolve_input_shape(
        spec, applications.to_data_format(shape), include_top=True, min_size=spec.min_size
    )
    return shape


def head_layer_names(model, spec, options, shape) -> set:
    """Layers of ``model``'s classifier head(s): those ``include_top=False`` lacks."""
    backbone_options = {k: v for k, v in options.items() if k != "aux_logits"}
    backbone = applications.build_model(spec, include_top=False,
                                        input_shape=applications.to_data_format(shape),
                                        **backbone_options)
    names = {layer.name for layer in backbone.layers}
    return {
        layer.name for layer in model.layers
        if layer.name not in names and not isinstance(layer, keras.layers.InputLayer)
    }


def load_start_weights(model, path, head) -> str:
    """Load ``path``; layers of the head whose shape differs (another class count) are
    left re-initialised. Any other difference is refused with the usual clear error."""
    expected, found = weights_lib.model_manifest(model), weights_lib.file_manifest(path)
    differ = {n for n in expected if found.get(n) != expected[n]} | (set(found) - set(expected))
    if not differ:
        model.load_weights(path)
        return f"loaded {path}"
    if not differ <= head:
        weights_lib.load_weights(model, path)  # raises a ValueError naming the layers
    with warnings.catch_warnings():  # Keras warns per skipped layer; the note says it once
        warnings.simplefilter("ignore")
        model.load_weights(path, skip_mismatch=True)
    return f"loaded {path} except the new head ({', '.join(sorted(differ))})"


def build_training_model(spec, cfg, data, shape, options):
    """(training model, export model with the main output only, notes)."""
    classes = data.num_classes
    model = applications.build_model(
        spec, input_shape=applications.to_data_format(shape), classes=classes, **options
    )
    notes = []
    head = None
    if cfg.weights or cfg.freeze_backbone:
        head = head_layer_names(model, spec, options, shape)
    if cfg.weights:
        notes.append(load_start_weights(model, cfg.weights, head))
    if cfg.freeze_backbone:
        for layer in model.layers:
            layer.trainable = layer.name in head
        notes.append(f"backbone frozen: training {sorted(n for n in head if model.get_layer(n).weights)}")
    export = model
    if len(model.outputs) > 1:
        export = keras.Model(model.inputs, model.outputs[0], name=model.name)
    return model, export, notes


def compile_model(model, cfg, steps_per_epoch):
    """SGD (momentum 0.9) or AdamW with the warm-up schedule; label-smoothed CE."""
    schedule = schedule_for(cfg, steps_per_epoch, STEP_MILESTONES)
    if cfg.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(schedule, momentum=0.9, nesterov=cfg.nesterov,
                                         weight_decay=cfg.weight_decay)
    else:
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=cfg.weight_decay)
    # Decay weights only (not biases, BN's gamma/beta), as in the common recipes.
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing)
    accuracy = keras.metrics.CategoricalAccuracy(name="accuracy")
    outputs = len(model.outputs)
    if outputs > 1:  # GoogLeNet: [main, aux1, aux2], aux losses weighted 0.3 (paper, sec. 5)
        model.compile(
            optimizer=optimizer,
            loss=[loss] * outputs,
            loss_weights=[1.0] + [AUX_LOSS_WEIGHT] * (outputs - 1),
            metrics=[[accuracy]] + [[] for _ in range(outputs - 1)],
        )
    else:
        model.compile(optimizer=optimizer, loss=loss, metrics=[accuracy])
    model.optimizer.build(model.trainable_variables)
    return schedule


def predict_probs(model, images, preprocess, batch_size):
    """Main-output probabilities for ``uint8`` NHWC ``images`` (last batch padded)."""
    out = model.predict(EvalBatches(images, batch_size, preprocess), verbose=0)
    if isinstance(out, (list, tuple)):
        out = out[0]
    return np.asarray(out, dtype="float32")[: len(images)]


class EpochEnd(keras.callbacks.Callback):
    """After every epoch: validate, save best/last, commit the resume checkpoint,
    write the history CSV and the curves. Validation metrics are added to the
    epoch's logs, so the progress line shows them."""

    def __init__(self, run, export_model, data, preprocess, batch_size, schedule, state, title):
        super().__init__()
        self.run, self.export_model, self.data = run, export_model, data
        self.preprocess, self.batch_size, self.schedule = preprocess, batch_size, schedule
        self.state, self.title = state, title
        self._start = time.time()

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        model = self.model  # on JAX this syncs the training state into the variables
        probs = predict_probs(self.export_model, self.data.x_val, self.preprocess, self.batch_size)
        metrics = classification_metrics(probs, self.data.y_val, self.data.num_classes)
        logs.update(val_loss=metrics["loss"], val_accuracy=metrics["top1"] / 100.0)
        if metrics["top5"] is not None:
            logs["val_top5"] = metrics["top5"] / 100.0
        step = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
        accuracy_key = next((k for k in logs if k.endswith("accuracy") and not k.startswith("val_")), None)
        row = {
            "epoch": epoch + 1,
            "lr": float(keras.ops.convert_to_numpy(self.schedule(max(step - 1, 0)))),
            "loss": float(logs.get("loss", float("nan"))),
            "accuracy": 100.0 * float(logs[accuracy_key]) if accuracy_key else None,
            "val_loss": metrics["loss"],
            "val_accuracy": metrics["top1"],
            "val_top5": metrics["top5"],
            "seconds": round(time.time() - self._start, 2),
        }
        history, best = self.state["history"], self.state["best"]
        history.append(row)
        if best is None or row["val_accuracy"] > best["val_accuracy"]:
            self.run.save_model(self.export_model, "best")
            self.state["best"] = {"epoch": epoch + 1, "val_accuracy": row["val_accuracy"]}
        self.run.save_model(self.export_model, "last")
        meta = {"epoch": epoch + 1, "history": history, "best": self.state["best"],
                "backend": keras.backend.backend()}
        optimizer_vars = list(model.optimizer.variables)
        self.run.save_checkpoint(list(model.variables), optimizer_vars, meta)
        self.run.write_csv("history.csv", history)
        with self.run.writing("curves.png") as tmp:
            plot_curves(history, tmp, self.title)


def load_data(cfg, channels):
    """The configured source, cut to ``cfg.limit`` images per split if set."""
    if cfg.data == DIGITS:
        data = load_digits_data(cfg.image_size, channels, cfg.val_split, cfg.seed)
    elif is_dataset(cfg.data):
        data = load_dataset_data(cfg.data, cfg.image_size, channels)
    else:
        data = open_folder_data(cfg.data, cfg.image_size, channels, cfg.val_split, cfg.seed)
    return limit_data(data, cfg.limit) if cfg.limit else data


def _stored_config(run, requested):
    stored = run.read_config()
    keys = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in RESUME_FREE]
    changed = stored.differences(requested, keys)
    if changed:
        raise ValueError(
            f"--resume continues {run.path} with its own configuration; these options differ "
            f"from it: {'; '.join(changed)}. Drop them, or start a new run."
        )
    return stored


def _say(message):
    print(message, flush=True)


def train(config: TrainConfig, *, resume=False, force=False, verbose=None, callbacks=()) -> TrainResult:
    """Train ``config.model`` as described in the module docstring; see :class:`TrainConfig`.

    ``resume`` continues the run in ``config.output`` from its last completed
    epoch; ``force`` replaces a previous run there. ``verbose`` is Keras' fit
    verbosity (default: progress bar on a terminal, one line per epoch otherwise).
    ``callbacks`` are extra Keras callbacks for ``model.fit``.
    """
    spec = get_spec(config.model)
    cfg = config.resolved(spec)
    shape = input_shape_for(spec, cfg)
    options = model_options(spec, cfg)
    check_distribute(cfg.distribute)
    processes = join_processes(cfg.distribute)  # before anything runs on a device
    policy, policy_reason = resolve_policy(cfg.mixed_precision)
    if resume and not cfg.output:
        raise ValueError("--resume needs --output RUN_FOLDER (the run to continue).")
    cfg = dataclasses.replace(cfg, output=os.path.abspath(cfg.output or default_output(spec.name)))
    run = RunFolder(cfg.output, writer=processes.writer)  # process 0 writes, the others train
    verbose = (1 if sys.stdout.isatty() else 2) if verbose is None else verbose
    with run.locked():
        run.prepare(resume, force)
        if resume:
            cfg = _stored_config(run, cfg)
        keras.utils.set_random_seed(cfg.seed)
        data = load_data(cfg, shape[-1])
        with data_parallel(cfg.distribute, processes) as placement, dtype_policy(policy):
            if cfg.batch_size % placement.num_devices:
                raise ValueError(
                    f"batch size {cfg.batch_size} must be a multiple of the {placement.num_devices} "
                    "devices of --distribute data-parallel (every batch is split evenly)."
                )
            return _train_in_scope(spec, cfg, run, data, shape, options, placement,
                                   (policy, policy_reason), resume, verbose, callbacks)


def _train_in_scope(spec, cfg, run, data, shape, options, placement, policy, resume, verbose,
                    callbacks):
    preprocess = family_preprocess(spec)
    augmenter = Augmenter(cfg.augment, shape[-1])
    model, export, notes = build_training_model(spec, cfg, data, shape, options)
    probe = TrainBatches(data.x_train, data.y_train, data.num_classes, cfg.batch_size, cfg.seed)
    steps = probe.steps_per_epoch
    schedule = compile_model(model, cfg, steps)
    state = {"history": [], "best": None}
    meta = run.load_checkpoint(list(model.variables), list(model.optimizer.variables)) if resume else None
    initial_epoch = 0
    if meta:
        initial_epoch, state["history"], state["best"] = meta["epoch"], meta["history"], meta["best"]
    info = {
        "config": cfg.to_dict(),
        "model": {"name": spec.name, "params": count_params(export), "input_shape": shape,
                  "options": options, "outputs": len(model.outputs)},
        "data": {"source": data.source, "train": len(data.y_train), "val": len(data.y_val),
                 "class_names": data.class_names, "skipped_unreadable": data.skipped},
        "precision": {"policy": policy[0], "reason": policy[1]},
        "placement": placement.describe(),
        "steps_per_epoch": steps,
        "preprocess": f"{spec.preprocess_input.__module__}.{spec.preprocess_input.__name__}",
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
    }
    if not resume and run.writer:
        run.write_json("config.json", info)
    _say(f"cnnclassics train {spec.name}: {info['model']['params']:,} params, input "
         f"{'x'.join(map(str, shape))}, {data.num_classes} classes, policy {policy[0]} "
         f"({policy[1]}), {placement.describe()}, backend {keras.backend.backend()}")
    _say(f"data: {data.summary()}; batch {cfg.batch_size}, {steps} steps/epoch, augment {cfg.augment}")
    for note in notes:
        _say(note)
    _say(f"run folder: {run.path}" + (f" (resuming after epoch {initial_epoch})" if resume else ""))
    title = f"{spec.name} on {os.path.basename(cfg.data)}"
    evaluator = placement.local_copy(export)  # export itself unless several processes train
    callback = EpochEnd(run, evaluator, data, preprocess, cfg.batch_size, schedule, state, title)
    batches = TrainBatches(
        data.x_train, data.y_train, data.num_classes, cfg.batch_size, cfg.seed,
        start_step=initial_epoch * steps, augment=augmenter if augmenter else None,
        preprocess=preprocess, outputs=len(model.outputs), shard=placement.shard,
    )
    start = time.time()
    if initial_epoch < cfg.epochs:
        model.fit(placement.feed(batches), epochs=cfg.epochs, initial_epoch=initial_epoch,
                  steps_per_epoch=steps, callbacks=epoch_callbacks(placement, export, evaluator,
                                                                   callback, *callbacks),
                  verbose=verbose, shuffle=False)
    else:
        _say(f"run already complete ({cfg.epochs} epochs); re-evaluating the best model")
    if not run.writer:
        _say(f"process {placement.processes.index}: done; process 0 writes {run.path}")
        return TrainResult(run.path, state["history"], None, cfg, initial_epoch)
    evaluation = placement.run_local(final_evaluation, run, evaluator, data, preprocess,
                                     cfg.batch_size, state, title)
    replaced = replaced_files(data)
    if replaced:
        _say(f"{len(replaced)} image file(s) could not be decoded and were replaced by the next "
             f"readable file of their split, e.g. {', '.join(replaced[:3])}")
    _say(f"best epoch {evaluation['epoch']}: validation top-1 {evaluation['top1']:.2f} %"
         + (f", top-5 {evaluation['top5']:.2f} %" if evaluation["top5"] is not None else "")
         + f", loss {evaluation['loss']:.4f}; trained in {time.time() - start:.0f} s; "
         f"files in {run.path}")
    return TrainResult(run.path, state["history"], evaluation, cfg, initial_epoch)


def final_evaluation(run, export, data, preprocess, batch_size, state, title):
    """Evaluate the best model on the validation split; evaluation.json (+ confusion PNG)."""
    export.load_weights(run.file("best.weights.h5"))
    probs = predict_probs(export, data.x_val, preprocess, batch_size)
    evaluation = classification_metrics(probs, data.y_val, data.num_classes)
    evaluation.update(epoch=state["best"]["epoch"], split="validation", class_names=data.class_names)
    run.write_json("evaluation.json", evaluation)
    if data.num_classes <= MAX_CONFUSION_CLASSES:
        with run.writing("confusion_matrix.png") as tmp:
            plot_confusion(evaluation["confusion_matrix"], data.class_names, tmp,
                           f"{title}: best epoch {evaluation['epoch']}, top-1 {evaluation['top1']:.2f} %")
    return evaluation
