"""C1: a chart needs its data table, may not plot individuals, and is as safe as its
table."""

import pytest

from outputs.sdc.charts import check_chart
from outputs.sdc.policy import Policy
from outputs.sdc.results import Finding, Mitigation, Status, Verdict

POLICY = Policy()


def _sidecar(**changes):
    # As sdelib.chart writes it.
    return {"chart": "people_by_sex", "table": "counts", "kind": "bar", "x": "sex",
            "y": "persons", "title": "People by sex", **changes}  # fmt: skip


def _verdict(*findings, mitigation=None, file="counts.csv"):
    return Verdict(file=file, kind="table", policy="acro-default", policy_version=1,
                   findings=tuple(findings), mitigation=mitigation)  # fmt: skip


SMALL_CELL = Finding(
    rule="T1", status=Status.FAIL, row=1, column="persons", cell={"sex": "M"},
    message="persons describes 4 people; at least 10 are needed",
    evidence={"persons": 4, "threshold": 10},
)  # fmt: skip
ALL_IN_ONE = Finding(rule="T3", status=Status.REVIEW, column="persons", cell={"sex": "F"},
                     message="everyone counted with sex = F has ward = 1",
                     evidence={"categories_present": 1})  # fmt: skip
PASSING = {"counts.csv": _verdict()}


def _check(sidecar, related=PASSING, name="people_by_sex.png"):
    return check_chart(name, sidecar, related, POLICY)


def test_a_bar_chart_of_a_passing_table_passes():
    assert _check(_sidecar()) == []


def test_a_chart_without_a_description_has_no_underlying_data():
    findings = _check(None)

    assert [(f.rule, f.status) for f in findings] == [("C1", Status.FAIL)]
    assert "no underlying data" in findings[0].message


@pytest.mark.parametrize("table", [None, "", "  ", 3])
def test_a_description_that_names_no_table_has_no_underlying_data(table):
    findings = _check(_sidecar(table=table))

    assert [f.status for f in findings] == [Status.FAIL]
    assert "no underlying data" in findings[0].message


def test_a_chart_whose_table_was_not_checked_with_it_has_no_underlying_data():
    findings = _check(_sidecar(), related={"other.csv": _verdict(file="other.csv")})

    assert [f.status for f in findings] == [Status.FAIL]
    assert findings[0].evidence == {"table": "counts.csv"}
    assert "counts.csv" in findings[0].message


def test_the_table_is_found_beside_the_chart_in_the_same_job_folder():
    related = {"job-7/counts.csv": _verdict(SMALL_CELL, file="job-7/counts.csv")}

    findings = _check(_sidecar(), related=related, name="job-7/people_by_sex.png")

    assert [f.evidence["table"] for f in findings] == ["job-7/counts.csv"]


def test_a_table_named_with_its_extension_is_found():
    assert _check(_sidecar(table="counts.csv")) == []


@pytest.mark.parametrize("kind", ["scatter", "point", "strip", "swarm", "box", "violin"])
@pytest.mark.parametrize(
    ("aggregated", "status"),
    [(None, Status.FAIL), (False, Status.FAIL), ("yes", Status.FAIL), (True, None)],
)
def test_plots_of_individuals_fail_unless_they_say_they_plot_aggregates(kind, aggregated, status):
    flag = {} if aggregated is None else {"aggregated": aggregated}
    sidecar = _sidecar(kind=kind, **flag)

    findings = _check(sidecar)

    assert [f.status for f in findings] == ([status] if status else [])
    if status:
        assert findings[0].evidence == {"kind": kind}


@pytest.mark.parametrize("kind", ["bar", "line", "hist", "pie", "Bar"])
def test_aggregate_kinds_pass(kind):
    assert _check(_sidecar(kind=kind)) == []


@pytest.mark.parametrize("kind", ["hexbin", ""])
def test_a_kind_the_checker_does_not_know_goes_to_review(kind):
    findings = _check(_sidecar(kind=kind))

    assert [f.status for f in findings] == [Status.REVIEW]


def test_a_description_of_another_chart_fails():
    findings = _check(_sidecar(chart="deaths_by_place"))

    assert [f.status for f in findings] == [Status.FAIL]
    assert findings[0].evidence == {"described": "deaths_by_place"}


def test_the_tables_failing_cells_become_the_charts_on_the_same_cells():
    findings = _check(_sidecar(), related={"counts.csv": _verdict(SMALL_CELL)})

    assert len(findings) == 1
    finding = findings[0]
    assert (finding.rule, finding.status, finding.row, finding.column, finding.cell) == (
        "C1", Status.FAIL, 1, "persons", {"sex": "M"},
    )  # fmt: skip
    assert finding.message == (
        "The chart's data table counts.csv fails T1: persons describes 4 people; at least 10 "
        "are needed"
    )
    assert finding.evidence == {"persons": 4, "threshold": 10, "table": "counts.csv",
                                "rule": "T1"}  # fmt: skip


def test_the_tables_review_findings_make_the_chart_review():
    findings = _check(_sidecar(), related={"counts.csv": _verdict(ALL_IN_ONE)})

    assert [(f.status, f.evidence["rule"]) for f in findings] == [(Status.REVIEW, "T3")]
    assert "needs review under T3" in findings[0].message


def test_pass_findings_of_the_table_are_not_copied():
    passing = Finding(rule="T1", status=Status.PASS, message="fine")

    assert _check(_sidecar(), related={"counts.csv": _verdict(passing)}) == []


def test_a_chart_of_a_mitigated_table_keeps_the_true_tables_failures():
    # The chart was drawn from the true counts; suppressing the CSV does not change it.
    mitigation = Mitigation(table=None, primary=((1, "persons"),), secondary=(),
                            rounding_base=None, findings=())  # fmt: skip
    table = _verdict(SMALL_CELL, mitigation=mitigation)

    findings = _check(_sidecar(), related={"counts.csv": table})

    assert table.outcome is Status.REVIEW
    assert [f.status for f in findings] == [Status.FAIL]
    assert findings[0].message.endswith("redraw the chart from the mitigated table")


@pytest.mark.parametrize(
    "table_findings",
    [(), (ALL_IN_ONE,), (SMALL_CELL,), (ALL_IN_ONE, SMALL_CELL)],
    ids=["pass", "review", "fail", "review and fail"],
)
def test_the_charts_status_is_at_least_its_tables_outcome(table_findings):
    table = _verdict(*table_findings)

    findings = _check(_sidecar(), related={"counts.csv": table})

    assert max((f.status for f in findings), default=Status.PASS) == table.outcome


def test_an_unverifiable_table_makes_its_chart_fail():
    unverifiable = Finding(rule="evidence", status=Status.FAIL,
                           message="counts.csv: the evidence is not JSON")  # fmt: skip

    findings = _check(_sidecar(kind="scatter"), related={"counts.csv": _verdict(unverifiable)})

    assert sorted(f.evidence.get("rule", "kind") for f in findings) == ["evidence", "kind"]
