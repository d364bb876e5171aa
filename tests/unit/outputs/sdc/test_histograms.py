"""H1: small bins, small outer bins, and outer edges that publish the data's extremes."""

import dataclasses

import pytest

from outputs.sdc.evidence import EvidenceError
from outputs.sdc.histograms import check_histogram, read_histogram
from outputs.sdc.policy import PRESETS, Policy
from outputs.sdc.results import Status

POLICY = Policy()


def _histogram(**changes):
    return {"kind": "histogram", "column": "age", "edges": [0, 10, 20, 30, 40],
            "persons": [12, 30, 25, 11], "data_min": 2.5, "data_max": 37.0,
            "edges_rounded": False, **changes}  # fmt: skip


def _failing_rows(sidecar, policy=POLICY):
    findings = check_histogram(sidecar, policy)
    assert all((f.rule, f.status) == ("H1", Status.FAIL) for f in findings)
    return [f.row for f in findings]


def test_a_histogram_of_large_bins_inside_rounded_edges_passes():
    assert check_histogram(_histogram(), POLICY) == []


def test_a_small_inner_bin_fails_on_its_row_with_its_count():
    findings = check_histogram(_histogram(persons=[12, 9, 25, 11]), POLICY)

    assert [(f.row, f.cell) for f in findings] == [(1, {"bin": 1, "from": 10.0, "to": 20.0})]
    assert findings[0].evidence == {"persons": 9, "threshold": 10, "outer": False}
    assert findings[0].message == (
        "The age bin 10 to 20 holds 9 people; at least 10 are needed: merge it with a neighbour"
    )


@pytest.mark.parametrize(("persons", "rows"), [(0, [1]), (1, [1]), (9, [1]), (10, []), (11, [])])
def test_inner_bins_under_the_threshold_fail_and_an_empty_one_is_a_zero(persons, rows):
    assert _failing_rows(_histogram(persons=[20, persons, 20, 20])) == rows


def test_an_empty_inner_bin_passes_when_zeros_are_not_disclosive():
    lenient = dataclasses.replace(POLICY, zeros_disclosive=False)

    assert check_histogram(_histogram(persons=[20, 0, 20, 20]), lenient) == []


@pytest.mark.parametrize(("persons", "fails"), [(0, True), (1, True), (9, True), (10, False),
                                                (11, False)])  # fmt: skip
@pytest.mark.parametrize("end", ["first", "last"])
def test_the_first_and_last_bins_fail_under_the_threshold_even_when_empty(persons, fails, end):
    counts = [persons, 20, 20, 20] if end == "first" else [20, 20, 20, persons]
    row = 0 if end == "first" else 3

    findings = check_histogram(_histogram(persons=counts, data_min=12.0, data_max=28.0), POLICY)

    assert [f.row for f in findings] == ([row] if fails else [])
    if fails:
        assert f"The {end} bin" in findings[0].message
        assert findings[0].evidence["outer"] is True
        assert ("is empty" in findings[0].message) == (persons == 0)


def test_a_single_small_bin_is_reported_once():
    sidecar = _histogram(edges=[0, 10], persons=[5], data_min=1.0, data_max=9.0)

    assert _failing_rows(sidecar) == [0]


def test_the_threshold_comes_from_the_policy():
    sidecar = _histogram(persons=[3, 2, 3, 3])

    assert _failing_rows(sidecar, PRESETS["datashield-3"]) == [1]
    assert _failing_rows(sidecar) == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("data_min", "data_max", "rounded", "rows"),
    [(2.5, 37.0, False, []),
     (0.0, 37.0, False, [0]),
     (2.5, 40.0, False, [3]),
     (0.0, 40.0, False, [0, 3]),
     (0.0, 40.0, True, []),
     (1e-13, 40.0 - 4e-9, False, [0, 3]),  # a rounding error away still publishes them
     (1e-6, 40.0 - 4e-6, False, [])],
)  # fmt: skip
def test_outer_edges_equal_to_the_data_extremes_fail_unless_rounded(
    data_min, data_max, rounded, rows
):
    sidecar = _histogram(data_min=data_min, data_max=data_max, edges_rounded=rounded)

    findings = check_histogram(sidecar, POLICY)

    assert [f.row for f in findings] == rows
    assert all("publishes one person's value" in f.message for f in findings)


def test_an_edge_finding_names_the_edge_and_the_extreme():
    findings = check_histogram(_histogram(data_min=0.0), POLICY)

    assert findings[0].evidence == {"edge": 0.0, "data_extreme": 0.0, "edges_rounded": False}
    assert "lowest edge of the age histogram (0) is the smallest value" in findings[0].message


def test_absent_edges_rounded_means_not_rounded():
    sidecar = _histogram(data_min=0.0)
    del sidecar["edges_rounded"]

    assert _failing_rows(sidecar) == [0]


def test_a_small_outer_bin_on_the_data_minimum_gives_both_findings_in_row_order():
    findings = check_histogram(_histogram(persons=[4, 30, 25, 11], data_min=0.0), POLICY)

    assert [(f.row, "edge" in f.evidence) for f in findings] == [(0, False), (0, True)]


def test_read_histogram_gives_arrays_of_the_bins():
    histogram = read_histogram(_histogram())

    assert histogram.persons.tolist() == [12, 30, 25, 11]
    assert histogram.edges.tolist() == [0.0, 10.0, 20.0, 30.0, 40.0]


@pytest.mark.parametrize(
    ("changes", "words"),
    [({"kind": "table"}, "kind 'histogram'"),
     ({"column": ""}, "name its column"),
     ({"column": None}, "name its column"),
     ({"edges": "0,10,20"}, "list of numbers"),
     ({"edges": [0], "persons": []}, "at least two"),
     ({"edges": [0, 10, 10, 30, 40]}, "strictly increasing"),
     ({"edges": [0, 20, 10, 30, 40]}, "strictly increasing"),
     ({"edges": [0, 10, 20, 30, float("nan")]}, "finite numbers"),
     ({"edges": [0, 10, 20, 30, True]}, "finite numbers"),
     ({"edges": [0, "10", 20, 30, 40]}, "finite numbers"),
     ({"persons": [12, 30, 25]}, "5 edges has 4 bins, but its evidence gives 3 counts"),
     ({"persons": [12, 30, 25, 11, 4]}, "gives 5 counts"),
     ({"persons": [12, -1, 25, 11]}, "none negative"),
     ({"persons": [12, 2.5, 25, 11]}, "whole numbers"),
     ({"persons": [12, False, 25, 11]}, "finite numbers"),
     ({"persons": None}, "list of numbers"),
     ({"data_min": None}, "data_min must be finite"),
     ({"data_max": "37"}, "data_max must be finite"),
     ({"data_min": 30.0, "data_max": 20.0}, "exceeds data_max"),
     ({"data_min": -1.0}, "some people are in no bin"),
     ({"data_max": 41.0}, "some people are in no bin"),
     ({"edges_rounded": "yes"}, "true or false")],
)  # fmt: skip
def test_malformed_evidence_raises_saying_what_is_wrong(changes, words):
    with pytest.raises(EvidenceError, match=words.replace("(", r"\(")):
        check_histogram(_histogram(**changes), POLICY)
