"""Score many networks in worker processes, appending one CSV row per network as it finishes.

The networks are search-space architectures (`space="nb201"`: built from an arch string, keyed by index) or ONNX
files (`space="files"`: any classifiers, keyed by their resolved path; see `resolve_models`).

The results file is append-only and is the only state: re-running the same command reads it, skips every
network already scored, and scores the rest, so a killed run resumes and each network is scored exactly once.
A sidecar `<results>.meta.json` records the settings; resuming with different settings is refused.
Failures are recorded in `<results>.errors.jsonl` (not in the results) and tried again on the next run.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from gradsign_rs._core import GradSignError
from gradsign_rs.processes import imap_unordered

COLUMNS = ("index", "arch", "score", "mean", "n_weights", "n_samples", "seconds")
SPACES = ("nb201", "files")
DEFAULT_PROXIES = ("gradsign",)
# Settings recorded only when not their default: a file that has one must match a run that leaves it out.
_OPTIONAL_KEYS = ("proxies", "proxy_batch_size", "offset", "layout", "size")

# Datasets of the NAS-Bench-201 protocol: image file, normalisation, classes, input size.
DATASETS = {
    "cifar10": ("images/cifar10_train4000.npz", "cifar10", 10, 32),
    "cifar100": ("images/cifar100_test200.npz", "cifar100", 100, 32),
    "imagenet16": ("images/imagenet16_120_proxy.npz", "imagenet16", 120, 16),
}


@dataclasses.dataclass(frozen=True)
class BatchConfig:
    """Everything that decides a network's score; a results file holds rows of one config only."""

    space: str
    data: str
    normalize: str | None  # a gradsign_rs.data.NORMALIZATION name, or None for [0, 1] pixels
    num_classes: int
    n: int
    seed: int
    # Proxies scored per network (gradsign_rs.proxies names) and the mini-batch of the batch proxies. Recorded in
    # the settings only when not the default, so results files of GradSign alone keep their format.
    proxies: tuple[str, ...] = DEFAULT_PROXIES
    proxy_batch_size: int = 64
    # Images offset..offset+n of the file (recorded only when not 0, like the proxies).
    offset: int = 0
    # How the models take the images (gradsign_rs.data.arrange): recorded only when not the default.
    layout: str = "nchw"
    size: int | None = None

    @property
    def identity(self) -> tuple[str, ...]:
        """The columns that name a network: (index, arch) in a search space, (model,) for ONNX files."""
        return ("model",) if self.space == "files" else ("index", "arch")

    @property
    def columns(self) -> tuple[str, ...]:
        """The CSV header: `COLUMNS` for NB201 GradSign alone; otherwise the identity, GradSign's columns when
        scored, then one column per other proxy, before seconds."""
        if self.proxies == DEFAULT_PROXIES and self.space != "files":
            return COLUMNS
        gradsign = ("score", "mean", "n_weights") if "gradsign" in self.proxies else ()
        # ONNX files may not follow the paper's protocol (BatchNorm folded at export): each row says so.
        protocol = ("protocol", "protocol_reasons") if self.space == "files" else ()
        others = tuple(p for p in self.proxies if p != "gradsign")
        return (*self.identity, *gradsign, "n_samples", *protocol, *others, "seconds")

    def to_json(self) -> dict[str, object]:
        """The settings as recorded beside the results: the data by name and content, not by path, so a run can
        resume from another checkout."""
        settings = dataclasses.asdict(self)
        path = Path(self.data)
        settings["data"] = path.name
        settings["data_sha256"] = _sha256(path)
        if self.proxies == DEFAULT_PROXIES:
            del settings["proxies"], settings["proxy_batch_size"]
        else:
            settings["proxies"] = list(self.proxies)
        if not self.offset:
            del settings["offset"]
        if self.layout == "nchw":
            del settings["layout"]
        if self.size is None:
            del settings["size"]
        if self.space == "files":
            del settings["num_classes"], settings["seed"]  # an ONNX file carries its own classes and weights
        return settings


