"""``cnnclassics train MODEL``: train on scikit-learn's digits, a named dataset or an image folder.

Every option defaults to None here so that ``--resume`` can tell the options the
user gave (which must agree with the run's) from the ones left out (taken from
the run's ``config.json``). The work is done by
:func:`keras_cnnclassics.training.train`.
"""

import dataclasses
import json
import os

from keras_cnnclassics.training.config import CHOICES, DIGITS, TrainConfig
from keras_cnnclassics.training.datasets import is_dataset

# flag -> (TrainConfig field, argparse keyword arguments)
FLAGS = {
    "--data": ("data", {"metavar": "DIR|NAME", "help": "image folder (one subfolder per class), 'digits' (default) or cifar10, cifar100, mnist, fashion_mnist (keras.datasets: downloaded once into $KERAS_HOME/datasets, ~/.keras/datasets; validated on the official test split)"}),
    "--epochs": ("epochs", {"type": int, "help": "epochs (default 20, or the recipe's)"}),
    "--batch-size": ("batch_size", {"type": int, "help": "global batch size (default 32, or the recipe's)"}),
    "--image-size": ("image_size", {"type": int, "help": "input height=width (default: the model's)"}),
    "--lr": ("lr", {"type": float, "help": "peak learning rate (default 0.05 sgd, 1e-3 adamw)"}),
    "--optimizer": ("optimizer", {"choices": CHOICES["optimizer"], "help": "default sgd (momentum 0.9)"}),
    "--schedule": ("schedule", {"choices": CHOICES["schedule"], "help": "default cosine; step: /10 at 50%% and 75%%; piecewise: a paper recipe's milestones"}),
    "--warmup-epochs": ("warmup_epochs", {"type": float, "help": "linear warm-up epochs (default 1; 0 for --epochs 1)"}),
    "--label-smoothing": ("label_smoothing", {"type": float, "help": "default 0.1 (0 under --recipe paper)"}),
    "--weight-decay": ("weight_decay", {"type": float, "help": "default 5e-4 sgd, 0.05 adamw"}),
    "--val-split": ("val_split", {"type": float, "help": "held-out fraction of digits or a folder (default 0.2)"}),
    "--augment": ("augment", {"choices": CHOICES["augment"], "help": "default none for digits and mnist, basic otherwise"}),
    "--mixed-precision": ("mixed_precision", {"choices": CHOICES["mixed_precision"], "help": "default auto (bfloat16/float16 on GPU, float32 on CPU)"}),
    "--weights": ("weights", {"metavar": "W", "help": "start from this weights file (a different head is re-initialised)"}),
    "--distribute": ("distribute", {"choices": CHOICES["distribute"], "help": "default none"}),
    "--output": ("output", {"metavar": "RUN", "help": "run folder (default runs/<model>-<timestamp>)"}),
    "--seed": ("seed", {"type": int, "help": "default 0"}),
    "--recipe": ("recipe", {"choices": CHOICES["recipe"], "help": "paper: the model's CIFAR training recipe from its paper (optimizer, batch, lr schedule, weight decay, epochs, augmentation; see model_info(name)['recipe']); flags given explicitly win over it"}),
    "--limit": ("limit", {"type": int, "metavar": "N", "help": "at most N training and N validation images (quick trials)"}),
}


def register(subparsers):
    parser = subparsers.add_parser(
        "train",
        help="train a model (digits or an image folder); best/last models, plots, resume",
        description="Train MODEL with model.fit. Writes a run folder: best/last .keras and "
        ".weights.h5, history.csv, curves.png, config.json, evaluation.json, "
        "confusion_matrix.png. --resume continues a killed run from its last epoch.",
    )
    parser.add_argument("model", help="registry name, e.g. lenet5")
    for flag, (dest, kwargs) in FLAGS.items():
        parser.add_argument(flag, dest=dest, default=None, **kwargs)
    parser.add_argument("--freeze-backbone", dest="freeze_backbone", action="store_true", default=None,
                        help="train the classifier head only")
    parser.add_argument("--option", dest="options", action="append", default=[], metavar="KEY=VALUE",
                        help="family option, e.g. --option aux_logits=false (repeatable)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --output")
    parser.add_argument("--force", action="store_true", help="replace the run in --output")
    parser.add_argument("--processes", type=int, metavar="N",
                        help="with --distribute data-parallel: train in N processes on this machine "
                        "(127.0.0.1), process 0 writing the run folder")
    parser.set_defaults(func=run, backend_modules=image_decoder)


def image_decoder(args):
    """TensorFlow when images come from a folder (it decodes them, see keras_cnnclassics.images)."""
    from_folder = (args.data not in (None, DIGITS) and not is_dataset(args.data)) or args.resume
    return ("tensorflow",) if from_folder else ()


def parse_option(text):
    """``KEY=VALUE`` with VALUE read as JSON where possible (true, 0.1, [1,2])."""
    if "=" not in text:
        raise ValueError(f"--option takes KEY=VALUE; got {text!r}.")
    key, value = text.split("=", 1)
    lowered = value.strip().lower()
    if lowered in ("true", "false"):
        return key.strip(), lowered == "true"
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def config_from_args(args) -> TrainConfig:
    explicit = {dest: getattr(args, dest) for dest, _ in FLAGS.values() if getattr(args, dest) is not None}
    if args.freeze_backbone is not None:
        explicit["freeze_backbone"] = True
    if args.options:
        explicit["model_options"] = dict(parse_option(o) for o in args.options)
    explicit["model"] = args.model
    if not args.resume:
        return TrainConfig(**explicit)
    if not args.output:
        raise ValueError("--resume needs --output RUN (the run folder to continue).")
    config_path = os.path.join(args.output, "config.json")
    if not os.path.isfile(config_path):
        raise FileNotFoundError(f"nothing to resume in {args.output}: no config.json.")
    from keras_cnnclassics.training.runfolder import RunFolder

    stored = RunFolder(args.output).read_config()
    return dataclasses.replace(stored, **explicit)


def run(args):
    from keras_cnnclassics.training import train

    if args.processes is not None and args.processes != 1:
        from keras_cnnclassics.training.launch import launch_local

        return launch_local(args, FLAGS, args.processes)
    train(config_from_args(args), resume=args.resume, force=args.force)
    return 0
