"""ACRO 1.0.2 and our checker, side by side, on the same generated microdata.

ACRO runs once, in its own environment, on every spec of ``microdata.SPECS`` (one
runner call: starting ACRO takes seconds); its verdicts come from ACRO through
``acro_runner.py``, never from this file. Our side builds each table from the same rows
as the environment does (``sde.phm.evidence``), writes the CSV and its sidecar, and runs
``check_output`` under ``acro-default`` (models: ``check_model`` on ``model_evidence``).

What is asserted:

1. Every cell ACRO flags, we flag at least as severely (pass < review < fail; any rule),
   except the reviewed false positives listed in ``acro_false_positives.md``. Every entry
   there must still be needed, so the list cannot rot. The same holds per output.
2. Exact agreement, rule by rule, wherever ACRO's rows are people: threshold (T1/T2),
   zeros (T2), dominance (D1), p% (D2), a standard deviation's degrees of freedom (S1),
   at the planted boundaries (9/10/11 people, shares 0.8999/0.9/0.9001, p-ratios
   0.0999/0.1/0.1001, residual dof 9/10/11) and on every other cell.
3. The holes ACRO 1.0.2 leaves open are caught by ours: min/max (E1), an all-same mode
   (O1), one person with ten rows (T1), survival steps (K1), suppression undone by a
   second table (X1) and differencing across releases (X2).
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from outputs.sdc.check import check_output
from outputs.sdc.evidence import read_table, table_evidence
from outputs.sdc.ledger import Ledger, LedgerTable
from outputs.sdc.policy import PRESETS
from outputs.sdc.regression import check_model, model_evidence
from outputs.sdc.results import Finding, Status, Verdict, worst
from outputs.sdc.suppression import audit_suppression
from sde.phm.evidence import ResultTable, count_table, magnitude_table, statistic_table
from tests.parity.acro_env import AcroUnavailable, run_acro
from tests.parity.microdata import (
    LOGIT_ROWS,
    MODEL_SPECS,
    OLS_ROWS,
    SCORE_BINS,
    SPECS,
    TABLE_SPECS,
    make_microdata,
)

pytestmark = pytest.mark.parity

POLICY = PRESETS["acro-default"]
FALSE_POSITIVES = Path(__file__).with_name("acro_false_positives.md")
STATUS = {"pass": Status.PASS, "review": Status.REVIEW, "fail": Status.FAIL}
Key = tuple[tuple[str, str], ...]
# ACRO's check -> the rules of ours that check the same thing. ACRO's threshold also
# fails an empty cell, which is our zeros rule's (T1 leaves a cell of no one to T2).
SAME_RULE: dict[str, frozenset[str]] = {
    "MinimumThresholdCheck": frozenset({"T1", "T2", "H1"}),
    "PresenceOfZeroCheck": frozenset({"T2"}),
    "NKCheck": frozenset({"D1"}),
    "PPercentCheck": frozenset({"D2"}),
    "MinimumDoFCheck": frozenset({"S1", "T2", "M1"}),
}


# --- Both sides ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def microdata() -> pd.DataFrame:
    return make_microdata()


@pytest.fixture(scope="module")
def acro(tmp_path_factory: pytest.TempPathFactory, microdata: pd.DataFrame) -> dict[str, Any]:
    """ACRO's response for every spec, by output id (one runner call), or a skip."""
    workdir = tmp_path_factory.mktemp("acro-parity")
    data = workdir / "microdata.parquet"
    microdata.to_parquet(data)
    try:
        response = run_acro({"data": str(data), "outputs": SPECS}, workdir=workdir)
    except AcroUnavailable as exc:
        pytest.skip(f"ACRO parity harness skipped: {exc}")
    assert response["acro_version"] == "1.0.2"
    errors = {k: v["error"]["message"] for k, v in response["outputs"].items() if v["error"]}
    assert errors == {}
    return response["outputs"]


def dims_of(spec: Mapping[str, Any]) -> list[str]:
    return [*spec.get("index", []), *spec.get("columns", [])]


