"""Peak resident memory of a short ``cnnclassics train`` on image folders of growing size.

    python tools/stream_memory.py --counts 2000 8000 --size 160 [--model lenet5] [--limit 32]

Writes folders of generated JPEGs (10 classes) under ``--root`` (kept and reused),
runs ``cnnclassics train MODEL --data DIR --epochs 1 --limit N`` for each in a
child process and prints its peak resident set size (``ru_maxrss`` of the child).
Folder images are read from disk a batch at a time, so the peak should not grow
with the folder.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile

import numpy as np


def write_folder(root, count, size, classes=10):
    """``count`` smooth random JPEGs of ``size`` px in ``classes`` subfolders (reused if present)."""
    from PIL import Image

    folder = os.path.join(root, f"{count}x{size}")
    marker = os.path.join(folder, ".complete")
    if os.path.exists(marker):
        return folder
    rng = np.random.default_rng(count)
    for index in range(count):
        label = index % classes
        os.makedirs(os.path.join(folder, f"class_{label}"), exist_ok=True)
        coarse = rng.uniform(0, 255, (8, 8, 3)).astype("uint8")
        image = Image.fromarray(coarse).resize((size, size), Image.BILINEAR)
        image.save(os.path.join(folder, f"class_{label}", f"{index}.jpg"), quality=90)
    open(marker, "w").close()
    return folder


def peak_rss_mb(command, env=None) -> float:
    """Peak RSS (MB) of ``command`` run to completion in a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if after <= before:  # ru_maxrss of children is the largest so far, not this one's
        raise RuntimeError("a previous child used more memory; run one count per process")
    return after / 1024.0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[2000, 8000])
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--limit", type=int, default=32)
    parser.add_argument("--root", default=os.path.join(tempfile.gettempdir(), "cnnclassics-stream"))
    args = parser.parse_args(argv)
    if len(args.counts) > 1:  # one child per count, so each ru_maxrss is its own
        for count in args.counts:
            subprocess.run([sys.executable, __file__, "--counts", str(count), "--size", str(args.size),
                            "--model", args.model, "--limit", str(args.limit), "--root", args.root],
                           check=True)
        return 0
    count = args.counts[0]
    folder = write_folder(args.root, count, args.size)
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "keras_cnnclassics.cli", "train", args.model, "--data", folder,
                   "--epochs", "1", "--limit", str(args.limit), "--output", os.path.join(out, "run")]
        peak = peak_rss_mb(command)
    print(f"{count} files of {args.size} px, {args.model}, --limit {args.limit}, "
          f"backend {os.environ.get('KERAS_BACKEND', 'default')}: peak RSS {peak:.0f} MB", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
