"""Build tests/zoo/foreign/: small ONNX classifiers exported by tf2onnx, jax2onnx and skl2onnx, each with a
GradSign reference computed natively in its own framework (tf.GradientTape / jax.grad / numpy backprop).

Runs in its own virtual environment, never in the project's .venv:

    python3.11 -m venv .venv-exporters
    .venv-exporters/bin/pip install tensorflow-cpu tf2onnx jax flax jax2onnx scikit-learn skl2onnx onnx \
        onnxruntime numpy
    .venv-exporters/bin/python scripts/zoo_export_foreign.py            # everything
    .venv-exporters/bin/python scripts/zoo_export_foreign.py --only jax_cnn --no-write-manifest

Everything is seeded (random initialisation only; the sklearn models are fitted because sklearn cannot be
initialised without a fit). The reference metric is the one of shared/DESIGN.md "The metric, exactly":
    GradSign = sum_k | sum_i sign(dCE(logits(x_i), y_i) / dtheta_k) |, batch size 1, sign(0) = sign(NaN) = 0,
    K = kernels of every Conv / Dense layer (no biases, no BatchNorm / LayerNorm parameters).
BatchNorm is evaluated in training mode (per-sample statistics) where the exported graph still normalises with
batch statistics (BatchNormalization nodes, or statistics computed in the graph), and in inference mode (running
statistics) where the exporter folded it into the Conv.

Writes tests/zoo/foreign/{NAME}.onnx, inputs.npz (nhwc32, flat, labels: exactly the arrays the references used)
and manifest.json: one entry per model with the fields the tests read (file, input_name, inputs_key,
reference_score, reference_protocol, n_weights, expected = score | refuse, extra_graph_inputs) and what describes
the export (route, opset, ir_version, ops, batchnorm_in_graph, logits_hint, export_max_abs_diff = max |onnxruntime -
native| at batch size 1, per-layer scores, grad_tiny_entries = per-sample gradient entries within 1e-6 of zero
relative to their layer's largest, i.e. signs another float32 implementation may see differently, notes).
An existing .onnx file is only rewritten when what it computes changed (semantic_fingerprint), because tf2onnx's
generated names differ from run to run.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=2")

import sys

if os.environ.get("PYTHONHASHSEED") != "0":  # tf2onnx iterates over sets of names: fix the hash seed, then re-run
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable, *sys.argv])

import argparse
import functools
import hashlib
import importlib.metadata as md
import json
import logging
import subprocess
import tempfile
import traceback
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "zoo" / "foreign"
DATA = ROOT.parent / "shared" / "data" / "images" / "cifar10_train4000.npz"
if not DATA.exists():  # the shared folder sits next to the checkout; fall back to the workplace path
    DATA = Path("/work/shared/data/images/cifar10_train4000.npz")
N = 16
NUM_CLASSES = 10
MEAN = np.array([0.4914, 0.4822, 0.4465], np.float32)
STD = np.array([0.2470, 0.2435, 0.2616], np.float32)
MAX_BYTES = 400 * 1024


def ver(pkg: str) -> str | None:
    try:
        return md.version(pkg)
    except md.PackageNotFoundError:
        return None


# --------------------------------------------------------------------------------------------------- data


def load_inputs() -> dict[str, np.ndarray]:
    d = np.load(DATA)
    x_u8, y = d["x"], d["y"].astype(np.int64)
    assert x_u8.dtype == np.uint8 and x_u8.shape[1:] == (32, 32, 3), x_u8.shape
    nhwc = ((x_u8[:N].astype(np.float32) / 255.0 - MEAN) / STD).astype(np.float32)
    labels = y[:N].copy()
    assert labels.max() < NUM_CLASSES
    # sklearn features: 8x8 average-pooled grayscale, standardised with the statistics of the fitting set
    fit_n = 400
    gray = (x_u8[:fit_n].astype(np.float32) / 255.0) @ np.array([0.299, 0.587, 0.114], np.float32)
    pooled = gray.reshape(fit_n, 8, 4, 8, 4).mean(axis=(2, 4)).reshape(fit_n, 64)
    mu, sd = pooled.mean(axis=0), pooled.std(axis=0) + 1e-6
    flat_fit = ((pooled - mu) / sd).astype(np.float32)
    return {
        "nhwc32": np.ascontiguousarray(nhwc),
        "flat": np.ascontiguousarray(flat_fit[:N]),
        "labels": labels,
        "_flat_fit": flat_fit,
        "_labels_fit": y[:fit_n].copy(),
    }


# --------------------------------------------------------------------------------------------------- metric


def gradsign_from_grads(per_sample: list[dict[str, np.ndarray]]) -> tuple[int, int, dict]:
    """per_sample: one {layer: gradient} per sample. Returns (score, n_weights, per-layer breakdown)."""
    names = list(per_sample[0])
    counts = {k: np.zeros(per_sample[0][k].shape, np.int64) for k in names}
    zero = dict.fromkeys(names, 0)
    tiny = dict.fromkeys(names, 0)
    for g in per_sample:
        for k in names:
            a = np.nan_to_num(np.asarray(g[k], np.float32), nan=0.0, posinf=0.0, neginf=0.0)
            counts[k] += np.sign(a).astype(np.int64)
            mag = np.abs(a)
            zero[k] += int((mag == 0).sum())
            # entries whose sign another implementation may well see differently (float32 summation order)
            tiny[k] += int(((mag > 0) & (mag <= 1e-6 * mag.max())).sum())
    layers = {
        k: {
            "size": int(c.size),
            "shape": list(c.shape),
            "score": int(np.abs(c).sum()),
            "grad_exact_zero_entries": zero[k],
            "grad_tiny_entries": tiny[k],
        }
        for k, c in counts.items()
    }
    score = sum(v["score"] for v in layers.values())
    n = sum(v["size"] for v in layers.values())
    return int(score), int(n), layers


# --------------------------------------------------------------------------------------------------- onnx checks


def onnx_facts(path: Path) -> dict:
    import onnx

    m = onnx.load(str(path))
    ops: set[str] = set()
    bn = 0

    def walk(g):
        nonlocal bn
        for n in g.node:
            ops.add(n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}:{n.op_type}")
            bn += n.op_type == "BatchNormalization"
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    walk(a.g)
                for sub in a.graphs:
                    walk(sub)

    walk(m.graph)
    for f in m.functions:
        for n in f.node:
            ops.add(n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}:{n.op_type}")
    inits = {t.name: t for t in m.graph.initializer}
    consts = {n.output[0]: n for n in m.graph.node if n.op_type == "Constant"}

    def size_of(name):
        if name in inits:
            return int(np.prod(inits[name].dims)) if inits[name].dims else 1
        if name in consts:
            t = consts[name].attribute[0].t
            return int(np.prod(t.dims)) if t.dims else 1
        return None

    scorable = 0
    scorable_layers = []
    for n in m.graph.node:
        cand = []
        if n.op_type == "Conv":
            cand = [n.input[1]]
        elif n.op_type in ("Gemm", "MatMul"):
            cand = [n.input[1], n.input[0]]
        for c in cand:
            s = size_of(c)
            if s is not None:
                scorable += s
                scorable_layers.append({"node": n.op_type, "weight": c, "size": s})
                break
    try:
        onnx.checker.check_model(m, full_check=True)
        checker = "ok"
    except Exception as e:  # noqa: BLE001 - recorded, not hidden
        checker = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
    graph_inputs = [i.name for i in m.graph.input if i.name not in inits]
    return {
        "opset": {(o.domain or "ai.onnx"): o.version for o in m.opset_import},
        "ir_version": int(m.ir_version),
        "producer": f"{m.producer_name} {m.producer_version}".strip(),
        "graph_inputs": graph_inputs,
        "input_shapes": {
            i.name: [
                d.dim_param or (d.dim_value if d.HasField("dim_value") else None) for d in i.type.tensor_type.shape.dim
            ]
            for i in m.graph.input
            if i.name not in inits and i.type.HasField("tensor_type")
        },
        "output_names": [o.name for o in m.graph.output],
        "batchnorm_in_graph": bn,
        "ops": sorted(ops),
        "onnx_scorable_weights": scorable,
        "onnx_scorable_layers": scorable_layers,
        "checker": checker,
        "functions": len(m.functions),
        "file_bytes": path.stat().st_size,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }


def ort_run(path: Path, feeds: dict[str, np.ndarray]) -> list:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def per_sample_diff(
    path: Path, input_name: str, x: np.ndarray, native_per_sample, out_index: int = 0, extra_feeds: dict | None = None
) -> float:
    """Max |onnx - native| with batch size 1 (how the metric runs the model)."""
    worst = 0.0
    for i in range(len(x)):
        feeds = {input_name: x[i : i + 1]}
        feeds.update(extra_feeds or {})
        got = np.asarray(ort_run(path, feeds)[out_index], np.float32)
        want = np.asarray(native_per_sample(x[i : i + 1]), np.float32)
        worst = max(worst, float(np.abs(got.reshape(want.shape) - want).max()))
    return worst


def semantic_fingerprint(model, with_parts: bool = False):
    """Hash of what a model computes, blind to node/value NAMES and node order: opsets, graph inputs/outputs, the
    set of (op, attributes) and the multiset of initializer values. tf2onnx's generated names (a global
    counter) and its choice among duplicate constants change from run to run although the graph is the same."""
    import onnx
    from onnx import numpy_helper

    def attr_repr(a):
        if a.type == onnx.AttributeProto.TENSOR:
            t = numpy_helper.to_array(a.t)
            return (a.name, str(t.dtype), t.shape, hashlib.sha256(t.tobytes()).hexdigest())
        if a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
            return (a.name, "graph")
        return (a.name, repr(onnx.helper.get_attribute_value(a)))

    # a SET of node kinds: tf2onnx's duplicate-node merging is order dependent (a Reshape may stay duplicated)
    nodes = sorted(
        {
            repr((n.domain, n.op_type, len(n.input), len(n.output), sorted(map(attr_repr, n.attribute))))
            for n in model.graph.node
        }
    )
    inits = sorted(
        repr((t.data_type, tuple(t.dims), hashlib.sha256(numpy_helper.to_array(t).tobytes()).hexdigest()))
        for t in model.graph.initializer
    )
    init_names = {t.name for t in model.graph.initializer}

    def vtype(v):  # symbolic dim names are generated too ('unk__355'): keep only whether a dim is symbolic
        t = v.type.tensor_type
        return (t.elem_type, [d.dim_value if d.HasField("dim_value") else "?" for d in t.shape.dim])

    io = [(v.name, vtype(v)) for v in model.graph.input if v.name not in init_names]
    io += [("out", v.name, vtype(v)) for v in model.graph.output]
    opsets = sorted((o.domain, o.version) for o in model.opset_import)
    parts = {
        "ir": model.ir_version,
        "opsets": opsets,
        "io": io,
        "nodes": nodes,
        "inits": inits,
        "functions": len(model.functions),
    }
    if with_parts:
        return parts
    return hashlib.sha256(repr(sorted(parts.items())).encode()).hexdigest()


def save_model(model_proto, path: Path) -> None:
    """Write the model, unless the file already holds an equivalent one (same semantic_fingerprint): re-running the
    script then leaves the committed bytes alone instead of churning generated names."""
    import onnx

    if path.exists():
        try:
            old, new = semantic_fingerprint(onnx.load(str(path)), True), semantic_fingerprint(model_proto, True)
            if old == new:
                return
            diff = {
                k: (
                    (
                        Counter(map(repr, old[k])) - Counter(map(repr, new[k])),
                        Counter(map(repr, new[k])) - Counter(map(repr, old[k])),
                    )
                    if isinstance(old[k], list)
                    else (old[k], new[k])
                )
                for k in old
                if old[k] != new[k]
            }
            print(f"   replacing {path.name}: it differs in {str(diff)[:600]}", flush=True)
        except Exception as e:  # noqa: BLE001 - an unreadable old file is simply replaced
            print(f"   replacing {path.name}: could not compare ({e})", flush=True)
    onnx.save_model(model_proto, str(path), save_as_external_data=False)


# --------------------------------------------------------------------------------------------------- keras / TF


def keras_setup():
    """Called at the start of every Keras model: thread limits, determinism, and fresh name counters (Keras layer
    uids and tf2onnx's make_name counter), so a file does not depend on which models were built before it."""
    import keras
    import tensorflow as tf
    import tf2onnx.utils

    keras.backend.clear_session()
    tf2onnx.utils.INTERNAL_NAME = 1

    try:
        tf.config.threading.set_inter_op_parallelism_threads(1)
        tf.config.threading.set_intra_op_parallelism_threads(int(os.environ["TF_NUM_INTRAOP_THREADS"]))
    except RuntimeError:
        pass
    tf.config.experimental.enable_op_determinism()
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    return tf


def keras_kernels(model) -> list:
    """(name, variable) for the kernel of every Conv2D / DepthwiseConv2D / Dense layer, in layer order."""
    import keras

    out = []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)):
            out.append((layer.name, layer.kernel))
    return out