def our_table(rows: pd.DataFrame, spec: Mapping[str, Any]) -> ResultTable:
    """The table ``spec`` asks for, built as the environment builds it."""
    by, name, aggfunc = dims_of(spec), spec["id"], spec.get("aggfunc")
    if aggfunc is None:
        return count_table(rows, name=name, title=name, by=by)
    if aggfunc in {"sum", "mean"}:
        return magnitude_table(rows, name=name, title=name, by=by, value=spec["values"],
                               statistic=aggfunc)  # fmt: skip
    return statistic_table(rows, name=name, title=name, by=by, value=spec["values"],
                           statistic=aggfunc)  # fmt: skip


def check_result(result: ResultTable, **options: Any) -> Verdict:
    """``check_output`` on the CSV and sidecar the job would write for ``result``."""
    csv = result.frame.to_csv(index=False).encode()
    sidecar = json.dumps(result.sidecar()).encode()
    return check_output(f"{result.name}.csv", csv, policy=POLICY, evidence=sidecar, **options)


def histogram_evidence(rows: pd.DataFrame, column: str, bins: int) -> dict[str, Any]:
    """What the environment records for a histogram of ``column``: one value per person,
    ACRO's edges (``np.histogram_bin_edges``: from the minimum to the maximum), and the
    people per bin with the last bin closed, as ``np.histogram`` counts them."""
    values = rows.drop_duplicates("person_id")[column].to_numpy(dtype=float)
    edges = np.histogram_bin_edges(values, bins)
    persons, _ = np.histogram(values, edges)
    return {"kind": "histogram", "column": column, "edges": edges.tolist(),
            "persons": persons.tolist(), "data_min": float(values.min()),
            "data_max": float(values.max()), "edges_rounded": False}  # fmt: skip


def survival_evidence(rows: pd.DataFrame, time: str, event: str) -> dict[str, Any]:
    """Kaplan-Meier steps over people (``outputs.sdc.survival``'s format): at every
    distinct time, the people at risk just before it, with the event at it, and censored
    at it. ``sde.phm`` has no survival builder yet, so it is computed here."""
    people = rows.drop_duplicates("person_id")
    steps = people.groupby(time, sort=True)[event].agg(events="sum", leaving="size")
    at_risk = steps["leaving"][::-1].cumsum()[::-1]
    return {"kind": "survival", "steps": [
        {"time": float(t), "at_risk": int(n), "events": int(d), "censored": int(m - d)}
        for t, n, d, m in zip(steps.index, at_risk, steps["events"], steps["leaving"],
                              strict=True)
    ]}  # fmt: skip


def check_sidecar(name: str, sidecar: Mapping[str, Any]) -> Verdict:
    table = pd.DataFrame(sidecar.get("steps") or {"people": sidecar.get("persons", [])})
    return check_output(name, table.to_csv(index=False).encode(), policy=POLICY,
                        evidence=json.dumps(sidecar).encode())  # fmt: skip


def model_findings(rows: pd.DataFrame, spec: Mapping[str, Any]) -> tuple[dict[str, Any], list]:
    """Our model evidence and M1-M4 for ``"y ~ a + b"`` fitted with an intercept."""
    outcome, terms = (part.strip() for part in spec["formula"].split("~"))
    design = rows[[term.strip() for term in terms.split("+")]]
    evidence = model_evidence(design, rows[outcome], rows["person_id"], family=spec["kind"],
                              intercept=True)  # fmt: skip
    return evidence, check_model({"kind": "model", "model": evidence}, POLICY)


@dataclass(frozen=True)
class Ours:
    """Our verdict on one output and the dimensions its cells are named by."""

    status: Status
    findings: tuple[Finding, ...]
    dims: tuple[str, ...]
    verdict: Verdict | None = None


