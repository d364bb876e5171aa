"""Validating source files: every kind of bad row, malformed files, types, reports,
reconciliation, and a real synthetic drop whose injected faults must all be found."""

import csv
import io
import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sde.data import source_format as sf
from sde.data import synth
from sde.data.pseudonymisation import normalise_nhs_numbers
from sde.data.validation import (
    REASONS,
    SourceFormatError,
    TableResult,
    quality_report,
    read_source_table,
    reconcile,
    validate_table,
)

EXTRACT = date(2025, 3, 31)
ALIVE, DIED, OTHER, STRANGER = "9434765919", "9670790050", "9805002926", "9022653218"
FOURTH = "9807940788"
PATIENT = {
    "nhs_number": ALIVE, "date_of_birth": "1980-05-01", "sex": "F",
    "ethnicity": "White: Irish", "lsoa_code": "E01900001", "imd_decile": "3",
    "practice_ods": "Y99001", "pcn_code": "U99001", "place": "North Place",
    "registration_start": "2010-01-01", "registration_end": "", "date_of_death": "",
}  # fmt: skip
# Three people: one alive, one who died on 2024-06-30, one with ethnicity not stated.
PEOPLE_ROWS = [
    PATIENT,
    {**PATIENT, "nhs_number": DIED, "date_of_birth": "1940-02-29", "registration_end": "2024-06-30",
     "date_of_death": "2024-06-30"},
    {**PATIENT, "nhs_number": OTHER, "ethnicity": "Not stated", "sex": "M"},
]  # fmt: skip
BASE = {
    "patients": PATIENT,
    "gp_events": {"nhs_number": ALIVE, "date": "2024-01-10", "snomed_code": "60621009",
                  "value": "27.5"},
    "gp_medications": {"nhs_number": ALIVE, "date": "2024-01-10", "bnf_chapter": "02",
                       "bnf_section": "0205"},
    "apc_spells": {"nhs_number": ALIVE, "admission_date": "2024-01-10",
                   "discharge_date": "2024-01-12", "admission_method": "emergency",
                   "primary_diagnosis_icd10": "J189", "provider": "R9A",
                   "discharge_method": "discharged", "cost": "2400"},
    "ae_attendances": {"nhs_number": ALIVE, "arrival_date": "2024-01-10", "disposal": "admitted",
                       "provider": "R9B", "cost": "300"},
    "op_appointments": {"nhs_number": ALIVE, "date": "2024-01-10", "specialty": "320",
                        "attended": "true", "cost": "140"},
    "community_contacts": {"nhs_number": ALIVE, "start_date": "2024-01-10",
                           "end_date": "2024-02-10", "service_type": "podiatry", "contacts": "3"},
    "mh_contacts": {"nhs_number": ALIVE, "start_date": "2024-01-10", "end_date": "",
                    "service_type": "crisis_team", "contacts": "2"},
    "social_care": {"nhs_number": ALIVE, "start_date": "2024-01-10", "end_date": "",
                    "service_type": "home_care"},
    "ndop": {"nhs_number": ALIVE},
}  # fmt: skip
MAIN = {"patients": "nhs_number", "ndop": "nhs_number"}  # column that keeps rows distinct