def keras_reference(logits_fn, kernels, x, y, training: bool):
    import tensorflow as tf

    per_sample = []
    names = [n for n, _ in kernels]
    variables = [v for _, v in kernels]
    for i in range(len(x)):
        with tf.GradientTape() as tape:
            logits = logits_fn(tf.constant(x[i : i + 1]), training)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y[i : i + 1], logits=logits))
        grads = tape.gradient(loss, variables)
        per_sample.append(
            {n: (np.zeros(v.shape, np.float32) if g is None else g.numpy()) for n, v, g in zip(names, variables, grads)}
        )
    return gradsign_from_grads(per_sample)


def keras_conv_bn_cnn(seed: int, name: str, bn_layer=None, softmax_head: bool = True):
    """Conv-BN-ReLU x3 (8, 16, 16 channels, the middle one stride 2), global average pool, Dense head."""
    import keras

    keras.utils.set_random_seed(seed)
    bn_layer = bn_layer or (lambda n: keras.layers.BatchNormalization(name=n))
    inp = keras.Input((32, 32, 3), name="images")
    h = inp
    for j, (ch, stride) in enumerate([(8, 1), (16, 2), (16, 1)]):
        h = keras.layers.Conv2D(ch, 3, strides=stride, padding="same", use_bias=False, name=f"conv{j}")(h)
        h = bn_layer(f"bn{j}")(h)
        h = keras.layers.ReLU(name=f"relu{j}")(h)
    h = keras.layers.GlobalAveragePooling2D(name="gap")(h)
    out = keras.layers.Dense(NUM_CLASSES, activation="softmax" if softmax_head else None, name="head")(h)
    return keras.Model(inp, out, name=name)


def dense_logits_fn(model, head_name="head"):
    """Pre-softmax logits of a model whose last layer is Dense(activation='softmax')."""
    import keras

    head = model.get_layer(head_name)

    def fn(x, training):
        saved = head.activation
        head.activation = keras.activations.linear
        try:
            return model(x, training=training)
        finally:
            head.activation = saved

    return fn