@pytest.fixture(scope="module")
def ours(microdata: pd.DataFrame) -> dict[str, Ours]:
    out: dict[str, Ours] = {}
    for spec in TABLE_SPECS:
        verdict = check_result(our_table(microdata, spec))
        out[spec["id"]] = Ours(verdict.status, verdict.findings, tuple(dims_of(spec)), verdict)
    for spec in MODEL_SPECS:
        _, findings = model_findings(microdata, spec)
        out[spec["id"]] = Ours(worst(findings), tuple(findings), ())
    histogram = check_sidecar("score_hist.csv", histogram_evidence(microdata, "score", SCORE_BINS))
    out["score_hist"] = Ours(histogram.status, histogram.findings, ("bin",), histogram)
    for name in ("safe", "tail"):
        sidecar = survival_evidence(microdata, f"time_{name}", f"event_{name}")
        verdict = check_sidecar(f"survival_{name}.csv", sidecar)
        out[f"survival_{name}"] = Ours(verdict.status, verdict.findings, ("time",), verdict)
    return out


# --- Lining cells up ----------------------------------------------------------------------
def key(dims: Mapping[str, Any]) -> Key:
    """A cell by its dimension values as text, as ACRO's runner writes labels."""
    return tuple(sorted((str(d), _text(v)) for d, v in dims.items()))


