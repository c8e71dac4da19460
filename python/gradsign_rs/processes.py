"""Worker processes for long jobs (batch scoring, search runs): results yielded as they finish.

Each worker is a fresh interpreter (`python -c`, not a fork: no inherited onnxruntime thread pools, tqdm monitor
threads or open result files) whose very first statements ask the kernel to kill it with its parent and then check
that the parent which started it is still alive, so a worker never outlives a killed job, at any point of its
start-up; no multiprocessing resource tracker is started. Items go to a worker one at a time over its own pipe, so
when a worker dies (a segfault or abort in native code, the OOM killer) the item it was running is known: the caller
decides what that item's result is (`on_crash`) and a new worker takes the dead one's place.
"""

from __future__ import annotations

import collections
import os
import pickle
import signal
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.connection import Connection, wait
from typing import Any, Protocol, TypeVar

from gradsign_rs._core import GradSignError

T = TypeVar("T")
R = TypeVar("R")

# Run by `python -c` in a new worker. PR_SET_PDEATHSIG comes first; the parent check after it closes the race of a
# parent that died before it was set (the kernel would then never send the signal).
_BOOTSTRAP = """\
import ctypes, os, signal, sys
if sys.platform.startswith("linux"):
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
if os.getppid() != int(sys.argv[1]):
    os._exit(3)
from multiprocessing.connection import Connection
reader = Connection(int(sys.argv[2]), writable=False)
writer = Connection(int(sys.argv[3]), readable=False)
sys.path[:] = reader.recv()
from gradsign_rs.processes import _serve
_serve(reader, writer)
"""
_NOTHING = object()  # a worker's current item when it runs none
MAX_WORKERS = max(64, 4 * (os.cpu_count() or 1))  # beyond this, local workers only compete for cores and memory


class WorkerCrashed(RuntimeError):
    """A worker process died without a result: killed by a signal or exited, while starting or running an item."""

    def __init__(self, item: object, returncode: int):
        self.item = item
        self.returncode = returncode
        where = "while starting" if item is _NOTHING else f"while running {item!r}"
        super().__init__(f"a worker process crashed ({describe_exit(returncode)}) {where}")


def describe_exit(returncode: int) -> str:
    """`signal 11, SIGSEGV` for a process killed by a signal (a negative Popen return code), else `exit code N`."""
    if returncode < 0:
        try:
            return f"signal {-returncode}, {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"


def portable(exc: BaseException) -> BaseException:
    """`exc`, or a RuntimeError with its text when it would not arrive intact in another process (an exception class
    whose __init__ does not take its args back)."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


def _send(writer: Connection, message: tuple[Any, ...]) -> None:
    """Send a message to the parent; an exception that would not arrive intact is sent as a RuntimeError."""
    if message[0] in ("error", "init_error"):
        message = (message[0], portable(message[1]), message[2])
    try:
        writer.send(message)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:  # a result that cannot be pickled
        writer.send(("error", RuntimeError(f"a worker's result could not be sent: {exc}"), traceback.format_exc()))


def _serve(reader: Connection, writer: Connection) -> None:
    """The worker loop: receive the function and its initializer, run the initializer, then one item at a time."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent decides
    try:
        function, initializer, initargs = reader.recv()
        initializer(*initargs)
    except BaseException as exc:
        _send(writer, ("init_error", exc, traceback.format_exc()))
        return
    writer.send(("ready",))
    while True:
        try:
            item = reader.recv()
        except EOFError:  # the parent closed its end: no more work
            return
        try:
            result = function(item)
        except BaseException as exc:
            _send(writer, ("error", exc, traceback.format_exc()))
        else:
            _send(writer, ("ok", result))


class _Worker:
    """One worker process and the two pipes to it, with the item it is running."""

    def __init__(self, setup: tuple[Callable[..., Any], Callable[..., Any], tuple[Any, ...]]):
        child_read, parent_write = os.pipe()
        parent_read, child_write = os.pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _BOOTSTRAP, str(os.getpid()), str(child_read), str(child_write)],
                stdin=subprocess.DEVNULL,
                pass_fds=(child_read, child_write),
            )
        except BaseException:
            os.close(parent_read)
            os.close(parent_write)
            raise
        finally:
            os.close(child_read)
            os.close(child_write)
        self.reader = Connection(parent_read, writable=False)
        self.writer = Connection(parent_write, readable=False)
        self.ready = False
        self.item: object = _NOTHING
        try:
            self._send(sys.path)
            self._send(setup)
        except BaseException:  # e.g. a function that cannot be pickled by name: no worker left waiting for it
            self.stop(kill=True)
            raise

    def _send(self, message: object) -> None:
        try:
            self.writer.send(message)
        except OSError:  # the worker died: its reader sees EOF next and the loop handles it
            pass

    @property
    def busy(self) -> bool:
        return self.item is not _NOTHING

    def submit(self, item: object) -> None:
        self.item = item
        self._send(item)

    def stop(self, *, kill: bool, timeout: float = 30.0) -> None:
        """End the worker: at once (`kill`), or by closing its pipe, which it takes as the end of the work."""
        if kill:
            self.process.kill()
        self.writer.close()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.reader.close()