def _text(table: str, rows: list[dict[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if table not in sf.HEADERLESS_TABLES:
        writer.writerow(list(sf.TABLE_SCHEMAS[table]))
    writer.writerows([list(row.values()) for row in rows])
    return out.getvalue()


def _write(tmp_path: Path, table: str, text: str | bytes) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / f"{table}.csv"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def _people(tmp_path: Path) -> pd.DataFrame:
    path = _write(tmp_path, "patients", _text("patients", PEOPLE_ROWS))
    return validate_table(
        "patients", read_source_table(path, "patients"), extract_date=EXTRACT
    ).clean


def _distinct_rows(table: str) -> list[dict[str, str]]:
    """Three valid rows of ``table`` that differ from each other."""
    if table == "patients":
        return [dict(PATIENT), {**PATIENT, "nhs_number": FOURTH}, dict(PEOPLE_ROWS[2])]
    if table == "ndop":
        return [{"nhs_number": number} for number in (ALIVE, DIED, OTHER)]
    date_column = next(c for c, kind in sf.TABLE_SCHEMAS[table].items() if kind == "date")
    return [{**BASE[table], date_column: f"2024-01-1{i}"} for i in range(3)]


def _validate(tmp_path: Path, table: str, rows: list[dict[str, str]]) -> TableResult:
    raw = read_source_table(_write(tmp_path / "drop", table, _text(table, rows)), table)
    people = _people(tmp_path) if table in sf.ACTIVITY_TABLES else None
    result = validate_table(table, raw, extract_date=EXTRACT, people=people)
    assert len(result.clean) + len(result.quarantine) == result.received == len(rows)
    return result


BAD_ROWS = [
    # (table, changes to a valid row, reason, column)
    ("patients", {"nhs_number": "9434765918"}, "invalid_nhs_number", "nhs_number"),
    ("patients", {"nhs_number": "943476591"}, "invalid_nhs_number", "nhs_number"),
    ("patients", {"nhs_number": "943O765919"}, "invalid_nhs_number", "nhs_number"),
    ("patients", {"nhs_number": "6000000000"}, "invalid_nhs_number", "nhs_number"),  # check 10
    ("patients", {"nhs_number": ""}, "missing_value", "nhs_number"),
    ("patients", {"sex": " "}, "missing_value", "sex"),
    ("patients", {"date_of_birth": "01/05/1980"}, "unparseable_date", "date_of_birth"),
    ("patients", {"date_of_birth": "1980-5-1"}, "unparseable_date", "date_of_birth"),
    ("patients", {"date_of_birth": "2023-02-29"}, "impossible_date", "date_of_birth"),
    ("patients", {"date_of_birth": "1980-13-01"}, "impossible_date", "date_of_birth"),
    ("patients", {"date_of_birth": "1850-01-01"}, "impossible_date", "date_of_birth"),
    ("patients", {"date_of_death": "2025-04-01"}, "future_date", "date_of_death"),
    ("patients", {"registration_start": "1980-04-30"}, "before_birth", "registration_start"),
    ("patients", {"date_of_death": "1979-12-31"}, "before_birth", "date_of_death"),
    ("patients", {"registration_end": "2009-12-31"}, "end_before_start", "registration_end"),
    ("patients", {"imd_decile": "11"}, "out_of_range", "imd_decile"),
    ("patients", {"imd_decile": "0"}, "out_of_range", "imd_decile"),
    ("patients", {"imd_decile": "3.5"}, "out_of_range", "imd_decile"),
    ("patients", {"imd_decile": "three"}, "out_of_range", "imd_decile"),
    ("patients", {"sex": "X"}, "unknown_code", "sex"),
    ("gp_events", {"snomed_code": "999999999"}, "unknown_code", "snomed_code"),
    ("gp_events", {"value": "95"}, "out_of_range", "value"),  # BMI
    ("gp_events", {"value": "9.9"}, "out_of_range", "value"),
    ("gp_events", {"snomed_code": "999791000000106", "value": "201"}, "out_of_range", "value"),
    ("gp_events", {"snomed_code": "72313002", "value": "49"}, "out_of_range", "value"),
    ("gp_events", {"snomed_code": "1091811000000102", "value": "161"}, "out_of_range", "value"),
    ("gp_events", {"value": "nan"}, "out_of_range", "value"),
    ("gp_events", {"value": "1e999"}, "out_of_range", "value"),
    ("gp_events", {"date": "2025-04-01"}, "future_date", "date"),
    ("gp_events", {"nhs_number": STRANGER}, "unknown_person", "nhs_number"),
    ("gp_events", {"date": "1980-04-30"}, "before_birth", "date"),
    ("gp_events", {"nhs_number": DIED, "date": "2024-07-02"}, "after_death", "date"),
    ("gp_medications", {"bnf_chapter": "99", "bnf_section": "9999"}, "unknown_code",
     "bnf_chapter"),
    ("gp_medications", {"bnf_section": "9999"}, "unknown_code", "bnf_section"),
    ("gp_medications", {"date": ""}, "missing_value", "date"),
    ("apc_spells", {"discharge_date": "2024-01-09"}, "end_before_start", "discharge_date"),
    ("apc_spells", {"discharge_date": ""}, "missing_value", "discharge_date"),
    ("apc_spells", {"cost": "-1"}, "out_of_range", "cost"),
    ("apc_spells", {"cost": "+5"}, "out_of_range", "cost"),
    ("apc_spells", {"cost": "9999999999999999999"}, "out_of_range", "cost"),
    ("apc_spells", {"admission_method": "Emergency"}, "unknown_code", "admission_method"),
    ("apc_spells", {"primary_diagnosis_icd10": "U999"}, "unknown_code",
     "primary_diagnosis_icd10"),
    ("ae_attendances", {"disposal": "99"}, "unknown_code", "disposal"),
    ("ae_attendances", {"arrival_date": "2025-04-01"}, "future_date", "arrival_date"),
    ("op_appointments", {"attended": "maybe"}, "unknown_code", "attended"),
    ("op_appointments", {"cost": "1e3"}, "out_of_range", "cost"),
    ("op_appointments", {"specialty": "999"}, "unknown_code", "specialty"),
    ("community_contacts", {"end_date": "2024-01-09"}, "end_before_start", "end_date"),
    ("community_contacts", {"service_type": "99"}, "unknown_code", "service_type"),
    ("mh_contacts", {"contacts": "-2"}, "out_of_range", "contacts"),
    ("mh_contacts", {"nhs_number": DIED, "end_date": "2024-07-05"}, "after_death", "end_date"),
    ("social_care", {"service_type": "99"}, "unknown_code", "service_type"),
    ("social_care", {"start_date": "2024-1-10"}, "unparseable_date", "start_date"),
    ("ndop", {"nhs_number": "9434765918"}, "invalid_nhs_number", "nhs_number"),
    ("ndop", {"nhs_number": ""}, "missing_value", "nhs_number"),  # a blank line
    # Two problems: the first in REASONS order is the one reported.
    ("gp_events", {"nhs_number": "9434765918", "snomed_code": "1"}, "invalid_nhs_number",
     "nhs_number"),
    ("apc_spells", {"nhs_number": STRANGER, "cost": "-5"}, "out_of_range", "cost"),
    ("gp_medications", {"nhs_number": DIED, "date": "2025-05-01"}, "future_date", "date"),
]  # fmt: skip


@pytest.mark.parametrize(("table", "changes", "reason", "column"), BAD_ROWS)
def test_bad_row_is_quarantined_with_its_reason_and_the_rest_kept(
    tmp_path, table, changes, reason, column
):
    rows = _distinct_rows(table)
    rows[1].update(changes)

    result = _validate(tmp_path, table, rows)

    assert result.quarantine.to_dict("records") == [{"row": 2, "reason": reason, "column": column}]
    assert result.clean["_row"].tolist() == [1, 3]
    assert result.counts_by_reason == {reason: 1}


def test_exact_duplicate_rows_keep_the_first(tmp_path):
    rows = _distinct_rows("gp_events")
    rows = [rows[0], rows[1], dict(rows[0]), rows[2], dict(rows[0])]

    result = _validate(tmp_path, "gp_events", rows)

    assert result.quarantine["row"].tolist() == [3, 5]
    assert set(result.quarantine["reason"]) == {"duplicate_row"}
    assert result.quarantine["column"].isna().all()
    assert result.clean["_row"].tolist() == [1, 2, 4]


def test_second_row_for_a_person_is_a_duplicate_even_if_spelled_differently(tmp_path):
    rows = _distinct_rows("patients")
    rows.append({**PATIENT, "nhs_number": " 943 476 5919", "sex": "M"})

    result = _validate(tmp_path, "patients", rows)

    assert result.quarantine.to_dict("records") == [
        {"row": 4, "reason": "duplicate_row", "column": "nhs_number"}
    ]


def test_the_first_acceptable_row_for_a_person_is_the_one_kept(tmp_path):
    rows = [{**PATIENT, "registration_start": "1970-01-01"}, dict(PATIENT)]

    result = _validate(tmp_path, "patients", rows)

    assert result.quarantine["reason"].tolist() == ["before_birth"]
    assert result.clean["_row"].tolist() == [2]


def test_exact_copies_of_a_bad_row_share_its_reason(tmp_path):
    bad = {**BASE["gp_events"], "nhs_number": "9434765918"}
    result = _validate(tmp_path, "gp_events", [bad, dict(bad)])

    assert result.quarantine["reason"].tolist() == ["invalid_nhs_number"] * 2


ACCEPTED = [
    ("patients", {"nhs_number": "980 794 0788"}),  # spaces are stripped
    ("patients", {"nhs_number": "980-794-0788 "}),
    ("patients", {"date_of_birth": "1900-01-01", "registration_start": "1900-01-01"}),
    ("patients", {"date_of_death": "2025-03-31", "registration_end": "2025-03-31"}),
    ("patients", {"date_of_death": "1980-05-01"}),  # died on the day of birth
    ("patients", {"sex": "U", "ethnicity": "Not stated"}),
    ("patients", {"registration_end": " "}),  # blank optional value: missing
    ("gp_events", {"value": ""}),
    ("gp_events", {"snomed_code": "38341003", "value": "100000"}),  # no range for this code
    ("gp_events", {"value": "1.5e1"}),
    ("gp_events", {"value": "+.275E2"}),
    ("apc_spells", {"cost": "0012"}),
    ("gp_events", {"nhs_number": DIED, "date": "2024-07-01"}),  # one day after death
    ("gp_events", {"date": "1980-05-01"}),  # on the day of birth
    ("apc_spells", {"discharge_date": "2024-01-11", "cost": "0"}),  # day case
    ("op_appointments", {"attended": "FALSE", "cost": "0"}),
    ("op_appointments", {"attended": "1"}),
    ("ndop", {"nhs_number": STRANGER}),  # opt-outs apply to people not in the drop
]


@pytest.mark.parametrize(("table", "changes"), ACCEPTED)
def test_unusual_but_valid_row_is_kept(tmp_path, table, changes):
    rows = _distinct_rows(table)
    rows[1].update(changes)

    result = _validate(tmp_path, table, rows)

    assert result.quarantine.empty
    assert result.clean["_row"].tolist() == [1, 2, 3]


def test_clean_values_are_typed_and_normalised(tmp_path):
    rows = [dict(row) for row in PEOPLE_ROWS]
    rows[0]["nhs_number"] = "943 476 5919"
    rows[2]["registration_end"] = " "

    clean = _validate(tmp_path, "patients", rows).clean

    assert clean["nhs_number"].tolist() == [ALIVE, DIED, OTHER]
    assert clean["date_of_birth"].tolist() == [
        pd.Timestamp("1980-05-01"), pd.Timestamp("1940-02-29"), pd.Timestamp("1980-05-01")
    ]  # fmt: skip
    assert clean["registration_end"].isna().tolist() == [True, False, True]
    assert clean["imd_decile"].tolist() == [3, 3, 3]


@pytest.mark.parametrize("table", sf.TABLES)
def test_clean_frame_has_the_schema_dtypes_even_when_empty(tmp_path, table):
    for rows in (_distinct_rows(table), []):
        if not rows and table == "ndop":
            continue  # an empty opt-out list is refused, tested below
        result = _validate(tmp_path, table, rows)

        expected = {**sf.pandas_schema(table), "_row": "int64"}
        assert {c: str(t) for c, t in result.clean.dtypes.items()} == expected
        assert list(result.quarantine.columns) == ["row", "reason", "column"]


def test_reader_keeps_line_numbers_and_strings(tmp_path):
    text = _text("gp_events", _distinct_rows("gp_events")).replace("27.5", "027.50")
    raw = read_source_table(_write(tmp_path, "gp_events", text), "gp_events")

    assert list(raw.columns) == [*sf.TABLE_SCHEMAS["gp_events"], "_row"]
    assert raw["_row"].tolist() == [1, 2, 3]
    assert raw["value"].tolist() == ["027.50"] * 3  # no type inference
    assert all(pd.api.types.is_string_dtype(raw[c]) for c in sf.TABLE_SCHEMAS["gp_events"])


def test_reader_accepts_reordered_columns_a_bom_crlf_and_a_header_only_file(tmp_path):
    columns = list(reversed(sf.TABLE_SCHEMAS["gp_medications"]))
    text = "\ufeff" + ",".join(columns) + "\r\n" + "0205,02,2024-01-10," + ALIVE + "\r\n"

    raw = read_source_table(_write(tmp_path, "gp_medications", text), "gp_medications")
    empty = read_source_table(_write(tmp_path, "social_care", "nhs_number,start_date,"
                                     "end_date,service_type\n"), "social_care")  # fmt: skip

    assert raw.iloc[0].tolist() == [ALIVE, "2024-01-10", "02", "0205", 1]
    assert len(empty) == 0


FORMAT_ERRORS = [
    ("patients", b"", "is empty"),
    ("patients", b"\n\n", "is empty"),
    ("ndop", b"", "is empty"),
    ("gp_events", "nhs_number,date,snomed_code,value\n9434765919,2024-01-10,60621009,27.5,x\n",
     "data line 1 has 5 fields, expected 4"),
    ("gp_events", "nhs_number,date,snomed_code,value\n9434765919,2024-01-10,60621009,27.5\n"
     "9434765919,2024-01-11\n", "data line 2 has 2 fields, expected 4"),
    ("ndop", "9434765919\n9434765919,9670790050\n", "data line 2 has 2 fields, expected 1"),
    ("gp_events", 'nhs_number,date,snomed_code,value\n"9434765919,2024-01-10,60621009,27.5\n',
     "malformed CSV"),
    ("gp_events", "nhs_number,date,snomed_code,value\n9434765919,2024-01-10,60621009,\xe9\n"
     .encode("latin-1"), "not UTF-8 text (invalid bytes in column value)"),
    ("gp_events", "nhs_number,dat\xe9,snomed_code,value\n".encode("latin-1"),
     "header row is not UTF-8"),
    ("gp_events", "nhs_number,date,value\n", "missing columns: snomed_code"),
    ("gp_events", "nhs_number,date,snomed_code,value,comment\n", "unexpected columns: comment"),
    ("gp_events", "nhs_number,date,date,snomed_code,value\n", "repeated columns: date"),
    ("gp_events", "9434765919,2024-01-10,60621009,27.5\n",
     "the first line is not a header row (expected nhs_number, date, snomed_code, value)"),
    ("gp_events", "nhs_number,date,snomed_code,value,2024-01-10,9434765919,x\n",
     "unexpected columns: x, 2 not shown"),
    ("gp_events", "nhs_number,date,snomed_code,value,2024-01-10,2024-01-10\n",
     "repeated columns: 1 not shown"),
]  # fmt: skip


@pytest.mark.parametrize(("table", "content", "message"), FORMAT_ERRORS)
def test_malformed_file_is_refused_with_a_message_free_of_row_contents(
    tmp_path, table, content, message
):
    path = _write(tmp_path, table, content)

    with pytest.raises(SourceFormatError) as caught:
        read_source_table(path, table)

    assert caught.value.table == table
    assert str(caught.value).startswith(f"{table}: {table}.csv: ")
    assert message in str(caught.value)
    for secret in (ALIVE, "9670790050", "2024-01-1", "27.5"):
        assert secret not in str(caught.value)


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(SourceFormatError, match="file not found"):
        read_source_table(tmp_path / "patients.csv", "patients")


def test_validate_refuses_columns_that_are_not_the_tables():
    raw = pd.DataFrame({"nhs_number": [ALIVE], "date": ["2024-01-10"]}, dtype="str")
    with pytest.raises(SourceFormatError, match="columns"):
        validate_table("gp_events", raw, extract_date=EXTRACT)


def test_quality_report_is_json_and_counts_what_happened(tmp_path):
    rows = [dict(row) for row in PEOPLE_ROWS]
    rows.append({**PATIENT, "nhs_number": "9434765918"})
    raw = read_source_table(_write(tmp_path, "patients", _text("patients", rows)), "patients")
    result = validate_table("patients", raw, extract_date=EXTRACT)

    report = json.loads(json.dumps(quality_report(result, raw)))

    assert report["received"] == 4
    assert report["ingested"] == 3
    assert report["quarantined"] == 1
    assert report["invalid_rate"] == 0.25
    assert report["counts_by_reason"] == {"invalid_nhs_number": 1}
    assert report["completeness"]["date_of_death"] == round(1 / 3, 6)
    assert report["completeness"]["nhs_number"] == 1.0
    assert report["ethnicity_recorded"] == round(2 / 3, 6)
    assert report["date_range"] == {"column": "registration_start", "min": "2010-01-01",
                                    "max": "2010-01-01"}  # fmt: skip
    assert report["duplicates"] == 0


def test_reconcile_reports_each_discrepancy(tmp_path):
    result = _validate(tmp_path, "ndop", _distinct_rows("ndop"))
    results = {"ndop": result}

    assert reconcile({"files": {"ndop.csv": {"rows": 3}}}, results) == []
    assert reconcile({"files": {"ndop.csv": {"rows": 4}}}, results) == [
        "ndop.csv: the manifest says 4 rows, 3 were received"
    ]
    assert reconcile({"files": {}}, results) == ["ndop.csv was received but is not in the manifest"]
    assert reconcile({"files": {"ndop.csv": {"rows": 3}, "patients.csv": {"rows": 1},
                                "notes.txt": {"rows": 1}}}, results) == [
        "patients.csv is in the manifest but was not received",
        "the manifest lists notes.txt, which is not a source-format table",
    ]  # fmt: skip
    assert reconcile({}, results) == ["the manifest has no list of files"]


def test_the_generator_uses_the_contracts_tables_and_code_lists():
    assert synth.CODE_LISTS is sf.CODE_LISTS
    assert synth.TABLES is sf.TABLES
    assert synth.NOT_STATED is sf.NOT_STATED
    for table, schema in sf.TABLE_SCHEMAS.items():
        assert list(schema) == list(synth.TABLE_SCHEMAS[table])
        assert sf.pandas_schema(table) == dict(synth.TABLE_SCHEMAS[table])


def test_every_column_is_described_and_every_code_column_has_a_list():
    for table, columns in sf.COLUMNS.items():
        for name, column in columns.items():
            assert column.type in sf.LOGICAL_TYPES
            assert column.sensitivity in sf.SENSITIVITIES
            assert column.description
            assert (column.type == "code") == (name in sf.CODED_COLUMNS.get(table, {}))
        assert table in sf.TABLE_DESCRIPTIONS
        assert sf.MAIN_DATE[table] is None or sf.TABLE_SCHEMAS[table][sf.MAIN_DATE[table]] == "date"
    for code in sf.MEASUREMENT_RANGES:
        assert code in sf.SNOMED_CODES


# ---------------------------------------------------------------------------------------
# A real synthetic drop
# ---------------------------------------------------------------------------------------

DATE_REASON = {"before_birth": "before_birth", "after_death": "after_death",
               "future": "future_date", "end_before_start": "end_before_start"}  # fmt: skip


def _validate_drop(folder: Path, manifest: dict) -> tuple[dict, dict]:
    extract = date.fromisoformat(manifest["date_range"]["end"])
    raws, results, people = {}, {}, None
    for table in sf.TABLES:
        raws[table] = read_source_table(folder / f"{table}.csv", table)
        results[table] = validate_table(table, raws[table], extract_date=extract, people=people)
        if table == "patients":
            people = results[table].clean
    return raws, results


@pytest.fixture(scope="module")
def faulty(tmp_path_factory):
    folder = tmp_path_factory.mktemp("drop")
    drop = synth.generate(patients=3000, seed=7)
    synth.write_drop(drop, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    raws, results = _validate_drop(folder, manifest)
    return drop, manifest, raws, results


def test_synthetic_drop_reconciles_with_its_manifest(faulty):
    _, manifest, _, results = faulty

    assert reconcile(manifest, results) == []
    for result in results.values():
        assert len(result.clean) + len(result.quarantine) == result.received


def test_every_injected_fault_is_quarantined_with_the_matching_reason(faulty):
    _, manifest, _, results = faulty
    for table in sf.TABLES:
        injected, got = manifest["faults"][table], results[table].counts_by_reason
        by_reason = results[table].quarantine.groupby("reason")["column"]
        columns = {reason: set(values.dropna()) for reason, values in by_reason}
        allowed = {"invalid_nhs_number", "unknown_code", "duplicate_row", "unknown_person"}
        for kind in ("invalid_nhs_number", "unknown_code", "duplicate_row"):
            assert got.get(kind, 0) == injected[kind], (table, kind)
        if table in synth.DATE_FAULTS:
            kind, column = synth.DATE_FAULTS[table]
            reason = DATE_REASON[kind]
            allowed.add(reason)
            assert got.get(reason, 0) == injected["impossible_date"], table
            assert columns.get(reason, {column}) == {column}, table
        if table in synth.UNKNOWN_CODES:  # the first faulty column in schema order is named
            first = next(c for c in sf.TABLE_SCHEMAS[table] if c in synth.UNKNOWN_CODES[table])
            assert columns.get("unknown_code", {first}) == {first}, table
        assert set(got) <= allowed, table


def _linked(drop: synth.SyntheticDrop, results: dict) -> set[str]:
    return set(results["patients"].clean["nhs_number"])


def test_people_whose_patients_row_was_quarantined_are_unknown_elsewhere(faulty):
    drop, manifest, raws, results = faulty
    unlinked = set(drop.truth["nhs_number"]) - _linked(drop, results)
    injected = manifest["faults"]["patients"]
    assert len(unlinked) == injected["invalid_nhs_number"] + injected["impossible_date"]

    found = 0
    for table in sf.ACTIVITY_TABLES:
        raw, quarantine = raws[table], results[table].quarantine
        theirs = set(raw.loc[normalise_nhs_numbers(raw["nhs_number"]).isin(unlinked), "_row"])
        other = set(quarantine.loc[quarantine["reason"] != "unknown_person", "row"])
        unknown = set(quarantine.loc[quarantine["reason"] == "unknown_person", "row"])
        assert unknown == theirs - other, table
        found += len(unknown)
    assert found > 0


def test_events_after_death_are_found_against_the_truth(faulty):
    drop, manifest, raws, results = faulty
    raw = raws["gp_events"].assign(nhs=lambda f: normalise_nhs_numbers(f["nhs_number"]))
    deaths = drop.truth.set_index("nhs_number")["date_of_death"]
    died = pd.to_datetime(raw["nhs"].map(deaths))
    when = pd.to_datetime(raw["date"])
    after = raw[when > died]  # events after the true death: exactly the injected faults
    assert len(after) == manifest["faults"]["gp_events"]["impossible_date"]

    # Each is past the grace day and belongs to a person whose patients row is clean.
    grace = when[after.index] <= died[after.index] + pd.Timedelta(days=sf.DEATH_GRACE_DAYS)
    assert not grace.any()
    assert after["nhs"].isin(_linked(drop, results)).all()
    quarantine = results["gp_events"].quarantine
    flagged = set(quarantine.loc[quarantine["reason"] == "after_death", "row"])
    assert flagged and flagged == set(after["_row"])


def test_fault_free_drop_is_ingested_whole_and_unchanged(tmp_path):
    config = synth.SynthConfig(faults=synth.FaultRates.none())
    drop = synth.generate(patients=3000, seed=7, config=config)
    manifest = synth.write_drop(drop, tmp_path).to_dict()

    _, results = _validate_drop(tmp_path, manifest)

    assert reconcile(manifest, results) == []
    for table in sf.TABLES:
        result = results[table]
        assert result.quarantine.empty, (table, result.counts_by_reason)
        pd.testing.assert_frame_equal(result.clean.drop(columns="_row"), drop[table])
        assert np.array_equal(result.clean["_row"], np.arange(1, len(drop[table]) + 1))


def test_reasons_are_the_documented_vocabulary():
    assert set(REASONS) == {
        "invalid_nhs_number", "missing_value", "unparseable_date", "impossible_date",
        "unknown_code", "out_of_range", "duplicate_row", "unknown_person", "after_death",
        "before_birth", "future_date", "end_before_start",
    }  # fmt: skip
