"""Tables: ground truth of NAS-Bench-201 (trained accuracies) from the shared data, and any scores CSV read with every
line checked, so a damaged table is refused by file and line instead of giving NaN or no rows."""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import re
from pathlib import Path

import pandas as pd

from gradsign_rs._core import GradSignError
from gradsign_rs.data import data_root

TRUTH_FILES = {
    "cifar10": "nb201/nb201_cifar10.csv",
    "cifar100_imagenet16": "nb201/nb201_cifar100_imagenet16.csv",
}
_LINE = re.compile(rb"[^\n]*\n|[^\n]+\Z")


@dataclasses.dataclass(frozen=True)
class Record:
    """One CSV record of a file: its first line (1-based), its bytes (line ends included), and its fields, or why
    it cannot be read (`problem`). A blank line has no fields."""

    line: int
    raw: bytes
    fields: list[str]
    problem: str | None = None


def _decode(raw: bytes) -> tuple[str, str | None]:
    """A line's text, or why it is not a line of a UTF-8 CSV."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return "", f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})"
    return ("", "contains a NUL byte") if "\0" in text else (text, None)


def csv_records(data: bytes) -> list[Record]:
    """The records of a CSV file's bytes, each with its line number; a record spans several lines only inside a
    quoted field. Unreadable records (not UTF-8, a NUL byte, not one CSV row) carry a `problem` instead of fields."""
    lines = [m.group() for m in _LINE.finditer(data)]
    records = []
    i = 0
    while i < len(lines):
        start, raw = i, lines[i]
        i += 1
        text, problem = _decode(raw)
        # An odd number of quotes so far: a quoted field goes on over the next line (CSV doubles quotes inside one).
        while problem is None and text.count('"') % 2 and i < len(lines):
            more, problem = _decode(lines[i])
            raw += lines[i]
            text += more
            i += 1
        if problem is None and text.count('"') % 2:
            problem = "a quote is not closed before the end of the file"
        fields: list[str] = []
        if problem is None:
            try:
                rows = list(csv.reader(io.StringIO(text, newline="")))
            except csv.Error as exc:
                problem = f"not a CSV row ({exc})"
            else:
                if len(rows) > 1:
                    problem = "not one CSV row (a carriage return inside it)"
                fields = rows[0] if rows else []
        records.append(Record(start + 1, raw, fields if problem is None else [], problem))
    return records


def unreadable(path: Path, data: bytes, record: Record) -> GradSignError:
    """The error for a record that cannot be read, with a hint for a UTF-16 file (a common spreadsheet export)."""
    hint = "; it looks like UTF-16 text: save it as UTF-8" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
    return GradSignError(f"{path}:{record.line}: {record.problem}{hint}")


def read_table(
    path: str | os.PathLike[str],
    *,
    on: str = "index",
    columns: list[str] | None = None,
    numeric_key: bool = False,
    infer_numeric: bool = False,
    mean_duplicates: bool = False,
) -> pd.DataFrame:
    """A CSV indexed by `on`. Refused with a GradSignError naming the file and line: a file that is not UTF-8 CSV, a
    row with another number of fields than the header, a named column (`columns`) holding a value that is not a
    number, an empty or (`numeric_key`) non-numeric `on` value, duplicate `on` values (with `mean_duplicates`: rows
    sharing an `on` value become one, its numeric columns averaged and the others taken from the first row, in order
    of first appearance); with `infer_numeric`, also a column of numbers with some text in it."""
    path = Path(path)
    if path.is_dir():
        raise GradSignError(f"table {str(path)!r} is a folder, not a CSV file")
    if not path.is_file():
        raise GradSignError(f"table {str(path)!r} does not exist")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise GradSignError(f"table {str(path)!r}: cannot read it ({exc.strerror})") from None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]  # a UTF-8 byte order mark (spreadsheet exports) is not part of the first column's name
    records = csv_records(data)
    if records and records[0].problem:
        raise unreadable(path, data, records[0])
    if not records or not records[0].fields:
        raise GradSignError(f"{path}: empty, or no header on line 1; expected a CSV table with a header")
    header, lines = records[0], []
    for record in records[1:]:
        if record.problem:
            raise unreadable(path, data, record)
        if not record.fields:
            continue  # a blank line, skipped as pandas does
        if len(record.fields) != len(header.fields):
            raise GradSignError(
                f"{path}:{record.line}: {len(record.fields)} fields, the header on line 1 has {len(header.fields)}"
            )
        lines.append(record.line)
    try:
        frame = pd.read_csv(io.BytesIO(data))
    except Exception as exc:
        raise GradSignError(f"{path}: not a readable CSV ({exc})") from exc
    if len(frame) != len(lines):
        raise GradSignError(f"{path}: {len(lines)} rows by line, {len(frame)} as a table; not a plain CSV table")
    missing = [c for c in [on, *(columns or [])] if c not in frame.columns]
    if missing:
        raise GradSignError(f"{path}: no column(s) {missing}; columns are {list(frame.columns)}")
    empty = frame[on].isna().to_numpy()
    if empty.any():
        raise GradSignError(f"{path}:{lines[int(empty.argmax())]}: no value in column {on!r}")
    numeric = [c for c in columns or [] if c != on]
    if infer_numeric:
        numeric += [c for c in frame.columns if c not in numeric and c != on and _mostly_numbers(frame[c])]
    for column in [*([on] if numeric_key else []), *numeric]:
        _check_numbers(path, frame, column, lines)
    if mean_duplicates:
        numeric_columns = {c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])}
        how = {c: "mean" if c in numeric_columns else "first" for c in frame.columns if c != on}
        return frame.groupby(on, sort=False).agg(how) if how else frame.drop_duplicates(on).set_index(on)
    if frame[on].duplicated().any():
        duplicated = frame[on].duplicated().to_numpy()
        row = int(duplicated.argmax())
        raise GradSignError(f"{path}:{lines[row]}: column {on!r} has duplicate values, e.g. {frame[on].iloc[row]}")
    return frame.set_index(on)


def _mostly_numbers(values: pd.Series) -> bool:
    """A text column in which most values are numbers: a column of numbers damaged by some text."""
    if pd.api.types.is_numeric_dtype(values):
        return False
    present = values.dropna()
    return len(present) > 0 and pd.to_numeric(present, errors="coerce").notna().mean() > 0.5


def _check_numbers(path: Path, frame: pd.DataFrame, column: str, lines: list[int]) -> None:
    """Refuse a column that should hold numbers but holds text, naming the first line that has some."""
    if pd.api.types.is_numeric_dtype(frame[column]):
        return
    values = frame[column]
    bad = (pd.to_numeric(values, errors="coerce").isna() & values.notna()).to_numpy()
    if bad.any():
        row = int(bad.argmax())
        raise GradSignError(f"{path}:{lines[row]}: column {column!r} holds {values.iloc[row]!r}, not a number")


# Columns of `gradsign batch` tables that are bookkeeping, not proxies.
NOT_PROXIES = {"index", "hash", "arch", "mean", "n_weights", "n_samples", "seconds", "error"}


def proxy_table(paths: list[str], *, on: str = "index") -> pd.DataFrame:
    """The proxy columns of several `gradsign batch` tables (a GradSignTable's `score` is the proxy `gradsign`),
    inner-joined on `on` (plus `arch` when one has it); a proxy column in two tables is refused."""
    joined: pd.DataFrame | None = None
    for path in paths:
        frame = read_table(path, on=on).rename(columns={"score": "gradsign"})
        keep = [c for c in frame.columns if c not in NOT_PROXIES and pd.api.types.is_numeric_dtype(frame[c])]
        if joined is not None:
            clash = sorted(set(keep) & set(joined.columns))
            if clash:
                raise GradSignError(f"{path}: proxy column(s) {clash} also come from an earlier table")
        if "arch" in frame.columns and (joined is None or "arch" not in joined.columns):
            keep.append("arch")
        joined = frame[keep] if joined is None else joined.join(frame[keep], how="inner")
    if joined is None:
        raise GradSignError("no results table given")
    return joined


def nb201_truth(which: str = "cifar10") -> pd.DataFrame:
    """The NAS-Bench-201 accuracy table for `which` (cifar10 or cifar100_imagenet16), indexed by arch index."""
    return read_table(data_root() / TRUTH_FILES[which])
