"""What the researcher's and the checker's pages share: the person, the words for each
status and outcome, and the findings of a file as the pages list them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any, Final

from django.http import HttpRequest

from outputs import selectors
from outputs.models import ReleaseFile, ReleaseRequest
from sde.identity.models import User

S = ReleaseRequest.Status
# Output checking's service level: a decision within 5 working days of submission.
SLA_WORKING_DAYS: Final = 5
STATUS_TAGS: Final = {
    S.DRAFT: "grey", S.SUBMITTED: "blue", S.PARTIALLY_REVIEWED: "blue", S.REVIEWED: "blue",
    S.APPROVED: "green", S.RELEASED: "green", S.RETURNED: "yellow", S.REJECTED: "red",
    S.WITHDRAWN: "grey", S.REVOKED: "red",
}  # fmt: skip
OUTCOME_TAGS: Final = {"pass": "green", "review": "yellow", "fail": "red"}
OUTCOME_TEXT: Final = {"pass": "Pass", "review": "Review", "fail": "Fail"}


def user_of(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def sentence(error: Exception) -> str:
    text = str(error)
    return f"{text[:1].upper()}{text[1:]}{'' if text.endswith('.') else '.'}"


def working_days_since(start: date, today: date) -> int:
    """Monday-to-Friday days from ``start`` to ``today`` (bank holidays not known here)."""
    days, day = 0, start
    while day < today:
        day += timedelta(days=1)
        days += day.weekday() < 5
    return days


def where(finding: Mapping[str, Any]) -> str:
    """Where a finding is, in words: "Row 2 (sex M), people", or "The whole file"."""
    parts = []
    if finding.get("row") is not None:
        cell = finding.get("cell") or {}
        named = ", ".join(f"{k} {v}" for k, v in cell.items())
        parts.append(f"Row {int(finding['row']) + 1}" + (f" ({named})" if named else ""))
    elif finding.get("cell"):
        parts.append(", ".join(f"{k} {v}" for k, v in finding["cell"].items()))
    if finding.get("column"):
        parts.append(str(finding["column"]))
    return ", ".join(parts) or "The whole file"


def evidence_text(evidence: Mapping[str, Any]) -> str:
    return "; ".join(f"{k.replace('_', ' ')}: {v}" for k, v in evidence.items())


def findings_of(file: ReleaseFile, *, values: bool = True) -> list[dict[str, Any]]:
    """The findings that did not pass, as the pages list them (``values``: see
    ``selectors.findings_shown``)."""
    return [
        {**f, "where": where(f), "evidence_text": evidence_text(f.get("evidence") or {})}
        for f in selectors.findings_shown(file, values=values)
    ]


def rules_of(file: ReleaseFile) -> list[dict[str, str]]:
    return [
        {"rule": rule, "status": status, "tag": OUTCOME_TAGS.get(status, "grey")}
        for rule, status in sorted(file.verdict.get("rules", {}).items())
    ]
