"""K1: survival steps with few events (merge) or few people at risk (truncate), and
``safe_steps``, which makes a curve pass."""

import numpy as np
import pytest

from outputs.sdc.evidence import EvidenceError
from outputs.sdc.policy import PRESETS, Policy
from outputs.sdc.results import Status
from outputs.sdc.survival import check_survival, read_steps, safe_steps

POLICY = Policy()


def _step(time, at_risk, events, censored=0):
    return {"time": time, "at_risk": at_risk, "events": events, "censored": censored}


def _survival(steps, **changes):
    return {"kind": "survival", "steps": steps, **changes}


def _failures(sidecar, policy=POLICY):
    findings = check_survival(sidecar, policy)
    assert all((f.rule, f.status) == ("K1", Status.FAIL) for f in findings)
    return [(f.row, f.evidence["fix"]) for f in findings]


# Each step's at risk is the last one's less its events and censored (no late entry).
CURVE = [_step(1, 100, 12, 3), _step(2, 85, 9), _step(3, 76, 0, 5), _step(4, 71, 10, 2),
         _step(5, 59, 11, 40), _step(6, 8, 2, 6)]  # fmt: skip


def test_each_failing_step_is_reported_on_its_row_with_the_fix():
    assert _failures(_survival(CURVE)) == [(1, "merge"), (5, "truncate")]


def test_a_finding_names_the_step_and_its_counts():
    merge, truncate = check_survival(_survival(CURVE), POLICY)

    assert merge.cell == {"time": 2.0}
    assert merge.evidence == {"time": 2.0, "at_risk": 85, "events": 9, "threshold": 10,
                              "fix": "merge"}  # fmt: skip
    assert merge.message == (
        "At time 2 9 people have the event; a step needs at least 10 (or none): merge it "
        "with the next steps"
    )
    assert truncate.message == (
        "At time 6 only 8 people are at risk; at least 10 are needed: end the curve before "
        "this step"
    )


@pytest.mark.parametrize(("events", "fails"), [(0, False), (1, True), (9, True), (10, False),
                                               (11, False)])  # fmt: skip
def test_a_step_fails_with_between_one_and_threshold_minus_one_events(events, fails):
    steps = [_step(1, 100, 20), _step(2, 80, events)]

    assert _failures(_survival(steps)) == ([(1, "merge")] if fails else [])


@pytest.mark.parametrize(("at_risk", "fails"), [(9, True), (10, False), (11, False)])
def test_a_step_fails_with_fewer_than_threshold_people_at_risk(at_risk, fails):
    steps = [_step(1, 100, 20), _step(2, at_risk, 0, at_risk)]

    assert _failures(_survival(steps)) == ([(1, "truncate")] if fails else [])


def test_a_step_with_few_at_risk_is_reported_once_as_truncate():
    assert _failures(_survival([_step(1, 9, 3)])) == [(0, "truncate")]


def test_the_threshold_comes_from_the_policy():
    steps = [_step(1, 20, 3), _step(2, 17, 2)]

    assert _failures(_survival(steps), PRESETS["datashield-3"]) == [(1, "merge")]


def test_each_group_is_checked_and_named():
    groups = {"female": [_step(1, 50, 10)], "male": [_step(1, 40, 10), _step(4, 30, 5)]}
    sidecar = {"kind": "survival", "groups": groups}

    findings = check_survival(sidecar, POLICY)

    assert [(f.row, f.cell) for f in findings] == [(1, {"group": "male", "time": 4.0})]
    assert "in male" in findings[0].message


def test_the_overall_curve_and_the_groups_are_all_checked():
    sidecar = _survival([_step(1, 90, 4)], groups={"female": [_step(1, 50, 4)]})

    assert [f.cell for f in check_survival(sidecar, POLICY)] == [
        {"time": 1.0}, {"group": "female", "time": 1.0},
    ]  # fmt: skip


def test_an_empty_curve_passes():
    assert check_survival(_survival([]), POLICY) == []


@pytest.mark.parametrize(
    ("sidecar", "words"),
    [({"kind": "table", "steps": []}, "kind 'survival'"),
     ({"kind": "survival"}, "needs steps or groups"),
     (_survival({"time": 1}), "must be a list of steps"),
     (_survival([[1, 100, 10, 0]]), "step 0 is not an object"),
     (_survival([{"time": 1, "at_risk": 100, "events": 10}]), "step 0 needs a number censored"),
     (_survival([_step(1, 100, 10), _step(2, True, 10)]), "step 1 needs a number at_risk"),
     (_survival([_step("1", 100, 10)]), "needs a number time"),
     (_survival([_step(float("nan"), 100, 10)]), "needs a number time"),
     (_survival([_step(1, 100, -1)]), "step 0 has events -1"),
     (_survival([_step(1, 100, 10, 2.5)]), "step 0 has censored 2.5"),
     (_survival([_step(2, 100, 10), _step(1, 90, 10)]), "times must strictly increase"),
     (_survival([_step(1, 100, 10), _step(1, 90, 10)]), "times must strictly increase"),
     (_survival([_step(1, 15, 10, 6)]), "more events and censored than people at risk"),
     ({"kind": "survival", "groups": [[_step(1, 100, 10)]]}, "map each group's label"),
     ({"kind": "survival", "groups": {"male": [_step(1, 100, -2)]}}, "steps of group male")],
)  # fmt: skip
def test_malformed_evidence_raises_saying_what_is_wrong(sidecar, words):
    with pytest.raises(EvidenceError, match=words):
        check_survival(sidecar, POLICY)


