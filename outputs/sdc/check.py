"""Checking one output file: pick the rules by what the file is, run them, mitigate.

``check_output`` is the single entry point the release workflow and the
``check_output`` management command use. It never raises on bad input: a file it cannot
read, or whose evidence does not match it, gets a ``fail`` finding saying so, because a
checker must see why, and an unreadable file must never pass.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any, Final

from outputs.sdc import charts, files, histograms, regression, survival, tables
from outputs.sdc.evidence import (
    EvidenceError,
    consistency,
    load_sidecar,
    read_table,
    table_evidence,
)
from outputs.sdc.ledger import Ledger, differencing
from outputs.sdc.policy import Policy
from outputs.sdc.results import Finding, Mitigation, Status, Verdict
from outputs.sdc.rounding import check_rounding
from outputs.sdc.suppression import audit_suppression, mitigate


def check_output(
    name: str,
    data: bytes,
    *,
    policy: Policy,
    evidence: bytes | None = None,
    related: Mapping[str, Verdict] | None = None,
    ledger: Ledger | None = None,
) -> Verdict:
    """Check the file ``name`` with bytes ``data`` and, if it has one, its evidence
    sidecar. ``related``: verdicts of the other files of the same job, by name (a chart
    is as safe as its data table). ``ledger``: the person sets of this table and of the
    project's (then the dataset's) earlier releases, for X2; without it X2 is not
    checked, and the verdict's notes say so."""
    suffix = PurePosixPath(name).suffix.lower()
    findings: list[Finding] = list(files.check_file_type(name, data, policy))
    if any(f.status is Status.FAIL for f in findings):
        return _verdict(name, "blocked", policy, findings)
    sidecar: dict[str, Any] | None = None
    if evidence is not None:
        try:
            sidecar = load_sidecar(evidence, name)
        except EvidenceError as error:
            return _verdict(name, "unverifiable", policy, [*findings, _unverifiable(error)])
    if suffix == ".png":
        return _verdict(name, "chart", policy, [*findings, *charts.check_chart(
            name, sidecar, related or {}, policy)])  # fmt: skip
    if sidecar is None:
        return _verdict(name, "unverifiable", policy, [*findings, Finding(
            rule="evidence", status=Status.REVIEW,
            message="this file has no evidence of the people behind it, so the rules "
                    "cannot be checked; the checkers must judge it themselves",
        )])  # fmt: skip
    kind = str(sidecar.get("kind", "table"))
    try:
        if suffix not in FILES_FOR_KIND.get(kind, ()):
            raise EvidenceError(f"{name}: evidence of kind {kind!r} does not fit a {suffix} file")
        if kind != "table":
            return _verdict(name, kind, policy, [*findings, *OTHER_RULES[kind](sidecar, policy)])
        table = table_evidence(read_table(data, name), sidecar, name)
        if table.model is not None:
            findings += regression.check_model({"model": table.model}, policy)
    except EvidenceError as error:
        return _verdict(name, "unverifiable", policy, [*findings, _unverifiable(error)])
    evidence_findings = consistency(table)
    findings += evidence_findings
    findings += tables.check_table(table, policy)
    # Cells published blank (a researcher's own suppression), and a declared rounding.
    findings += audit_suppression(table, None, policy)
    findings += check_rounding(table, policy)
    notes: list[str] = []
    if ledger is not None:
        findings += differencing(table, ledger, policy)
    else:
        notes.append("differencing (X2) not checked: no ledger of earlier releases was given")
    mitigation = None
    if not evidence_findings and any(f.status is not Status.PASS for f in findings):
        mitigation = mitigate(table, findings, policy)
    return _verdict(name, "table", policy, findings, mitigation, notes)


# What each kind of evidence may describe, and the rules of the kinds that are not tables.
FILES_FOR_KIND: Final = {
    "table": (".csv",),
    "histogram": (".csv",),
    "survival": (".csv",),
    "model": (".csv", ".txt"),
}
OTHER_RULES: Final[dict[str, Callable[[Mapping[str, Any], Policy], list[Finding]]]] = {
    "histogram": histograms.check_histogram,
    "survival": survival.check_survival,
    "model": regression.check_model,
}


def _unverifiable(error: EvidenceError) -> Finding:
    return Finding(rule="evidence", status=Status.FAIL, message=str(error))


def _verdict(
    name: str,
    kind: str,
    policy: Policy,
    findings: Sequence[Finding],
    mitigation: Mitigation | None = None,
    notes: Sequence[str] = (),
) -> Verdict:
    return Verdict(
        file=name, kind=kind, policy=policy.name, policy_version=policy.version,
        findings=tuple(findings), mitigation=mitigation, notes=tuple(notes),
    )  # fmt: skip
