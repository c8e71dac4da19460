"""Worker processes for long jobs (batch scoring, search runs): results yielded as they finish."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


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
        max_workers=workers, mp_context=context, initializer=initializer, initargs=initargs
    ) as pool:
        futures = [pool.submit(function, item) for item in items]
        try:
            for future in concurrent.futures.as_completed(futures):
                yield future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise
