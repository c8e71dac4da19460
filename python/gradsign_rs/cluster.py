"""Long jobs on a Ray cluster: `RayPool` keeps the contract of the local worker processes (`processes.LocalPool`:
results in completion order, a worker that dies while running an item handed to `on_crash`) across every node.

Done the way Ray's documentation recommends for many short tasks over shared read-only data:
- the workers' start-up arguments (the image batch among them) are put in the object store once (`ray.put`);
- each worker is an actor, pinned to a node, that runs the initializer once (loads onnxruntime, the data) and then
  scores chunks of items per task, with two chunks queued so it never waits on the driver;
- results come back as chunks finish (`ray.wait`) and only the driver writes anything.

Failures: an actor that dies takes its unfinished chunks with it. Their items go back to the queue and run again
alone, so a dead node costs a retry elsewhere, while an item that kills its worker `MAX_DEATHS` times running alone is
given to `on_crash` (as a crashing network is on the local backend). A dead actor is replaced on its node while that
node is alive. A node that cannot start a worker (gradsign-rs or its data missing, another version) stops the run with
the node and the reason; so does a cluster that gives no CPU within `startup_timeout` seconds.
"""

from __future__ import annotations

import collections
import logging
import math
import os
import re
import socket
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from gradsign_rs._core import GradSignError
from gradsign_rs.processes import portable

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_CHUNK = 4  # items per task: a NAS-Bench-201 network takes >= 0.5 s, so a task's overhead (~1 ms) is noise
IN_FLIGHT = 2  # chunks queued per actor: the next one is there when the last finishes
MAX_DEATHS = 2  # an item whose worker died this many times while it ran alone is a crash, not bad luck
CONNECT_TIMEOUT = 10.0  # seconds to reach a cluster's address before saying it cannot be reached


def _versions() -> dict[str, str]:
    """What must match between the driver and every worker for scores to be the same."""
    import onnxruntime

    import gradsign_rs

    return {"gradsign-rs": gradsign_rs.__version__, "onnxruntime": onnxruntime.__version__}


class _Worker:
    """One actor: runs `initializer(*initargs)` once, then chunks of `function(item)`. Exceptions come back as values,
    so that only the actor's death is a Ray error."""

    def __init__(self, function: Callable[[Any], Any], initializer: Callable[..., Any], *initargs: Any):
        self.function = function
        self.failure: tuple[BaseException, str] | None = None
        try:
            initializer(*initargs)
        except BaseException as exc:  # reported by `ready`, with the node, instead of a bare dead actor
            self.failure = (portable(exc), traceback.format_exc())

    def ready(self) -> dict[str, Any]:
        info: dict[str, Any] = {"versions": _versions(), "pid": os.getpid()}
        if self.failure is not None:
            info["error"], info["traceback"] = self.failure
        return info

    def run(self, chunk: list[tuple[int, Any]]) -> list[tuple[int, str, Any, str]]:
        results = []
        for position, item in chunk:
            try:
                results.append((position, "ok", self.function(item), ""))
            except BaseException as exc:  # raised by the driver, as the local backend does
                results.append((position, "error", portable(exc), traceback.format_exc()))
                break
        return results


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise GradSignError(
            "--backend ray needs Ray: pip install 'gradsign-rs[ray]' (or pip install ray) on the driver and every node"
        ) from None
    return ray


def check_reachable(address: str) -> None:
    """Refuse a host:port nothing listens on within `CONNECT_TIMEOUT` s (Ray itself retries for minutes, noisily)."""
    if address in ("auto", "local") or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise GradSignError(f"--address {address!r}: expected HOST:PORT of a Ray head node, or auto")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise GradSignError(
            f"--address {address}: cannot reach a Ray head node there ({reason}). Start one with "
            f"`ray start --head --port {port}` on {host}, or check the address and firewall"
        ) from None


