"""Bridges to Health segmentation: each rule and the hierarchy on hand-built records,
one segment per person on synthetic data (checked against the generator's truth), and
the published counts, shares and costs."""

import json
from datetime import date

import numpy as np
import pandas as pd
import pytest

from sde.data import synth
from sde.phm import codelists, segmentation
from sde.phm.features import LONG_TERM_CONDITIONS
from sde.phm.frames import AnalysisInputError, frames_from_tables
from sde.phm.population import hospital_cost, registered_population, year_before
from sde.phm.segmentation import SEGMENT_KEYS

INDEX = date(2025, 4, 1)  # the last 12 months: 2024-04-01 to 2025-03-31
PEOPLE = 40_000


def _code(codelist_id):
    return min(codelists.get(codelist_id).snomed)


def _frame(rows, columns, dates):
    frame = pd.DataFrame(list(rows), columns=columns)
    for column in dates:
        frame[column] = pd.to_datetime(frame[column]).astype("datetime64[s]")
    return frame.astype({"person_id": "str"})


# --- Hand-built records: one person per rule and per step of the hierarchy --------------
OLD = "2015-05-01"  # long before the index date
RECENT = "2024-10-01"  # in the last 12 months
EFI_ONLY = sorted(i for i in codelists.LIBRARY if i.startswith("efi_"))  # not conditions
# person -> (date of birth, sex, [(date, codelist id or SNOMED code)], [(date, ICD-10, method)])
PEOPLE_AND_RECORDS = {
    "new_cancer": ("1950-01-01", "F", [(RECENT, "cancer")], []),
    "chemotherapy": ("1960-01-01", "M", [(OLD, "cancer")], [(RECENT, "Z511", "elective")]),
    "old_cancer": ("1960-01-01", "M", [(OLD, "cancer")], []),
    "old_chemotherapy": ("1960-01-01", "M", [(OLD, "cancer")],
                         [("2024-03-01", "Z511", "elective")]),
    "cancer_and_dementia": ("1940-01-01", "F", [(RECENT, "cancer"), (OLD, "dementia")], []),
    "dementia": ("1940-01-01", "F", [(OLD, "dementia")], []),
    "dementia_and_heart_failure": ("1940-01-01", "M",
                                   [(OLD, "dementia"), (OLD, "heart_failure")], []),
    "severe_frailty_at_75": ("1950-01-01", "F", [(OLD, i) for i in EFI_ONLY[:13]], []),
    "severe_frailty_at_60": ("1965-01-01", "F", [(OLD, i) for i in EFI_ONLY[:13]], []),
    "moderate_frailty_at_80": ("1945-01-01", "F", [(OLD, i) for i in EFI_ONLY[:12]], []),
    "heart_failure": ("1950-01-01", "M", [(OLD, "heart_failure")], []),
    "copd": ("1950-01-01", "M", [(OLD, "copd")], []),
    "ckd_stage_4": ("1950-01-01", "M", [(OLD, "431857002")], []),
    "ckd_stage_3": ("1950-01-01", "M", [(OLD, "433144002")], []),
    "heart_failure_in_hospital": ("1950-01-01", "M", [], [(OLD, "I509", "emergency")]),
    "learning_disability": ("1990-01-01", "M", [(OLD, "learning_disability")], []),
    "learning_disability_and_copd": ("1970-01-01", "M",
                                     [(OLD, "learning_disability"), (OLD, "copd")], []),
    "hypertension": ("1970-01-01", "F", [(OLD, "hypertension")], []),
    "hypertension_and_maternity": ("1990-01-01", "F", [(OLD, "hypertension")],
                                   [(RECENT, "O800", "maternity")]),
    "maternity": ("1993-01-01", "F", [], [(RECENT, "O800", "maternity")]),
    "old_maternity": ("1993-01-01", "F", [], [("2024-03-31", "O800", "maternity")]),
    "infant": ("2024-08-01", "F", [], []),
    "infant_admitted": ("2024-08-01", "M", [], [(RECENT, "J219", "emergency")]),
    "emergency_admission": ("1980-01-01", "M", [], [(RECENT, "R074", "emergency")]),
    "emergency_admission_with_asthma": ("1980-01-01", "M", [(OLD, "asthma")],
                                        [(RECENT, "J459", "emergency")]),
    "old_emergency_admission": ("1980-01-01", "M", [], [("2024-03-31", "R074", "emergency")]),
    "hypertension_from_the_index_date": ("1970-01-01", "F", [(str(INDEX), "hypertension")], []),
    "healthy": ("1985-01-01", "F", [], []),
}  # fmt: skip
EXPECTED = {
    "new_cancer": "end_of_life", "chemotherapy": "end_of_life",
    "old_cancer": "chronic_conditions", "old_chemotherapy": "chronic_conditions",
    "cancer_and_dementia": "end_of_life", "dementia": "frailty_dementia",
    "dementia_and_heart_failure": "frailty_dementia", "severe_frailty_at_75": "frailty_dementia",
    "severe_frailty_at_60": "healthy", "moderate_frailty_at_80": "healthy",
    "heart_failure": "limited_reserve", "copd": "limited_reserve",
    "ckd_stage_4": "limited_reserve", "ckd_stage_3": "chronic_conditions",
    "heart_failure_in_hospital": "limited_reserve", "learning_disability": "stable_disability",
    "learning_disability_and_copd": "limited_reserve", "hypertension": "chronic_conditions",
    "hypertension_and_maternity": "chronic_conditions", "maternity": "maternal_infant",
    "old_maternity": "healthy", "infant": "maternal_infant", "infant_admitted": "maternal_infant",
    "emergency_admission": "acutely_ill", "emergency_admission_with_asthma": "chronic_conditions",
    "old_emergency_admission": "healthy", "hypertension_from_the_index_date": "healthy",
    "healthy": "healthy",
}  # fmt: skip