# safe_steps. The curve below, hand-merged at threshold 10: cut before t=9 (9 at risk);
# cumulative events 4, 7, 12 | 12, 22 | 24, 25, 29, so t=1-3 merge (12 events) and t=4-5
# (10); t=6-8 have 7, too few, and join the step before.
LONG = [_step(1, 100, 4, 1), _step(2, 95, 3), _step(3, 92, 5, 2), _step(4, 85, 0, 5),
        _step(5, 80, 10), _step(6, 70, 2, 3), _step(7, 65, 1, 50), _step(8, 14, 4, 1),
        _step(9, 9, 3, 6)]  # fmt: skip


def test_safe_steps_merges_and_truncates_as_worked_by_hand():
    assert safe_steps(LONG, POLICY) == [
        {"time": 3.0, "at_risk": 100, "events": 12, "censored": 3},
        {"time": 8.0, "at_risk": 85, "events": 17, "censored": 59},
    ]


def test_safe_steps_output_passes_k1():
    assert _failures(_survival(LONG)) != []

    assert check_survival(_survival(safe_steps(LONG, POLICY)), POLICY) == []


def test_safe_steps_follows_the_policys_threshold():
    safe = safe_steps(LONG, PRESETS["datashield-3"])

    # Cumulative events 4 | 7 | 12 | 12, 22 | 24, 25 | 29 | 32, nothing cut (9 >= 3 at risk).
    assert [s["events"] for s in safe] == [4, 3, 5, 10, 3, 4, 3]
    assert [s["time"] for s in safe] == [1.0, 2.0, 3.0, 5.0, 7.0, 8.0, 9.0]
    assert check_survival(_survival(safe), PRESETS["datashield-3"]) == []


def test_safe_steps_leaves_a_safe_curve_as_it_is():
    steps = [_step(1.5, 100, 10, 5), _step(2.5, 85, 25, 10), _step(7.0, 50, 12)]

    assert safe_steps(steps, POLICY) == [{**s, "time": float(s["time"])} for s in steps]


def test_safe_steps_counts_people_who_enter_during_a_merged_step_as_at_risk():
    # 20 at risk, 5 events, then 25 at risk: 10 entered.
    steps = [_step(1, 20, 5), _step(2, 25, 6)]

    assert safe_steps(steps, POLICY) == [{"time": 2.0, "at_risk": 30, "events": 11,
                                          "censored": 0}]  # fmt: skip


@pytest.mark.parametrize(
    "steps",
    [[_step(1, 100, 4), _step(2, 96, 5)], [_step(1, 9, 9)], []],
    ids=["too few events", "too few at risk from the start", "no steps"],
)
def test_safe_steps_is_empty_when_nothing_can_be_published(steps):
    assert safe_steps(steps, POLICY) == []


def _kaplan_meier_steps(seed: int, people: int = 400) -> list[dict]:
    """A step table (lifelines convention) of random event and censoring times in days."""
    rng = np.random.default_rng(seed)
    times = rng.integers(1, 200, people)
    observed = rng.random(people) < 0.6
    steps, at_risk = [], people
    for time in np.unique(times):
        events = int(np.sum((times == time) & observed))
        censored = int(np.sum((times == time) & ~observed))
        steps.append(_step(float(time), at_risk, events, censored))
        at_risk -= events + censored
    return steps


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("policy", [POLICY, PRESETS["datashield-3"], PRESETS["opensafely-7-5"]],
                         ids=lambda p: p.name)  # fmt: skip
def test_safe_steps_of_a_random_curve_pass_k1_and_keep_every_event_before_the_cut(seed, policy):
    steps = _kaplan_meier_steps(seed)
    cut = next((i for i, s in enumerate(steps) if s["at_risk"] < policy.threshold), len(steps))

    safe = safe_steps(steps, policy)

    assert check_survival(_survival(safe), policy) == []
    assert sum(s["events"] for s in safe) == sum(s["events"] for s in steps[:cut])
    assert sum(s["censored"] for s in safe) == sum(s["censored"] for s in steps[:cut])
    assert {s["time"] for s in safe} <= {s["time"] for s in steps[:cut]}


def test_read_steps_gives_arrays_in_step_order():
    steps = read_steps(CURVE)

    assert steps.events.tolist() == [12, 9, 0, 10, 11, 2]
    assert steps.as_json() == [{**s, "time": float(s["time"])} for s in CURVE]