class RayPool:
    """Items of a long job run by actors on the nodes of a Ray cluster (see the module's docstring).

    `address`: None starts a Ray instance on this machine, "auto" joins the one running here (`ray start`), HOST:PORT
    joins that head node. `workers`: actors, at most one per CPU of the cluster (default: every CPU). `chunk_size`:
    items per task (default `DEFAULT_CHUNK`, fewer when there are few items per worker)."""

    def __init__(
        self,
        address: str | None = None,
        *,
        workers: int | None = None,
        chunk_size: int | None = None,
        startup_timeout: float = 120.0,
    ):
        for name, value in (("--workers", workers), ("chunk_size", chunk_size)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise GradSignError(f"{name} must be a positive integer, got {value!r}")
        if not (isinstance(startup_timeout, (int, float)) and math.isfinite(startup_timeout) and startup_timeout > 0):
            raise GradSignError(f"startup_timeout must be a positive number of seconds, got {startup_timeout!r}")
        _ray()  # refuse now, before a results file is touched, where Ray is not installed
        self.address = address
        self.workers = workers
        self.chunk_size = chunk_size
        self.startup_timeout = float(startup_timeout)
        self._nodes: set[str] = set()
        self.retried = 0  # items sent again because the worker running them died

    def status(self) -> dict[str, object]:
        """What the progress bar shows: nodes with a working actor, and items retried after a worker died."""
        status: dict[str, object] = {"nodes": len(self._nodes)}
        if self.retried:
            status["retried"] = self.retried
        return status

    def imap_unordered(
        self,
        function: Callable[[T], R],
        items: Iterable[T],
        *,
        initializer: Callable[..., Any],
        initargs: tuple[Any, ...] = (),
        on_crash: Callable[[T, str], R] | None = None,
    ) -> Iterator[R]:
        items = list(items)
        if not items:
            return
        ray = _ray()
        started = self._connect(ray)
        try:
            run = _Run(self, ray, function, items, initializer, initargs, on_crash)
            try:
                yield from run.results()
            finally:
                run.stop()
        finally:
            self._nodes.clear()
            if started:
                ray.shutdown()

    def _connect(self, ray: Any) -> bool:
        """Join or start the cluster; True when this call started the connection (and so ends it)."""
        if ray.is_initialized():
            return False
        options: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False, "namespace": "gradsign"}
        if self.address is None:
            options["include_dashboard"] = False
        else:
            check_reachable(self.address)
        try:
            ray.init(address=self.address, **options)
        except ConnectionError as exc:
            raise GradSignError(f"--address {self.address}: {exc}") from None
        return True


class _Actor:
    """The driver's view of one actor: its handle, its node and the chunks it has queued."""

    def __init__(self, handle: Any, node: dict[str, Any]):
        self.handle = handle
        self.node = node
        self.queued: list[Any] = []  # its chunks' references in submission order: it runs the first, in that order

    @property
    def where(self) -> str:
        return f"node {self.node['NodeManagerAddress']} (id {self.node['NodeID'][:12]})"