def _hand_built():
    patients, events, spells = [], [], []
    for pid, (born, sex, codes, admissions) in PEOPLE_AND_RECORDS.items():
        patients.append((pid, born, sex, "White: Irish", 5, "Y001", "U01", "North Place",
                         "E01000001", "2000-01-01", None, None))  # fmt: skip
        for day, code in codes:
            snomed = _code(code) if code in codelists.LIBRARY else code
            events.append((pid, day, snomed, None))
        for day, icd10, method in admissions:
            spells.append((pid, day, day, method, icd10, 1000))
    columns = ["person_id", "birth_month", "sex", "ethnicity", "imd_decile", "practice_ods",
               "pcn_code", "place", "lsoa_code", "registration_start", "registration_end",
               "date_of_death"]  # fmt: skip
    return {
        "patients": _frame(patients, columns, ["birth_month", "registration_start",
                                               "registration_end", "date_of_death"]),
        "gp_events": _frame(events, ["person_id", "date", "snomed_code", "value"], ["date"]),
        "apc_spells": _frame(spells, ["person_id", "admission_date", "discharge_date",
                                      "admission_method", "primary_diagnosis_icd10", "cost"],
                             ["admission_date", "discharge_date"]),
    }  # fmt: skip


@pytest.fixture(scope="module")
def hand_built_segments():
    result = segmentation.segment(_hand_built(), index_date=INDEX)
    return result.set_index("person_id")["segment"]


@pytest.mark.parametrize(("person", "expected"), sorted(EXPECTED.items()))
def test_segment_rule_and_hierarchy_on_hand_built_records(hand_built_segments, person, expected):
    assert hand_built_segments[person] == expected


def test_hierarchy_table_is_ordered_and_ends_with_the_catch_all():
    assert SEGMENT_KEYS == ("end_of_life", "frailty_dementia", "limited_reserve",
                            "stable_disability", "chronic_conditions", "maternal_infant",
                            "acutely_ill", "healthy")  # fmt: skip
    assert [bool(s.facts) for s in segmentation.SEGMENTS] == [True] * 7 + [False]