def _sha256(path: Path) -> str:
    import hashlib

    if not path.is_file():
        raise GradSignError(f"image file {str(path)!r} does not exist")
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclasses.dataclass(frozen=True)
class Job:
    """One network: a search-space architecture (index, arch string) or an ONNX file (model path)."""

    index: int | None = None
    arch: str | None = None
    model: str | None = None

    @property
    def key(self) -> str:
        """What a results row is keyed by (the index, or the model path), as the CSV stores it."""
        return self.model if self.model is not None else str(self.index)

    def identity(self) -> dict[str, object]:
        return {"model": self.model} if self.model is not None else {"index": self.index, "arch": self.arch}

    def __str__(self) -> str:
        return self.model if self.model is not None else f"{self.index} ({self.arch})"


@dataclasses.dataclass
class BatchSummary:
    scored: int
    skipped: int
    failed: int
    seconds: float


def resolve_archs(spec: str, *, sample_seed: int = 0) -> list[Job]:
    """`all`, `sample:K` (K distinct archs drawn with `sample_seed`), or a file of arch strings or indices."""
    from gradsign_rs.spaces import nb201

    if spec == "all":
        return [Job(i, str(nb201.Arch.from_index(i))) for i in range(nb201.NUM_ARCHS)]
    if spec.startswith("sample:"):
        try:
            k = int(spec.split(":", 1)[1])
        except ValueError:
            raise GradSignError(f"--archs {spec!r}: expected sample:K with an integer K") from None
        if not 1 <= k <= nb201.NUM_ARCHS:
            raise GradSignError(f"--archs {spec!r}: K must be in 1..{nb201.NUM_ARCHS}")
        picks = np.sort(np.random.default_rng(sample_seed).choice(nb201.NUM_ARCHS, size=k, replace=False))
        return [Job(int(i), str(nb201.Arch.from_index(int(i)))) for i in picks]
    path = Path(spec)
    if not path.is_file():
        raise GradSignError(f"--archs {spec!r}: not 'all', 'sample:K' or an existing file of archs")
    jobs = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            arch = nb201.Arch.from_index(int(text)) if text.isdigit() else nb201.Arch.parse(text)
        except GradSignError as exc:
            raise GradSignError(f"{path}:{number}: {exc}") from None
        jobs.append(Job(arch.index, str(arch)))
    return jobs


def resolve_models(spec: str) -> list[Job]:
    """ONNX files to score: a folder (its `*.onnx`, sorted), a glob pattern, a single `.onnx` file, or a text file
    listing one path per line (relative to the list; lines starting with `#` are comments). Paths are resolved, so a
    row's key does not depend on the working directory; a file rewritten under the same path is not scored again."""
    import glob

    path = Path(spec)
    if path.is_dir():
        found = sorted(p for p in path.glob("*.onnx") if p.is_file())
        if not found:
            raise GradSignError(f"--models {spec!r}: the folder has no .onnx files")
    elif path.is_file() and path.suffix.lower() == ".onnx":
        found = [path]
    elif path.is_file():
        found = _listed_models(path)
    else:
        found = sorted(Path(p) for p in glob.glob(spec) if Path(p).is_file())
        if not found:
            raise GradSignError(f"--models {spec!r}: no such file or folder, and the pattern matches no file")
    models = list(dict.fromkeys(str(p.resolve()) for p in found))
    return [Job(model=m) for m in models]


def _listed_models(listing: Path) -> list[Path]:
    try:
        lines = listing.read_text().splitlines()
    except UnicodeDecodeError:
        raise GradSignError(
            f"--models {str(listing)!r}: not a .onnx file, and not a text list of model paths (it is not UTF-8 text)"
        ) from None
    found = []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        listed = Path(text) if Path(text).is_absolute() else listing.parent / text
        if not listed.is_file():
            raise GradSignError(f"{listing}:{number}: model file {text!r} does not exist")
        found.append(listed)
    if not found:
        raise GradSignError(f"--models {str(listing)!r}: the list names no model")
    return found