def _text(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def grid(frame: Mapping[str, Any], output: Mapping[str, Any]) -> Iterator[tuple[Key, Any]]:
    """Every cell of a runner frame (a table, a mask) with its key. A histogram's masks
    are keyed by ACRO's 1-based bin id; ours by the 0-based bin."""
    if output["kind"] == "hist":
        for (label,), (value,) in zip(frame["index"], frame["data"], strict=True):
            yield key({"bin": int(label) - 1}), value
        return
    names = [*frame["index_names"], *frame["column_names"]]
    for labels, row in zip(frame["index"], frame["data"], strict=True):
        for column, value in zip(frame["columns"], row, strict=True):
            yield key(dict(zip(names, [*labels, *column], strict=True))), value


def acro_checks(output: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """ACRO's checks of an output by name: ``{"status": Status, "outcome": frame}``."""
    return {
        name: {"status": STATUS[check["status"]], "outcome": check["outcome"]}
        for analysis in output["checks"]
        for name, check in analysis["checks"].items()
    }


def acro_flags(output: Mapping[str, Any]) -> dict[Key, dict[str, Status]]:
    """Per cell ACRO flags, the checks flagging it and each check's status: the record's
    per-cell outcome for tables; for a histogram (which has none) the checks' masks."""
    checks = acro_checks(output)
    flags: dict[Key, dict[str, Status]] = {}
    if output["outcome"] is not None:
        for cell, tokens in grid(output["outcome"], output):
            if tokens:
                flags[cell] = {t: checks.get(t, {"status": Status.FAIL})["status"] for t in tokens}
    elif output["kind"] == "hist":
        for name, check in checks.items():
            for cell, value in grid(check["outcome"] or {"index": [], "data": []}, output):
                if value is True:
                    flags.setdefault(cell, {})[name] = check["status"]
    return flags


def our_cells(result: Ours) -> dict[Key, list[Finding]]:
    """Our findings about each cell (any rule, any statistic column of that cell)."""
    cells: dict[Key, list[Finding]] = {}
    for finding in result.findings:
        if result.dims and set(result.dims) <= set(finding.cell):
            cell = key({d: finding.cell[d] for d in result.dims})
            cells.setdefault(cell, []).append(finding)
    return cells


def cell_of(**dims: Any) -> Key:
    return key(dims)


def rules_at(result: Ours, cell: Key, status: Status = Status.FAIL) -> set[str]:
    return {f.rule for f in our_cells(result).get(cell, []) if f.status >= status}


def acro_value(frame: Mapping[str, Any], output: Mapping[str, Any], cell: Key) -> Any:
    return dict(grid(frame, output))[cell]


# --- The reviewed false positives ---------------------------------------------------------
@dataclass(frozen=True)
class FalsePositive:
    """A row of the table in ``acro_false_positives.md``. ``condition``: ``whole output``
    (ACRO's verdict on the output, which flags no cell) or ``<fact> <op> <number>`` about
    the cell, with the fact taken from ACRO's own evidence (``dof``: the degrees of
    freedom ACRO computed for the cell)."""

    id: str
    output: str
    check: str
    condition: str
    acro_says: str

    def excuses_cell(self, output: Mapping[str, Any], check: str, cell: Key) -> bool:
        if (self.output, self.check) != (output["id"], check) or self.condition == "whole output":
            return False
        fact, op, number = self.condition.split()
        compare: Callable[[float, float], bool] = OPERATORS[op]
        return compare(float(CELL_FACTS[fact](output, cell)), float(number))


OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq,
}  # fmt: skip
CELL_FACTS: dict[str, Callable[[Mapping[str, Any], Key], Any]] = {
    "dof": lambda output, cell: acro_value(
        acro_checks(output)["MinimumDoFCheck"]["outcome"], output, cell
    ),
}
FACTS = "|".join(CELL_FACTS)
CONDITION = re.compile(rf"^(whole output|({FACTS}) (>=|>|<=|<|==) -?\d+(\.\d+)?)$")


def read_false_positives() -> list[FalsePositive]:
    """The rows of the false-positive table (lines starting ``| FP``)."""
    entries = []
    for line in FALSE_POSITIVES.read_text(encoding="utf-8").splitlines():
        if not line.startswith("| FP"):
            continue
        fields = [field.strip().strip("`") for field in line.strip().strip("|").split("|")]
        identifier, output, check, condition, acro_says = fields[:5]
        assert CONDITION.match(condition), f"{identifier}: unreadable condition {condition!r}"
        entries.append(FalsePositive(identifier, output, check, condition, acro_says))
    return entries


@dataclass(frozen=True)
class Comparison:
    """One ACRO-flagged cell (or a whole output: ``cell`` None) beside ours. ``acro``:
    the checks flagging it and their statuses; ``excused``: (false positive, check) pairs
    of the reviewed list that apply to it."""

    output: str
    cell: Key | None
    acro: Mapping[str, Status]
    ours: Status
    our_rules: frozenset[str]
    excused: frozenset[tuple[str, str]]

    @property
    def acro_status(self) -> Status:
        return max(self.acro.values(), default=Status.PASS)

    @property
    def unexcused_status(self) -> Status:
        """ACRO's status counting only the checks no listed false positive covers."""
        excused = {check for _, check in self.excused}
        return max((s for c, s in self.acro.items() if c not in excused), default=Status.PASS)

    def describe(self) -> str:
        where = "the whole output" if self.cell is None else dict(self.cell)
        acro = ", ".join(f"{c} ({s})" for c, s in self.acro.items())
        rules = ", ".join(sorted(self.our_rules)) or "nothing"
        return f"{self.output} {where}: ACRO {acro}; ours {self.ours} ({rules})"


def compare(
    acro: Mapping[str, Any], ours: Mapping[str, Ours], false_positives: Sequence[FalsePositive]
) -> list[Comparison]:
    """Every ACRO flag beside ours: per flagged cell, and per output (ACRO's failing and
    review checks against our verdict's status)."""
    out = []
    for output_id, result in ours.items():
        output, cells = acro[output_id], our_cells(result)
        for cell, checks in acro_flags(output).items():
            findings = cells.get(cell, [])
            excused = frozenset(
                (fp.id, check)
                for check in checks
                for fp in false_positives
                if fp.excuses_cell(output, check, cell)
            )
            rules = frozenset(f.rule for f in findings if f.status)
            out.append(Comparison(output_id, cell, checks, worst(findings), rules, excused))
        failing = {name: c["status"] for name, c in acro_checks(output).items() if c["status"]}
        excused = frozenset(
            (fp.id, fp.check)
            for fp in false_positives
            if fp.output == output_id and fp.condition == "whole output" and fp.check in failing
        )
        rules = frozenset(f.rule for f in result.findings if f.status)
        out.append(Comparison(output_id, None, failing, result.status, rules, excused))
    return out


@pytest.fixture(scope="module")
def comparisons(acro: dict[str, Any], ours: dict[str, Ours]) -> list[Comparison]:
    return compare(acro, ours, read_false_positives())


# --- 1. At least as severe, except reviewed false positives ----------------------------------
def test_every_cell_acro_flags_we_flag_at_least_as_severely(
    comparisons: list[Comparison],
) -> None:
    weaker = [c for c in comparisons if c.ours < c.unexcused_status]
    print("\n" + summary(comparisons))
    assert not weaker, "ours is weaker than ACRO 1.0.2 on:\n" + "\n".join(
        c.describe() for c in weaker
    )


def test_every_listed_false_positive_is_still_needed(comparisons: list[Comparison]) -> None:
    """An entry whose cells we now flag as severely as ACRO (or that ACRO no longer flags)
    is stale: it must be deleted, so the list only ever excuses real disagreements."""
    needed = {fp for c in comparisons for fp, check in c.excused if c.ours < c.acro[check]}
    listed = {fp.id for fp in read_false_positives()}
    assert listed, "acro_false_positives.md lists no entries"
    assert listed - needed == set()


def test_false_positive_entries_name_real_outputs_and_checks(acro: dict[str, Any]) -> None:
    for fp in read_false_positives():
        assert fp.output in acro, fp.id
        assert fp.check in acro_checks(acro[fp.output]), fp.id
        assert STATUS[fp.acro_says] is acro_checks(acro[fp.output])[fp.check]["status"], fp.id


def summary(comparisons: Sequence[Comparison]) -> str:
    """Per ACRO check: cells it flags, how many we flag at least as severely, how many
    by the same rule, and how many are listed false positives."""
    rows: dict[str, list[int]] = {}
    for c in comparisons:
        if c.cell is None:
            continue
        for check, status in c.acro.items():
            counts = rows.setdefault(check, [0, 0, 0, 0])
            counts[0] += 1
            counts[1] += c.ours >= status
            counts[2] += bool(c.our_rules & SAME_RULE.get(check, frozenset()))
            counts[3] += any(check == excused for _, excused in c.excused) and c.ours < status
    lines = [f"{'ACRO check':24} {'flagged':>8} {'ours >=':>8} {'same rule':>9} {'listed FP':>9}"]
    lines += [f"{check:24} {a:8} {b:8} {s:9} {f:9}" for check, (a, b, s, f) in sorted(rows.items())]
    lines.append(f"{'output':26} {'ACRO':>6} {'ours':>6}  excused")
    for c in comparisons:
        if c.cell is None and c.acro_status > Status.PASS:
            excused = ", ".join(sorted(fp for fp, _ in c.excused))
            lines.append(f"{c.output:26} {c.acro_status!s:>6} {c.ours!s:>6}  {excused}")
    return "\n".join(lines)


# --- 2. Exact agreement in parity settings -----------------------------------------------
def rows_are_people(microdata: pd.DataFrame, dims: Sequence[str]) -> set[Key]:
    """Cells (of the observed levels' grid) where ACRO's rows are our people."""
    grouped = microdata.groupby(list(dims), observed=True)["person_id"].agg(["size", "nunique"])
    differ = {key(dict(zip(dims, k if isinstance(k, tuple) else (k,), strict=True)))
              for k in grouped.index[grouped["size"] != grouped["nunique"]]}  # fmt: skip
    levels = [microdata[d].dropna().unique() for d in dims]
    every = pd.MultiIndex.from_product(levels)
    return {key(dict(zip(dims, k, strict=True))) for k in every} - differ


def acro_mask(output: Mapping[str, Any], check: str) -> dict[Key, bool]:
    """ACRO's own per-cell result of ``check`` (for the dof check: dof below the limit,
    not its outcome cells, which mark every non-zero dof)."""
    frame = acro_checks(output)[check]["outcome"]
    if frame is None:  # the runner sends a mask that flags nothing as null
        return {cell: False for cell, _ in grid(output["tables"][0], output)}
    if check == "MinimumDoFCheck":
        return {cell: dof < POLICY.dof for cell, dof in grid(frame, output)}
    return {cell: bool(value) for cell, value in grid(frame, output)}


RULE_PAIRS = [
    (output, check)
    for output, checks in {
        "counts": ("MinimumThresholdCheck", "PresenceOfZeroCheck"),
        "counts_3d": ("MinimumThresholdCheck", "PresenceOfZeroCheck"),
        "by_area": ("MinimumThresholdCheck", "PresenceOfZeroCheck"),
        "by_area_b": ("MinimumThresholdCheck", "PresenceOfZeroCheck"),
        "sum": ("MinimumThresholdCheck", "NKCheck", "PPercentCheck"),
        "mean": ("MinimumThresholdCheck", "NKCheck", "PPercentCheck"),
        "median": ("MinimumThresholdCheck", "PresenceOfZeroCheck"),
        "min": ("MinimumThresholdCheck", "PresenceOfZeroCheck"),
        "max": ("MinimumThresholdCheck", "PresenceOfZeroCheck"),
        "mode": ("PresenceOfZeroCheck",),
        "std": ("MinimumDoFCheck",),
    }.items()
    for check in checks
]


@pytest.mark.parametrize(("output", "check"), RULE_PAIRS)
def test_each_acro_check_agrees_exactly_with_our_rule_where_rows_are_people(
    acro: dict[str, Any], ours: dict[str, Ours], microdata: pd.DataFrame, output: str,
    check: str,
) -> None:  # fmt: skip
    mask = acro_mask(acro[output], check)
    comparable = rows_are_people(microdata, ours[output].dims)
    assert comparable & set(mask), "no cell to compare"
    disagree = {
        dict(cell).get("area", cell): (flagged, sorted(rules_at(ours[output], cell)))
        for cell, flagged in mask.items()
        if cell in comparable and flagged != bool(rules_at(ours[output], cell) & SAME_RULE[check])
    }
    assert disagree == {}


@pytest.mark.parametrize("output", ["counts", "sum", "mean", "median", "min", "max"])
@pytest.mark.parametrize(("area", "people", "fails"), [("a09", 9, True), ("a10", 10, False),
                                                       ("a11", 11, False)])  # fmt: skip
def test_threshold_boundary_9_10_11_agrees(
    acro: dict[str, Any], ours: dict[str, Ours], output: str, area: str, people: int,
    fails: bool,
) -> None:  # fmt: skip
    cell = cell_of(area=area, sex="F")
    assert acro_value(acro["counts"]["tables"][0], acro["counts"], cell) == people
    assert acro_mask(acro[output], "MinimumThresholdCheck")[cell] is fails
    assert ("T1" in rules_at(ours[output], cell)) is fails


@pytest.mark.parametrize("output", ["sum", "mean"])
@pytest.mark.parametrize(
    ("area", "check", "rule", "fails"),
    [
        ("nk8999", "NKCheck", "D1", False),  # top-2 share 0.8999
        ("nk9000", "NKCheck", "D1", True),  # exactly 0.9: ">= k" fails in both
        ("nk9001", "NKCheck", "D1", True),
        ("p0999", "PPercentCheck", "D2", True),  # p-ratio 0.0999
        ("p1000", "PPercentCheck", "D2", False),  # exactly 0.1: "< p" fails in both
        ("p1001", "PPercentCheck", "D2", False),
    ],
)
def test_dominance_boundaries_agree(
    acro: dict[str, Any], ours: dict[str, Ours], output: str, area: str, check: str,
    rule: str, fails: bool,
) -> None:  # fmt: skip
    cell = cell_of(area=area, sex="F")
    assert acro_mask(acro[output], check)[cell] is fails
    assert (rule in rules_at(ours[output], cell)) is fails


@pytest.mark.parametrize(("area", "dof", "fails"), [("a09", 8, True), ("a10", 9, True),
                                                    ("a11", 10, False)])  # fmt: skip
def test_standard_deviation_dof_9_10_agrees(
    acro: dict[str, Any], ours: dict[str, Ours], area: str, dof: int, fails: bool
) -> None:
    std, cell = acro["std"], cell_of(area=area, sex="F")
    assert acro_value(acro_checks(std)["MinimumDoFCheck"]["outcome"], std, cell) == dof
    assert acro_mask(std, "MinimumDoFCheck")[cell] is fails
    assert ("S1" in rules_at(ours["std"], cell)) is fails


@pytest.mark.parametrize("kind", ["ols", "logit"])
@pytest.mark.parametrize("dof", [9, 10, 11])
def test_model_residual_dof_9_10_11_agrees(
    acro: dict[str, Any], microdata: pd.DataFrame, kind: str, dof: int
) -> None:
    spec = next(s for s in MODEL_SPECS if s["id"] == f"{kind}_dof{dof}")
    output = acro[spec["id"]]
    evidence, findings = model_findings(microdata, spec)
    rows = (OLS_ROWS if kind == "ols" else LOGIT_ROWS)[dof]

    assert output["model"]["nobs"] == rows == evidence["observations"]
    assert output["dof"] == dof == evidence["residual_dof"]
    assert output["status"] == ("fail" if dof < 10 else "pass")
    assert any(f.rule == "M1" and f.status is Status.FAIL for f in findings) is (dof < 10)


# --- 3. The holes ACRO 1.0.2 leaves open ----------------------------------------------------
@pytest.mark.parametrize("output", ["min", "max"])
def test_min_and_max_of_ten_or_more_pass_acro_but_fail_e1(
    acro: dict[str, Any], ours: dict[str, Ours], output: str
) -> None:
    counts = dict(grid(acro["counts"]["tables"][0], acro["counts"]))
    flags = acro_flags(acro[output])
    big = [cell for cell, n in counts.items() if n >= 10]

    assert len(big) == 22  # every M cell, and the F cells of 10 rows or more
    assert [cell for cell in big if cell in flags] == []
    assert [cell for cell in big if "E1" not in rules_at(ours[output], cell)] == []


def test_all_same_mode_passes_acro_but_fails_o1(
    acro: dict[str, Any], ours: dict[str, Ours]
) -> None:
    cell = cell_of(area="same", sex="F")

    assert acro_value(acro["mode"]["tables"][0], acro["mode"], cell) == 3
    assert cell not in acro_flags(acro["mode"])
    assert "O1" in rules_at(ours["mode"], cell)


@pytest.mark.parametrize("output", ["counts", "mean", "median", "mode"])
def test_one_person_with_ten_rows_passes_acro_threshold_but_fails_t1(
    acro: dict[str, Any], ours: dict[str, Ours], output: str
) -> None:
    cell = cell_of(area="dup10", sex="F")
    t1 = [f for f in our_cells(ours[output])[cell] if f.rule == "T1"]

    assert acro_value(acro["counts"]["tables"][0], acro["counts"], cell) == 10
    assert cell not in acro_flags(acro[output])
    assert {f.status for f in t1} == {Status.FAIL}
    assert {f.evidence["persons"] for f in t1} == {1}


def test_survival_steps_acro_does_not_flag_fail_k1(
    acro: dict[str, Any], ours: dict[str, Ours]
) -> None:
    tail, safe = acro["survival_tail"], acro["survival_safe"]
    suppressed = acro["survival_tail_suppressed"]
    table = dict(zip((float(t) for (t,) in tail["tables"][0]["index"]), tail["tables"][0]["data"],
                     strict=True))  # fmt: skip
    assert (table[2.5][3], table[9.0][2], table[9.0][3]) == (2, 4, 3)
    # ACRO flags no step; it fails the curve on a check that fails a safe curve alike.
    assert tail["outcome"] is None and tail["status"] == "fail"
    assert tail["summary"] == safe["summary"]
    # With suppression ACRO says review, yet still publishes the raw steps.
    published = suppressed["tables"][0]
    assert suppressed["status"] == "review"
    assert published["columns"][:4] == tail["tables"][0]["columns"]
    assert [row[:4] for row in published["data"]] == tail["tables"][0]["data"]

    k1 = {(f.cell["time"], f.evidence["fix"]) for f in ours["survival_tail"].findings
          if f.rule == "K1" and f.status is Status.FAIL}  # fmt: skip
    assert k1 == {(2.5, "merge"), (9.0, "truncate")}
    assert ours["survival_safe"].status is Status.PASS


def test_suppression_undone_by_a_second_table_fails_x1(
    acro: dict[str, Any], ours: dict[str, Ours]
) -> None:
    """ACRO suppresses (a09, F) and (azero, F) by deleting their rows and recomputing its
    margins, and passes a one-way table of areas; together they give both cells back."""
    suppressed, by_area = acro["counts_margins_suppressed"], acro["by_area"]
    assert (suppressed["status"], by_area["status"]) == ("review", "pass")
    body = {cell: n for cell, n in grid(suppressed["tables"][0], suppressed)
            if "All" not in dict(cell).values()}  # fmt: skip
    assert [dict(c)["area"] for c, n in body.items() if n is None] == ["a09", "azero"]
    margins = {dict(cell)["area"]: n for cell, n in grid(by_area["tables"][0], by_area)}

    # What a reader holds: ACRO's suppressed body, with by_area as its area totals.
    cells = [(dict(c)["area"], dict(c)["sex"], n) for c, n in body.items()]
    cells += [(area, "Total", n) for area, n in margins.items()]
    frame = pd.DataFrame(cells, columns=["area", "sex", "people"])
    sidecar = {"dimensions": ["area", "sex"], "statistics": {"people": "count"},
               "totals": {"sex": "Total"},
               "cells": [{"dimensions": {"area": a, "sex": s}, "persons": {"people": n}}
                         for a, s, n in cells]}  # fmt: skip
    csv = frame.to_csv(index=False).encode()
    table = table_evidence(read_table(csv, "pair.csv"), sidecar, "pair.csv")
    x1 = {f.cell["area"]: (f.status, f.evidence["low"], f.evidence["high"])
          for f in audit_suppression(table, None, POLICY) if f.rule == "X1"}  # fmt: skip

    assert x1 == {"a09": (Status.FAIL, 9.0, 9.0), "azero": (Status.FAIL, 0.0, 0.0)}
    # Our own suppression of the same table publishes true margins and protects the
    # suppressed cells against them.
    verdict = ours["counts"].verdict
    assert verdict is not None and verdict.mitigation is not None
    mitigation = verdict.mitigation
    assert [f for f in mitigation.findings if f.rule == "X1"] == []
    published = mitigation.table.set_index(["area", "sex"])["people"]
    assert pd.isna(published[("a09", "F")])
    assert not pd.isna(published[("a09", "Total")])


def test_differencing_across_releases_fails_x2(
    acro: dict[str, Any], microdata: pd.DataFrame
) -> None:
    """by_area_b moves three people of a11 to a10: two releases ACRO passes, whose a11
    cells differ by exactly those three people."""
    assert (acro["by_area"]["status"], acro["by_area_b"]["status"]) == ("pass", "pass")
    first = next(s for s in TABLE_SPECS if s["id"] == "by_area")
    second = next(s for s in TABLE_SPECS if s["id"] == "by_area_b")
    ledger = Ledger(
        candidate=LedgerTable.from_rows(microdata, dims_of(second), release="r2",
                                        file="by_area_b.csv"),
        released=[LedgerTable.from_rows(microdata, dims_of(first), release="r1",
                                        file="by_area.csv")],
    )  # fmt: skip

    verdict = check_result(our_table(microdata, second), ledger=ledger)
    x2 = [f for f in verdict.findings if f.rule == "X2"]

    assert x2 and {f.status for f in x2} == {Status.FAIL}
    assert {f.evidence["derived_persons"] for f in x2} == {3}
    assert verdict.status is Status.FAIL