def imap_unordered(
    function: Callable[[T], R],
    items: Iterable[T],
    *,
    workers: int,
    initializer: Callable[..., Any],
    initargs: tuple[Any, ...] = (),
    on_crash: Callable[[T, str], R] | None = None,
) -> Iterator[R]:
    """`function(item)` for every item on `workers` processes (each started with `initializer(*initargs)`), in
    completion order; `function` and `initializer` must be importable by name. An exception raised by either is
    raised here. A worker that dies while running an item gives `on_crash(item, how)` as that item's result (`how`:
    "signal 11, SIGSEGV") and is replaced (without `on_crash`: `WorkerCrashed`). When the consumer stops early (an exception, a
    KeyboardInterrupt) the workers are killed, so nothing runs on after a kill."""
    pending = collections.deque(items)
    if not pending:
        return
    setup = (function, initializer, initargs)
    pool: list[_Worker] = []
    finished = False
    try:
        for _ in range(min(workers, len(pending))):
            pool.append(_Worker(setup))
        while pool:
            for worker in list(pool):
                if worker.ready and not worker.busy:
                    if pending:
                        worker.submit(pending.popleft())
                    else:  # nothing left for it: let it go now rather than at the end
                        pool.remove(worker)
                        worker.stop(kill=False)
            if not pool:
                break
            readable = wait([w.reader for w in pool])
            for worker in [w for w in pool if w.reader in readable]:
                try:
                    message: tuple[Any, ...] = worker.reader.recv()
                except (EOFError, OSError):
                    pool.remove(worker)
                    worker.stop(kill=False, timeout=5.0)  # it has exited or is exiting: keep its own return code
                    item, returncode = worker.item, worker.process.returncode
                    if item is _NOTHING or on_crash is None:
                        raise WorkerCrashed(item, returncode) from None
                    if pending:
                        pool.append(_Worker(setup))
                    yield on_crash(item, describe_exit(returncode))  # type: ignore[arg-type]
                    continue
                if message[0] == "ready":
                    worker.ready = True
                elif message[0] == "ok":
                    worker.item = _NOTHING
                    yield message[1]
                else:  # "error" or "init_error": raised here, with the worker's traceback as a note
                    exc: BaseException = message[1]
                    exc.add_note(f"in a worker process:\n{message[2]}")
                    raise exc
        finished = True
    finally:
        for worker in pool:
            worker.stop(kill=not finished)


class LocalPool:
    """The default backend: `workers` worker processes on this machine (`imap_unordered`)."""

    def __init__(self, workers: int):
        if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
            raise GradSignError(f"--workers must be an integer in 1..{MAX_WORKERS}, got {workers!r}")
        self.workers = workers

    def imap_unordered(
        self,
        function: Callable[[T], R],
        items: Iterable[T],
        *,
        initializer: Callable[..., Any],
        initargs: tuple[Any, ...] = (),
        on_crash: Callable[[T, str], R] | None = None,
    ) -> Iterator[R]:
        return imap_unordered(
            function, items, workers=self.workers, initializer=initializer, initargs=initargs, on_crash=on_crash
        )

    def status(self) -> dict[str, object]:
        """What the progress bar shows about the workers beside rate and failures: nothing more for local ones."""
        return {}


class Pool(Protocol):
    """Where a long job's items run: `LocalPool`, or `gradsign_rs.cluster.RayPool` across a Ray cluster. Both give
    results in completion order and hand a dead worker's item to `on_crash(item, how)`."""

    def imap_unordered(
        self,
        function: Callable[[T], R],
        items: Iterable[T],
        *,
        initializer: Callable[..., Any],
        initargs: tuple[Any, ...] = (),
        on_crash: Callable[[T, str], R] | None = None,
    ) -> Iterator[R]: ...

    def status(self) -> dict[str, object]: ...