def test_assign_segments_takes_the_first_true_fact_in_hierarchy_order():
    facts = pd.DataFrame(
        {fact: False for s in segmentation.SEGMENTS for fact in s.facts}, index=range(3)
    )
    facts.loc[0, ["heart_failure", "dementia", "emergency_admission"]] = True
    facts.loc[1, ["infant", "emergency_admission"]] = True

    assert list(segmentation.assign_segments(facts)) == [
        "frailty_dementia", "maternal_infant", "healthy"
    ]  # fmt: skip


# --- Synthetic data ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def drop():
    config = synth.SynthConfig(faults=synth.FaultRates.none())
    tables = ["patients", "gp_events", "apc_spells", "ae_attendances"]
    return synth.generate(patients=PEOPLE, seed=77, config=config, tables=tables)


@pytest.fixture(scope="module")
def frames(drop):
    return frames_from_tables(drop)


@pytest.fixture(scope="module")
def segments(frames):
    return segmentation.segment(frames, index_date=INDEX).set_index("person_id")["segment"]


@pytest.fixture(scope="module")
def truth(drop, frames, segments):
    """The generator's truth for the people segmented (every diagnosis is recorded by
    the day before INDEX, the day after the extract ends)."""
    assert drop.end == date(2025, 3, 31)
    ids = dict(zip(drop["patients"]["nhs_number"], frames["patients"]["person_id"], strict=True))
    return drop.truth.set_index(drop.truth["nhs_number"].map(ids)).loc[segments.index]


def test_every_registered_person_is_in_exactly_one_segment(frames, segments):
    population = registered_population(frames, INDEX)

    assert segments.index.is_unique
    assert set(segments.index) == set(population["person_id"])
    assert segments.notna().all()
    assert set(segments.unique()) == set(SEGMENT_KEYS)


def test_hierarchy_puts_dementia_before_organ_failure(segments, truth):
    both = truth["dementia"] & truth["heart_failure"]
    frail_or_dying = segments.isin(["end_of_life", "frailty_dementia"])

    assert both.sum() > 0
    assert frail_or_dying[both].all()
    assert frail_or_dying[truth["dementia"]].all()


def test_hierarchy_puts_organ_failure_before_disability_and_chronic_conditions(segments, truth):
    organ = truth["heart_failure"] | truth["copd"]
    first_three = segments.isin(["end_of_life", "frailty_dementia", "limited_reserve"])

    assert first_three[organ].all()
    assert first_three[truth["learning_disability"] & truth["copd"]].all()


def test_later_segments_have_none_of_the_earlier_conditions(segments, truth):
    conditions = truth[list(LONG_TERM_CONDITIONS)].any(axis=1)
    later = segments.isin(["maternal_infant", "acutely_ill", "healthy"])

    assert not conditions[later].any()
    assert conditions[segments == "chronic_conditions"].all()
    assert not truth.loc[segments == "chronic_conditions", ["dementia", "heart_failure",
                                                            "copd", "learning_disability"]
                         ].any(axis=None)  # fmt: skip


def test_healthy_people_had_no_emergency_or_maternity_admission(frames, segments):
    start, end = year_before(INDEX)
    spells = frames["apc_spells"]
    recent = spells.loc[spells["admission_date"].between(pd.Timestamp(start), pd.Timestamp(end))]
    admitted = set(recent.loc[recent["admission_method"].isin(["emergency", "maternity"]),
                              "person_id"])  # fmt: skip

    assert not admitted & set(segments.index[segments == "healthy"])
    assert set(segments.index[segments == "acutely_ill"]) <= admitted


# --- The analysis ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def analysis(frames):
    return segmentation.segmentation_analysis(frames, index_date=INDEX)


