"""Score many networks in worker processes, appending one CSV row per network as it finishes.

The networks are search-space architectures (`space="nb201"`: built from an arch string, keyed by index) or ONNX
files (`space="files"`: any classifiers, keyed by their resolved path; see `resolve_models`).

The results file is append-only and is the only state: re-running the same command reads it, skips every
network already scored, and scores the rest, so a killed run resumes and each network is scored exactly once.
A sidecar `<results>.meta.json` records the settings; resuming with different settings is refused. One run writes a
results file at a time (`<results>.lock`), and every row is checked when a run resumes: a malformed one is refused
by its line number, or moved to `<results>.malformed` on request. Networks are scored in worker processes, so one
that crashes native code (a segfault in onnxruntime) fails alone. Failures are recorded in `<results>.errors.jsonl`
(not in the results) and tried again on the next run; a network that crashed its worker `MAX_CRASHES` runs in a row
is left out until asked for.
"""

from __future__ import annotations

import csv
import dataclasses
import fcntl
import io
import json
import math
import os
import re
import shlex
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Self, cast

import numpy as np

from gradsign_rs._core import GradSignError
from gradsign_rs.processes import LocalPool, Pool

if TYPE_CHECKING:
    from gradsign_rs.score import Score

COLUMNS = ("index", "arch", "score", "mean", "n_weights", "n_samples", "seconds")
SPACES = ("nb201", "nb101", "files")
MAX_INT = 2**63 - 1  # integer settings are recorded in JSON and CSV: keep them within int64
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
        """The columns that name a network: (index, arch) in a search space (NB101 adds its hash), (model,) for
        ONNX files."""
        if self.space == "files":
            return ("model",)
        return ("index", "hash", "arch") if self.space == "nb101" else ("index", "arch")

    @property
    def columns(self) -> tuple[str, ...]:
        """The CSV header: `COLUMNS` for NB201 GradSign alone; otherwise the identity, GradSign's columns when
        scored, then one column per other proxy, before seconds."""
        if self.proxies == DEFAULT_PROXIES and self.space == "nb201":
            return COLUMNS
        gradsign = ("score", "mean", "n_weights") if "gradsign" in self.proxies else ()
        # ONNX files may not follow the paper's protocol (BatchNorm folded at export): each row says so.
        protocol = ("protocol", "protocol_reasons") if self.space == "files" else ()
        others = tuple(p for p in self.proxies if p != "gradsign")
        return (*self.identity, *gradsign, "n_samples", *protocol, *others, "seconds")

    def check(self) -> None:
        """Refuse settings no network could be scored with, before any worker starts (GradSignError naming the
        command-line flag)."""
        if self.space not in SPACES:
            raise GradSignError(f"unknown search space {self.space!r}; available: {', '.join(SPACES)}")
        bounds = [("--n", self.n, 1), ("--offset", self.offset, 0), ("--proxy-batch-size", self.proxy_batch_size, 1)]
        if self.space != "files":
            bounds += [("--seed", self.seed, 0), ("num_classes", self.num_classes, 1)]
        if self.size is not None:
            bounds.append(("--size", self.size, 1))
        for flag, value, minimum in bounds:
            if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_INT:
                raise GradSignError(f"{flag} must be an integer in {minimum}..{MAX_INT}, got {value!r}")

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
        raise GradSignError(f"image file {str(path)!r} " + ("is a folder" if path.is_dir() else "does not exist"))
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise GradSignError(f"image file {str(path)!r}: cannot read it ({exc.strerror})") from None


@dataclasses.dataclass(frozen=True)
class Job:
    """One network: a search-space architecture (index, arch string) or an ONNX file (model path)."""

    index: int | None = None
    arch: str | None = None
    model: str | None = None
    # NAS-Bench-101's module hash: the benchmark's own key, so tables join any NB101 source (`gradsign eval --on hash`).
    hash: str | None = None

    @property
    def key(self) -> str:
        """What a results row is keyed by (the index, or the model path), as the CSV stores it."""
        return self.model if self.model is not None else str(self.index)

    def identity(self) -> dict[str, object]:
        if self.model is not None:
            return {"model": self.model}
        if self.hash is not None:
            return {"index": self.index, "hash": self.hash, "arch": self.arch}
        return {"index": self.index, "arch": self.arch}

    def __str__(self) -> str:
        return self.model if self.model is not None else f"{self.index} ({self.arch})"


