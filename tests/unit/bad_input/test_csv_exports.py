"""Formula injection: every CSV the product writes from text a person entered neutralises
cells a spreadsheet would run (OWASP: a leading = + - @ tab or CR gets a single quote).
The audit export and register.csv have their own tests (tests/unit/sde); here, the shared
cell rule, the direct care list, and a guard that every CSV writer in the product uses it."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Final

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from sde.csv_safety import safe_cell
from sde.directcare import services as directcare

PREFIXES: Final = ("=", "+", "-", "@", "\t", "\r")
PAYLOAD: Final = '=HYPERLINK("http://x","y")'
ROOT: Final = Path(__file__).resolve().parents[3]
# Files that write CSV without safe_cell, and why that is right.
NO_USER_TEXT: Final = {
    "sde/data/ingestion.py": "the quarantine report: table, row number, reason code, column",
    "sde/analysis/sdelib/__init__.py": "an analysis output: released as the exact bytes reviewed",
    "sde/phm/ledger.py": "an in-memory round trip, never exported",
    "sde/views/data.py": "serves the quarantine report written by ingestion",
    "sde/api/data_views.py": "serves the quarantine report written by ingestion",
    "sde/views/directcare.py": "serves directcare.download_list (safe_cell there)",
    "sde/api/directcare_views.py": "serves directcare.download_list (safe_cell there)",
    "sde/api/analysis_views.py": "a job output's type",
    "outputs/views/downloads.py": "released files: the exact bytes reviewed",
}


@hypothesis_settings(max_examples=200, deadline=None)
@given(prefix=st.sampled_from(PREFIXES), rest=st.text(max_size=40))
def test_a_cell_a_spreadsheet_would_run_is_quoted(prefix, rest):
    assert safe_cell(prefix + rest) == "'" + prefix + rest


@hypothesis_settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=40).filter(lambda t: not t.startswith(PREFIXES)))
def test_any_other_cell_is_left_as_it_is(text):
    assert safe_cell(text) == text
    assert safe_cell(42) == 42


@pytest.mark.parametrize("prefix", PREFIXES)
def test_the_direct_care_list_neutralises_formulas_from_the_source_data(monkeypatch, prefix):
    listing = pd.DataFrame({"nhs_number": ["9434765919"], "given_name": [prefix + PAYLOAD[1:]],
                            "family_name": ["Smith"]})  # fmt: skip
    monkeypatch.setattr(directcare, "_open_list", lambda request, by, event: listing)

    text = directcare.download_list(request=None, by=None).decode()  # type: ignore[arg-type]

    (row,) = csv.DictReader(io.StringIO(text))
    assert [v for v in row.values() if v.lstrip("'").startswith(PREFIXES)] == [
        "'" + prefix + PAYLOAD[1:]
    ]


def test_every_csv_writer_in_the_product_quotes_formulas():
    """A new export must use safe_cell, or be listed with why it holds no entered text."""
    writers = re.compile(r"csv\.writer|DictWriter|\.to_csv\(|text/csv")
    unsafe = []
    for folder in ("sde", "access_requests", "outputs"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            name = str(path.relative_to(ROOT))
            text = path.read_text()
            if "synth" in path.parts or "migrations" in path.parts:
                continue
            if writers.search(text) and "safe_cell" not in text and name not in NO_USER_TEXT:
                unsafe.append(name)
    assert not unsafe, f"CSV written without safe_cell: {unsafe}"