class _Run:
    """One `imap_unordered` call: actors, the queue of item positions, chunks in flight."""

    def __init__(
        self,
        pool: RayPool,
        ray: Any,
        function: Callable[[Any], Any],
        items: list[Any],
        initializer: Callable[..., Any],
        initargs: tuple[Any, ...],
        on_crash: Callable[[Any, str], Any] | None,
    ):
        self.pool, self.ray, self.items, self.on_crash = pool, ray, items, on_crash
        nodes = self._placements()
        per_worker = math.ceil(len(items) / len(nodes))
        self.chunk_size = pool.chunk_size or max(1, min(DEFAULT_CHUNK, per_worker // IN_FLIGHT))
        self.remote = ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)(_Worker)
        # Each start-up argument is put in the object store once; every actor receives it from there.
        self.args = (function, initializer, *[ray.put(arg) for arg in initargs])
        self.queue: collections.deque[int] = collections.deque(range(len(items)))
        self.alone: set[int] = set()  # positions that run in a chunk of their own (their worker died once)
        self.deaths: collections.Counter[int] = collections.Counter()
        self.done: set[int] = set()
        self.starting: dict[Any, _Actor] = {}  # ready() reference -> actor
        self.working: list[_Actor] = []
        self.in_flight: dict[Any, tuple[_Actor, list[int]]] = {}
        self.expected = _versions()
        for node in nodes:
            self._start(node)

    def _placements(self) -> list[dict[str, Any]]:
        """One node per actor: `workers` spread round-robin over the alive nodes, at most one per CPU."""
        nodes = [n for n in self.ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) >= 1]
        if not nodes:
            raise GradSignError("the Ray cluster has no alive node with a CPU: start workers with `ray start`")
        slots = {n["NodeID"]: int(n["Resources"]["CPU"]) for n in nodes}
        total = sum(slots.values())
        workers = self.pool.workers or total
        if workers > total:
            raise GradSignError(f"--workers {workers}: the Ray cluster has {total} CPUs on {len(nodes)} nodes")
        placements: list[dict[str, Any]] = []
        while len(placements) < workers:
            for node in nodes:
                if slots[node["NodeID"]] and len(placements) < workers:
                    slots[node["NodeID"]] -= 1
                    placements.append(node)
        return placements

    def _start(self, node: dict[str, Any]) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        strategy = NodeAffinitySchedulingStrategy(node_id=node["NodeID"], soft=False)
        handle = self.remote.options(scheduling_strategy=strategy).remote(*self.args)
        self.starting[handle.ready.remote()] = _Actor(handle, node)

    def _node_alive(self, node_id: str) -> bool:
        return any(n["NodeID"] == node_id and n.get("Alive") for n in self.ray.nodes())

    def results(self) -> Iterator[Any]:
        since = time.monotonic()  # the last time a worker was working or became ready
        while len(self.done) < len(self.items):
            self._submit()
            if not self.working and not self.starting:
                raise GradSignError(
                    f"no Ray worker left with {len(self.items) - len(self.done)} items to go: every node running one "
                    "died, and none could take their place"
                )
            ready, _ = self.ray.wait([*self.starting, *self.in_flight], num_returns=1, timeout=1.0)
            if not ready:
                if not self.working and time.monotonic() - since > self.pool.startup_timeout:
                    raise GradSignError(self._no_cpu_message())
                continue
            since = time.monotonic()
            ref = ready[0]
            if ref in self.starting:
                self._started(ref)
            else:
                yield from self._finished(ref)
            self.pool._nodes = {a.node["NodeID"] for a in self.working}

    def _submit(self) -> None:
        """Queue chunks on actors with room: positions that must run alone first, one per chunk."""
        for actor in self.working:
            while len(actor.queued) < IN_FLIGHT and self.queue:
                chunk = [self.queue.popleft()]
                while self.queue and len(chunk) < self.chunk_size and chunk[0] not in self.alone:
                    if self.queue[0] in self.alone:
                        break
                    chunk.append(self.queue.popleft())
                ref = actor.handle.run.remote([(p, self.items[p]) for p in chunk])
                self.in_flight[ref] = (actor, chunk)
                actor.queued.append(ref)

    def _started(self, ref: Any) -> None:
        actor = self.starting.pop(ref)
        try:
            info = self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:
            if not self._node_alive(actor.node["NodeID"]):
                return  # its node died before the actor started: the others go on
            raise GradSignError(
                f"{actor.where} cannot start a gradsign-rs worker: {_reason(exc)}. Every node needs gradsign-rs "
                f"{self.expected['gradsign-rs']} installed in the Python that runs `ray start` (pip install "
                "'gradsign-rs[ray]')"
            ) from None
        if "error" in info:
            error = info["error"]
            message = str(error) if isinstance(error, GradSignError) else f"{type(error).__name__}: {error}"
            raise GradSignError(f"{actor.where} cannot start a worker: {message}")
        if info["versions"] != self.expected:
            raise GradSignError(
                f"{actor.where} runs {_pairs(info['versions'])}, the driver {_pairs(self.expected)}: scores would "
                "differ; install the same versions on every node"
            )
        self.working.append(actor)

    def _finished(self, ref: Any) -> Iterator[Any]:
        actor, _ = self.in_flight[ref]
        try:
            results = self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as exc:  # not the item's exception (those come back as values)
            raise GradSignError(f"a Ray task failed on {actor.where}: {_reason(exc)}") from None
        except self.ray.exceptions.RayError as exc:  # the actor, its process or its node died
            yield from self._died(actor, exc)
            return
        del self.in_flight[ref]
        actor.queued.remove(ref)
        for position, status, value, where in results:
            if status == "error":
                value.add_note(f"in a Ray worker on {actor.where}:\n{where}")
                raise value
            if position not in self.done:  # never twice, whatever Ray retries
                self.done.add(position)
                yield value

    def _died(self, actor: _Actor, exc: BaseException) -> Iterator[Any]:
        """The actor died while running its first unfinished chunk: those items run again alone, or are crashes after
        `MAX_DEATHS` deaths alone; the chunks queued behind it never started and simply go back to the queue."""
        self.working.remove(actor)
        if self._node_alive(actor.node["NodeID"]):  # the process died, not the node: a new one takes its place
            self._start(actor.node)
        running, *behind = [self.in_flight.pop(ref)[1] for ref in actor.queued]
        queued = [position for chunk in behind for position in chunk]
        actor.queued.clear()
        how = f"Ray worker died on {actor.where}: {_reason(exc)}"
        again = []
        for position in running:
            if position in self.done:
                continue
            if len(running) == 1:
                self.deaths[position] += 1
            if self.deaths[position] >= MAX_DEATHS:
                if self.on_crash is None:
                    raise GradSignError(f"{how} (while running {self.items[position]!r}, {MAX_DEATHS} times)")
                self.done.add(position)
                yield self.on_crash(self.items[position], how)
            else:
                self.alone.add(position)
                again.append(position)
        self.pool.retried += len(again) + len(queued)
        self.queue.extendleft(reversed(again + [p for p in queued if p not in self.done]))

    def _no_cpu_message(self) -> str:
        available = self.ray.available_resources().get("CPU", 0)
        total = self.ray.cluster_resources().get("CPU", 0)
        return (
            f"no Ray worker started within {self.pool.startup_timeout:g} s: the cluster has {available:g} of "
            f"{total:g} CPUs free (other jobs hold the rest); free some, or pass fewer --workers"
        )

    def stop(self) -> None:
        """Kill every actor of the run (a run stopped early must not leave them working)."""
        for actor in [*self.working, *self.starting.values(), *(a for a, _ in self.in_flight.values())]:
            try:
                self.ray.kill(actor.handle)
            except Exception:  # already dead, or the cluster is gone: nothing left to stop
                pass


def _reason(exc: BaseException) -> str:
    """The informative line of a Ray error: the exception a worker raised ("ModuleNotFoundError: ..."), or why its
    process exited ("Worker exit detail: ..."), else the first line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    for line in lines:
        if "Worker exit detail:" in line:
            return line[line.index("Worker exit detail:") :][:300]
    raised = [line for line in lines if re.match(r"^[A-Za-z_.]*(Error|Exception): ", line)]
    return (raised[-1] if raised else lines[0])[:300]


def _pairs(versions: dict[str, str]) -> str:
    return ", ".join(f"{name} {version}" for name, version in versions.items())
