"""``cnnclassics predict MODEL IMAGE...``: the top-k classes of each image."""

import json


def register(subparsers):
    parser = subparsers.add_parser("predict", help="top-k classes of image files with a trained model")
    parser.add_argument("source", metavar="MODEL", help="run folder or .keras file")
    parser.add_argument("images", metavar="IMAGE", nargs="+", help="image files (png, jpg, bmp, gif)")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best")
    parser.add_argument("--json", action="store_true", help="print JSON")
    # TensorFlow decodes the image files (see keras_cnnclassics.images).
    parser.set_defaults(func=run, backend_modules=lambda args: ("tensorflow",))


def run(args):
    from keras_cnnclassics.training import predict

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
