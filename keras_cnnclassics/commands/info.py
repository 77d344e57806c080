"""``cnnclassics info NAME``: a model's metadata, and with ``--build`` its measured size."""

import json

from keras_cnnclassics.registry import get_model, model_info


def register(subparsers):
    parser = subparsers.add_parser("info", help="show a model's paper, parameters, input, reference")
    parser.add_argument("name", help="registry name, e.g. alexnet")
    parser.add_argument("--build", action="store_true", help="build the model and count its parameters")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


def run(args):
    info = model_info(args.name)
    if args.build:
        from keras_cnnclassics.counting import count_params

        model = get_model(args.name)
        info["built_params"] = count_params(model)
        info["layers"] = len(model.layers)
        info["output_shape"] = tuple(model.output_shape)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    rows = {key: value for key, value in info.items() if value not in (None, "", (), [], {})}
    width = max(len(key) for key in rows)
    for key, value in rows.items():
        if key == "weights":
            value = f"\n{' ' * (width + 2)}".join(weight_line(tag, entry) for tag, entry in value.items())
        elif isinstance(value, int) and not isinstance(value, bool) and value > 9999:
            value = f"{value:,}"
        print(f"{key:<{width}}  {value}")
    return 0


def weight_line(tag, entry):
    """``imagenet1k_v2 (default): top-1 80.86 %, resize 232 / crop 224, resnet50-11ad3fa6.pth``."""
    top1 = f"top-1 {entry['top1']:.2f} %" if entry.get("top1") is not None else "top-1 not published"
    prep = entry.get("preprocessing") or {}
    size = f"resize {prep['resize']} / crop {prep['crop']}" if prep.get("resize") else f"input {entry.get('input_size')}"
    default = " (default)" if entry.get("default") else ""
    return f"{tag}{default}: {top1}, {size}, {entry.get('file') or entry.get('url')}"
