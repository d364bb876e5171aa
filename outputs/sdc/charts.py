"""C1: a chart is as safe as the table it was drawn from, and no safer.

The checker cannot read numbers off a picture, so a chart is judged by its description
(``<chart>.chart.json``, written by ``sdelib.chart``: the chart's name, the table it was
drawn from, its kind and axes) and by the verdict on that table, which must be checked
with it (``<table>.csv`` among the same job's files). A chart without a described table
has no underlying data and fails; a plot of individuals fails unless it says it plots
aggregates; and every non-pass finding of the table becomes the chart's, at the same
status.

Decisions where the reference is silent: the chart takes the table's findings before
mitigation, because it was drawn from the table's true values; suppressing or rounding
the CSV does not change the picture (the message says to redraw it from the mitigated
table). Box and violin plots count as plots of individuals (they draw outliers and the
extremes, cf. E1). A kind the checker does not know goes to review.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any, Final

from outputs.sdc.policy import Policy
from outputs.sdc.results import Finding, Status, Verdict

# Plots that draw one mark per person (or per outlying person).
UNIT_RECORD_KINDS: Final = frozenset("scatter point strip swarm box boxplot violin".split())
AGGREGATE_KINDS: Final = frozenset(
    "bar barh column line area step pie hist histogram heatmap errorbar survival".split()
)


def check_chart(
    name: str, sidecar: dict[str, Any] | None, related: Mapping[str, Verdict], policy: Policy
) -> list[Finding]:
    """C1 for the chart file ``name``. ``sidecar``: its ``.chart.json`` (None if it has
    none); ``related``: the verdicts of the files checked with it, by file name. Never
    raises: a chart whose description cannot be used fails, saying why."""
    if sidecar is None:
        return [_fail("This chart has no underlying data: it has no description of the table "
                      "it was drawn from. Draw it with sdelib.chart from a published "
                      "table.")]  # fmt: skip
    table = sidecar.get("table")
    if not isinstance(table, str) or not table.strip():
        return [_fail("This chart has no underlying data: its description does not name the "
                      "table it was drawn from.")]  # fmt: skip
    findings = []
    chart = sidecar.get("chart")
    if chart is not None and str(chart) != PurePosixPath(name).stem:
        findings.append(_fail(f"This chart's description is of the chart {chart!r}, not of "
                              "this file.", described=str(chart)))  # fmt: skip
    kind = str(sidecar.get("kind", "")).strip().lower()
    aggregated = sidecar.get("aggregated") is True
    if kind in UNIT_RECORD_KINDS and not aggregated:
        findings.append(_fail(f"A {kind} plot draws individual people; plot aggregates (and "
                              'say "aggregated": true) instead.', kind=kind))  # fmt: skip
    elif kind not in UNIT_RECORD_KINDS | AGGREGATE_KINDS:
        findings.append(Finding(
            rule="C1", status=Status.REVIEW, evidence={"kind": kind},
            message=f"The checker does not know charts of kind {kind or 'unstated'!r}; the "
                    "checkers must judge whether it shows individuals",
        ))  # fmt: skip
    file, verdict = _table_verdict(name, table, related)
    if verdict is None:
        findings.append(_fail(f"This chart has no underlying data: its table {file} was not "
                              "checked with it. Release the table together with the chart.",
                              table=file))  # fmt: skip
        return findings
    return findings + _inherited(file, verdict)


def _table_verdict(
    name: str, table: str, related: Mapping[str, Verdict]
) -> tuple[str, Verdict | None]:
    """The verdict on the chart's table: ``<table>.csv`` beside the chart, or by bare name."""
    file = table if table.lower().endswith(".csv") else f"{table}.csv"
    parent = PurePosixPath(name).parent
    beside = (parent / file).as_posix()
    for candidate in (beside, file):
        if candidate in related:
            return candidate, related[candidate]
    return file, None


def _inherited(file: str, verdict: Verdict) -> list[Finding]:
    """The table's non-pass findings as the chart's, at their own status (so the chart's
    status is at least the table's outcome) and on the same cells."""
    mitigated = (
        verdict.mitigation is not None and verdict.mitigation.status is Status.PASS
    )  # fmt: skip
    advice = "; redraw the chart from the mitigated table" if mitigated else ""
    return [
        Finding(
            rule="C1", status=f.status, row=f.row, column=f.column, cell=f.cell,
            message=f"The chart's data table {file} "
                    f"{'fails' if f.status is Status.FAIL else 'needs review under'} "
                    f"{f.rule}: {f.message}{advice}",
            evidence={**f.evidence, "table": file, "rule": f.rule},
        )
        for f in verdict.findings
        if f.status is not Status.PASS
    ]  # fmt: skip


def _fail(message: str, **evidence: object) -> Finding:
    return Finding(rule="C1", status=Status.FAIL, message=message, evidence=evidence)