def test_segmentation_analysis_counts_and_shares(analysis, segments):
    overall = analysis.table("segments").frame.set_index("segment")

    assert list(overall.index) == list(SEGMENT_KEYS)
    assert (overall["people"] == segments.value_counts().reindex(SEGMENT_KEYS)).all()
    assert overall["share"].sum() == pytest.approx(1.0)
    assert (overall["group_people"] == len(segments)).all()


@pytest.mark.parametrize("column", segmentation.BREAKDOWNS)
def test_segmentation_breakdowns_partition_the_population(analysis, segments, column):
    frame = analysis.table(f"segments_by_{column}").frame
    groups = frame.groupby(column, observed=True)

    assert frame["people"].sum() == len(segments)
    assert (groups["people"].sum() == groups["group_people"].first()).all()
    assert groups["share"].sum().to_numpy() == pytest.approx(1.0)
    assert (groups.size() == len(SEGMENT_KEYS)).all()


def test_costed_segmentation_accounts_for_every_pound(analysis, frames, segments):
    cost = hospital_cost(frames, *year_before(INDEX))
    expected = cost[cost.index.isin(segments.index)].sum()
    table = analysis.table("segment_costs")
    frame = table.frame

    assert frame["total_cost"].sum() == pytest.approx(expected)
    assert frame["cost_per_person"].to_numpy() == pytest.approx(
        (frame["total_cost"] / frame["people"]).to_numpy()
    )
    assert frame["people"].sum() == len(segments)
    magnitudes = table.magnitudes
    assert (magnitudes["total_cost.top1"] >= magnitudes["total_cost.top2"]).all()
    assert (magnitudes["total_cost.total"] == frame["total_cost"]).all()
    assert table.statistics["cost_per_person"] == "mean"


def test_costs_are_highest_per_person_outside_the_healthy_segment(analysis):
    frame = analysis.table("segment_costs").frame.set_index("segment")["cost_per_person"]

    assert frame.idxmin() == "healthy"
    assert frame["end_of_life"] > 3 * frame["healthy"]


def test_costed_breakdowns_add_up_to_the_overall_costs(analysis):
    overall = analysis.table("segment_costs").frame.set_index("segment")["total_cost"]
    by_place = analysis.table("segment_costs_by_place").frame.groupby("segment")["total_cost"]

    assert by_place.sum().reindex(overall.index).to_numpy() == pytest.approx(overall.to_numpy())


def test_segmentation_evidence_serialises_with_magnitudes_for_costs(analysis):
    for table in analysis.tables:
        sidecar = json.loads(json.dumps(table.sidecar()))
        assert sidecar["rows"] == len(table.frame)
    cell = json.loads(json.dumps(analysis.table("segment_costs").sidecar()))["cells"][0]
    assert set(cell["magnitudes"]) == {"total_cost", "cost_per_person"}
    assert cell["magnitudes"]["total_cost"]["top1"] >= cell["magnitudes"]["total_cost"]["top2"]


def test_segmentation_without_costs_publishes_no_magnitudes(frames):
    result = segmentation.segmentation_analysis(frames, index_date=INDEX, by=("place",),
                                                costed=False)  # fmt: skip

    assert [t.name for t in result.tables] == ["segments", "segments_by_place"]
    assert all(t.magnitudes is None for t in result.tables)
    assert result.codelists["chemotherapy_admission"] == 1


def test_segmentation_needs_the_breakdown_column():
    with pytest.raises(AnalysisInputError, match="region"):
        segmentation.segmentation_analysis(_hand_built(), index_date=INDEX, by=("region",))


def test_segment_shares_are_plausible_for_an_ics(analysis):
    share = analysis.table("segments").frame.set_index("segment")["share"]

    assert share["healthy"] > 0.4
    assert 0.2 < share["chronic_conditions"] < 0.5
    assert np.all(share[["end_of_life", "frailty_dementia", "limited_reserve"]] < 0.05)