class ResultsFile:
    """An append-only CSV of scored networks plus its settings sidecar."""

    def __init__(self, path: str | os.PathLike[str], columns: tuple[str, ...] = COLUMNS):
        self.path = Path(path)
        self.columns = columns
        self.key = columns[0]  # "index" or "model": what identifies a row
        self.meta_path = self.path.with_name(self.path.name + ".meta.json")
        self.errors_path = self.path.with_name(self.path.name + ".errors.jsonl")

    def open(self, config: BatchConfig) -> set[str]:
        """Check or write the settings, repair a row cut off by a kill, and return the keys (`Job.key`) already
        scored."""
        if self.meta_path.exists():
            recorded = json.loads(self.meta_path.read_text())
            settings = config.to_json()
            differing = {k: (recorded.get(k), v) for k, v in settings.items() if recorded.get(k) != v}
            differing.update({k: (recorded[k], None) for k in _OPTIONAL_KEYS if k in recorded and k not in settings})
            if differing:
                shown = ", ".join(f"{k}: file has {a!r}, this run {b!r}" for k, (a, b) in differing.items())
                raise GradSignError(f"{self.path} was made with other settings ({shown}); use another --out")
        elif self.path.exists() and self.path.stat().st_size > 0:
            raise GradSignError(f"{self.path} exists without its {self.meta_path.name}; refusing to append to it")
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.meta_path.write_text(json.dumps(config.to_json(), indent=2) + "\n")
        if not self.path.exists() or self.path.stat().st_size == 0:
            with open(self.path, "w", newline="") as f:
                f.write(",".join(self.columns) + "\n")
            return set()
        self._drop_partial_last_line()
        done: set[str] = set()
        with open(self.path, newline="") as f:
            reader = csv.DictReader(f)
            if tuple(reader.fieldnames or ()) != self.columns:
                raise GradSignError(f"{self.path}: header {reader.fieldnames} is not {list(self.columns)}")
            for row in reader:
                key = row[self.key]
                if key in done:
                    raise GradSignError(f"{self.path}: network {key} appears twice")
                done.add(key)
        return done

    def _drop_partial_last_line(self) -> None:
        # A kill during a write can leave a line without its newline: it is not a finished row.
        with open(self.path, "rb+") as f:
            data = f.read()
            if data and not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)

    def append(self, row: dict[str, object]) -> None:
        line = io.StringIO()
        csv.writer(line, lineterminator="\n").writerow([row[c] for c in self.columns])
        # One write of a whole line, then fsync: a row is either complete on disk or absent.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, line.getvalue().encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def record_error(self, job: Job, message: str) -> None:
        with open(self.errors_path, "a") as f:
            f.write(json.dumps({**job.identity(), "error": message, "time": time.time()}) + "\n")


# ---- worker side: one process scores many networks with one loaded batch of images ----

_worker_state: dict[str, object] = {}


def _init_worker(config: BatchConfig) -> None:
    from gradsign_rs.data import arrange, load_images

    _worker_state["config"] = config
    images, labels = load_images(config.data, n=config.n, normalize=config.normalize, offset=config.offset)
    _worker_state["data"] = (arrange(images, layout=config.layout, size=config.size), labels)


def _job_model(job: Job, config: BatchConfig, inputs: np.ndarray) -> object:
    """The network of a job: its ONNX file, or the search-space architecture built for these inputs."""
    if job.model is not None:
        return job.model
    from gradsign_rs.spaces import nb201

    arch = nb201.Arch.parse(job.arch)
    return nb201.build_onnx(arch, num_classes=config.num_classes, seed=config.seed, input_size=inputs.shape[-1])


def _score_job(job: Job) -> tuple[Job, dict[str, object] | None, str | None]:
    """Build and score one network; failures come back as a message (the run goes on)."""
    from gradsign_rs.score import score

    config: BatchConfig = _worker_state["config"]  # type: ignore[assignment]
    inputs, labels = _worker_state["data"]  # type: ignore[misc]
    if config.proxies != DEFAULT_PROXIES:
        return _score_job_proxies(job, config, inputs, labels)
    start = time.perf_counter()
    try:
        result = score(_job_model(job, config, inputs), inputs, labels, num_threads=1)
    except GradSignError as exc:
        return job, None, str(exc)
    except Exception as exc:  # a bug, not bad input: keep the traceback for the errors file
        return job, None, f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
    row = {
        **job.identity(),
        "score": result.value,
        "mean": f"{result.mean:.9g}",
        "n_weights": result.n_weights,
        "n_samples": result.n_samples,
        **_protocol_columns(config, result),
        "seconds": f"{time.perf_counter() - start:.4f}",
    }
    return job, row, None


