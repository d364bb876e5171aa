"""Reading a published CSV with its evidence sidecar, and refusing one whose evidence
describes some other table. Inputs are made as the environment makes them: the helper
library's builders on person-level rows, ``frame.to_csv(index=False)`` and the sidecar
as ``json.dumps(result.sidecar(...), indent=1)``; tampering edits those bytes."""

import json
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from outputs.sdc.evidence import (
    EvidenceError,
    TableEvidence,
    consistency,
    load_sidecar,
    read_table,
    table_evidence,
)
from outputs.sdc.results import Status
from sde.phm.evidence import ResultTable, count_table, magnitude_table

NAME = "table.csv"


def person_rows(cells: dict[tuple[str, ...], int], by: tuple[str, ...]) -> pd.DataFrame:
    """``cells[key]`` distinct people (one row each) in the group ``key`` of ``by``."""
    keys = [key for key, n in cells.items() for _ in range(n)]
    return pd.DataFrame(
        {"person_id": [f"p{i:03d}" for i in range(len(keys))],
         **{d: [k[i] for k in keys] for i, d in enumerate(by)}}
    )  # fmt: skip


def counts() -> ResultTable:
    """People by sex and region: F/N 12, F/S 11, M/N 13, M/S 14 (sorted order)."""
    rows = person_rows(
        {("F", "N"): 12, ("F", "S"): 11, ("M", "N"): 13, ("M", "S"): 14}, ("sex", "region")
    )
    return count_table(rows, name="by_sex", title="People by sex", by=["sex", "region"])


def costs(statistic: str) -> ResultTable:
    """Cost by Place: in A, one person's three rows of 100 are one contribution of 300."""
    rows = pd.DataFrame(
        {"person_id": ["a1"] * 3 + [f"a{i}" for i in range(2, 13)] + [f"b{i}" for i in range(11)],
         "place": ["A"] * 14 + ["B"] * 11,
         "cost": [100.0] * 3 + [50.0] + [10.0] * 10 + [20.0] * 11}
    )  # fmt: skip
    return magnitude_table(rows, name="cost", title="Cost", by=["place"], value="cost",
                           statistic=statistic)  # fmt: skip


def sidecar_bytes(
    result: ResultTable, edit: Callable[[dict[str, Any]], None] | None = None
) -> bytes:
    sidecar = json.loads(json.dumps(result.sidecar(extract="ext-1", cohort_hash="c0ffee")))
    if edit is not None:
        edit(sidecar)
    return json.dumps(sidecar, indent=1).encode()


def published(
    result: ResultTable,
    *,
    csv: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
    sidecar: Callable[[dict[str, Any]], None] | None = None,
) -> TableEvidence:
    """The table as the checker reads it, after optional edits to the CSV or sidecar."""
    frame = result.frame.copy() if csv is None else csv(result.frame.copy())
    data = frame.to_csv(index=False).encode()
    evidence = load_sidecar(sidecar_bytes(result, sidecar), NAME)
    return table_evidence(read_table(data, NAME), evidence, NAME)


def set_cell(row: int, column: str, value: Any) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.astype({column: object})
        frame.loc[row, column] = value
        return frame

    return edit


# --- Reading what the environment wrote -------------------------------------------------
def test_a_count_table_lines_up_with_its_evidence():
    table = published(counts())

    assert table.dimensions == ("sex", "region")
    assert dict(table.statistics) == {"people": "count"}
    assert table.frame["people"].tolist() == [12, 11, 13, 14]
    assert table.persons["people"].tolist() == [12, 11, 13, 14]
    assert table.cell(1) == {"sex": "F", "region": "S"}
    assert table.columns_of("count") == ["people"]
    assert table.magnitudes is None


def test_the_jobs_context_is_kept_and_the_cells_are_not():
    table = published(counts())

    assert table.context["extract"] == "ext-1"
    assert table.context["cohort_hash"] == "c0ffee"
    assert "cells" not in table.context


def test_magnitude_evidence_is_per_person_not_per_row():
    table = published(costs("sum"))
    magnitudes = table.magnitudes

    assert magnitudes is not None
    assert magnitudes.loc[0, ["sum_cost.top1", "sum_cost.top2", "sum_cost.total"]].tolist() == [
        300.0, 50.0, 450.0,
    ]  # fmt: skip
    assert table.persons.loc[0, "sum_cost"] == 12


def test_numeric_and_date_dimensions_read_back_as_written():
    rows = pd.DataFrame(
        {"person_id": range(24), "band": [1] * 12 + [2] * 12,
         "month": pd.to_datetime(["2024-01-01"] * 12 + ["2024-02-01"] * 12)}
    )  # fmt: skip
    result = count_table(rows, name="t", title="t", by=["band", "month"])

    table = published(result)

    assert table.cell(1) == {"band": "2", "month": "2024-02-01"}
    assert consistency(table) == []


@pytest.mark.parametrize("result", [counts(), costs("sum"), costs("mean")],
                         ids=["count", "sum", "mean"])  # fmt: skip
def test_an_untouched_table_is_consistent_with_its_evidence(result):
    assert consistency(published(result)) == []


def test_a_blank_suppressed_count_is_not_a_mismatch():
    table = published(counts(), csv=set_cell(1, "people", ""))

    assert np.isnan(table.frame.loc[1, "people"])
    assert consistency(table) == []


# --- A published CSV that is not what the evidence describes ----------------------------
def test_rows_put_in_another_order_are_refused():
    with pytest.raises(EvidenceError, match="row 1"):
        published(counts(), csv=lambda f: f.iloc[::-1])


def test_a_dropped_row_is_refused():
    with pytest.raises(EvidenceError, match="3 rows but its evidence describes 4"):
        published(counts(), csv=lambda f: f.drop(index=2))


def test_an_edited_dimension_value_is_refused_naming_it():
    with pytest.raises(EvidenceError, match="Z"):
        published(counts(), csv=set_cell(2, "region", "Z"))


def test_a_column_the_evidence_does_not_describe_is_refused():
    """Anything published must be something the evidence vouches for."""
    with pytest.raises(EvidenceError, match="nhs_number"):
        published(counts(), csv=lambda f: f.assign(nhs_number="9434765919"))


def test_an_edited_count_fails_that_cell():
    table = published(counts(), csv=set_cell(2, "people", 31))

    [finding] = consistency(table)

    assert (finding.rule, finding.status) == ("evidence", Status.FAIL)
    assert (finding.row, finding.column) == (2, "people")
    assert finding.cell == {"sex": "M", "region": "N"}
    assert finding.evidence == {"published": 31, "evidenced": 13}
    assert "people" in finding.message


def test_a_count_replaced_by_text_is_refused_naming_the_cell():
    """Text in a statistic column would otherwise be read as a blank and published
    unchecked; only an empty cell is a suppression."""
    with pytest.raises(EvidenceError, match="people in row 3 is 'thirteen'"):
        published(counts(), csv=set_cell(2, "people", "thirteen"))


@pytest.mark.parametrize(
    ("statistic", "column", "edited", "evidenced"),
    [("sum", "sum_cost", 451.0, 450.0), ("mean", "mean_cost", 38.0, 37.5)],
)
def test_an_edited_magnitude_fails_that_cell(statistic, column, edited, evidenced):
    table = published(costs(statistic), csv=set_cell(0, column, edited))

    [finding] = consistency(table)

    assert (finding.rule, finding.status) == ("evidence", Status.FAIL)
    assert (finding.row, finding.column, finding.cell) == (0, column, {"place": "A"})
    assert finding.evidence == pytest.approx({"published": edited, "evidenced": evidenced})
    assert column in finding.message


def test_a_magnitude_without_its_evidence_fails_that_cell():
    def drop(sidecar: dict[str, Any]) -> None:
        del sidecar["cells"][1]["magnitudes"]

    table = published(costs("sum"), sidecar=drop)

    assert [(f.rule, f.status, f.row) for f in consistency(table)] == [
        ("evidence", Status.FAIL, 1),
    ]


# --- Bytes that are not a table ----------------------------------------------------------
@pytest.mark.parametrize(
    "data",
    [b"", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10",
     b"PK\x03\x04\x14\x00\x00\x00\x08\x00", pickle.dumps({"people": [1, 2]}),
     b'{"sex": ["F"], "people": [12]}', b"SQLite format 3\x00\x10\x00"],
    ids=["empty", "png", "zip", "pickle", "json", "sqlite"],
)  # fmt: skip
def test_bytes_that_are_not_the_csv_table_are_refused(data):
    sidecar = load_sidecar(sidecar_bytes(counts()), NAME)

    with pytest.raises(EvidenceError, match=NAME):
        table_evidence(read_table(data, NAME), sidecar, NAME)


# --- Evidence that cannot be read ---------------------------------------------------------
@pytest.mark.parametrize("data", [b"not json", b"\xff\xfe", b"[1, 2]", b'"cells"'])
def test_a_sidecar_that_is_not_a_json_object_is_refused(data):
    with pytest.raises(EvidenceError, match=NAME):
        load_sidecar(data, NAME)


@pytest.mark.parametrize("key", ["dimensions", "statistics", "cells"])
def test_a_sidecar_missing_a_key_is_refused_naming_it(key):
    with pytest.raises(EvidenceError, match=key):
        published(counts(), sidecar=lambda s: s.pop(key))


def test_a_sidecar_naming_a_column_the_table_lacks_is_refused():
    def rename(sidecar: dict[str, Any]) -> None:
        sidecar["statistics"] = {"patients": "count"}

    with pytest.raises(EvidenceError, match="patients"):
        published(counts(), sidecar=rename)


def _persons_as_text(s: dict[str, Any]) -> None:
    s["cells"][0]["persons"]["people"] = "many"


def _cell_not_an_object(s: dict[str, Any]) -> None:
    s["cells"][0] = 12


def _persons_null(s: dict[str, Any]) -> None:
    s["cells"][0]["persons"] = None


def _unknown_kind(s: dict[str, Any]) -> None:
    s["statistics"]["people"] = "headcount"


@pytest.mark.parametrize(
    "edit", [_persons_as_text, _cell_not_an_object, _persons_null, _unknown_kind],
    ids=["persons-as-text", "cell-not-an-object", "persons-null", "unknown-kind"],
)  # fmt: skip
def test_a_malformed_sidecar_is_an_evidence_error_not_a_crash(edit):
    """``check_output`` turns only ``EvidenceError`` into an unverifiable verdict; any
    other exception would stop the check. A statistic kind the checker does not know
    would get no rules at all, so it must not pass silently either."""
    with pytest.raises(EvidenceError):
        published(counts(), sidecar=edit)


def test_a_cell_without_person_evidence_reads_as_unknown():
    def drop(sidecar: dict[str, Any]) -> None:
        del sidecar["cells"][3]["persons"]

    table = published(counts(), sidecar=drop)

    assert table.persons["people"].isna().tolist() == [False, False, False, True]
    assert consistency(table) == []  # unknown is T1's to judge (review), not a mismatch


def test_a_mismatch_finding_is_plain_json_of_numbers():
    table = published(costs("mean"), csv=set_cell(1, "people", 12))

    [finding] = consistency(table)
    data = finding.as_json()

    assert json.loads(json.dumps(data)) == data
    assert finding.evidence == {"published": 12, "evidenced": 11}
