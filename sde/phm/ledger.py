"""The person sets behind published cells, kept inside the environment for output
checking's differencing rule (X2, ``outputs/sdc/ledger.py``) and never released.

Per cell, the people in it, as 64-bit hashes of their pseudonyms (``person_hashes``).
With n distinct people the chance that any two share a hash is about n^2 / 2^65: 3e-8 for
a million, 1e-4 for sixty million; a collision can only merge two people into one. The
helper library writes one ``LedgerTable`` per published table beside the job's outputs
(in the folder the environment reads and never releases); the environment keeps those of
released tables.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

FORMAT_VERSION: Final = 1
METADATA_KEY: Final = b"sde.ledger"
# Domain separation: these hashes are useless for anything but comparing ledger tables.
HASH_PERSON: Final = b"sde-x2-ledger"
Cell = tuple[str, ...]


def person_hashes(ids: pd.Series | Sequence[Any]) -> np.ndarray:
    """Each id's text (``str``) as a 64-bit signed integer: the first 8 bytes of its
    personalised BLAKE2b digest, little-endian, so the same pseudonym hashes the same on
    any machine and in any year. Each distinct id is hashed once (about a second per
    million); raises ``ValueError`` for a missing id."""
    values = ids.to_numpy(dtype=object) if isinstance(ids, pd.Series) else np.asarray(
        list(ids), dtype=object)  # fmt: skip
    codes, uniques = pd.factorize(values)
    if np.any(codes < 0):
        raise ValueError("a person id is missing")
    seed = hashlib.blake2b(digest_size=8, person=HASH_PERSON)

    def digest(value: object) -> bytes:
        state = seed.copy()  # cheaper than a new hasher with its parameters each time
        state.update(str(value).encode("utf-8"))
        return state.digest()

    hashes = np.frombuffer(b"".join(map(digest, uniques.tolist())), dtype="<i8")
    return hashes.astype(np.int64)[codes]


@dataclass(frozen=True, eq=False)
class LedgerTable:
    """One table's people per cell. ``cells``: each cell's dimension values as the
    published CSV writes them. ``person``/``cell``: one entry per person in a cell,
    sorted by person hash (then cell), so that two tables meet in one merge; a cell's
    people (``members``) are therefore sorted and unique. ``id_space`` names the
    pseudonyms hashed (project pseudonyms differ between projects: tables with different
    id spaces cannot be compared)."""

    release: str
    file: str
    extract: str
    cohort_hash: str
    dimensions: tuple[str, ...]
    statistic: str
    cells: tuple[Cell, ...]
    person: np.ndarray
    cell: np.ndarray
    project: str = ""
    id_space: str = ""

    def __post_init__(self) -> None:
        person = np.ascontiguousarray(self.person, dtype=np.int64)
        cell = np.ascontiguousarray(self.cell, dtype=np.int32)
        if person.shape != cell.shape or person.ndim != 1:
            raise ValueError("person and cell must be one-dimensional and the same length")
        if len(cell) and (cell.min() < 0 or cell.max() >= len(self.cells)):
            raise ValueError("a person is in a cell the table does not have")
        if any(len(c) != len(self.dimensions) for c in self.cells):
            raise ValueError("every cell needs one value per dimension")
        # Comparisons, not np.diff: the difference of two hashes can overflow int64.
        same = person[1:] == person[:-1]
        if np.any((person[1:] < person[:-1]) | (same & (cell[1:] <= cell[:-1]))):
            raise ValueError("entries must be sorted by person then cell, without repeats")
        for array in (person, cell):
            array.setflags(write=False)
        object.__setattr__(self, "person", person)
        object.__setattr__(self, "cell", cell)

    @classmethod
    def from_rows(
        cls,
        rows: pd.DataFrame,
        by: Sequence[str],
        person: str = "person_id",
        **key: str,
    ) -> LedgerTable:
        """The cells of ``rows`` grouped by ``by`` as ``count_table`` groups them (observed
        combinations, sorted, rows with a missing key or person left out). ``key``: the
        other fields (``release``, ``file``, ``extract``, ``cohort_hash``, ``statistic``,
        ``project``, ``id_space``)."""
        keys = list(by)
        data = rows[[*keys, person]].dropna()
        grouped = data.groupby(keys, observed=True, sort=True)
        cell = grouped.ngroup().to_numpy(np.int32)
        labels = grouped.size().index.to_frame(index=False)
        # The values as the published CSV holds them, so cells match the checked table.
        text = pd.read_csv(io.StringIO(labels.to_csv(index=False)), dtype=str,
                           keep_default_na=False)  # fmt: skip
        hashes = person_hashes(data[person])
        order = np.lexsort((cell, hashes))
        hashes, cell = hashes[order], cell[order]
        keep = np.r_[True, (hashes[1:] != hashes[:-1]) | (cell[1:] != cell[:-1])]
        fields = {"release": "", "file": "", "extract": "", "cohort_hash": "",
                  "statistic": "people", **key}  # fmt: skip
        return cls(
            dimensions=tuple(keys), cells=tuple(map(tuple, text.to_numpy().tolist())),
            person=hashes[keep], cell=cell[keep], **fields,
        )  # fmt: skip

    @cached_property
    def sizes(self) -> np.ndarray:
        """People per cell."""
        return np.bincount(self.cell, minlength=len(self.cells))

    @cached_property
    def disjoint(self) -> bool:
        """Whether each person is in one cell at most (a cross-tabulation of people)."""
        return not np.any(self.person[1:] == self.person[:-1])

    @cached_property
    def population(self) -> int:
        """Distinct people in the table."""
        return len(self.person) - int(np.count_nonzero(self.person[1:] == self.person[:-1]))

    def members(self, index: int) -> np.ndarray:
        """Cell ``index``'s people: sorted, unique person hashes."""
        return self.person[self.cell == index]

    def describe(self, index: int) -> dict[str, str]:
        return dict(zip(self.dimensions, self.cells[index], strict=True))

    def to_parquet(self, path: str | Path) -> None:
        """Long format (``cell``, ``person``), the table's fields in the file metadata."""
        meta = {"format": FORMAT_VERSION, "release": self.release, "file": self.file,
                "extract": self.extract, "cohort_hash": self.cohort_hash,
                "dimensions": list(self.dimensions), "statistic": self.statistic,
                "cells": [list(c) for c in self.cells], "project": self.project,
                "id_space": self.id_space}  # fmt: skip
        table = pa.table({"cell": self.cell, "person": self.person})
        table = table.replace_schema_metadata({METADATA_KEY: json.dumps(meta).encode()})
        pq.write_table(table, str(path))

    @classmethod
    def read_parquet(cls, path: str | Path) -> LedgerTable:
        table = pq.read_table(str(path))
        raw = (table.schema.metadata or {}).get(METADATA_KEY)
        if raw is None:
            raise ValueError(f"{path} is not a ledger table")
        meta = json.loads(raw)
        if meta.pop("format") != FORMAT_VERSION:
            raise ValueError(f"{path}: unknown ledger format")
        return cls(
            dimensions=tuple(meta.pop("dimensions")),
            cells=tuple(tuple(str(v) for v in c) for c in meta.pop("cells")),
            person=table.column("person").to_numpy(), cell=table.column("cell").to_numpy(),
            **meta,
        )  # fmt: skip
