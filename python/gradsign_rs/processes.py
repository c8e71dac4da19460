"""Worker processes for long jobs (batch scoring, search runs): results yielded as they finish."""

from __future__ import annotations

import concurrent.futures
import ctypes
import multiprocessing
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def _die_with_parent() -> None:
    """Linux: the kernel sends this worker SIGTERM when its parent dies, so a killed job leaves no idle workers."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _start_worker(initializer: Callable[..., Any], *initargs: Any) -> None:
    _die_with_parent()
    initializer(*initargs)


def imap_unordered(
    function: Callable[[T], R],
    items: Iterable[T],
    *,
    workers: int,
    initializer: Callable[..., Any],
    initargs: tuple[Any, ...] = (),
) -> Iterator[R]:
    """`function(item)` for every item on `workers` processes, in completion order; pending items are cancelled
    when the consumer stops early (an exception or a KeyboardInterrupt), so nothing runs on after a kill."""
    # spawn: workers start clean (no inherited onnxruntime thread pools or tqdm monitor threads).
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_start_worker, initargs=(initializer, *initargs)
    ) as pool:
        futures = [pool.submit(function, item) for item in items]
        try:
            for future in concurrent.futures.as_completed(futures):
                yield future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise
