"""Reading source files: one CSV of a drop as strings, or a ``SourceFormatError``.

Pure (pandas, NumPy, pyarrow; no Django, no settings). ``read_source_table`` reads a file
as its source-format table and refuses one that is not well-formed: missing or empty,
not UTF-8, a wrong number of fields on a line, missing, repeated or unexpected columns.
The error's message names the file and the problem, never row contents. Checking the
values is ``validation``'s job.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from sde.data import source_format as sf
from sde.exceptions import SDEError

ROW: Final = "_row"  # the 1-based data line number of each row read
_NAME_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_ ]{0,63}")
_READ_BLOCK: Final = 1 << 20


class SourceFormatError(SDEError):
    """A source file cannot be read as its table (the message never holds row contents)."""

    def __init__(self, table: str, message: str) -> None:
        super().__init__(f"{table}: {message}")
        self.table = table
        self.message = message


def read_source_table(path: Path, table: str) -> pd.DataFrame:
    """Read ``path`` as ``table``: every column a string (empty = missing), in schema
    order, plus ``_row``, the 1-based data line number. Raises ``SourceFormatError`` for
    a missing or empty file, text that is not UTF-8, a wrong number of fields on a line,
    and missing, repeated or unexpected columns."""
    if table not in sf.TABLES:
        raise SourceFormatError(table, "not a table of the source format")
    path = Path(path)
    name = path.name

    def fail(message: str) -> SourceFormatError:
        return SourceFormatError(table, f"{name}: {message}")

    if not path.is_file():
        raise fail("file not found")
    with path.open("rb") as handle:
        first = handle.readline(_READ_BLOCK)
    if not first.strip():
        what = "an opt-out list cannot be empty" if table == "ndop" else "no header row"
        raise fail(f"the file is empty ({what})")
    expected = list(sf.TABLE_SCHEMAS[table])
    headerless = table in sf.HEADERLESS_TABLES
    columns = expected if headerless else _header(first, expected, fail)
    read = pa_csv.ReadOptions(column_names=columns, skip_rows=0 if headerless else 1)
    convert = pa_csv.ConvertOptions(
        column_types=dict.fromkeys(columns, pa.string()),
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
        null_values=[""],
    )
    # Blank lines are kept (as rows of empty values) so _row is the true line number.
    parse = pa_csv.ParseOptions(ignore_empty_lines=False)
    try:
        data = pa_csv.read_csv(
            path, read_options=read, parse_options=parse, convert_options=convert
        )
    except pa.ArrowInvalid as error:  # arrow's message may quote the row: never pass it on
        raise fail(_describe_parse_error(path, str(error), read, convert, headerless)) from None
    frame = data.to_pandas()[expected]
    frame[ROW] = np.arange(1, len(frame) + 1, dtype=np.int64)
    return frame


def _header(
    first: bytes, expected: list[str], fail: Callable[[str], SourceFormatError]
) -> list[str]:
    try:
        line = first.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        raise fail("the header row is not UTF-8 text") from None
    names = next(csv.reader([line.rstrip("\r\n")]), [])
    if not set(names) & set(expected):  # e.g. a file without its header row
        raise fail(f"the first line is not a header row (expected {', '.join(expected)})")

    def show(found: list[str]) -> str:  # never echo what looks like data
        shown = [n for n in found if _NAME_RE.fullmatch(n)]
        return ", ".join(shown + [f"{len(found) - len(shown)} not shown"] * (found != shown))

    if repeated := sorted({n for n in names if names.count(n) > 1}):
        raise fail(f"repeated columns: {show(repeated)}")
    if missing := [n for n in expected if n not in names]:
        raise fail(f"missing columns: {', '.join(missing)}")
    if unexpected := [n for n in names if n not in expected]:
        raise fail(f"unexpected columns: {show(unexpected)}")
    return names


def _describe_parse_error(
    path: Path,
    message: str,
    read: pa_csv.ReadOptions,
    convert: pa_csv.ConvertOptions,
    headerless: bool,
) -> str:
    if "invalid UTF8" in message:
        match = re.search(r"column #(\d+)", message)
        where = f" in column {read.column_names[int(match.group(1))]}" if match else ""
        return f"the file is not UTF-8 text (invalid bytes{where})"
    if "Expected" in message and "columns, got" in message:
        found: list[tuple[int, int, int | None]] = []

        def note(row: Any) -> str:
            found.append((row.expected_columns, row.actual_columns, row.number))
            return "error"

        # Read again on one thread, only to learn the line number (arrow knows it then).
        single = pa_csv.ReadOptions(
            column_names=read.column_names, skip_rows=read.skip_rows, use_threads=False
        )
        parse = pa_csv.ParseOptions(ignore_empty_lines=False, invalid_row_handler=note)
        try:
            pa_csv.read_csv(path, read_options=single, parse_options=parse, convert_options=convert)
        except pa.ArrowInvalid:
            pass
        if found:
            wanted, got, number = found[0]
            line = "" if number is None else f"data line {number - (0 if headerless else 1)} "
            return f"malformed CSV: {line}has {got} fields, expected {wanted}"
        return "malformed CSV: a line has the wrong number of fields"
    return "malformed CSV (an unterminated quote or a line that cannot be parsed)"