def build_keras_cnn_bn_folded(inp, path: Path) -> dict:
    tf = keras_setup()
    import tf2onnx

    model = keras_conv_bn_cnn(101, "keras_cnn_bn_folded")
    spec = (tf.TensorSpec((None, 32, 32, 3), tf.float32, name="images"),)
    mp, _ = tf2onnx.convert.from_keras(model, input_signature=spec)
    save_model(mp, path)
    x, y = inp["nhwc32"], inp["labels"]
    diff = per_sample_diff(path, "images", x, lambda xi: model(xi, training=False).numpy())
    kernels = keras_kernels(model)
    logits = dense_logits_fn(model)
    score, n, layers = keras_reference(logits, kernels, x, y, training=False)
    alt, _, _ = keras_reference(logits, kernels, x, y, training=True)
    return {
        "route": "tf2onnx.convert.from_keras(model, input_signature=(tf.TensorSpec((None,32,32,3), tf.float32, "
        "name='images'),))",
        "input_name": "images",
        "input_layout": "NHWC",
        "inputs_key": "nhwc32",
        "logits_hint": "output 'head' holds softmax PROBABILITIES (Dense(activation='softmax') -> MatMul -> Softmax); "
        "logits are the input of the final Softmax node",
        "output_is_softmax": True,
        "reference_score": score,
        "reference_protocol": "inference_batchnorm",
        "n_weights": n,
        "layers": layers,
        "reference_score_per_sample_batchnorm_native": alt,
        "export_max_abs_diff": diff,
        "notes": "Keras 3 Functional Conv(no bias)-BatchNormalization-ReLU x3, GAP, Dense softmax. from_keras traces "
        "model(x, training=False); BatchNorm (running stats, fresh init) is folded into the Conv weights and "
        "a Conv bias, so the graph has no BatchNormalization node and the reference uses inference-mode "
        "BatchNorm (folding scales each output channel by gamma/sqrt(var+eps) > 0, so signs are unchanged). "
        "reference_score_per_sample_batchnorm_native is what the Keras model would give with training=True "
        "per sample: the file cannot reproduce it.",
    }


def build_keras_cnn_bn_training(inp, path: Path) -> dict:
    tf = keras_setup()
    import keras
    import tf2onnx

    model = keras_conv_bn_cnn(101, "keras_cnn_bn_training", softmax_head=False)
    spec = (tf.TensorSpec((None, 32, 32, 3), tf.float32, name="images"),)

    # Route A (recorded, not written): a Functional model whose BN layers are called with training=True.
    # from_keras calls model(x, training=False), which in Keras 3 overrides the layer-level training=True.
    keras.utils.set_random_seed(101)
    inp_t = keras.Input((32, 32, 3), name="images")
    h = inp_t
    for _j, (ch, stride) in enumerate([(8, 1), (16, 2), (16, 1)]):
        h = keras.layers.Conv2D(ch, 3, strides=stride, padding="same", use_bias=False)(h)
        h = keras.layers.BatchNormalization()(h, training=True)
        h = keras.layers.ReLU()(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    m_a = keras.Model(inp_t, keras.layers.Dense(NUM_CLASSES)(h))
    mp_a, _ = tf2onnx.convert.from_keras(m_a, input_signature=spec)
    ops_a = dict(Counter(n.op_type for n in mp_a.graph.node))
    xa = inp["nhwc32"][:4]
    import onnxruntime as ort

    oa = ort.InferenceSession(mp_a.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"images": xa})[0]
    route_a = {
        "ops": ops_a,
        "max_abs_diff_vs_training_true": float(np.abs(oa - m_a(xa, training=True).numpy()).max()),
        "max_abs_diff_vs_training_false": float(np.abs(oa - m_a(xa, training=False).numpy()).max()),
    }

    # Route B (written): a tf.function that calls the model with training=True, converted by from_function.
    fn = tf.function(lambda images: model(images, training=True), input_signature=spec)
    mp, _ = tf2onnx.convert.from_function(fn, input_signature=spec)
    save_model(mp, path)
    x, y = inp["nhwc32"], inp["labels"]
    diff = per_sample_diff(path, "images", x, lambda xi: model(xi, training=True).numpy())
    full = ort_run(path, {"images": x})[0]
    diff16 = float(np.abs(full - model(x, training=True).numpy()).max())
    kernels = keras_kernels(model)

    def logits(xi, training):
        return model(xi, training=training)

    score, n, layers = keras_reference(logits, kernels, x, y, training=True)
    alt, _, _ = keras_reference(logits, kernels, x, y, training=False)
    return {
        "route": "tf2onnx.convert.from_function(tf.function(lambda images: model(images, training=True), "
        "input_signature=spec), input_signature=spec)",
        "input_name": "images",
        "input_layout": "NHWC",
        "inputs_key": "nhwc32",
        "logits_hint": "output 0 holds logits (Dense without activation)",
        "output_is_softmax": False,
        "reference_score": score,
        "reference_protocol": "per_sample_batchnorm",
        "n_weights": n,
        "layers": layers,
        "reference_score_inference_batchnorm_native": alt,
        "export_max_abs_diff": diff,
        "export_max_abs_diff_batch16": diff16,
        "rejected_route_functional_bn_training_true": route_a,
        "notes": "Same architecture and seed as keras_cnn_bn_folded but logits head. No tf2onnx route keeps Keras 3 "
        "BatchNormalization as ONNX BatchNormalization: Keras 3 (TF backend) computes BN with tf.nn.moments + "
        "elementwise ops, not FusedBatchNorm. (a) A Functional model built with BN(...)(h, training=True) and "
        "converted with from_keras is exported in INFERENCE mode (from_keras calls model(x, training=False), "
        "which overrides the layer-level training=True; see rejected_route_functional_bn_training_true). "
        "(b) This file: tf.function calling model(x, training=True) + from_function keeps batch statistics, "
        "DECOMPOSED into ReduceMean/Sub/Mul/Sqrt/Reciprocal/Add (no BatchNormalization node). The moments "
        "are over axes (N,H,W), batch included, so the graph is only per-sample BatchNorm when run with "
        "batch size 1 (as the metric does). Reference: per-sample training-mode BN through tf.GradientTape "
        "(the gradient flows through the statistics, like the graph).",
    }


def build_keras_cnn_fused_bn_training(inp, path: Path) -> dict:
    tf = keras_setup()
    import keras
    import tf2onnx

    class FusedTrainingBN(keras.layers.Layer):
        """BatchNorm that always normalises with batch statistics, through tf.compat.v1.nn.fused_batch_norm."""

        def build(self, shape):
            self.gamma = self.add_weight(shape=(shape[-1],), initializer="ones", name="gamma")
            self.beta = self.add_weight(shape=(shape[-1],), initializer="zeros", name="beta")

        def call(self, x):
            y, _, _ = tf.compat.v1.nn.fused_batch_norm(x, self.gamma, self.beta, epsilon=1e-3, is_training=True)
            return y

    model = keras_conv_bn_cnn(
        101, "keras_cnn_fused_bn_training", softmax_head=False, bn_layer=lambda n: FusedTrainingBN(name=n)
    )
    spec = (tf.TensorSpec((None, 32, 32, 3), tf.float32, name="images"),)
    mp, _ = tf2onnx.convert.from_keras(model, input_signature=spec)
    save_model(mp, path)
    x, y = inp["nhwc32"], inp["labels"]
    diff = per_sample_diff(path, "images", x, lambda xi: model(xi).numpy())
    diff16 = float(np.abs(ort_run(path, {"images": x})[0] - model(x).numpy()).max())
    kernels = keras_kernels(model)
    score, n, layers = keras_reference(lambda xi, training: model(xi, training=training), kernels, x, y, True)
    return {
        "route": "tf2onnx.convert.from_keras(model, input_signature=spec) with a custom Keras layer calling "
        "tf.compat.v1.nn.fused_batch_norm(x, gamma, beta, epsilon=1e-3, is_training=True)",
        "input_name": "images",
        "input_layout": "NHWC",
        "inputs_key": "nhwc32",
        "logits_hint": "output 0 holds logits (Dense without activation)",
        "output_is_softmax": False,
        "reference_score": score,
        "reference_protocol": "per_sample_batchnorm",
        "n_weights": n,
        "layers": layers,
        "export_max_abs_diff": diff,
        "export_max_abs_diff_batch16": diff16,
        "notes": "The only tf2onnx route found that writes ONNX BatchNormalization nodes with batch statistics: "
        "FusedBatchNormV3 with is_training=True and exponential_avg_factor=1.0 becomes BatchNormalization "
        "(inference form, 1 output) whose mean/var inputs are COMPUTED in the graph (ReduceMean, "
        "ReduceSumSquare/count over N,H,W), not initializers. Conv-BN folding does not fire. Statistics "
        "include the batch axis, so it is per-sample BN only at batch size 1. A stock Keras 3 "
        "BatchNormalization layer never produces this (see keras_cnn_bn_training). Same convs/seed as "
        "keras_cnn_bn_training, so the reference score should equal that one up to float rounding.",
    }


def build_keras_mobilenetv3_tiny(inp, path: Path) -> dict:
    tf = keras_setup()
    import keras
    import tf2onnx
    from keras.src.applications import mobilenet_v3 as mnv3

    # The real MobileNetV3Small(alpha=0.75, input 32x32, classes=10) has ~1M weights (> 4 MB): too big for git.
    keras.utils.set_random_seed(303)
    full_params = None
    try:
        full = keras.applications.MobileNetV3Small(
            input_shape=(32, 32, 3),
            alpha=0.75,
            minimalistic=False,
            weights=None,
            classes=NUM_CLASSES,
            include_preprocessing=False,
        )
        full_params = int(full.count_params())
        del full
    except Exception as e:  # noqa: BLE001
        full_params = f"could not build: {e}"
    keras.utils.set_random_seed(303)
    inputs = keras.Input((32, 32, 3), name="images")
    h = keras.layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False, name="conv")(inputs)
    h = keras.layers.BatchNormalization(epsilon=1e-3, momentum=0.999, name="conv_bn")(h)
    h = mnv3.hard_swish(h)
    # (expansion, filters, kernel, stride, se_ratio, activation, block_id) as in MobileNetV3Small's stack
    h = mnv3._inverted_res_block(h, 1, 8, 3, 2, 0.25, mnv3.relu, 0)
    h = mnv3._inverted_res_block(h, 4.5, 16, 3, 2, None, mnv3.relu, 1)
    h = mnv3._inverted_res_block(h, 3, 16, 5, 1, 0.25, mnv3.hard_swish, 2)
    h = keras.layers.Conv2D(32, 1, padding="same", use_bias=False, name="conv_1")(h)
    h = keras.layers.BatchNormalization(epsilon=1e-3, momentum=0.999, name="conv_1_bn")(h)
    h = mnv3.hard_swish(h)
    h = keras.layers.GlobalAveragePooling2D(keepdims=True)(h)
    h = keras.layers.Conv2D(64, 1, padding="same", use_bias=True, name="conv_2")(h)
    h = mnv3.hard_swish(h)
    h = keras.layers.Dropout(0.2)(h)
    h = keras.layers.Conv2D(NUM_CLASSES, 1, padding="same", name="logits")(h)
    logits_t = keras.layers.Flatten()(h)
    out = keras.layers.Activation("softmax", name="predictions")(logits_t)
    model = keras.Model(inputs, out, name="keras_mobilenetv3_tiny")
    logits_model = keras.Model(inputs, logits_t)
    spec = (tf.TensorSpec((None, 32, 32, 3), tf.float32, name="images"),)
    mp, _ = tf2onnx.convert.from_keras(model, input_signature=spec)
    save_model(mp, path)
    x, y = inp["nhwc32"], inp["labels"]
    diff = per_sample_diff(path, "images", x, lambda xi: model(xi, training=False).numpy())
    kernels = keras_kernels(model)
    score, n, layers = keras_reference(lambda xi, t: logits_model(xi, training=t), kernels, x, y, False)
    alt, _, _ = keras_reference(lambda xi, t: logits_model(xi, training=t), kernels, x, y, True)
    return {
        "route": "tf2onnx.convert.from_keras(model, input_signature=spec); model built from "
        "keras.src.applications.mobilenet_v3 (_inverted_res_block, hard_swish, relu)",
        "input_name": "images",
        "input_layout": "NHWC",
        "inputs_key": "nhwc32",
        "logits_hint": "output 'predictions' holds softmax PROBABILITIES; logits are the input of the final Softmax "
        "(the classifier is a 1x1 Conv 'logits' followed by Flatten/Reshape, as in MobileNetV3)",
        "output_is_softmax": True,
        "reference_score": score,
        "reference_protocol": "inference_batchnorm",
        "n_weights": n,
        "layers": layers,
        "reference_score_per_sample_batchnorm_native": alt,
        "export_max_abs_diff": diff,
        "keras_applications_MobileNetV3Small_alpha0.75_params": full_params,
        "notes": "keras.applications.MobileNetV3Small(input_shape=(32,32,3), alpha=0.75, minimalistic=False, "
        "weights=None, classes=10) has about "
        f"{full_params} parameters (several MB as float32), over the 400 KB limit, so this is a tiny model "
        "made of MobileNetV3's own Keras building blocks: stem Conv-BN-hard_swish, three inverted-residual "
        "blocks (expand 1x1, ZeroPadding + stride-2 DepthwiseConv, squeeze-excite with hard_sigmoid gate, "
        "project 1x1, residual Add), 1x1 head convs, Dropout(inactive), 1x1 Conv classifier, Softmax. "
        "tf2onnx writes NO HardSwish/HardSigmoid ops: Keras computes hard_sigmoid as relu6(x+3)/6, which "
        "becomes Add/Clip(or Relu+Min)/Mul (see ops). BN is folded (inference mode). Depthwise convs are "
        "Conv with group=C and are scored, like every Conv.",
    }


def build_keras_model_export_savedmodel(inp, path: Path) -> dict:
    keras_setup()
    import keras

    keras.utils.set_random_seed(404)
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3), name="images"),
            keras.layers.Conv2D(8, 3, strides=2, padding="same", name="conv0"),
            keras.layers.BatchNormalization(name="bn0"),
            keras.layers.ReLU(),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(16, 3, padding="same", name="conv1"),
            keras.layers.ReLU(),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(NUM_CLASSES, name="head"),
        ],
        name="keras_model_export_savedmodel",
    )
    x, y = inp["nhwc32"], inp["labels"]
    with tempfile.TemporaryDirectory() as td:
        sm = Path(td) / "saved_model"
        model.export(str(sm))
        tmp_onnx = Path(td) / path.name
        cmd = [sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(sm), "--output", str(tmp_onnx)]
        r = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ), check=False)
        if r.returncode != 0:
            raise RuntimeError(f"tf2onnx CLI failed: {r.stderr[-2000:]}")
        cli_log = [
            ln.split(" - ", 1)[-1] for ln in r.stderr.splitlines() if "tf2onnx" in ln and ("INFO" in ln or "WARN" in ln)
        ][-8:]
        import onnx

        save_model(onnx.load(str(tmp_onnx)), path)

    m = onnx.load(str(path))
    inits = {t.name for t in m.graph.initializer}
    data_inputs = [i for i in m.graph.input if i.name not in inits]
    input_name = data_inputs[0].name
    extra = {}
    for i in data_inputs[1:]:
        tt = i.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1 for d in tt.shape.dim]
        extra[i.name] = {"elem_type": onnx.TensorProto.DataType.Name(tt.elem_type), "shape": shape}
    diff = per_sample_diff(path, input_name, x, lambda xi: model(xi, training=False).numpy())
    kernels = keras_kernels(model)
    score, n, layers = keras_reference(lambda xi, t: model(xi, training=t), kernels, x, y, False)
    alt, _, _ = keras_reference(lambda xi, t: model(xi, training=t), kernels, x, y, True)
    return {
        "route": "model.export(dir)  # Keras 3 SavedModel, endpoint 'serve'/'serving_default'; then "
        "python -m tf2onnx.convert --saved-model dir --output keras_model_export_savedmodel.onnx",
        "input_name": input_name,
        "input_layout": "NHWC",
        "inputs_key": "nhwc32",
        "extra_graph_inputs": extra,
        "logits_hint": "output 0 holds logits (Dense without activation)",
        "output_is_softmax": False,
        "reference_score": score,
        "reference_protocol": "inference_batchnorm",
        "n_weights": n,
        "layers": layers,
        "reference_score_per_sample_batchnorm_native": alt,
        "export_max_abs_diff": diff,
        "tf2onnx_cli_log_tail": cli_log,
        "notes": "Sequential Conv(bias)-BN-ReLU-MaxPool-Conv-ReLU-GAP-Dense saved with Keras 3 model.export() and "
        "converted by the tf2onnx command line from the SavedModel. Names come from the serving signature. "
        + (
            "Extra non-data graph inputs: " + ", ".join(extra) + ". "
            if extra
            else "The converted graph has no extra non-data inputs. "
        )
        + "BN (inference) folded.",
    }


def build_keras_layernorm_mlp(inp, path: Path) -> dict:
    tf = keras_setup()
    import keras
    import tf2onnx

    keras.utils.set_random_seed(505)
    inputs = keras.Input((32, 32, 3), name="images")
    h = keras.layers.AveragePooling2D(4, name="pool")(inputs)  # 8x8x3 = 192 features keeps the file small
    h = keras.layers.Flatten(name="flatten")(h)
    h = keras.layers.Dense(32, name="fc0")(h)
    h = keras.layers.LayerNormalization(name="ln0")(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.Dropout(0.3, name="drop0")(h)
    h = keras.layers.Dense(32, use_bias=False, name="fc1")(h)
    h = keras.layers.LayerNormalization(name="ln1")(h)
    # exact gelu (erf) is not convertible: TF lowers it with Erfc, which tf2onnx passes through unconverted and
    # onnxruntime rejects ("No Op registered for Erfc"); the tanh approximation converts.
    h = keras.layers.Activation(functools.partial(keras.activations.gelu, approximate=True), name="gelu")(h)
    h = keras.layers.Dropout(0.3, name="drop1")(h)
    out = keras.layers.Dense(NUM_CLASSES, name="head")(h)
    model = keras.Model(inputs, out, name="keras_layernorm_mlp")
    spec = (tf.TensorSpec((None, 32, 32, 3), tf.float32, name="images"),)
    mp, _ = tf2onnx.convert.from_keras(model, input_signature=spec)
    save_model(mp, path)
    x, y = inp["nhwc32"], inp["labels"]
    diff = per_sample_diff(path, "images", x, lambda xi: model(xi, training=False).numpy())
    kernels = keras_kernels(model)
    score, n, layers = keras_reference(lambda xi, t: model(xi, training=t), kernels, x, y, False)
    return {
        "route": "tf2onnx.convert.from_keras(model, input_signature=spec)",
        "input_name": "images",
        "input_layout": "NHWC",
        "inputs_key": "nhwc32",
        "logits_hint": "output 'head' holds logits (Dense without activation)",
        "output_is_softmax": False,
        "reference_score": score,
        "reference_protocol": "no_batchnorm",
        "n_weights": n,
        "layers": layers,
        "export_max_abs_diff": diff,
        "notes": "AveragePooling2D(4) -> Flatten -> Dense(32) -> LayerNormalization -> ReLU -> Dropout(0.3) -> "
        "Dense(32, no bias) -> LayerNormalization -> gelu(approximate=True) -> Dropout(0.3) -> Dense(10). The exact Keras gelu (default) does NOT convert: TF computes it with Erfc, which tf2onnx 1.17 leaves as an unknown 'Erfc' node in the default domain, giving a file that onnx/onnxruntime reject (No Op registered for Erfc). "
        "from_keras (training=False) removes Dropout entirely; at the default opset LayerNormalization is "
        "decomposed into ReduceMean/Sub/Mul/Sqrt... (no LayerNormalization op). Reference: Dropout "
        "inactive, LN parameters not scored.",
    }


# --------------------------------------------------------------------------------------------------- JAX / Flax


def jax_setup():
    import jax

    jax.config.update("jax_platforms", "cpu")
    logging.getLogger("jax2onnx").setLevel(logging.ERROR)
    return jax


def jax_per_sample_gradsign(model, x, y):
    """Per-sample jax.grad of softmax CE on the logits w.r.t. every 'kernel' param (nnx.Conv / nnx.Linear)."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    def loss_fn(m, xi, yi):
        logp = jax.nn.log_softmax(m(xi), axis=-1)
        return -jnp.take_along_axis(logp, yi[:, None], axis=-1).mean()

    # nnx.grad differentiates w.r.t. nnx.Param only and carries BatchNorm's running-stat updates back into the
    # module (they do not matter: the metric never reads them in training mode).
    grad_fn = nnx.jit(nnx.grad(loss_fn))

    def flat(state):
        items = nnx.to_flat_state(state) if hasattr(nnx, "to_flat_state") else state.flat_state()
        return {tuple(str(k) for k in p): np.asarray(v.get_value() if hasattr(v, "get_value") else v) for p, v in items}

    per_sample = []
    for i in range(len(x)):
        g = flat(grad_fn(model, jnp.asarray(x[i : i + 1]), jnp.asarray(y[i : i + 1])))
        per_sample.append({".".join(k): v for k, v in sorted(g.items()) if k[-1] == "kernel"})
    return gradsign_from_grads(per_sample)


def set_bn_mode(model, use_running_average: bool):
    from flax import nnx

    for _, m in nnx.iter_graph(model):
        if isinstance(m, nnx.BatchNorm):
            m.use_running_average = use_running_average


def build_jax_cnn(inp, path: Path) -> dict:
    jax = jax_setup()
    import jax.numpy as jnp
    from flax import nnx
    from jax2onnx import to_onnx

    class CNN(nnx.Module):
        def __init__(self, rngs: nnx.Rngs):
            self.conv0 = nnx.Conv(3, 8, (3, 3), padding="SAME", rngs=rngs)
            self.bn0 = nnx.BatchNorm(8, use_running_average=False, rngs=rngs)
            self.conv1 = nnx.Conv(8, 16, (3, 3), strides=(2, 2), padding="SAME", use_bias=False, rngs=rngs)
            self.bn1 = nnx.BatchNorm(16, use_running_average=False, rngs=rngs)
            self.se_reduce = nnx.Linear(16, 8, rngs=rngs)
            self.se_expand = nnx.Linear(8, 16, rngs=rngs)
            self.drop = nnx.Dropout(0.25, deterministic=True, rngs=rngs)
            self.head = nnx.Linear(16, NUM_CLASSES, rngs=rngs)

        def __call__(self, x):
            h = jax.nn.hard_swish(self.bn0(self.conv0(x)))
            h = jax.nn.relu(self.bn1(self.conv1(h)))
            s = h.mean(axis=(1, 2))
            gate = jax.nn.hard_sigmoid(self.se_expand(jax.nn.relu(self.se_reduce(s))))
            h = h * gate[:, None, None, :]
            h = self.drop(jnp.max(h, axis=(1, 2)) + h.mean(axis=(1, 2)))
            return self.head(h)

    model = CNN(nnx.Rngs(606))
    mp = to_onnx(model, [("B", 32, 32, 3)], model_name="jax_cnn", input_names=["images"], output_names=["logits"])
    save_model(mp, path)
    x, y = inp["nhwc32"], inp["labels"]
    set_bn_mode(model, True)
    diff = per_sample_diff(path, "images", x, lambda xi: np.asarray(model(jnp.asarray(xi))))
    alt, _, _ = jax_per_sample_gradsign(model, x, y)
    set_bn_mode(model, False)
    score, n, layers = jax_per_sample_gradsign(model, x, y)
    return {
        "route": "jax2onnx.to_onnx(model, [('B', 32, 32, 3)], model_name='jax_cnn', input_names=['images'], "
        "output_names=['logits'])  # flax.nnx module, opset default",
        "input_name": "images",
        "input_layout": "NHWC",
        "inputs_key": "nhwc32",
        "logits_hint": "output 'logits' holds logits (nnx.Linear without activation)",
        "output_is_softmax": False,
        "reference_score": score,
        "reference_protocol": "per_sample_batchnorm",
        "n_weights": n,
        "layers": layers,
        "reference_score_inference_batchnorm_native": alt,
        "export_max_abs_diff": diff,
        "notes": "flax.nnx: Conv(bias)-BatchNorm-hard_swish, Conv(no bias, stride 2)-BatchNorm-relu, squeeze-excite "
        "with two nnx.Linear and a hard_sigmoid gate, max+mean pooling, Dropout(deterministic), Linear "
        "head. The model is built with BatchNorm(use_running_average=False); jax2onnx ALWAYS exports "
        "nnx.BatchNorm in inference form (it warns 'converting to inference mode'): BatchNormalization "
        "nodes with the running mean/var (0/1 at init) as initializers, between Transposes (NHWC<->NCHW). "
        "export_max_abs_diff is against the Flax model with use_running_average=True. Since the graph "
        "still has BatchNormalization nodes, the reference is per-sample training-mode BN (jax.grad with "
        "use_running_average=False, batch 1); reference_score_inference_batchnorm_native is the score with "
        "running statistics. Dropout is a Dropout node with ratio and training_mode=False inputs. "
        "jax.nn.hard_swish -> HardSwish, jax.nn.hard_sigmoid -> HardSigmoid.",
    }


def build_jax_vit_tiny(inp, path: Path) -> dict:
    jax = jax_setup()
    import jax.numpy as jnp
    from flax import nnx
    from jax2onnx import to_onnx

    D, HEADS, PATCH = 32, 2, 8
    TOKENS = (32 // PATCH) ** 2

    class Block(nnx.Module):
        def __init__(self, rngs):
            self.ln1 = nnx.LayerNorm(D, rngs=rngs)
            self.qkv = nnx.Linear(D, 3 * D, rngs=rngs)
            self.proj = nnx.Linear(D, D, rngs=rngs)
            self.ln2 = nnx.LayerNorm(D, rngs=rngs)
            self.fc1 = nnx.Linear(D, 2 * D, rngs=rngs)
            self.fc2 = nnx.Linear(2 * D, D, rngs=rngs)
            self.drop = nnx.Dropout(0.1, deterministic=True, rngs=rngs)

        def __call__(self, t):
            b, n, _ = t.shape
            qkv = self.qkv(self.ln1(t)).reshape(b, n, 3, HEADS, D // HEADS)
            q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
            att = jnp.einsum("bqhd,bkhd->bhqk", q, k) / jnp.sqrt(jnp.float32(D // HEADS))
            att = self.drop(jax.nn.softmax(att, axis=-1))
            o = jnp.einsum("bhqk,bkhd->bqhd", att, v).reshape(b, n, D)
            t = t + self.drop(self.proj(o))
            return t + self.drop(self.fc2(jax.nn.gelu(self.fc1(self.ln2(t)))))

    class ViT(nnx.Module):
        def __init__(self, rngs):
            self.patch = nnx.Conv(3, D, (PATCH, PATCH), strides=(PATCH, PATCH), padding="VALID", rngs=rngs)
            self.pos = nnx.Param(0.02 * jax.random.normal(rngs.params(), (1, TOKENS, D), jnp.float32))
            self.blocks = (
                nnx.List([Block(rngs) for _ in range(2)]) if hasattr(nnx, "List") else [Block(rngs) for _ in range(2)]
            )
            self.ln = nnx.LayerNorm(D, rngs=rngs)
            self.head = nnx.Linear(D, NUM_CLASSES, rngs=rngs)

        def __call__(self, x):
            t = self.patch(x)
            t = t.reshape(t.shape[0], -1, D) + self.pos[...]
            for blk in self.blocks:
                t = blk(t)
            return self.head(self.ln(t).mean(axis=1))

    model = ViT(nnx.Rngs(707))
    mp = to_onnx(
        model,
        [("B", 32, 32, 3)],
        model_name="jax_vit_tiny",
        input_names=["images"],
        output_names=["logits"],
        normalization_mode="prefer_native",
    )
    save_model(mp, path)
    x, y = inp["nhwc32"], inp["labels"]
    diff = per_sample_diff(path, "images", x, lambda xi: np.asarray(model(jnp.asarray(xi))))
    score, n, layers = jax_per_sample_gradsign(model, x, y)
    return {
        "route": "jax2onnx.to_onnx(model, [('B', 32, 32, 3)], model_name='jax_vit_tiny', input_names=['images'], "
        "output_names=['logits'], normalization_mode='prefer_native')  # flax.nnx module, opset default",
        "input_name": "images",
        "input_layout": "NHWC",
        "inputs_key": "nhwc32",
        "logits_hint": "output 'logits' holds logits (nnx.Linear head on mean-pooled tokens)",
        "output_is_softmax": False,
        "reference_score": score,
        "reference_protocol": "no_batchnorm",
        "n_weights": n,
        "layers": layers,
        "export_max_abs_diff": diff,
        "notes": f"Patchify with nnx.Conv({PATCH}x{PATCH}, stride {PATCH}) -> {TOKENS} tokens of width {D} + learned "
        f"position embedding (not scored), 2 pre-LN blocks: LayerNorm, nnx.Linear qkv, {HEADS}-head "
        "attention written with jnp.einsum (activation x activation, no weights), softmax, Dropout "
        "(deterministic), nnx.Linear proj, residual, LayerNorm, MLP Linear-gelu(tanh approx)-Linear; final "
        "LayerNorm, token mean, Linear head. normalization_mode='prefer_native' makes nnx.LayerNorm a native "
        "LayerNormalization node (1 output); with the default 'auto' jax2onnx decomposes it into "
        "ReduceMean/Sub/Mul/... Scored: the patch Conv kernel and every nnx.Linear kernel "
        "(3-D inputs: see ops for MatMul vs Gemm). LN scale/bias and the position embedding are not scored.",
    }


def build_jax_mlp_deterministic_input(inp, path: Path) -> dict:
    jax_setup()
    import jax.numpy as jnp
    from flax import nnx
    from jax2onnx import to_onnx

    class MLP(nnx.Module):
        """The jax2onnx README/example idiom: Dropout whose `deterministic` flag is a call argument."""

        def __init__(self, rngs: nnx.Rngs):
            self.fc0 = nnx.Linear(192, 32, rngs=rngs)
            self.drop = nnx.Dropout(rate=0.1, deterministic=True, rngs=rngs)
            self.fc1 = nnx.Linear(32, NUM_CLASSES, rngs=rngs)

        def __call__(self, x, *, deterministic: bool = True):
            b = x.shape[0]
            h = x.reshape(b, 8, 4, 8, 4, 3).mean(axis=(2, 4)).reshape(b, 192)  # 4x4 average pool + flatten
            h = nnx.gelu(self.drop(self.fc0(h), deterministic=deterministic), approximate=False)
            return self.fc1(h)

    model = MLP(nnx.Rngs(808))
    mp = to_onnx(
        model,
        [("B", 32, 32, 3)],
        input_params={"deterministic": True},
        model_name="jax_mlp_flag",
        input_names=["images"],
        output_names=["logits"],
    )
    save_model(mp, path)
    import onnx

    m = onnx.load(str(path))
    inits = {t.name for t in m.graph.initializer}
    extra = {}
    for i in m.graph.input:
        if i.name in inits or i.name == "images":
            continue
        tt = i.type.tensor_type
        extra[i.name] = {
            "elem_type": onnx.TensorProto.DataType.Name(tt.elem_type),
            "shape": [d.dim_value for d in tt.shape.dim],
            "feed": True,
        }
    x, y = inp["nhwc32"], inp["labels"]
    feeds = {k: np.array(True) for k in extra}
    diff = per_sample_diff(path, "images", x, lambda xi: np.asarray(model(jnp.asarray(xi))), extra_feeds=feeds)
    score, n, layers = jax_per_sample_gradsign(model, x, y)
    return {
        "route": "jax2onnx.to_onnx(model, [('B', 32, 32, 3)], input_params={'deterministic': True}, "
        "model_name='jax_mlp_flag', input_names=['images'], output_names=['logits'])",
        "input_name": "images",
        "input_layout": "NHWC",
        "inputs_key": "nhwc32",
        "extra_graph_inputs": extra,
        "logits_hint": "output 'logits' holds logits (nnx.Linear)",
        "output_is_softmax": False,
        "reference_score": score,
        "reference_protocol": "no_batchnorm",
        "n_weights": n,
        "layers": layers,
        "export_max_abs_diff": diff,
        "notes": "Extra non-data graph input: input_params={'deterministic': True} turns the Dropout flag into a "
        "scalar bool graph input 'deterministic' (feed True: dropout off; it reaches Dropout's "
        "training_mode through Not). Reshape-based 4x4 average pool, nnx.Linear (Gemm), Dropout, exact "
        "gelu (Gelu op), nnx.Linear head. Reference with deterministic=True.",
    }


# --------------------------------------------------------------------------------------------------- scikit-learn


def mlp_reference(clf, x, y):
    """Per-sample numpy backprop of softmax CE on MLPClassifier's pre-softmax output (relu hidden layers)."""
    assert clf.out_activation_ == "softmax" and clf.activation == "relu"
    Ws = [w.astype(np.float32) for w in clf.coefs_]
    bs = [b.astype(np.float32) for b in clf.intercepts_]
    per_sample = []
    for i in range(len(x)):
        acts = [x[i : i + 1].astype(np.float32)]
        pres = []
        for j, (W, b) in enumerate(zip(Ws, bs)):
            z = acts[-1] @ W + b
            pres.append(z)
            acts.append(np.maximum(z, 0) if j < len(Ws) - 1 else z)
        z = acts[-1]
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        delta = p.copy()
        delta[0, int(y[i])] -= 1.0
        grads = {}
        for j in range(len(Ws) - 1, -1, -1):
            grads[f"coefs_[{j}]"] = (acts[j].T @ delta).astype(np.float32)
            if j:
                delta = (delta @ Ws[j].T) * (pres[j - 1] > 0)
        per_sample.append({k: grads[k] for k in sorted(grads)})
    return gradsign_from_grads(per_sample)


def logreg_reference(clf, x, y):
    W = clf.coef_.T.astype(np.float32)
    per_sample = []
    for i in range(len(x)):
        z = x[i : i + 1] @ W + clf.intercept_.astype(np.float32)
        p = np.exp(z - z.max())
        p /= p.sum()
        p[0, int(y[i])] -= 1.0
        per_sample.append({"coef_": (x[i : i + 1].T @ p).astype(np.float32)})
    return gradsign_from_grads(per_sample)


def fit_sklearn_mlp(inp):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(inp["_flat_fit"], inp["_labels_fit"])
    return clf


def _skl_export(clf, path: Path, options=None):
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    # name= fixes the graph name (skl2onnx otherwise writes a random uuid there)
    onx = convert_sklearn(clf, name=path.stem, initial_types=[("input", FloatTensorType([None, 64]))], options=options)
    save_model(onx, path)


def build_sklearn_mlp(inp, path: Path, zipmap: bool) -> dict:
    clf = fit_sklearn_mlp(inp)
    options = None if zipmap else {id(clf): {"zipmap": False}}
    _skl_export(clf, path, options)
    x, y = inp["flat"], inp["labels"]
    outs = ort_run(path, {"input": x})
    probs = outs[1]
    if zipmap:
        probs = np.array([[row[c] for c in clf.classes_] for row in probs], np.float32)
    diff = float(np.abs(np.asarray(probs, np.float32) - clf.predict_proba(x).astype(np.float32)).max())
    label_ok = bool((np.asarray(outs[0]) == clf.predict(x)).all())
    score, n, layers = mlp_reference(clf, x, y)
    route = (
        f"skl2onnx.convert_sklearn(clf, name='{path.stem}', initial_types=[('input', FloatTensorType([None, 64]))]"
        + ("" if zipmap else ", options={id(clf): {'zipmap': False}}")
        + ")"
    )
    return {
        "route": route,
        "input_name": "input",
        "input_layout": "flat",
        "inputs_key": "flat",
        "logits_hint": (
            "output 'output_label' (int64 argmax) and 'output_probability' = "
            + ("ZipMap seq(map(int64, float)) of" if zipmap else "float tensor (N, 10) of")
            + " softmax PROBABILITIES; logits are the input of the Softmax node (pre-softmax "
            "activations of the last MatMul/Add)"
        ),
        "output_is_softmax": True,
        "reference_score": score,
        "reference_protocol": "no_batchnorm",
        "n_weights": n,
        "layers": layers,
        "export_max_abs_diff": diff,
        "export_label_matches": label_ok,
        "classes": [int(c) for c in clf.classes_],
        "fit": "MLPClassifier(hidden_layer_sizes=(32,), max_iter=5, random_state=0).fit(flat features of the first "
        "400 training images, their labels)  # sklearn cannot be initialised without fit: FITTED weights",
        "notes": (
            "Default options: the probability output goes through ai.onnx.ml ZipMap (a sequence of maps, "
            "not a tensor), so the logits/probabilities must be taken from inside the graph. "
            if zipmap
            else "zipmap=False: probabilities are a plain float tensor output. "
        )
        + "Weights are clf.coefs_ (MatMul with initializer operands); reference by numpy backprop of CE on "
        "the pre-softmax output, per sample. inputs_key 'flat' = 8x8 average-pooled grayscale "
        "(0.299R+0.587G+0.114B of x/255), standardised per feature with the fitting-set mean/std.",
    }


def build_sklearn_logreg(inp, path: Path) -> dict:
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(max_iter=50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(inp["_flat_fit"], inp["_labels_fit"])
    _skl_export(clf, path)
    x, y = inp["flat"], inp["labels"]
    outs = ort_run(path, {"input": x})
    probs = np.array([[row[c] for c in clf.classes_] for row in outs[1]], np.float32)
    diff = float(np.abs(probs - clf.predict_proba(x).astype(np.float32)).max())
    score, n, layers = logreg_reference(clf, x, y)
    return {
        "route": "skl2onnx.convert_sklearn(LogisticRegression(max_iter=50).fit(...), name='sklearn_logreg', "
        "initial_types=[('input', FloatTensorType([None, 64]))])",
        "input_name": "input",
        "input_layout": "flat",
        "inputs_key": "flat",
        "logits_hint": "ai.onnx.ml LinearClassifier computes scores inside one op; output_probability is a ZipMap "
        "of softmax probabilities",
        "output_is_softmax": True,
        "reference_score": None,
        "reference_protocol": None,
        "n_weights": None,
        "reference_score_if_supported": score,
        "n_weights_if_supported": n,
        "layers_if_supported": layers,
        "expected": "refuse",
        "export_max_abs_diff": diff,
        "fit": "LogisticRegression(max_iter=50).fit(flat features of the first 400 training images)",
        "notes": "Negative case: the weights live in attributes of ai.onnx.ml LinearClassifier (no Conv/Gemm/MatMul, "
        "no initializer), which onnxruntime-training cannot differentiate; gradsign-rs is expected to "
        "refuse it with a clear message. reference_score_if_supported is the multinomial softmax-CE "
        "GradSign of coef_ computed in numpy, for information only.",
    }


# --------------------------------------------------------------------------------------------------- driver

KERAS = {"framework": "keras/tensorflow", "framework_version": None, "exporter": "tf2onnx"}
JAXF = {"framework": "jax/flax.nnx", "framework_version": None, "exporter": "jax2onnx"}
SKL = {"framework": "scikit-learn", "framework_version": None, "exporter": "skl2onnx"}

MODELS = [
    ("keras_cnn_bn_folded", KERAS, build_keras_cnn_bn_folded),
    ("keras_cnn_bn_training", KERAS, build_keras_cnn_bn_training),
    ("keras_cnn_fused_bn_training", KERAS, build_keras_cnn_fused_bn_training),
    ("keras_mobilenetv3_tiny", KERAS, build_keras_mobilenetv3_tiny),
    ("keras_model_export_savedmodel", KERAS, build_keras_model_export_savedmodel),
    ("keras_layernorm_mlp", KERAS, build_keras_layernorm_mlp),
    ("jax_cnn", JAXF, build_jax_cnn),
    ("jax_vit_tiny", JAXF, build_jax_vit_tiny),
    ("jax_mlp_deterministic_input", JAXF, build_jax_mlp_deterministic_input),
    ("sklearn_mlp_zipmap", SKL, lambda inp, p: build_sklearn_mlp(inp, p, zipmap=True)),
    ("sklearn_mlp_nozipmap", SKL, lambda inp, p: build_sklearn_mlp(inp, p, zipmap=False)),
    ("sklearn_logreg", SKL, build_sklearn_logreg),
]


def versions(meta: dict) -> tuple[str | None, str | None]:
    if meta["exporter"] == "tf2onnx":
        return f"tensorflow-cpu {ver('tensorflow-cpu')}, keras {ver('keras')}", ver("tf2onnx")
    if meta["exporter"] == "jax2onnx":
        return f"jax {ver('jax')}, jaxlib {ver('jaxlib')}, flax {ver('flax')}", ver("jax2onnx")
    return f"scikit-learn {ver('scikit-learn')}", ver("skl2onnx")


ORDER = [
    "name",
    "file",
    "framework",
    "framework_version",
    "exporter",
    "exporter_version",
    "route",
    "opset",
    "ir_version",
    "input_name",
    "input_layout",
    "input_shape",
    "inputs_key",
    "output_names",
    "logits_hint",
    "output_is_softmax",
    "num_classes",
    "batchnorm_in_graph",
    "ops",
    "reference_score",
    "reference_protocol",
    "n_weights",
    "expected",
    "export_max_abs_diff",
    "grad_exact_zero_entries",
    "grad_tiny_entries",
    "notes",
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", help="build only these models")
    ap.add_argument("--no-write-manifest", action="store_true")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    inp = load_inputs()
    np.savez(OUT / "inputs.npz", **{k: v for k, v in inp.items() if not k.startswith("_")})
    old = {}
    if (OUT / "manifest.json").exists():
        old = {e["name"]: e for e in json.loads((OUT / "manifest.json").read_text())}
    entries = []
    failed = []
    for name, meta, build in MODELS:
        if args.only and name not in args.only:
            if name in old:
                entries.append(old[name])
            continue
        path = OUT / f"{name}.onnx"
        fw, ev = versions(meta)
        entry = {"name": name, "file": path.name, **meta, "framework_version": fw, "exporter_version": ev}
        print(f"== {name}", flush=True)
        try:
            info = build(inp, path)
            facts = onnx_facts(path)
            entry.update(info)
            entry.setdefault("expected", "score")
            entry.update(
                {
                    "opset": facts["opset"],
                    "ir_version": facts["ir_version"],
                    "producer": facts["producer"],
                    "input_shape": facts["input_shapes"].get(entry["input_name"]),
                    "graph_inputs": facts["graph_inputs"],
                    "output_names": facts["output_names"],
                    "num_classes": NUM_CLASSES,
                    "batchnorm_in_graph": facts["batchnorm_in_graph"],
                    "ops": facts["ops"],
                    "onnx_checker": facts["checker"],
                    "onnx_functions": facts["functions"],
                    "onnx_scorable_weights": facts["onnx_scorable_weights"],
                    "onnx_scorable_layers": facts["onnx_scorable_layers"],
                    "file_bytes": facts["file_bytes"],
                    "sha256": facts["sha256"],
                }
            )
            if entry.get("layers"):
                entry["grad_exact_zero_entries"] = sum(v["grad_exact_zero_entries"] for v in entry["layers"].values())
                entry["grad_tiny_entries"] = sum(v["grad_tiny_entries"] for v in entry["layers"].values())
            if entry.get("n_weights") is not None and facts["onnx_scorable_weights"] != entry["n_weights"]:
                entry["notes"] += (
                    f" WARNING: the ONNX graph has {facts['onnx_scorable_weights']} weights on "
                    f"Conv/Gemm/MatMul initializer operands vs n_weights={entry['n_weights']}."
                )
            if facts["file_bytes"] > MAX_BYTES:
                raise RuntimeError(f"{path.name} is {facts['file_bytes']} bytes (> {MAX_BYTES})")
            print(
                f"   ok: {facts['file_bytes']} B, opset {facts['opset']}, BN {facts['batchnorm_in_graph']}, "
                f"score {entry['reference_score']} ({entry['reference_protocol']}), n {entry['n_weights']}, "
                f"onnx weights {facts['onnx_scorable_weights']}, diff {entry['export_max_abs_diff']:.2e}, "
                f"checker {facts['checker']}",
                flush=True,
            )
        except Exception as e:  # noqa: BLE001 - recorded in the manifest instead of faked
            traceback.print_exc()
            if path.exists():
                path.unlink()
            entry.update(
                {
                    "file": None,
                    "expected": "unavailable",
                    "reference_score": None,
                    "notes": f"export failed: {type(e).__name__}: {str(e)[:500]}",
                }
            )
            failed.append(name)
        entries.append({k: entry[k] for k in ORDER if k in entry} | {k: v for k, v in entry.items() if k not in ORDER})
    order = [m[0] for m in MODELS]
    entries.sort(key=lambda e: order.index(e["name"]) if e["name"] in order else len(order))
    if not args.no_write_manifest:
        (OUT / "manifest.json").write_text(json.dumps(entries, indent=1, default=str) + "\n")
    print("failed:", failed or "none")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
