"""One network and its labelled samples, with the onnxruntime passes the proxies share, each run once on first use.

Several proxies of one network read the same passes: the mini-batch training pass (weight gradients, fisher probes
and ReLU inputs) serves grad_norm, snip, grasp, fisher and the first batch of zico; nwot reads a forward-only pass;
synflow and live_params share synflow's pass (`shared`). The model is loaded and validated once. Sample conventions: the batch proxies use the first `batch_size` samples (one mini-batch, as
NASLib's `dataload="random", num_imgs_or_batches=1`); zico uses every full batch of `batch_size`; gradsign uses all
samples one at a time (its engine).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from gradsign_rs import engine, validate
from gradsign_rs._core import GradSignError
from gradsign_rs.frontend.pin import pin_batch
from gradsign_rs.frontend.pipeline import Network
from gradsign_rs.proxies import graphs

DEFAULT_BATCH_SIZE = 64


def _is_torch_module(model: object) -> bool:
    return any(cls.__module__.startswith("torch.nn") and cls.__name__ == "Module" for cls in type(model).__mro__)


class Workspace:
    """A prepared network plus samples; proxies are functions of a Workspace."""

    def __init__(
        self,
        model: object,
        inputs: np.ndarray,
        labels: np.ndarray,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        provider: str = "cpu",
        output: str | None = None,
    ):
        if _is_torch_module(model):
            from gradsign_rs.torch_export import from_torch

            model = from_torch(model, np.asarray(inputs)[:1])
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise GradSignError(f"batch_size must be an int >= 1, got {batch_size!r}")
        self.batch_size = int(batch_size)
        self.network = model if isinstance(model, Network) else graphs.load_network(model, output=output)
        self.output = output
        self.provider = provider
        self.inputs, self.labels = validate.check_samples(self.network, inputs, labels)
        classes = validate.static_classes(self.network)
        if classes is None:  # shape inference cannot tell: one forward pass can
            classes = self._forward_classes()
        validate.check_labels(self.labels, classes, self.network.source)
        self._shared: dict[str, object] = {}

    def _forward_classes(self) -> int:
        """The logits width from a forward pass on one sample."""
        proto = pin_batch(self.network.proto, self.network.data_input, self.network.logits, 1)
        session = engine.deterministic_session(
            proto.SerializeToString(), self.provider, f"{self.network.source}: the forward graph"
        )
        try:
            (logits,) = session.run([self.network.logits], {self.network.data_input: self.inputs[:1]})
        except Exception as exc:
            raise GradSignError(f"{self.network.source}: the forward pass failed on one sample: {exc}") from exc
        if logits.ndim != 2:
            raise GradSignError(
                f"{self.network.source}: output {self.network.logits!r} has shape {logits.shape} for "
                "one sample; GradSign needs (N, classes) logits"
            )
        return int(logits.shape[1])

    def shared(self, key: str, compute: Callable[[Workspace], object]) -> object:
        """`compute(self)`, run once per key: a pass that several proxies read (e.g. synflow's)."""
        if key not in self._shared:
            self._shared[key] = compute(self)
        return self._shared[key]

    @property
    def n_batches(self) -> int:
        """Full batches of `batch_size` among the samples."""
        return self.inputs.shape[0] // self.batch_size

    def batch(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Samples [index*B, (index+1)*B) and their labels."""
        if index >= self.n_batches:
            raise GradSignError(
                f"batch {index} of size {self.batch_size} needs {(index + 1) * self.batch_size} samples, "
                f"got {self.inputs.shape[0]}"
            )
        rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return self.inputs[rows], self.labels[rows]

    @functools.cached_property
    def train_session(self) -> graphs.BatchSession:
        """Mean cross-entropy over one batch, BatchNorm on batch statistics; weight and probe gradients, ReLU inputs."""
        program = graphs.build_batch_program(self.network, self.batch_size, probes=True, relu_outputs=True)
        return graphs.BatchSession(program, provider=self.provider)

    @functools.cached_property
    def train_pass(self) -> graphs.BatchResult:
        """The training pass on the first batch."""
        return self.train_session.run(*self.batch(0))

    @functools.cached_property
    def forward_relu_codes(self) -> tuple[np.ndarray, ...]:
        """Which units of every Relu node are active on the first batch, from a forward-only pass (what nwot reads:
        it needs no gradients, so it never pays for the training pass)."""
        codes = graphs.forward_relu_codes(self.network, self.batch(0)[0], provider=self.provider)
        if codes is None:  # an opset-13 BatchNorm has no training mode outside a training graph
            codes = tuple(values > 0 for values in self.train_pass.relu_inputs)
        return codes

    def weights(self) -> dict[str, np.ndarray]:
        """The scored weights that reach the logits, by name (the values the training pass was fed)."""
        program = self.train_session.program
        return {name: program.fed[name] for name in sorted(program.live)}

    def weight_gradients(self, result: graphs.BatchResult) -> dict[str, np.ndarray]:
        """dL/dW for every live scored weight in a training-pass result."""
        return {name: result.gradients[name] for name in sorted(self.train_session.program.live)}

    @functools.cached_property
    def masked_session(self) -> graphs.BatchSession:
        """The training program with every ReLU's rectification pattern fed in (see `train_pass_at`)."""
        program = graphs.build_batch_program(self.network, self.batch_size, relu_masks=True)
        return graphs.BatchSession(program, provider=self.provider)

    def train_pass_at(self, weights: dict[str, np.ndarray]) -> graphs.BatchResult:
        """The training pass on the first batch with some scored weights replaced and every ReLU kept on the
        pattern of the unperturbed pass (grasp's finite differences: smooth in the weights, no kink crossed)."""
        base = self.train_pass
        names = self.train_session.program.relu_inputs
        masks = {x: (value > 0).astype(np.float32) for x, value in zip(names, base.relu_inputs)}
        return self.masked_session.run(*self.batch(0), weights=weights, masks=masks)

    @functools.cached_property
    def batch_passes(self) -> tuple[graphs.BatchResult, ...]:
        """The training pass on every full batch (the first is `train_pass`)."""
        return (self.train_pass,) + tuple(self.train_session.run(*self.batch(i)) for i in range(1, self.n_batches))

    @functools.cached_property
    def input_jacobian(self) -> np.ndarray:
        """d(Σ logits)/dx on the first batch, flattened per sample: (B, input size)."""
        inputs = self.batch(0)[0]
        if not graphs.input_reaches_logits(self.network.proto, self.network):
            # The output ignores the input (e.g. a NAS-Bench-201 cell cut off by `none` edges): the gradient is
            # exactly 0, and onnxruntime refuses to differentiate along no path.
            return np.zeros((self.batch_size, inputs[0].size), np.float32)
        # Pruned: ops that only compute zeros or feed nothing cannot change d(Σ logits)/dx.
        program = graphs.build_batch_program(
            self.network, self.batch_size, loss="sum_logits", gradients_of="input", prune=True
        )
        result = graphs.BatchSession(program, provider=self.provider).run(inputs)
        return result.gradients[self.network.data_input].reshape(self.batch_size, -1)
