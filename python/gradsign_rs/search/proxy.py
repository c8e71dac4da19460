"""Proxy scores for assisted search: a scores table, optional on-the-fly GradSign, and the pick-by-proxy step.

Assistance as in the GradSign paper: where an algorithm proposes one candidate, it proposes M, and the one with the
highest proxy score is evaluated. The proxy's compute time is charged to the run's simulated clock by default
(seconds per network from the table's `seconds` column, or measured when scored on the fly), once per distinct
network per run: a run remembers the scores it has paid for. `charge_time=False` reproduces the paper's accounting,
where proxy time is free.

`skip_evaluated` (this project's option, off by default) picks only among the candidates the run has not evaluated
yet, when there are any: a repeat costs a full training and teaches nothing, and with the paper's rule 42% of
assisted REA's children are repeats (`scripts/rea_diversity.py`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gradsign_rs._core import GradSignError
from gradsign_rs.search.benchmark import Simulator
from gradsign_rs.spaces import nb201

log = logging.getLogger(__name__)

# `--assist gradsign` reads the `score` column written by `gradsign batch`; any other name is its own column.
GRADSIGN = "gradsign"
# On-the-fly GradSign follows the batch runner's protocol: first 128 CIFAR-10 training images, init seed 42.
ON_THE_FLY_IMAGES = "images/cifar10_train4000.npz"
ON_THE_FLY_SAMPLES = 128
ON_THE_FLY_SEED = 42


def score_column(proxy: str) -> str:
    """The scores-table column that holds `proxy`."""
    return "score" if proxy == GRADSIGN else proxy


class ProxyTable:
    """Scores and compute seconds per network from a CSV with columns `index`, the proxy's column and `seconds`.

    Networks absent from the table (or with an empty score) have NaN score and seconds.
    """

    def __init__(self, path: str | os.PathLike[str], proxy: str = GRADSIGN, *, need_seconds: bool = True):
        from gradsign_rs.truth import read_table

        self.path = Path(path)
        self.proxy = proxy
        column = score_column(proxy)
        frame = read_table(self.path, columns=[column, *(["seconds"] if need_seconds else [])])
        if not frame.index.isin(range(nb201.NUM_ARCHS)).all():
            raise GradSignError(f"{self.path}: indices must be NAS-Bench-201 indices 0..{nb201.NUM_ARCHS - 1}")
        self.score = np.full(nb201.NUM_ARCHS, np.nan)
        self.seconds = np.full(nb201.NUM_ARCHS, np.nan)
        self.score[frame.index.to_numpy()] = frame[column].to_numpy(np.float64)
        if "seconds" in frame.columns:
            self.seconds[frame.index.to_numpy()] = frame["seconds"].to_numpy(np.float64)
        self.sha256 = self.file_sha256(self.path)

    @staticmethod
    def file_sha256(path: str | os.PathLike[str]) -> str:
        """The sha256 of a scores file's bytes: which version of a growing table a run used."""
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()

    @property
    def missing(self) -> np.ndarray:
        """Indices of the networks the table does not score."""
        return np.flatnonzero(np.isnan(self.score))


class OnTheFlyGradSign:
    """GradSign of networks computed when first asked for (batch runner protocol), cached for the process."""

    def __init__(self, *, n: int = ON_THE_FLY_SAMPLES, seed: int = ON_THE_FLY_SEED, images: Path | None = None):
        from gradsign_rs.data import data_root, load_images

        self.inputs, self.labels = load_images(images or data_root() / ON_THE_FLY_IMAGES, n=n, normalize="cifar10")
        self.seed = seed
        self._cache: dict[int, tuple[float, float]] = {}

    def __call__(self, index: int) -> tuple[float, float]:
        """(score, seconds to build and score the network) of the network with this index."""
        if index not in self._cache:
            from gradsign_rs.score import score

            start = time.perf_counter()
            model = nb201.build_onnx(nb201.Arch.from_index(index), num_classes=10, seed=self.seed)
            value = score(model, self.inputs, self.labels, num_threads=1).value
            self._cache[index] = (float(value), time.perf_counter() - start)
            log.debug("scored network %d on the fly: %s in %.2f s", index, value, self._cache[index][1])
        return self._cache[index]


class ProxyScores:
    """Where an assisted search gets (score, seconds) per network: a table, then on-the-fly GradSign if allowed."""

    def __init__(self, proxy: str, table: ProxyTable | None = None, on_the_fly: OnTheFlyGradSign | None = None):
        if on_the_fly is not None and proxy != GRADSIGN:
            raise GradSignError(f"only GradSign is scored on the fly; proxy {proxy!r} needs a complete scores table")
        if table is None and on_the_fly is None:
            raise GradSignError(f"proxy {proxy!r}: give a scores table, or allow GradSign on the fly")
        self.proxy = proxy
        self.table = table
        self.on_the_fly = on_the_fly

    def lookup(self, index: int) -> tuple[float, float]:
        """(score, seconds) of one network; seconds may be NaN when the table has no `seconds` column."""
        if self.table is not None and not np.isnan(self.table.score[index]):
            return float(self.table.score[index]), float(self.table.seconds[index])
        if self.on_the_fly is None:
            raise GradSignError(
                f"{self.table.path if self.table else 'no table'}: no {self.proxy} score for network {index}"
            )
        return self.on_the_fly(index)


class Assistant:
    """Picks the candidate with the highest proxy score for one run, charging each distinct network's proxy time once.

    NaN scores rank below every number (a proxy that failed on a network does not pick it); ties go to the
    earliest candidate, as numpy's argmax. With `skip_evaluated`, candidates the run has already evaluated are
    neither scored nor picked while another candidate is new (if none is, all compete as usual).
    """

    def __init__(
        self, scores: ProxyScores, candidates: int = 10, *, charge_time: bool = True, skip_evaluated: bool = False
    ):
        if candidates < 1:
            raise GradSignError(f"candidates per step must be >= 1, got {candidates}")
        self.scores = scores
        self.candidates = candidates
        self.charge_time = charge_time
        self.skip_evaluated = skip_evaluated
        self.scored = 0
        self._paid: set[int] = set()

    def pick(self, sim: Simulator, archs: Sequence[nb201.Arch]) -> int:
        """Position in `archs` of the best candidate by proxy; charges the proxy time of newly scored networks first."""
        positions = list(range(len(archs)))
        if self.skip_evaluated:
            evaluated = {evaluation.index for evaluation in sim.history}
            positions = [p for p in positions if archs[p].index not in evaluated] or positions
        return positions[self._best_by_proxy(sim, [archs[p] for p in positions])]

    def _best_by_proxy(self, sim: Simulator, archs: Sequence[nb201.Arch]) -> int:
        """Position in `archs` of the highest score, after charging the networks not scored before in this run."""
        indices = [arch.index for arch in archs]
        lookups = [self.scores.lookup(i) for i in indices]
        new = list(dict.fromkeys(i for i in indices if i not in self._paid))
        if self.charge_time and new:
            seconds = sum(lookups[indices.index(i)][1] for i in new)
            if np.isnan(seconds):
                raise GradSignError("the scores table has no seconds for some candidates; use --no-proxy-time")
            sim.charge_proxy(seconds, f"proxy scoring of {len(new)} network(s)")
        self._paid.update(new)
        self.scored += len(new)
        values = np.array([score for score, _ in lookups], dtype=np.float64)
        return int(np.argmax(np.where(np.isnan(values), -np.inf, values)))
