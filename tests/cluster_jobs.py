"""Worker functions for the Ray tests, importable by the cluster's workers (the tests put this folder on their path)."""

from __future__ import annotations

import os
import resource

from gradsign_rs import batch

CRASHING_INDEX = 2  # the NAS-Bench-201 network whose worker dies every time it scores it


def crash_on_one_network(job: batch.Job) -> batch.JobResult:
    """The batch worker's job, except that network `CRASHING_INDEX` takes its process down (SIGABRT), as a segfault
    in onnxruntime would."""
    if job.index == CRASHING_INDEX:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file from the test's abort
        os.abort()
    return batch._score_job(job)