def _protocol_columns(config: BatchConfig, result: object) -> dict[str, object]:
    """The protocol columns of an ONNX-file row: "paper" or "flagged", and the reasons joined by "; "."""
    if config.space != "files":
        return {}
    return {"protocol": result.protocol, "protocol_reasons": "; ".join(result.protocol_reasons)}


def _score_job_proxies(job: Job, config: BatchConfig, inputs, labels) -> tuple[Job, dict[str, object] | None, str | None]:
    """Several proxies of one network, sharing its model and data (gradsign through `score` for its extra columns)."""
    from gradsign_rs import proxies
    from gradsign_rs.score import score

    start = time.perf_counter()
    row: dict[str, object] = {**job.identity(), "n_samples": int(labels.shape[0])}
    try:
        model = _job_model(job, config, inputs)
        if "gradsign" in config.proxies:
            result = score(model, inputs, labels, num_threads=1)
            row.update(score=result.value, mean=f"{result.mean:.9g}", n_weights=result.n_weights)
            row.update(_protocol_columns(config, result))
        others = [p for p in config.proxies if p != "gradsign"]
        if others:
            values = proxies.compute(others, model, inputs, labels, batch_size=config.proxy_batch_size)
            row.update({name: f"{value:.10g}" for name, value in values.items()})
    except GradSignError as exc:
        return job, None, str(exc)
    except Exception as exc:  # a bug, not bad input: keep the traceback for the errors file
        return job, None, f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
    row["seconds"] = f"{time.perf_counter() - start:.4f}"
    return job, row, None


def run_batch(
    config: BatchConfig,
    jobs: Iterable[Job],
    out: str | os.PathLike[str],
    *,
    workers: int = 1,
    progress: bool = True,
    on_row: Callable[[dict[str, object]], None] | None = None,
) -> BatchSummary:
    """Score every job not yet in `out`, appending rows as they finish. Returns counts and wall time."""
    if config.space not in SPACES:
        raise GradSignError(f"unknown search space {config.space!r}; available: {', '.join(SPACES)}")
    if workers < 1:
        raise GradSignError(f"--workers must be >= 1, got {workers}")
    if config.proxies != DEFAULT_PROXIES:
        from gradsign_rs.proxies import parse_names

        if parse_names(config.proxies) != config.proxies:
            raise GradSignError(f"proxies {config.proxies!r}: give each known proxy once")
    results = ResultsFile(out, config.columns)
    done = results.open(config)
    jobs = list(jobs)
    for job in jobs:
        if (job.model is not None) != (config.space == "files"):
            raise GradSignError(f"job {job} does not belong to space {config.space!r}")
    todo = [job for job in jobs if job.key not in done]
    start = time.perf_counter()
    scored = failed = 0
    from tqdm import tqdm

    bar = tqdm(total=len(todo), unit="net", disable=not progress, smoothing=0.05, dynamic_ncols=True)
    try:
        for job, row, error in _execute(config, todo, workers):
            if row is not None:
                results.append(row)
                scored += 1
                if on_row is not None:
                    on_row(row)
            else:
                results.record_error(job, error or "unknown error")
                failed += 1
                bar.write(f"network {job} failed: {(error or '').splitlines()[0]}")
            bar.update(1)
            bar.set_postfix(failed=failed, refresh=False)
    finally:
        bar.close()
    return BatchSummary(scored, len(jobs) - len(todo), failed, time.perf_counter() - start)


def _execute(config: BatchConfig, todo: list[Job], workers: int):
    if not todo:
        return
    if workers == 1:
        _init_worker(config)
        for job in todo:
            yield _score_job(job)
        return
    yield from imap_unordered(_score_job, todo, workers=workers, initializer=_init_worker, initargs=(config,))