# What scoring one network gives: the job, its row or None, and None or why it failed.
JobResult = tuple[Job, dict[str, object] | None, str | None]


@dataclasses.dataclass
class BatchSummary:
    """What a run did: networks scored, already done (`skipped`), failed (`crashed` of them took their worker
    process down), not tried because their worker crashed `MAX_CRASHES` runs in a row (`given_up`), and malformed
    rows moved out of the results (`dropped`)."""

    scored: int
    skipped: int
    failed: int
    seconds: float
    crashed: int = 0
    given_up: int = 0
    dropped: int = 0


def resolve_archs(spec: str, *, sample_seed: int = 0, space: str = "nb201") -> list[Job]:
    """`all`, `sample:K` (K distinct archs drawn with `sample_seed`), or a file of arch strings or indices. For
    NAS-Bench-101 the index is the row of the shared table and the arch the cell as `str(Cell)`."""
    from gradsign_rs.spaces import nb201

    if isinstance(sample_seed, bool) or not isinstance(sample_seed, int) or not 0 <= sample_seed <= MAX_INT:
        raise GradSignError(f"--sample-seed must be an integer in 0..{MAX_INT}, got {sample_seed!r}")
    if space == "nb101":
        from gradsign_rs.spaces import nb101

        return [Job(row, str(cell), hash=cell.hash) for row, cell in nb101.resolve(spec, sample_seed=sample_seed)]
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
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise GradSignError(f"--archs {spec!r}: cannot read it ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise GradSignError(f"--archs {spec!r}: not UTF-8 text (one arch string or index a line)") from None
    jobs = []
    for number, line in enumerate(text.splitlines(), 1):
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
        lines = listing.read_bytes().decode("utf-8").splitlines()
    except OSError as exc:
        raise GradSignError(f"--models {str(listing)!r}: cannot read it ({exc.strerror})") from None
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


# Cells of a results row: what each column must hold for the row to be read back on resume.
_COUNT_COLUMNS = ("index", "score", "n_weights", "n_samples")  # non-negative integers
_FINITE_COLUMNS = ("mean", "seconds")  # finite numbers
_NAME_COLUMNS = ("arch", "model", "hash", "protocol")  # non-empty text
_TEXT_COLUMNS = ("protocol_reasons",)  # any text; every other column is a proxy's number (nan included)
_COUNT = re.compile(r"\d+")
# A network whose worker crashed this many runs in a row is not tried again without --retry-crashed.
MAX_CRASHES = 2


def count_problem(value: str, *, empty: bool = False) -> str | None:
    """Why `value` is not a non-negative integer as written by this package (`empty`: "" is allowed too)."""
    if (empty and value == "") or _COUNT.fullmatch(value):
        return None
    return f"{value!r} is not a non-negative integer"


def number_problem(value: str, *, finite: bool = True, empty: bool = False) -> str | None:
    """Why `value` is not a number as written by this package (`finite`: no nan or inf; `empty`: "" allowed)."""
    if empty and value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        return f"{value!r} is not a number"
    if value != value.strip():
        return f"{value!r} is not a number (spaces around it)"
    if finite and not math.isfinite(number):
        return f"{value!r} is not a finite number"
    return None


def _command_line() -> str:
    """This process's command line, for the lock file (what a refused second writer is told)."""
    try:
        argv = Path("/proc/self/cmdline").read_bytes().rstrip(b"\0").decode(errors="replace").split("\0")
    except OSError:
        argv = [sys.executable, *sys.argv]
    return shlex.join(argv).replace("\n", "\\n")[:1000]  # one line: the lock file holds the pid, then this


class ResultsFile:
    """An append-only CSV of scored networks plus its settings sidecar, its errors log and its lock file.

    One process writes it at a time: `lock()` takes an exclusive `flock` on `<results>.lock` (which names the
    holder) for the whole run. `open()` reads back every row and refuses a malformed one by its line number, or moves
    malformed rows to `<results>.malformed` when asked to."""

    noun = "network"  # what a row is, in messages

    def __init__(self, path: str | os.PathLike[str], columns: tuple[str, ...] = COLUMNS):
        self.path = Path(path)
        self.columns = columns
        self.key = columns[0]  # "index" or "model": what identifies a row
        self.meta_path = self._beside(".meta.json")
        self.errors_path = self._beside(".errors.jsonl")
        self.lock_path = self._beside(".lock")
        self.malformed_path = self._beside(".malformed")
        self.dropped: list[tuple[int, str]] = []  # (line, problem) of the rows `open` moved to malformed_path
        self._lock_fd: int | None = None

    def _beside(self, suffix: str) -> Path:
        return self.path.with_name(self.path.name + suffix)

    # ---- the lock ----

    def lock(self) -> None:
        """Take the exclusive lock on this results file for this process until `unlock` (or its exit), or raise
        GradSignError naming the process that holds it."""
        self._check_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise GradSignError(f"{self.path.parent}: cannot create the folder ({exc.strerror})") from None
        for _ in range(100):
            try:
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise GradSignError(f"{self.lock_path}: cannot create the lock file ({exc.strerror})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 2000, 0).decode(errors="replace").strip().split("\n", 1)
                os.close(fd)
                who = f"pid {holder[0]}: {holder[1]}" if len(holder) == 2 else "a process that is starting"
                raise GradSignError(
                    f"{self.path} is being written by another process ({who}); wait for it to end, or use another --out"
                ) from None
            except OSError as exc:
                os.close(fd)
                raise GradSignError(f"{self.lock_path}: cannot lock it ({exc.strerror})") from None
            # The holder removes the file as it lets go: a lock on a removed file locks nothing, so take the new one.
            try:
                current = os.stat(self.lock_path)
            except FileNotFoundError:
                current = None
            opened = os.fstat(fd)
            if current is not None and (current.st_dev, current.st_ino) == (opened.st_dev, opened.st_ino):
                break
            os.close(fd)
        else:
            raise GradSignError(f"{self.lock_path}: cannot lock it (it keeps being replaced)")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n{_command_line()}\n".encode(), 0)
        self._lock_fd = fd

    def unlock(self) -> None:
        """Release the lock and remove the lock file (removed while still held, so a waiting process sees that)."""
        if self._lock_fd is not None:
            fd, self._lock_fd = self._lock_fd, None
            try:
                os.unlink(self.lock_path)
            except OSError:  # gone already, or a read-only folder: the kernel releases the lock all the same
                pass
            os.close(fd)

    def __enter__(self) -> Self:
        self.lock()
        return self

    def __exit__(self, *exc: object) -> None:
        self.unlock()

    # ---- settings and rows ----

    def _check_path(self) -> None:
        if self.path.is_dir():
            raise GradSignError(
                f"--out {str(self.path)!r} is a folder; give a file path such as {str(self.path / 'results.csv')!r}"
            )

    def recorded_settings(self) -> dict[str, object]:
        """The settings in the sidecar, or GradSignError naming it when it cannot be read."""
        hint = f"it holds the settings of {self.path}: restore it, or use another --out"
        try:
            text = self.meta_path.read_bytes().decode("utf-8")
            recorded = json.loads(text)
        except OSError as exc:
            raise GradSignError(f"{self.meta_path}: cannot read it ({exc.strerror}); {hint}") from None
        except UnicodeDecodeError:
            raise GradSignError(f"{self.meta_path}: not UTF-8 text; {hint}") from None
        except json.JSONDecodeError as exc:
            what = "empty" if not text.strip() else f"not valid JSON (line {exc.lineno}: {exc.msg})"
            raise GradSignError(f"{self.meta_path}: {what}; {hint}") from None
        if not isinstance(recorded, dict):
            raise GradSignError(f"{self.meta_path}: not a JSON object of settings; {hint}")
        return recorded

    def open(self, config: BatchConfig, *, drop_malformed: bool = False) -> set[str]:
        """Check or write the settings, repair a row cut off by a kill, check every row, and return the keys
        (`Job.key`) already scored. A malformed row raises GradSignError with its line, unless `drop_malformed`:
        then such rows are moved to `malformed_path` (listed in `dropped`) and the run goes on without them."""
        self._check_path()
        if self.meta_path.exists():
            recorded = self.recorded_settings()
            settings = config.to_json()
            differing = {k: (recorded.get(k), v) for k, v in settings.items() if recorded.get(k) != v}
            differing.update({k: (recorded[k], None) for k in _OPTIONAL_KEYS if k in recorded and k not in settings})
            if differing:
                shown = ", ".join(f"{k}: file has {a!r}, this run {b!r}" for k, (a, b) in differing.items())
                raise GradSignError(f"{self.path} was made with other settings ({shown}); use another --out")
        elif self.path.exists() and self.path.stat().st_size > 0:
            raise GradSignError(f"{self.path} exists without its {self.meta_path.name}; refusing to append to it")
        else:
            self._write_new(self.meta_path, json.dumps(config.to_json(), indent=2) + "\n")
        return set(self.read_rows(drop_malformed=drop_malformed))

    def _write_new(self, path: Path, text: str) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        except OSError as exc:
            raise GradSignError(f"{path}: cannot write it ({exc.strerror})") from None

    def read_rows(self, *, drop_malformed: bool = False) -> dict[str, dict[str, str]]:
        """Create the file with its header, or drop a cut-off last line and return the rows by key, every row
        checked (see `open`)."""
        from gradsign_rs.truth import csv_records, unreadable

        try:
            data = self.path.read_bytes() if self.path.exists() else b""
        except OSError as exc:
            raise GradSignError(f"{self.path}: cannot read it ({exc.strerror})") from None
        # A kill during a write can leave a line without its newline: it is not a finished row (cut off below).
        finished = data[: data.rfind(b"\n") + 1]
        if not finished:
            self._write_new(self.path, ",".join(self.columns) + "\n")
            return {}
        records = csv_records(finished)
        header = records[0]
        if header.problem:
            raise unreadable(self.path, data, header)
        if tuple(header.fields) != self.columns:
            raise GradSignError(f"{self.path}:1: header {header.fields} is not {list(self.columns)}")
        rows: dict[str, dict[str, str]] = {}
        lines: dict[str, int] = {}
        good, bad = [header], []
        for record in records[1:]:
            problem = record.problem or self._row_problem(record.fields)
            if problem is None:
                row = dict(zip(self.columns, record.fields))
                key = self.row_key(row)
                if key in rows:
                    problem = f"{self.noun} {key} appears twice (also on line {lines[key]})"
                else:
                    rows[key], lines[key] = row, record.line
            if problem:
                bad.append((record, problem))
            else:
                good.append(record)
        if bad:
            if not drop_malformed:
                first, problem = bad[0]
                more = f"; {len(bad) - 1} more malformed rows after it" if len(bad) > 1 else ""
                raise GradSignError(
                    f"{self.path}:{first.line}: malformed row: {problem}{more}. Repair or remove it, or run again "
                    f"with --drop-malformed to move such rows to {self.malformed_path.name} and go on"
                )
            self._move_malformed(good, bad)
        elif len(finished) < len(data):
            self._truncate(len(finished))
        return rows

    def row_key(self, row: dict[str, str]) -> str:
        """What identifies a row (the `Job.key` of a network)."""
        return row[self.key]

    def _row_problem(self, fields: list[str]) -> str | None:
        """Why a row's fields are not a row of this file, or None."""
        if not fields:
            return "a blank line"
        if len(fields) != len(self.columns):
            return f"{len(fields)} fields, the header has {len(self.columns)}"
        for column, value in zip(self.columns, fields):
            problem = self.cell_problem(column, value)
            if problem:
                return f"column {column!r}: {problem}"
        return None

    def cell_problem(self, column: str, value: str) -> str | None:
        """Why `value` cannot be this column's cell, or None."""
        if column in _COUNT_COLUMNS:
            return count_problem(value)
        if column in _FINITE_COLUMNS:
            return number_problem(value)
        if column in _NAME_COLUMNS:
            return None if value.strip() else "empty"
        if column in _TEXT_COLUMNS:
            return None
        return number_problem(value, finite=False)  # a proxy's value: nan is a value it can give

    def _move_malformed(self, good: list, bad: list) -> None:
        """Append the malformed rows to `malformed_path`, then replace the file by its other rows, atomically."""
        kept = b"".join(record.raw for record in good)
        if not kept.endswith(b"\n"):
            kept += b"\n"
        temporary = self._beside(".tmp")
        try:
            with open(self.malformed_path, "ab") as f:
                f.write(b"".join(record.raw if record.raw.endswith(b"\n") else record.raw + b"\n" for record, _ in bad))
                f.flush()
                os.fsync(f.fileno())
            with open(temporary, "wb") as f:
                f.write(kept)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, self.path)  # the malformed rows are saved first: a kill loses no line
        except OSError as exc:
            raise GradSignError(f"{self.path}: cannot move its malformed rows ({exc.strerror})") from None
        self.dropped = [(record.line, problem) for record, problem in bad]

    def _truncate(self, size: int) -> None:
        try:
            os.truncate(self.path, size)
        except OSError as exc:
            raise GradSignError(f"{self.path}: cannot write it ({exc.strerror})") from None

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

    def record_error(self, job: Job, message: str, *, crash: str | None = None) -> None:
        """Log a failed network; `crash` (how its worker process died) marks a crash, counted by `crashes`."""
        record: dict[str, object] = {**job.identity(), "error": message}
        if crash is not None:
            record["crash"] = crash
        with open(self.errors_path, "a") as f:
            f.write(json.dumps({**record, "time": time.time()}) + "\n")

    def crashes(self) -> dict[str, int]:
        """For each key, how many of its last failures in a row were worker crashes (0 keys left out)."""
        try:
            data = self.errors_path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise GradSignError(f"{self.errors_path}: cannot read it ({exc.strerror})") from None
        counts: dict[str, int] = {}
        for line in data.decode(errors="replace").splitlines():
            try:
                record = json.loads(line)
                key = str(record[self.key])
            except (ValueError, KeyError, TypeError):  # a line cut off by a kill, or edited: the log is advisory
                continue
            counts[key] = counts.get(key, 0) + 1 if record.get("crash") else 0
        return {key: count for key, count in counts.items() if count}


# ---- worker side: one process scores many networks with one loaded batch of images ----

_worker_state: dict[str, object] = {}


def load_batch_data(config: BatchConfig) -> tuple[np.ndarray, np.ndarray]:
    """The images every network of the run is scored on, arranged for its models, and their labels."""
    from gradsign_rs.data import arrange, load_images

    images, labels = load_images(config.data, n=config.n, normalize=config.normalize, offset=config.offset)
    return arrange(images, layout=config.layout, size=config.size), labels


def _init_worker(config: BatchConfig, data: tuple[np.ndarray, np.ndarray]) -> None:
    _worker_state["config"] = config
    _worker_state["data"] = data


def _job_model(job: Job, config: BatchConfig, inputs: np.ndarray) -> object:
    """The network of a job: its ONNX file, or the search-space architecture built for these inputs."""
    if job.model is not None:
        if not os.path.isfile(job.model):  # on a cluster, a node without the file (no shared file system)
            import socket

            raise GradSignError(f"model file {job.model!r} does not exist on host {socket.gethostname()}")
        return job.model
    from gradsign_rs.spaces import nb201

    assert job.arch is not None, "a search-space job has an arch"
    if config.space == "nb101":
        from gradsign_rs.spaces import nb101_onnx

        return nb101_onnx.build_onnx(
            job.arch, num_classes=config.num_classes, seed=config.seed, image_size=inputs.shape[-1]
        )
    arch = nb201.Arch.parse(job.arch)
    return nb201.build_onnx(arch, num_classes=config.num_classes, seed=config.seed, input_size=inputs.shape[-1])


def _score_job(job: Job) -> JobResult:
    """Build and score one network; failures come back as a message (the run goes on)."""
    from gradsign_rs.score import score

    config: BatchConfig = _worker_state["config"]  # type: ignore[assignment]
    inputs: np.ndarray
    labels: np.ndarray
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


def _protocol_columns(config: BatchConfig, result: Score) -> dict[str, object]:
    """The protocol columns of an ONNX-file row: "paper" or "flagged", and the reasons joined by "; "."""
    if config.space != "files":
        return {}
    return {"protocol": result.protocol, "protocol_reasons": "; ".join(result.protocol_reasons)}


def _score_job_proxies(job: Job, config: BatchConfig, inputs: np.ndarray, labels: np.ndarray) -> JobResult:
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
    drop_malformed: bool = False,
    retry_crashed: bool = False,
    isolate: bool = True,
    score_job: Callable[[Job], JobResult] | None = None,
    pool: Pool | None = None,
) -> BatchSummary:
    """Score every job not yet in `out`, appending rows as they finish. Returns counts and wall time.

    `out` is locked for the run (a second writer is refused). Networks are scored in `workers` worker processes
    (`isolate=False`: in this process, for debugging): a network that crashes its worker is recorded in the errors
    file and the run goes on; one that crashed its worker `MAX_CRASHES` runs in a row is not tried again unless
    `retry_crashed`. `drop_malformed` moves malformed rows of `out` aside instead of refusing the file.
    `score_job` replaces the per-network function run by the workers (importable by name; default: the config's
    proxies). `pool` runs them elsewhere (`gradsign_rs.cluster.RayPool`: on a Ray cluster; `workers` is then unused);
    the rows are the same, and only this process writes them."""
    config.check()
    pool = LocalPool(workers) if pool is None else pool
    if config.proxies != DEFAULT_PROXIES:
        from gradsign_rs.proxies import parse_names

        if parse_names(config.proxies) != config.proxies:
            raise GradSignError(f"proxies {config.proxies!r}: give each known proxy once")
    jobs = list(jobs)
    for job in jobs:
        if (job.model is not None) != (config.space == "files"):
            raise GradSignError(f"job {job} does not belong to space {config.space!r}")
    results = ResultsFile(out, config.columns)
    with results:  # the lock: held until every row of this run is written
        done = results.open(config, drop_malformed=drop_malformed)
        crashes = {} if retry_crashed else results.crashes()
        todo = [job for job in jobs if job.key not in done and crashes.get(job.key, 0) < MAX_CRASHES]
        given_up = sum(1 for job in jobs if job.key not in done) - len(todo)
        start = time.perf_counter()
        scored = failed = crashed = 0
        from tqdm import tqdm

        bar = tqdm(total=len(todo), unit="net", disable=not progress, smoothing=0.05, dynamic_ncols=True)
        try:
            for job, row, error, crash in _execute(config, todo, pool, score_job or _score_job, isolate):
                if row is not None:
                    results.append(row)
                    scored += 1
                    if on_row is not None:
                        on_row(row)
                else:
                    results.record_error(job, error or "unknown error", crash=crash)
                    failed += 1
                    crashed += crash is not None
                    bar.write(f"network {job} failed: {(error or '').splitlines()[0]}")
                bar.update(1)
                bar.set_postfix(failed=failed, **pool.status(), refresh=False)
        finally:
            bar.close()
    return BatchSummary(
        scored,
        len(jobs) - len(todo) - given_up,
        failed,
        time.perf_counter() - start,
        crashed=crashed,
        given_up=given_up,
        dropped=len(results.dropped),
    )


