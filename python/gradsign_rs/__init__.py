"""gradsign-rs: the GradSign zero-cost proxy (Zhang & Jia, ICLR 2022) for any ONNX classifier.

Per-sample gradients come from onnxruntime-training; a Rust core reduces their signs with bounded memory.
"""

from gradsign_rs._core import GradSignError, SignAccumulator, __version__
from gradsign_rs.data import load_images
from gradsign_rs.engine import GradientProgram, GradientSource, prepare
from gradsign_rs.score import Score, score
from gradsign_rs.torch_export import from_torch

__all__ = [
    "GradSignError",
    "GradientProgram",
    "GradientSource",
    "Score",
    "SignAccumulator",
    "__version__",
    "from_torch",
    "load_images",
    "prepare",
    "score",
]
