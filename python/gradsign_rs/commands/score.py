"""`gradsign score MODEL.onnx --data FILE.npz [--proxies a,b]`: GradSign (or other proxies) of one ONNX classifier."""

from __future__ import annotations

import argparse
import json

import numpy as np

from gradsign_rs._core import GradSignError
from gradsign_rs.data import LAYOUTS, NORMALIZATION, arrange, is_preprocessed, load_arrays, load_images
from gradsign_rs.frontend.load import load_model
from gradsign_rs.score import score


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "score",
        help="GradSign of one ONNX classifier on labelled images",
        description="Score one ONNX classifier: per-sample gradients at its stored weights, signs reduced in Rust.",
    )
    parser.add_argument("model", metavar="MODEL.onnx", help="the ONNX classifier (input: images NCHW, output: logits)")
    parser.add_argument(
        "--data",
        required=True,
        metavar="FILE.npz|FILE.npy",
        help="images 'x' (uint8 NHWC) and labels 'y'; or model-ready arrays (float 'x', or a .npy "
        "with --labels), used as they are",
    )
    parser.add_argument("--n", type=int, default=128, help="number of samples (default: 128, the paper's batch)")
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="draw the N samples at random with this seed (default: the first N, one fixed batch)",
    )
    parser.add_argument(
        "--normalize", default="cifar10", choices=[*NORMALIZATION, "none"], help="per-channel normalisation"
    )
    parser.add_argument("--threads", type=int, default=None, help="threads for onnxruntime and the reduction")
    parser.add_argument("--provider", default="cpu", help="onnxruntime execution provider: cpu, cuda or a full name")
    parser.add_argument(
        "--batchnorm",
        default="train",
        choices=["train", "as_exported"],
        help="train: per-sample statistics, the paper's setting; as_exported: keep inference-mode BN",
    )
    parser.add_argument("--input", default=None, help="name of the data input (default: the one input without a value)")
    parser.add_argument(
        "--output",
        default=None,
        help="name of the logits output (default: the first float output, past a final Softmax)",
    )
    parser.add_argument(
        "--layout",
        default="nchw",
        choices=LAYOUTS,
        help="how the model takes images: nchw (torch), nhwc (Keras, TF, JAX), flat (MLP, sklearn)",
    )
    parser.add_argument("--size", type=int, default=None, help="resize the images to SIZE x SIZE (bilinear) first")
    parser.add_argument("--labels", default=None, metavar="FILE.npy", help="labels for --data FILE.npy of samples")
    parser.add_argument(
        "--constant",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="fix a non-data graph input to a value (a JSON number, bool or list); repeatable",
    )
    parser.add_argument(
        "--proxies",
        default=None,
        help="comma-separated zero-cost proxies to compute instead, e.g. gradsign,synflow,nwot (see gradsign_rs.proxies)",
    )
    parser.add_argument(
        "--proxy-batch-size",
        type=int,
        default=64,
        help="mini-batch of the batch proxies: the first B of the N samples (default 64)",
    )
    parser.add_argument("--per-layer", action="store_true", help="print the per-layer breakdown")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def select_samples(path: str, n: int, seed: int | None, normalize: str | None) -> tuple[np.ndarray, np.ndarray]:
    """The first n samples of the file, or n drawn without replacement with `seed` (NCHW float32)."""
    if seed is None:
        return load_images(path, n=n, normalize=normalize)
    inputs, labels = load_images(path, normalize=normalize)
    if n > len(labels):
        raise GradSignError(f"{path}: asked for {n} images, the file has {len(labels)}")
    pick = np.sort(np.random.default_rng(seed).choice(len(labels), size=n, replace=False))
    return inputs[pick], labels[pick]


def parse_constants(items: list[str]) -> dict[str, np.ndarray]:
    """--constant NAME=VALUE items as arrays (VALUE is JSON: 1, 0.5, true, [1, 2])."""
    constants = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            if not sep or not name:
                raise ValueError("expected NAME=VALUE")
            constants[name] = np.asarray(json.loads(value))
        except ValueError as exc:
            raise GradSignError(f"--constant {item!r}: {exc} (VALUE is JSON, e.g. true, 1, 0.5, [1, 2])") from exc
    return constants


def model_inputs(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """The samples as the model takes them: model-ready arrays as they are, or images normalised and arranged."""
    if is_preprocessed(args.data):
        return load_arrays(args.data, labels=args.labels, n=args.n)
    normalize = None if args.normalize == "none" else args.normalize
    images, labels = select_samples(args.data, args.n, args.seed, normalize)
    return arrange(images, layout=args.layout, size=args.size), labels


def run(args: argparse.Namespace) -> int:
    load_model(args.model)  # a bad model file (or proxy name) is reported before the data is read
    constants = parse_constants(args.constant)
    if args.proxies:
        from gradsign_rs.proxies import parse_names

        names = parse_names(args.proxies)
        return run_proxies(args, names, *model_inputs(args))
    inputs, labels = model_inputs(args)
    result = score(
        args.model,
        inputs,
        labels,
        provider=args.provider,
        num_threads=args.threads,
        batchnorm=args.batchnorm,
        input=args.input,
        output=args.output,
        constant_inputs=constants or None,
    )
    if args.json:
        payload = {"model": args.model, "data": args.data, **result.to_dict()}
        if not args.per_layer:
            payload.pop("per_layer"), payload.pop("layer_sizes")
        print(json.dumps(payload, indent=2))
        return 0
    print(f"model     {args.model}")
    print(f"gradsign  {result.value}")
    print(f"protocol  {result.protocol}" + "".join(f"\n  - {reason}" for reason in result.protocol_reasons))
    for note in result.protocol_notes:
        print(f"  note: {note}")
    print(f"mean      {result.mean:.6f}  (score / scored weights)")
    print(f"samples   {result.n_samples}")
    print(f"weights   {result.n_weights} in {len(result.per_layer)} layers")
    print(
        f"time      {result.seconds:.3f} s  (prepare {result.timings['prepare']:.3f}, "
        f"gradients {result.timings['gradients']:.3f}, reduce {result.timings['reduce']:.3f})"
    )
    if args.per_layer:
        width = max(len(name) for name in result.per_layer)
        print(f"\n{'layer':<{width}}  {'weights':>9}  {'score':>9}  {'mean':>8}")
        for name, value in result.per_layer.items():
            size = result.layer_sizes[name]
            print(f"{name:<{width}}  {size:>9}  {value:>9}  {value / size:>8.4f}")
    return 0


def run_proxies(args: argparse.Namespace, names: tuple[str, ...], inputs: np.ndarray, labels: np.ndarray) -> int:
    """Several proxies of one model through one shared workspace; one line (or JSON key) per proxy."""
    from gradsign_rs import proxies

    values, seconds = proxies.compute_timed(
        names, args.model, inputs, labels, batch_size=args.proxy_batch_size, provider=args.provider, output=args.output
    )
    if args.json:
        print(
            json.dumps(
                {
                    "model": args.model,
                    "data": args.data,
                    "n_samples": int(len(labels)),
                    "proxies": values,
                    "seconds": seconds,
                },
                indent=2,
            )
        )
        return 0
    print(f"model     {args.model}  ({len(labels)} samples, proxy mini-batch {args.proxy_batch_size})")
    width = max(len(n) for n in names)
    for name in names:
        print(f"{name:<{width}}  {values[name]:>16.6g}  ({seconds[name]:.2f} s)")
    return 0