@dataclasses.dataclass(frozen=True)
class _Crash:
    """What the worker pool gives for a network whose worker died while scoring it (`how`: "signal 11, SIGSEGV")."""

    job: Job
    how: str


def _execute(
    config: BatchConfig, todo: list[Job], pool: Pool, score_job: Callable[[Job], JobResult], isolate: bool
) -> Iterator[tuple[Job, dict[str, object] | None, str | None, str | None]]:
    """(job, row, error, crash) for every job as it finishes; `crash` says how the job's worker died, else None."""
    if not todo:
        return
    data = load_batch_data(config)  # once, here: bad data is refused before any worker starts
    if not isolate:
        _init_worker(config, data)
        for job in todo:
            yield (*score_job(job), None)
        return
    for result in pool.imap_unordered(
        score_job, todo, initializer=_init_worker, initargs=(config, data), on_crash=_Crash
    ):
        if isinstance(result, _Crash):
            message = f"worker process crashed ({result.how}) while scoring {result.job}"
            if result.how.endswith("SIGKILL"):  # what the kernel's OOM killer sends: the likeliest cause by far
                message += "; the out-of-memory killer sends SIGKILL: fewer --workers leave each network more memory"
            yield result.job, None, message, result.how
        else:
            job, row, error = cast(JobResult, result)
            yield job, row, error, None
