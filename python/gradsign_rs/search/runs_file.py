"""The runs file: one CSV row per finished search run, appended as runs finish, so a long job resumes.

Reuses `gradsign_rs.batch.ResultsFile` for the lock (one writer at a time), the append (one whole line per write,
then fsync), the repair of a line cut off by a kill and the check of every row on resume. A run is identified by
(algo, assist, seed); its row also records the settings that decide its result, so resuming with other settings is
refused rather than mixed in.
"""

from __future__ import annotations

import os

from gradsign_rs._core import GradSignError
from gradsign_rs.batch import ResultsFile, count_problem, number_problem
from gradsign_rs.search.benchmark import FINAL_COLUMNS
from gradsign_rs.search.runner import ALGORITHMS, RunResult, RunSpec, SearchSettings
from gradsign_rs.spaces import nb201

SETTING_COLUMNS = ("budget", "candidates", "proxy_time", "skip_evaluated", "scores")
COLUMNS = (
    "algo",
    "assist",
    "seed",
    *SETTING_COLUMNS,
    "evaluations",
    "seconds_used",
    "proxy_seconds",
    "proxy_scored",
    "best_index",
    "best_arch",
    "best_valid_12ep",
    *FINAL_COLUMNS,
    "incumbents",
)
_CHOICES = {"proxy_time": ("", "charged", "free"), "skip_evaluated": ("", "yes", "no")}


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
        "best_arch": str(nb201.Arch.from_index(result.best_index)) if result.best_index is not None else "",
        "best_valid_12ep": f"{result.best_reward:.4f}" if found else "",
        **{c: (f"{result.finals[c]:.4f}" if found else "") for c in FINAL_COLUMNS},
        "incumbents": ";".join(f"{t:.6f}:{i}" for t, i in result.incumbents),
    }


def parse_incumbents(cell: str) -> list[tuple[float, int]]:
    """(time s, index) pairs from a row's `incumbents` cell."""
    if not cell:
        return []
    pairs = [item.split(":") for item in cell.split(";")]
    if any(len(pair) != 2 for pair in pairs):
        raise ValueError(f"incumbents {cell[:40]!r}: expected time:index pairs separated by ';'")
    return [(float(t), int(i)) for t, i in pairs]


class RunsFile(ResultsFile):
    """An append-only CSV of search runs (`COLUMNS`); `open()` returns the finished runs by their RunSpec. Locked
    and checked row by row like a batch results file (`ResultsFile`)."""

    noun = "run"

    def __init__(self, path: str | os.PathLike[str]):
        super().__init__(path, COLUMNS)

    def open(self, *, drop_malformed: bool = False) -> dict[RunSpec, dict[str, str]]:  # type: ignore[override]
        """Create the file with its header, or drop a cut-off last line and read the finished runs (a malformed row
        is refused by its line number, or moved aside with `drop_malformed`)."""
        self._check_path()
        rows = self.read_rows(drop_malformed=drop_malformed)
        return {RunSpec(row["algo"], row["assist"], int(row["seed"])): row for row in rows.values()}

    def row_key(self, row: dict[str, str]) -> str:
        return f"({row['algo']}, {row['assist']}, seed {int(row['seed'])})"

    def cell_problem(self, column: str, value: str) -> str | None:
        if column == "algo":
            return None if value in ALGORITHMS else f"{value!r} is not one of {', '.join(ALGORITHMS)}"
        if column == "assist":
            return None if value.strip() else "empty"
        if column in ("seed", "evaluations", "proxy_scored"):
            return count_problem(value)
        if column in ("candidates", "best_index"):
            return count_problem(value, empty=True)
        if column in ("budget", "seconds_used", "proxy_seconds"):
            return number_problem(value)
        if column in _CHOICES:
            return None if value in _CHOICES[column] else f"{value!r} is not one of {_CHOICES[column]}"
        if column in ("best_valid_12ep", *FINAL_COLUMNS):
            return number_problem(value, empty=True)
        if column == "incumbents":
            try:
                parse_incumbents(value)
            except ValueError:
                return f"{value[:40]!r} is not time:index pairs separated by ';'"
        return None  # scores, best_arch: text

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
