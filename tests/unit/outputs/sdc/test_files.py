"""F1: blocked file types by name and by content, microdata-looking CSVs, and what goes to
review."""

import gzip
import io
import pickle
import sqlite3
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from outputs.sdc.files import check_file_type
from outputs.sdc.policy import Policy
from outputs.sdc.results import Status

POLICY = Policy()


def _png(*chunks: tuple[bytes, bytes]) -> bytes:
    """A 1x1 grey PNG, with extra chunks before the image data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
    extra = b"".join(chunk(kind, body) for kind, body in chunks)
    return (
        b"\x89PNG\r\n\x1a\n" + header + extra + chunk(b"IDAT", zlib.compress(b"\x00\x80"))
        + chunk(b"IEND", b"")
    )  # fmt: skip


def _csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def _parquet() -> bytes:
    buffer = io.BytesIO()
    pd.DataFrame({"person_id": ["a", "b"], "age": [40, 50]}).to_parquet(buffer)
    return buffer.getvalue()


def _feather() -> bytes:
    buffer = io.BytesIO()
    pd.DataFrame({"age": [40, 50]}).to_feather(buffer)
    return buffer.getvalue()


def _sqlite(tmp_path: Path) -> bytes:
    path = tmp_path / "cohort.db"
    with sqlite3.connect(path) as connection:
        connection.execute("create table people (person_id text)")
    return path.read_bytes()


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("rows.csv", "person_id,age\na,40\n")
    return buffer.getvalue()


def _npy() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.arange(5))
    return buffer.getvalue()


def _npz() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, ages=np.arange(5))
    return buffer.getvalue()


def _stata(version: int) -> bytes:
    buffer = io.BytesIO()
    pd.DataFrame({"age": [40.0, 50.0]}).to_stata(buffer, write_index=False, version=version)
    return buffer.getvalue()


CONTENTS = {
    "pickle protocol 2": (lambda _: pickle.dumps({"rows": [1, 2]}, protocol=2), "pickle"),
    "pickle protocol 5": (lambda _: pickle.dumps({"rows": [1, 2]}, protocol=5), "pickle"),
    "parquet": (lambda _: _parquet(), "columnar"),
    "feather": (lambda _: _feather(), "columnar"),
    "sqlite": (_sqlite, "database"),
    "zip": (lambda _: _zip(), "archive"),
    "gzip": (lambda _: gzip.compress(b"person_id,age\na,40\n"), "archive"),
    "npy": (lambda _: _npy(), "numpy"),
    "npz": (lambda _: _npz(), "archive"),
    "stata 114": (lambda _: _stata(114), "stats"),
    "stata 118": (lambda _: _stata(118), "stats"),
    "hdf5": (lambda _: b"\x89HDF\r\n\x1a\n" + b"\x00" * 100, "hdf5"),
    "hdf5 after a user block": (lambda _: b"\x00" * 512 + b"\x89HDF\r\n\x1a\n", "hdf5"),
    "spss": (lambda _: b"$FL2@(#) SPSS DATA FILE", "stats"),
    "rdata": (lambda _: b"RDX3\nX\n\x00\x00\x00\x03", "r"),
    "ole2 xls": (lambda _: b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 50, "office"),
    "pdf": (lambda _: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "pdf"),
    "eps": (lambda _: b"%!PS-Adobe-3.0 EPSF-3.0\n", "vector"),
    "svg": (lambda _: b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>',
            "vector"),
    "svg with a bom": (lambda _: b"\xef\xbb\xbf  <svg width='10'></svg>", "vector"),
    "html": (lambda _: b"<!DOCTYPE html><html><script>var data=[1,2]</script></html>", "html"),
}  # fmt: skip


@pytest.mark.parametrize("kind", CONTENTS)
@pytest.mark.parametrize("name", ["table.csv", "chart.png", "notes.txt", "result"])
def test_blocked_content_fails_whatever_the_file_is_called(kind, name, tmp_path):
    make, category = CONTENTS[kind]

    findings = check_file_type(name, make(tmp_path), POLICY)

    assert [(f.rule, f.status) for f in findings] == [("F1", Status.FAIL)]
    assert findings[0].evidence["detected"] == category


@pytest.mark.parametrize(
    ("name", "category"),
    [("plot.svg", "vector"), ("plot.eps", "vector"), ("report.pdf", "pdf"),
     ("model.pkl", "pickle"), ("model.joblib", "pickle"), ("rows.parquet", "columnar"),
     ("rows.feather", "columnar"), ("cohort.sqlite", "database"), ("data.h5", "hdf5"),
     ("tables.xlsx", "office"), ("arrays.npz", "numpy"), ("frame.rds", "r"),
     ("frame.RData", "r"), ("survey.dta", "stats"), ("survey.sav", "stats"),
     ("survey.sas7bdat", "stats"), ("bundle.zip", "archive"), ("chart.html", "html")],
)  # fmt: skip
def test_blocked_extensions_fail_even_when_the_content_is_plain_text(name, category):
    findings = check_file_type(name, b"sex,persons\nF,12\n", POLICY)

    assert [(f.status, f.evidence["detected"]) for f in findings] == [(Status.FAIL, category)]


def test_a_well_formed_png_passes_f1_for_the_chart_rule_to_judge():
    assert check_file_type("chart.png", _png((b"tEXt", b"Software\x00matplotlib")), POLICY) == []


def test_a_chart_drawn_by_matplotlib_passes_f1():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots()
    axes.bar(["F", "M"], [12, 15])
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    pyplot.close(figure)

    assert check_file_type("chart.png", buffer.getvalue(), POLICY) == []


def test_a_png_with_a_file_hidden_after_its_end_fails():
    findings = check_file_type("chart.png", _png() + _zip(), POLICY)

    assert [f.status for f in findings] == [Status.FAIL]
    assert findings[0].evidence["trailing_bytes"] == len(_zip())


@pytest.mark.parametrize("data", [_png()[:-12], _png()[:40], b"sex,persons\nF,12\n"])
def test_a_png_that_is_cut_short_or_not_a_png_fails(data):
    assert [f.status for f in check_file_type("chart.png", data, POLICY)] == [Status.FAIL]


@pytest.mark.parametrize(("size", "status"), [(1024, None), (1025, Status.REVIEW)])
def test_a_png_carrying_more_than_a_little_embedded_text_goes_to_review(size, status):
    body = b"Comment\x00" + b"x" * (size - 8)

    findings = check_file_type("chart.png", _png((b"tEXt", body)), POLICY)

    assert [f.status for f in findings] == ([status] if status else [])


def _rows(n: int) -> bytes:
    return ("age,persons\n" + "".join(f"{i % 90},{i % 50 + 10}\n" for i in range(n))).encode()


@pytest.mark.parametrize(("rows", "status"), [(4999, None), (5000, None), (5001, Status.FAIL)])
def test_a_csv_longer_than_the_policy_allows_looks_like_microdata(rows, status):
    findings = check_file_type("table.csv", _rows(rows), POLICY)

    assert [f.status for f in findings] == ([status] if status else [])
    if status:
        assert "looks like microdata" in findings[0].message
        assert findings[0].evidence == {"rows": rows, "limit": 5000}


def test_the_row_limit_comes_from_the_policy():
    findings = check_file_type("table.csv", _rows(21), Policy(max_csv_rows=20))

    assert findings[0].evidence == {"rows": 21, "limit": 20}


@pytest.mark.parametrize(("rows", "status"), [(5000, None), (5001, Status.FAIL)])
def test_rows_are_counted_as_records_when_quoted_fields_hold_line_breaks(rows, status):
    # 2 lines per record: the line count alone would wrongly refuse 5,000 records.
    data = ("note,persons\n" + '"first\nsecond",12\n' * rows).encode()

    findings = check_file_type("table.csv", data, POLICY)

    assert [f.status for f in findings] == ([status] if status else [])
    if status:
        assert findings[0].evidence["rows"] == rows


def test_rows_ending_in_carriage_returns_alone_are_counted():
    data = _rows(5001).replace(b"\n", b"\r")

    assert check_file_type("table.csv", data, POLICY)[0].evidence["rows"] == 5001


def test_blank_lines_do_not_count_as_rows():
    data = _rows(4000).replace(b"\n", b"\n\n")

    assert check_file_type("table.csv", data, POLICY) == []


def test_a_csv_that_is_not_utf8_fails_naming_the_line():
    data = "place,persons\nLeeds,12\nGöteborg,15\n".encode("latin-1")

    findings = check_file_type("table.csv", data, POLICY)

    assert [f.status for f in findings] == [Status.FAIL]
    assert "not UTF-8" in findings[0].message and "line 3" in findings[0].message


def test_a_csv_with_a_utf8_byte_order_mark_is_read():
    assert check_file_type("table.csv", "\ufeffsex,persons\nF,12\n".encode(), POLICY) == []


def _people(n: int, column: str = "person_id", values: list[str] | None = None) -> bytes:
    values = values or [f"p{i:04d}" for i in range(n)]
    return _csv(pd.DataFrame({column: values, "age": [40] * n}))


@pytest.mark.parametrize(("rows", "status"), [(9, None), (10, Status.FAIL), (11, Status.FAIL)])
def test_a_column_of_person_ids_looks_like_microdata_from_the_threshold(rows, status):
    findings = check_file_type("table.csv", _people(rows), POLICY)

    assert [f.status for f in findings] == ([status] if status else [])
    if status:
        assert findings[0].column == "person_id"
        assert findings[0].evidence == {"rows": rows, "distinct": rows}


@pytest.mark.parametrize(
    "column", ["person_id", "PatientID", "patient_number", "nhs_number", "NHS No", "id",
               "pseudonym", "subject-id"],
)  # fmt: skip
def test_identifier_names_are_recognised(column):
    assert check_file_type("table.csv", _people(12, column), POLICY)[0].column == column


def test_repeated_person_ids_still_look_like_microdata():
    # Rows of events repeat their person: 12 people, two rows each.
    data = _people(24, values=[f"p{i % 12:04d}" for i in range(24)])

    assert check_file_type("table.csv", data, POLICY)[0].evidence == {"rows": 24, "distinct": 12}


def _nhs_number(stem: int) -> str:
    digits = [int(d) for d in f"{stem:09d}"]
    check = (11 - sum(d * w for d, w in zip(digits, range(10, 1, -1), strict=True)) % 11) % 11
    return f"{stem:09d}{check}"


def _valid_nhs_numbers(n: int) -> list[str]:
    numbers = (_nhs_number(stem) for stem in range(943476500, 943477000))
    return [number for number in numbers if len(number) == 10][:n]


@pytest.mark.parametrize(
    "values",
    [[f"{i:064x}" for i in range(12)],  # pseudonyms: 64 hex digits
     [f"123e4567-e89b-12d3-a456-{i:012d}" for i in range(12)],
     _valid_nhs_numbers(12)],
    ids=["pseudonyms", "uuids", "nhs numbers"],
)  # fmt: skip
def test_identifier_shaped_values_look_like_microdata_whatever_the_column_is_called(values):
    findings = check_file_type("table.csv", _people(12, "key", values), POLICY)

    assert [(f.status, f.column) for f in findings] == [(Status.FAIL, "key")]


def test_ten_digit_codes_that_are_not_nhs_numbers_are_not_identifiers():
    values = [f"{_nhs_number(s)[:9]}{(int(_nhs_number(s)[9]) + 1) % 10}"
              for s in range(943476500, 943476512)]  # fmt: skip

    assert check_file_type("table.csv", _people(12, "code", values), POLICY) == []


@pytest.mark.parametrize(
    ("column", "values"),
    [("place", [f"Place {c}" for c in "ABCDEFGHIJKL"]),
     ("practice_code", [f"B8600{i}" for i in range(10)] + ["B86010", "B86011"]),
     ("practice_id", [f"Y0{i:04d}" for i in range(12)]),
     ("snomed_code", [str(1240751000000100 + i) for i in range(12)]),
     ("persons", [str(10 + i) for i in range(12)]),
     ("period", [f"FY2019_20_Q{i}" for i in range(12)])],
)  # fmt: skip
def test_all_different_dimensions_and_counts_of_an_aggregate_table_pass(column, values):
    assert check_file_type("table.csv", _people(12, column, values), POLICY) == []


def test_a_tab_separated_table_is_checked_like_a_csv():
    data = _people(10).replace(b",", b"\t")

    assert check_file_type("table.tsv", data, POLICY)[0].column == "person_id"


def test_an_empty_csv_passes():
    assert check_file_type("table.csv", b"", POLICY) == []


@pytest.mark.parametrize(
    ("name", "data", "words"),
    [("analysis.ipynb", b'{"cells": []}', "notebook"), ("job.log", b"started\n", "log"),
     ("stderr", b"Traceback\n", "log"), ("summary.txt", b"An answer.\n", "Free text"),
     ("README.md", b"# Results\n", "Free text"), ("model.json", b"{}", "does not know"),
     ("chart.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF", "not a PNG")],
)  # fmt: skip
def test_files_only_a_person_can_judge_go_to_review(name, data, words):
    findings = check_file_type(name, data, POLICY)

    assert [(f.rule, f.status) for f in findings] == [("F1", Status.REVIEW)]
    assert words in findings[0].message


def test_a_text_file_that_merely_starts_like_a_bitmap_is_free_text():
    findings = check_file_type("bmi.txt", b"BMI rose in every Place.\n", POLICY)

    assert "Free text" in findings[0].message


@pytest.mark.parametrize("name", ["summary.txt", "notes.md", "output.bin", "job.log"])
def test_an_unrecognised_binary_fails(name):
    findings = check_file_type(name, b"\x00\x01\x02\xff\xfe" * 20, POLICY)

    assert [f.status for f in findings] == [Status.FAIL]
    assert "binary" in findings[0].message


def test_a_huge_plain_csv_is_refused_from_its_line_count_without_parsing(monkeypatch):
    def no_parsing(*args, **kwargs):
        raise AssertionError("the file was parsed")

    monkeypatch.setattr(pd, "read_csv", no_parsing)

    findings = check_file_type("table.csv", _rows(200_000), POLICY)

    assert findings[0].evidence == {"rows": 200_000, "limit": 5000}


def test_an_evidence_sidecar_is_never_released():
    findings = check_file_type("counts.evidence.json", b'{"cells": []}', POLICY)

    assert [(f.status, f.evidence["detected"]) for f in findings] == [(Status.FAIL, "evidence")]


def test_a_chart_description_is_left_to_the_checkers():
    findings = check_file_type("people.chart.json", b'{"table": "counts"}', POLICY)

    assert [f.status for f in findings] == [Status.REVIEW]


def test_a_non_utf8_byte_after_a_character_split_between_read_blocks_is_found():
    # Reading goes in 1 MiB blocks; "é" straddles the first boundary.
    data = b"a,b\n" + b"1" * ((1 << 20) - 5) + "é".encode() + b",\xff\n"

    findings = check_file_type("table.csv", data, POLICY)

    assert "byte 0xff on line 2" in findings[0].message
