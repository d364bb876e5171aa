"""A release request as ACRO's ``results.json``, so SACRO-Viewer can open it
(reference/disclosure-control.md, "Interoperability").

The structure is the one ACRO 1.0.2 writes (``acro.record.Records.finalise_json``)::

    {"version": "1.0.2",
     "tool": {"@type", "name", "url", "version"},
     "results": {uid: {"uid", "status", "type", "properties",
                       "files": [{"name", "sdc": {"summary": {check: cells},
                                                  "cells": {check: [[row, column]]}}}],
                       "outcome", "command", "summary", "timestamp", "comments",
                       "exception", "fair"}}}

Each current file of the request is one record: our outcome is its status; the rules it
did not pass are its checks (``sdc``), cell by cell; the researcher's context and
controls are its comments and their exception requests its exception; its file is named
as in the release's zip download (``job-<job id>/<name>``), so the export can be opened
beside the released files. "version" is the version of ACRO's format (SACRO-Viewer
refuses anything older than it supports), and "tool" names our checker. Nothing here is
a person id or a value of the table: findings name cells by position, and the summary
counts cells rather than quoting their messages (which can state a small count).

Cell positions are those SACRO-Viewer highlights: ``[row, column]`` where ``row`` counts
the table's data rows from 0 and ``column`` counts from the CSV's second column (ACRO's
CSVs start with the table's index, which SACRO-Viewer skips), so a finding on the CSV's
first column is at column -1. The column's position is read from the CSV's header line.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any, Final

from outputs import selectors
from outputs.models import ReleaseFile, ReleaseRequest
from outputs.sdc import CHECKER_VERSION
from sde.analysis import selectors as analysis_selectors
from sde.data.files import data_root

ACRO_FORMAT_VERSION: Final = "1.0.2"
TOOL: Final = {
    "@type": "SoftwareApplication",
    "name": "sde output checking (outputs.sdc)",
    "url": "",
    "version": CHECKER_VERSION,
}
# Our kinds of output as ACRO's output types (anything else is ACRO's "custom").
TYPES: Final = {"table": "table", "model": "regression", "histogram": "histogram",
                "survival": "survival table"}  # fmt: skip
HEADER_BYTES: Final = 64 * 1024


def acro_results(request: ReleaseRequest) -> dict[str, Any]:
    """The request's current files as ACRO 1.0.2's ``results.json`` (a dict to dump as
    JSON). Reads only the header line of each CSV, for the cells' column positions."""
    files = list(
        selectors.current_files(request)
        .select_related("job__script", "released")
        .prefetch_related("exceptions")
    )
    results = {export_uid(file): _record(file, request) for file in files}
    return {"version": ACRO_FORMAT_VERSION, "tool": dict(TOOL), "results": results}


