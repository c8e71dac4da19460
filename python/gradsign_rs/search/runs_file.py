"""The runs file: one CSV row per finished search run, appended as runs finish, so a long job resumes.

Reuses `gradsign_rs.batch.ResultsFile` for the append (one whole line per write, then fsync) and the repair of a
line cut off by a kill. A run is identified by (algo, assist, seed); its row also records the settings that decide
its result, so resuming with other settings is refused rather than mixed in.
"""

from __future__ import annotations

import csv
import os

from gradsign_rs._core import GradSignError
from gradsign_rs.batch import ResultsFile
from gradsign_rs.search.benchmark import FINAL_COLUMNS
from gradsign_rs.search.runner import RunResult, RunSpec, SearchSettings
from gradsign_rs.spaces import nb201

SETTING_COLUMNS = ("budget", "candidates", "proxy_time", "skip_evaluated", "scores")
COLUMNS = (
    "algo", "assist", "seed", *SETTING_COLUMNS,
    "evaluations", "seconds_used", "proxy_seconds", "proxy_scored",
    "best_index", "best_arch", "best_valid_12ep", *FINAL_COLUMNS,
    "incumbents",
)


def settings_of(spec: RunSpec, settings: SearchSettings, scores_id: str) -> dict[str, str]:
    """The row's settings cells for this run (assistance settings are empty for a vanilla run)."""
    cells = {"budget": f"{settings.budget:g}", "candidates": "", "proxy_time": "", "skip_evaluated": "", "scores": ""}
    if spec.assisted:
        cells.update(
            candidates=str(settings.candidates),
            proxy_time="charged" if settings.charge_proxy_time else "free",
            skip_evaluated="yes" if settings.skip_evaluated else "no",
            scores=scores_id,
        )
    return cells


def to_row(result: RunResult, settings: SearchSettings, scores_id: str) -> dict[str, object]:
    """The CSV row of a finished run."""
    found = result.best_index is not None
    return {
        "algo": result.spec.algo,
        "assist": result.spec.assist,
        "seed": result.spec.seed,
        **settings_of(result.spec, settings, scores_id),
        "evaluations": result.evaluations,
        "seconds_used": f"{result.seconds_used:.6f}",
        "proxy_seconds": f"{result.proxy_seconds:.6f}",
        "proxy_scored": result.proxy_scored,
        "best_index": result.best_index if found else "",
        "best_arch": str(nb201.Arch.from_index(result.best_index)) if found else "",
        "best_valid_12ep": f"{result.best_reward:.4f}" if found else "",
        **{c: (f"{result.finals[c]:.4f}" if found else "") for c in FINAL_COLUMNS},
        "incumbents": ";".join(f"{t:.6f}:{i}" for t, i in result.incumbents),
    }


def parse_incumbents(cell: str) -> list[tuple[float, int]]:
    """(time s, index) pairs from a row's `incumbents` cell."""
    if not cell:
        return []
    pairs = [item.split(":") for item in cell.split(";")]
    return [(float(t), int(i)) for t, i in pairs]


class RunsFile(ResultsFile):
    """An append-only CSV of search runs (`COLUMNS`); `open()` returns the finished runs by their RunSpec."""

    def __init__(self, path: str | os.PathLike[str]):
        super().__init__(path, COLUMNS)

    def open(self) -> dict[RunSpec, dict[str, str]]:  # type: ignore[override]
        """Create the file with its header, or drop a cut-off last line and read the finished runs."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "w", newline="") as f:
                f.write(",".join(self.columns) + "\n")
            return {}
        self._drop_partial_last_line()
        done: dict[RunSpec, dict[str, str]] = {}
        with open(self.path, newline="") as f:
            reader = csv.DictReader(f)
            if tuple(reader.fieldnames or ()) != self.columns:
                raise GradSignError(f"{self.path}: header {reader.fieldnames} is not a runs file's {list(self.columns)}")
            for row in reader:
                spec = RunSpec(row["algo"], row["assist"], int(row["seed"]))
                if spec in done:
                    raise GradSignError(f"{self.path}: run {spec} appears twice")
                done[spec] = row
        return done

    def check_settings(self, row: dict[str, str], spec: RunSpec, settings: SearchSettings, scores_id: str) -> None:
        """Refuse to count a finished run that was made with other settings than this job's."""
        wanted = settings_of(spec, settings, scores_id)
        differing = {k: (row[k], v) for k, v in wanted.items() if row[k] != v}
        if differing:
            shown = ", ".join(f"{k}: file has {a!r}, this run {b!r}" for k, (a, b) in differing.items())
            raise GradSignError(
                f"{self.path}: run ({spec.algo}, {spec.assist}, seed {spec.seed}) was made with other settings "
                f"({shown}); use another --out"
            )
