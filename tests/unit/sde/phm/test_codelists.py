"""The codelist library: its codes against what the synthetic generator records, the
helpers against straightforward pandas, inclusive windows, missing tables."""

from datetime import date

import numpy as np
import pandas as pd
import pytest

from sde.data import source_format as sf
from sde.data import synth
from sde.phm import codelists
from sde.phm.codelists import EFI_DEFICITS, HISTORY, LIBRARY, Codelist
from sde.phm.frames import AnalysisInputError, frames_from_tables

PEOPLE = 20_000
CONDITIONS = {c.name: c for c in synth.CONDITIONS}
# The codes the generator records for a condition beyond its own concept.
RELATED = {
    "diabetes": {synth.TYPE1_DIABETES},
    "smi": {synth.BIPOLAR},
    "ckd": {code for code, _ in synth.CKD_STAGES},
}
# Synthetic emergency diagnoses that do not identify the condition (documented in the
# library): a learning disability admission coded as epilepsy.
NOT_IDENTIFYING = {"learning_disability": "G409"}
GENERIC_ICD10 = {
    *(code for codes in synth.EMERGENCY_GENERIC.values() for code in codes),
    *(code for codes in synth.ELECTIVE_GENERIC.values() for code in codes),
    *(code for code, _ in synth.MATERNITY),
    synth.CHEMOTHERAPY,
}


@pytest.fixture(scope="module")
def drop():
    return synth.generate(
        patients=PEOPLE, seed=515, config=synth.SynthConfig(faults=synth.FaultRates.none())
    )


@pytest.fixture(scope="module")
def frames(drop):
    return frames_from_tables(drop)


@pytest.fixture(scope="module")
def truth(drop, frames):
    """The generator's truth indexed by person_id (patients rows line up one to one)."""
    ids = dict(zip(drop["patients"]["nhs_number"], frames["patients"]["person_id"], strict=True))
    return drop.truth.set_index(drop.truth["nhs_number"].map(ids))


def _icd10_matches(codelist, code):
    return any(code.startswith(prefix) for prefix in codelist.icd10)


# --- The library against the generator ------------------------------------------------
@pytest.mark.parametrize("condition", synth.CONDITION_NAMES)
def test_condition_list_holds_exactly_the_gp_codes_synth_records(condition):
    expected = {CONDITIONS[condition].snomed} | RELATED.get(condition, set())

    assert LIBRARY[condition].snomed == expected


@pytest.mark.parametrize("condition", [c.name for c in synth.CONDITIONS if c.icd10])
def test_condition_list_counts_the_hospital_diagnosis_synth_records(condition):
    code = CONDITIONS[condition].icd10

    assert _icd10_matches(LIBRARY[condition], code) is (condition not in NOT_IDENTIFYING)


@pytest.mark.parametrize("condition", synth.CONDITION_NAMES)
def test_condition_list_holds_no_other_conditions_codes(condition):
    others = [c for c in synth.CONDITIONS if c.name != condition]
    codelist = LIBRARY[condition]

    assert not codelist.snomed & {c.snomed for c in others}
    assert not [c.icd10 for c in others if c.icd10 and _icd10_matches(codelist, c.icd10)]
    assert not [code for code in GENERIC_ICD10 if _icd10_matches(codelist, code)]


@pytest.mark.parametrize(
    ("codelist_id", "codes"),
    [
        ("type1_diabetes", {synth.TYPE1_DIABETES}),
        ("ckd_stage_4_5", {code for code, _ in synth.CKD_STAGES[1:]}),
        ("obesity", {synth.OBESITY}),
        ("bmi", {sf.BMI}),
        ("hba1c", {sf.HBA1C}),
        ("systolic_bp", {sf.SYSTOLIC_BP}),
        ("diastolic_bp", {sf.DIASTOLIC_BP}),
        *[(f"efi_{d.name}", {d.snomed}) for d in synth.DEFICITS],
    ],
)
def test_other_lists_hold_exactly_their_codes(codelist_id, codes):
    assert LIBRARY[codelist_id].snomed == codes


def test_every_code_is_one_the_source_format_allows():
    snomed = set().union(*(c.snomed for c in LIBRARY.values()))
    bnf = set().union(*(c.bnf_sections for c in LIBRARY.values()))

    assert snomed <= set(sf.SNOMED_CODES)
    assert bnf <= set(sf.BNF_SECTIONS)


def test_every_list_is_identified_versioned_and_uses_a_table():
    for codelist_id, codelist in LIBRARY.items():
        assert codelist.id == codelist_id
        assert codelist.version >= 1
        assert codelist.name and codelist.description
        assert codelist.tables
    for codelist_id, older in HISTORY.items():
        assert all(o.version < LIBRARY[codelist_id].version for o in older)


def test_efi_has_36_deficits_each_list_counting_once():
    referenced = [i for ids in EFI_DEFICITS.values() for i in ids]

    assert len(EFI_DEFICITS) == synth.EFI_DEFICITS == 36
    assert sum(bool(ids) for ids in EFI_DEFICITS.values()) == 28  # as docs/synthetic-data.md
    assert set(referenced) <= set(LIBRARY)
    assert len(referenced) == len(set(referenced))
    assert {i for i in LIBRARY if i.startswith("efi_")} <= set(referenced)


def test_efi_deficit_counts_reproduce_the_generators_truth(frames, truth):
    present = pd.DataFrame(
        {
            name: truth.index.isin(list(set().union(*(codelists.people_with(frames, i)
                                                      for i in ids))))
            for name, ids in EFI_DEFICITS.items()
        },
        index=truth.index,
    )  # fmt: skip

    assert (present.sum(axis=1) == truth["frailty_deficits"]).all()


@pytest.mark.parametrize("condition", synth.CONDITION_NAMES)
def test_people_with_a_condition_are_exactly_those_the_truth_gives_it(frames, truth, condition):
    found = codelists.people_with(frames, condition)

    assert set(found) == set(truth.index[truth[condition]])


# --- The helpers against straightforward pandas ----------------------------------------
def _brute_people_with(frames, codelist, start, end):
    def window(rows, column):
        keep = pd.Series(True, index=rows.index)
        if start is not None:
            keep &= rows[column] >= pd.Timestamp(start)
        if end is not None:
            keep &= rows[column] <= pd.Timestamp(end)
        return rows[keep]

    events = frames["gp_events"][frames["gp_events"]["snomed_code"].isin(codelist.snomed)]
    spells = frames["apc_spells"]
    spells = spells[
        [any(str(d).startswith(p) for p in codelist.icd10)
         for d in spells["primary_diagnosis_icd10"]]
    ]  # fmt: skip
    issues = frames["gp_medications"]
    issues = issues[issues["bnf_section"].isin(codelist.bnf_sections)]
    people = set(window(events, "date")["person_id"])
    people |= set(window(spells, "admission_date")["person_id"])
    return people | set(window(issues, "date")["person_id"])


@pytest.mark.parametrize(
    ("codelist_id", "start", "end"),
    [
        ("diabetes", None, None),
        ("diabetes", date(2024, 4, 1), date(2025, 3, 31)),
        ("ckd_stage_4_5", None, date(2020, 1, 1)),
        ("smi", date(2023, 6, 1), None),
        ("hypertension", date(2024, 1, 1), date(2024, 1, 31)),
        ("cancer", date(2023, 4, 1), date(2024, 3, 31)),
        ("efi_falls", None, None),
        ("bmi", date(2024, 10, 1), date(2024, 12, 31)),
        ("med_antidiabetics", date(2025, 1, 1), date(2025, 3, 31)),
        ("med_antihypertensives", None, None),
    ],
)
def test_people_with_matches_a_straightforward_computation(frames, codelist_id, start, end):
    found = codelists.people_with(frames, codelist_id, start=start, end=end)

    assert set(found) == _brute_people_with(frames, LIBRARY[codelist_id], start, end)
    assert found.is_unique and found.is_monotonic_increasing


@pytest.mark.parametrize("codelist_id", ["diabetes", "cancer", "smi", "efi_osteoporosis"])
def test_first_dates_match_a_straightforward_computation(frames, codelist_id):
    end = date(2024, 6, 30)
    codelist = LIBRARY[codelist_id]
    events = frames["gp_events"].loc[lambda f: f["snomed_code"].isin(codelist.snomed)]
    spells = frames["apc_spells"].loc[
        lambda f: f["primary_diagnosis_icd10"].map(lambda d: d.startswith(tuple(codelist.icd10)))
    ]
    dates = pd.concat([
        events[["person_id", "date"]],
        spells[["person_id", "admission_date"]].rename(columns={"admission_date": "date"}),
    ])  # fmt: skip
    expected = dates[dates["date"] <= pd.Timestamp(end)].groupby("person_id")["date"].min()

    found = codelists.first_dates(frames, codelist_id, end=end)

    pd.testing.assert_series_equal(found, expected, check_names=False)


def test_latest_values_match_a_straightforward_computation(frames):
    end = date(2024, 12, 31)
    events = frames["gp_events"]
    bmi = events[(events["snomed_code"] == sf.BMI) & (events["date"] <= pd.Timestamp(end))]
    last_day = bmi.groupby("person_id")["date"].transform("max")
    expected = bmi[bmi["date"] == last_day].groupby("person_id")["value"].last()

    found = codelists.latest_values(frames, "bmi", end=end)

    pd.testing.assert_series_equal(found, expected, check_names=False)


# --- Hand-built frames -------------------------------------------------------------------
def _rows(rows, columns, dates):
    frame = pd.DataFrame(rows, columns=columns)
    for column in dates:
        frame[column] = pd.to_datetime(frame[column]).astype("datetime64[s]")
    return frame.astype({"person_id": "str"})


def _tiny(events=(), spells=(), issues=()):
    return {
        "gp_events": _rows(events, ["person_id", "date", "snomed_code", "value"], ["date"]),
        "apc_spells": _rows(
            spells, ["person_id", "admission_date", "primary_diagnosis_icd10"], ["admission_date"]
        ),
        "gp_medications": _rows(issues, ["person_id", "date", "bnf_section"], ["date"]),
    }


DAYS = ["2024-01-09", "2024-01-10", "2024-01-15", "2024-01-20", "2024-01-21"]


@pytest.mark.parametrize(
    ("codelist_id", "table"),
    [("diabetes", "events"), ("diabetes", "spells"), ("med_antidiabetics", "issues")],
)
def test_windows_include_both_ends(codelist_id, table):
    code = {"events": "44054006", "spells": "E119", "issues": "0601"}[table]
    rows = [(f"P{i}", day, code, np.nan)[: 4 if table == "events" else 3]
            for i, day in enumerate(DAYS)]  # fmt: skip
    frames = _tiny(**{table: rows})

    found = codelists.people_with(
        frames, codelist_id, start=date(2024, 1, 10), end=date(2024, 1, 20)
    )

    assert list(found) == ["P1", "P2", "P3"]


def test_people_with_combines_gp_and_hospital_codes_and_matches_icd10_prefixes():
    frames = _tiny(
        events=[("A", "2020-01-01", "46635009", np.nan), ("B", "2020-01-01", "38341003", np.nan)],
        spells=[("C", "2021-01-01", "E109"), ("D", "2021-01-01", "E119"),
                ("E", "2021-01-01", "R739"), ("F", "2021-01-01", "XE11")],
    )  # fmt: skip

    assert list(codelists.people_with(frames, "diabetes")) == ["A", "C", "D"]
    assert list(codelists.people_with(frames, "type1_diabetes")) == ["A", "C"]


def test_first_dates_take_the_earliest_date_across_tables_up_to_end():
    frames = _tiny(
        events=[("A", "2022-05-01", "44054006", np.nan), ("B", "2024-02-01", "44054006", np.nan)],
        spells=[("A", "2021-03-01", "E119"), ("B", "2024-03-01", "E119")],
    )

    found = codelists.first_dates(frames, "diabetes", end=date(2024, 2, 1))

    assert found.to_dict() == {"A": pd.Timestamp("2021-03-01"), "B": pd.Timestamp("2024-02-01")}


def test_latest_values_take_the_latest_date_not_the_largest_or_last_row():
    frames = _tiny(
        events=[
            ("A", "2024-03-01", sf.BMI, 27.0), ("A", "2023-01-01", sf.BMI, 33.0),
            ("B", "2024-01-01", sf.BMI, 31.0), ("B", "2024-06-01", sf.BMI, np.nan),
            ("C", "2024-05-01", sf.BMI, 25.0), ("C", "2024-05-01", sf.BMI, 26.0),
            ("D", "2024-09-01", sf.BMI, 40.0), ("E", "2024-01-01", sf.HBA1C, 44.0),
        ]
    )  # fmt: skip

    found = codelists.latest_values(frames, "bmi", end=date(2024, 8, 31))

    assert found.to_dict() == {"A": 27.0, "B": 31.0, "C": 26.0}


def test_latest_values_from_start_ignore_earlier_readings():
    frames = _tiny(events=[("A", "2020-01-01", sf.BMI, 33.0), ("B", "2024-01-01", sf.BMI, 22.0)])

    found = codelists.latest_values(frames, "bmi", start=date(2023, 1, 1))

    assert found.to_dict() == {"B": 22.0}


def test_event_counts_count_rows_in_the_window():
    frames = _tiny(
        events=[("A", day, "38341003", np.nan) for day in DAYS] + [("B", DAYS[0], "1", np.nan)]
    )

    found = codelists.event_counts(frames, "hypertension", start=date(2024, 1, 10))

    assert found.to_dict() == {"A": 4}


def test_a_codelist_object_outside_the_library_can_be_used():
    custom = Codelist(id="custom", version=3, name="Custom", description="x", icd10=("E11",))
    frames = _tiny(spells=[("A", "2021-01-01", "E119")])

    assert list(codelists.people_with(frames, custom)) == ["A"]


# --- Missing inputs ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("tables", "call", "names"),
    [
        ([], lambda f: codelists.people_with(f, "diabetes"), ["gp_events", "apc_spells"]),
        (["apc_spells"], lambda f: codelists.people_with(f, "osteoarthritis"), ["gp_events"]),
        (["gp_events"], lambda f: codelists.people_with(f, "med_antipsychotics"),
         ["gp_medications"]),
        (["apc_spells"], lambda f: codelists.latest_values(f, "bmi"), ["gp_events"]),
        (["apc_spells"], lambda f: codelists.first_dates(f, "efi_falls"), ["gp_events"]),
    ],
)  # fmt: skip
def test_a_list_none_of_whose_tables_the_extract_has_is_refused_naming_them(tables, call, names):
    frames = {name: table for name, table in _tiny().items() if name in tables}

    with pytest.raises(AnalysisInputError) as raised:
        call(frames)

    assert all(name in str(raised.value) for name in names)


def test_a_table_the_list_does_not_need_or_the_extract_lacks_is_skipped():
    frames = {"gp_events": _tiny(events=[("A", "2020-01-01", "44054006", np.nan)])["gp_events"]}

    assert list(codelists.people_with(frames, "diabetes")) == ["A"]


def test_a_missing_date_column_is_named_when_a_window_needs_it():
    frames = {"gp_events": _tiny(events=[("A", "2020-01-01", "44054006", 1.0)])["gp_events"]}
    frames["gp_events"] = frames["gp_events"].drop(columns="date")

    assert list(codelists.people_with(frames, "diabetes")) == ["A"]
    with pytest.raises(AnalysisInputError, match="date in the gp_events table"):
        codelists.people_with(frames, "diabetes", end=date(2024, 1, 1))


def test_an_unknown_codelist_is_refused_naming_it():
    with pytest.raises(AnalysisInputError, match="no_such_list"):
        codelists.get("no_such_list")
    with pytest.raises(AnalysisInputError, match="no_such_list"):
        codelists.people_with(_tiny(), "no_such_list")


def test_get_returns_the_current_version_and_refuses_an_unknown_one():
    current = codelists.get("diabetes")

    assert codelists.get("diabetes", version=current.version) is current
    with pytest.raises(AnalysisInputError, match="no version 99"):
        codelists.get("diabetes", version=99)