def export_uid(file: ReleaseFile) -> str:
    """The record's key: its path with anything but letters, digits, ``_.-`` as ``_``."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", selectors.release_path(file))


def _record(file: ReleaseFile, request: ReleaseRequest) -> dict[str, Any]:
    verdict = file.verdict
    kind = str(verdict.get("kind", ""))
    failing = [f for f in verdict.get("findings", []) if f.get("status") != "pass"]
    timestamp = file.job.finished_at or request.created_at
    return {
        "uid": export_uid(file),
        "status": file.outcome,
        "type": TYPES.get(kind, "custom") if file.output_id is not None else "custom",
        "properties": _properties(file, kind),
        "files": [{"name": selectors.release_path(file), "sdc": _sdc(file, failing)}],
        "outcome": _outcome(failing),
        "command": f"job {file.job_id}: {analysis_selectors.job_title(file.job)}",
        "summary": _summary(file, kind, failing),
        "timestamp": timestamp.isoformat(),
        "comments": _comments(file),
        "exception": _exception(file),
        "fair": {},
    }


def _properties(file: ReleaseFile, kind: str) -> dict[str, Any]:
    verdict = file.verdict
    mitigation = verdict.get("mitigation") or {}
    if mitigation.get("rounding_base"):
        mitigated = f"rounding to base {mitigation['rounding_base']}"
    elif mitigation.get("primary"):
        mitigated = "suppression"
    else:
        mitigated = "none"
    return {
        "method": kind or "log",
        "mitigation": mitigated,
        "policy": verdict.get("policy", ""),
        "policy_version": verdict.get("policy_version"),
        "checker_version": verdict.get("checker_version", ""),
        "job": file.job_id,
        "output": file.output_id if file.output_id is not None else "log",
        "sha256": file.sha256,
        "size": file.size,
    }


def _sdc(file: ReleaseFile, failing: list[dict[str, Any]]) -> dict[str, Any]:
    """ACRO's per-file check results: cells per check, and their count. A log or a file
    the checks could not read has none (ACRO's custom outputs have an empty ``sdc``)."""
    if file.output_id is None:
        return {}
    columns = _columns(file)
    summary: dict[str, int] = {}
    cells: dict[str, list[list[int]]] = {}
    seen: set[tuple[str, int, int]] = set()
    for finding in failing:
        rule = str(finding["rule"])
        summary.setdefault(rule, 0)
        cells.setdefault(rule, [])
        row, column = finding.get("row"), finding.get("column")
        if row is None or column is None:
            continue
        summary[rule] += 1
        if column in columns:
            at = (rule, int(row), columns.index(column) - 1)
            if at not in seen:
                seen.add(at)
                cells[rule].append([at[1], at[2]])
    return {"summary": summary, "cells": cells}


def _columns(file: ReleaseFile) -> list[str]:
    """The CSV's header (the released copy's once released): column names only."""
    if not file.name.lower().endswith(".csv") or file.output is None:
        return []
    released = getattr(file, "released", None)
    path = (
        data_root() / released.path
        if released is not None
        else analysis_selectors.output_path(file.output)
    )
    return _header(path)


def _header(path: Path) -> list[str]:
    try:
        with path.open("rb") as handle:
            first = handle.read(HEADER_BYTES).split(b"\n", 1)[0]
    except OSError:
        return []
    try:
        return next(csv.reader(io.StringIO(first.decode("utf-8-sig").rstrip("\r"))), [])
    except (UnicodeDecodeError, csv.Error):
        return []


def _outcome(failing: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """ACRO's outcome table, column -> row -> the checks a cell failed ("T1; D1; "),
    for the cells that did not pass (ACRO lists the others as "ok"; we list only
    what the findings name)."""
    out: dict[str, dict[str, str]] = {}
    for finding in failing:
        row, column = finding.get("row"), finding.get("column")
        if row is None or column is None:
            continue
        cell = out.setdefault(str(column), {})
        checks = cell.get(str(row), "")
        if f"{finding['rule']}; " not in checks:
            cell[str(row)] = checks + f"{finding['rule']}; "
    return out


def _summary(file: ReleaseFile, kind: str, failing: list[dict[str, Any]]) -> str:
    """As ACRO summarises: the kind, then per check its status and what it found."""
    verdict = file.verdict
    lines = [f"{kind or 'log'} : {file.outcome}"]
    by_rule: dict[str, list[dict[str, Any]]] = {}
    for finding in failing:
        by_rule.setdefault(str(finding["rule"]), []).append(finding)
    for rule, status in sorted(verdict.get("rules", {}).items()):
        found = by_rule.get(rule, [])
        cells = sum(1 for f in found if f.get("row") is not None)
        what = f"{cells} cells may need suppressing" if cells else (
            found[0]["message"] if found else "see the checks")  # fmt: skip
        lines.append(f" {rule}: {status} - {what}.")
    mitigation = verdict.get("mitigation")
    if mitigation:
        lines.append(f" mitigation: {_properties(file, kind)['mitigation']} "
                     f"({mitigation.get('status')} when the rules are run again).")  # fmt: skip
    lines.extend(f" note: {note}" for note in verdict.get("notes", []))
    return "\n".join(lines) + "\n"


def _comments(file: ReleaseFile) -> list[str]:
    comments = [f"Context: {file.context}"]
    if file.controls:
        comments.append(f"Controls: {file.controls}")
    return comments


def _exception(file: ReleaseFile) -> str:
    """The researcher's exception requests, one per rule (ACRO has a single text)."""
    return "\n".join(
        f"{e.rule} ({e.get_reason_display().lower()}): {e.justification}"
        for e in file.exceptions.all()
    )
