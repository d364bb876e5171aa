"""A table file as the checker's page shows it: its cells, with the cells the automated
check found failing (or left for review) marked by row and column."""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import pandas as pd

# More rows than output checking lets out (F1: 5,000 looks like microdata) are not drawn.
MAX_ROWS: Final = 1000
RANK: Final = {"": 0, "review": 1, "fail": 2}


@dataclass
class Cell:
    value: str
    status: str = ""  # "", "review" or "fail"
    rules: list[str] = field(default_factory=list)

    def mark(self, status: str, rule: str) -> None:
        if RANK.get(status, 0) > RANK[self.status]:
            self.status = status
        if rule not in self.rules:
            self.rules.append(rule)


@dataclass
class Row:
    number: int
    cells: list[Cell]
    status: str = ""
    rules: list[str] = field(default_factory=list)


@dataclass
class Table:
    columns: list[Cell]
    rows: list[Row]
    total: int
    error: str = ""

    @property
    def cut(self) -> bool:
        return self.total > len(self.rows)


def render(data: bytes, findings: Iterable[Mapping[str, Any]], *, limit: int = MAX_ROWS) -> Table:
    """``data`` read as text cells (nothing converted), with each non-pass finding marked
    on its cell, on its row (a finding about a row), or on its column's heading."""
    try:
        frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        return Table(columns=[], rows=[], total=0, error=f"It cannot be read as a table: {error}")
    names = [str(c) for c in frame.columns]
    columns = [Cell(name) for name in names]
    rows = [
        Row(number=i + 1, cells=[Cell(str(v)) for v in values])
        for i, values in enumerate(frame.head(limit).itertuples(index=False, name=None))
    ]
    position = {name: i for i, name in enumerate(names)}
    for finding in findings:
        status, rule = str(finding.get("status", "")), str(finding.get("rule", ""))
        if status not in ("review", "fail"):
            continue
        row, column = finding.get("row"), finding.get("column")
        index = position.get(str(column)) if column is not None else None
        if row is not None and 0 <= int(row) < len(rows):
            target = rows[int(row)]
            if index is not None:
                target.cells[index].mark(status, rule)
            else:
                if RANK.get(status, 0) > RANK[target.status]:
                    target.status = status
                if rule not in target.rules:
                    target.rules.append(rule)
        elif row is None and index is not None:
            columns[index].mark(status, rule)
    return Table(columns=columns, rows=rows, total=len(frame))
