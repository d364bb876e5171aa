"""scripts/audit_deps.py: a known vulnerability fails the run and is named; an advisory
database that cannot be reached is reported and passes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "audit_deps", Path(__file__).resolve().parents[2] / "scripts" / "audit_deps.py"
)
assert _SPEC and _SPEC.loader
audit_deps = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(audit_deps)

CLEAN = {"name": "django", "version": "5.2.19", "vulns": []}
UNREACHABLE = {"name": "pandas", "version": "3.1.0",
               "skip_reason": "Dependency not found on PyPI and could not be audited"}  # fmt: skip
VULNERABLE = {"name": "oldlib", "version": "1.0",
              "vulns": [{"id": "PYSEC-2099-1", "fix_versions": ["1.1", "2.0"]}]}  # fmt: skip


@pytest.mark.parametrize(
    ("packages", "status", "says"),
    [
        ([CLEAN], 0, "1 audited, 0 not audited, 0 with known vulnerabilities"),
        ([CLEAN, VULNERABLE], 1, "VULNERABLE oldlib 1.0: PYSEC-2099-1 (fixed in 1.1, 2.0)"),
        ([UNREACHABLE], 0, "the advisory database could not be reached"),
        ([UNREACHABLE, VULNERABLE], 1, "VULNERABLE oldlib"),
    ],
)
def test_the_summary_fails_only_on_a_known_vulnerability(packages, status, says):
    lines, code = audit_deps.summarise({"dependencies": packages})

    assert code == status
    assert any(says in line for line in lines), lines


def test_no_report_is_reported_and_passes():
    lines, code = audit_deps.summarise({})

    assert code == 0 and "nothing was audited" in lines[0]
