"""The cohort builder: validation messages, and/or/not and leaf semantics on hand-built
frames, the pilot cohorts against brute force and the generator's truth, the analysis."""

import json
from datetime import date

import numpy as np
import pandas as pd
import pytest

from sde.data import source_format as sf
from sde.data import synth
from sde.phm import cohorts
from sde.phm.cohorts import PILOT_COHORTS
from sde.phm.frames import AnalysisInputError, frames_from_tables

PEOPLE = 50_000
INDEX = date(2024, 6, 30)
CONDITIONS = {c.name: c for c in synth.CONDITIONS}


# --- Hand-built frames -------------------------------------------------------------------
def _frame(rows, columns, dates):
    frame = pd.DataFrame(list(rows), columns=columns)
    for column in dates:
        frame[column] = pd.to_datetime(frame[column]).astype("datetime64[s]")
    return frame.astype({"person_id": "str"})


PATIENT_COLUMNS = ["person_id", "birth_month", "sex", "ethnicity", "imd_decile",
                   "practice_ods", "pcn_code", "place", "lsoa_code", "registration_start",
                   "registration_end", "date_of_death"]  # fmt: skip


def _person(pid, born, sex="F", ethnicity="White: Irish", decile=5, practice="Y001",
            end=None, died=None):  # fmt: skip
    return (pid, born, sex, ethnicity, decile, practice, "U01", "North Place", "E01000001",
            "2000-01-01", end, died)  # fmt: skip


def _tiny(people, events=(), spells=()):
    return {
        "patients": _frame(people, PATIENT_COLUMNS, ["birth_month", "registration_start",
                                                     "registration_end", "date_of_death"]),
        "gp_events": _frame(events, ["person_id", "date", "snomed_code", "value"], ["date"]),
        "apc_spells": _frame(
            spells, ["person_id", "admission_date", "primary_diagnosis_icd10", "admission_method"],
            ["admission_date"],
        ),
    }  # fmt: skip


DIABETES, HYPERTENSION, DEPRESSION = "44054006", "38341003", "35489007"
# A: woman of 30 with diabetes; B: man of 70 with hypertension; C: girl of 10; D: man of
# 40 with both, most deprived; E: left the practice before the index date (has both).
BASIC = _tiny(
    [
        _person("A", "1994-01-15", decile=3), _person("B", "1954-02-01", sex="M", decile=8),
        _person("C", "2014-03-01", ethnicity="Asian: Indian", practice="Y002"),
        _person("D", "1984-05-05", sex="M", ethnicity="Black: African", decile=1),
        _person("E", "1980-01-01", end="2024-01-01"),
    ],
    events=[
        ("A", "2015-01-01", DIABETES, np.nan), ("B", "2010-01-01", HYPERTENSION, np.nan),
        ("D", "2024-06-01", DIABETES, np.nan), ("D", "2024-06-30", HYPERTENSION, np.nan),
        ("E", "2015-01-01", DIABETES, np.nan), ("E", "2015-01-01", HYPERTENSION, np.nan),
    ],
)  # fmt: skip


def _ids(frames, definition, index_date=INDEX):
    return list(cohorts.evaluate(frames, definition, index_date=index_date))


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        ({"has": "diabetes"}, ["A", "D"]),
        ({"not": {"has": "diabetes"}}, ["B", "C"]),
        ({"all": [{"has": "diabetes"}, {"has": "hypertension"}]}, ["D"]),
        ({"any": [{"has": "diabetes"}, {"has": "hypertension"}]}, ["A", "B", "D"]),
        ({"all": [{"has": "diabetes"}, {"not": {"has": "hypertension"}}]}, ["A"]),
        ({"not": {"any": [{"has": "diabetes"}, {"sex": ["M"]}]}}, ["C"]),
        ({"any": [{"all": [{"sex": ["F"]}, {"has": "diabetes"}]}, {"age": {"min": 65}}]},
         ["A", "B"]),
        ({"sex": ["M"]}, ["B", "D"]),
        ({"ethnic_group": ["Asian", "Black"]}, ["C", "D"]),
        ({"ethnic_group": ["White"]}, ["A", "B"]),
        ({"imd_decile": [1, 3]}, ["A", "D"]),
        ({"imd_quintile": [4]}, ["B"]),
        ({"core20": True}, ["D"]),
        ({"core20": False}, ["A", "B", "C"]),
        ({"practice": ["Y002"]}, ["C"]),
        ({"pcn": ["U01"]}, ["A", "B", "C", "D"]),
        ({"place": ["South Place"]}, []),
        ({"lsoa": ["E01000001"]}, ["A", "B", "C", "D"]),
        ({"age": {"min": 18, "max": 40}}, ["A", "D"]),
        ({"has": "diabetes", "within_days": 29}, ["D"]),
        ({"has": "hypertension", "within_days": 1}, ["D"]),
    ],
)  # fmt: skip
def test_combinators_and_leaves_select_the_right_people(definition, expected):
    assert _ids(BASIC, definition) == expected


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        ({"age": {"min": 20}}, ["on", "over"]),  # 20 on the index date counts as 20
        ({"age": {"max": 19}}, ["under"]),
        ({"age": {"min": 16, "max": 64}}, ["on", "over", "under"]),
        ({"age": {"min": 21, "max": None}}, ["over"]),
    ],
)
def test_age_is_whole_years_on_the_index_date_bounds_inclusive(definition, expected):
    frames = _tiny([_person("on", "2004-06-30"), _person("under", "2004-07-01"),
                    _person("over", "2003-06-29")])  # fmt: skip

    assert _ids(frames, definition) == expected


WINDOW = _tiny(
    [_person(p, "1970-01-01") for p in "ABCDE"],
    events=[
        # A: exactly 365 days before; B: 366 days before; C: on the index date.
        ("A", "2023-07-01", DEPRESSION, np.nan), ("B", "2023-06-30", DEPRESSION, np.nan),
        ("C", "2024-06-30", DEPRESSION, np.nan),
        # D: three in the year, one before it; E: after the index date only.
        *[("D", day, DEPRESSION, np.nan) for day in ("2022-01-01", "2023-08-01", "2024-01-01",
                                                     "2024-05-01")],
        ("E", "2024-07-01", DEPRESSION, np.nan),
    ],
    spells=[("A", "2024-01-01", "J189", "emergency"), ("A", "2024-02-01", "J189", "emergency"),
            ("B", "2023-06-30", "J189", "emergency"), ("C", "2024-03-01", "K409", "elective")],
)  # fmt: skip


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        ({"has": "depression", "within_days": 365}, ["A", "C", "D"]),
        ({"has": "depression"}, ["A", "B", "C", "D"]),
        ({"events": {"codelist": "depression", "within_days": 365, "at_least": 3}}, ["D"]),
        ({"events": {"codelist": "depression", "within_days": 365, "at_least": 4}}, []),
        ({"events": {"codelist": "depression", "at_least": 4}}, ["D"]),
        ({"events": {"codelist": "depression", "within_days": 365, "at_most": 0}}, ["B", "E"]),
        ({"events": {"codelist": "depression", "within_days": 365, "at_least": 1,
                     "at_most": 2}}, ["A", "C"]),
        ({"activity": {"kind": "emergency_admissions", "within_days": 365, "at_least": 1}},
         ["A"]),
        ({"activity": {"kind": "emergency_admissions", "at_least": 1}}, ["A", "B"]),
        ({"activity": {"kind": "emergency_admissions", "within_days": 366, "at_least": 2}},
         ["A"]),
        ({"activity": {"kind": "elective_admissions", "within_days": 365, "at_most": 0}},
         ["A", "B", "D", "E"]),
    ],
)  # fmt: skip
def test_windows_end_on_the_index_date_and_include_both_ends(definition, expected):
    assert _ids(WINDOW, definition) == expected


BMI, HBA1C = sf.BMI, sf.HBA1C
LATEST = _tiny(
    [_person(p, "1970-01-01") for p in "ABCDEF"],
    events=[
        ("A", "2020-01-01", BMI, 34.0), ("A", "2024-01-01", BMI, 28.5),  # was obese, is not
        ("B", "2020-01-01", BMI, 25.0), ("B", "2024-01-01", BMI, 31.0),
        ("C", "2024-01-01", BMI, 30.0),  # exactly 30
        ("D", "2024-01-01", BMI, 29.9), ("D", "2024-08-01", BMI, 35.0),  # after the index date
        ("E", "2024-01-01", HBA1C, 44.0),  # no BMI
        ("F", "2023-01-01", HBA1C, 50.0), ("F", "2024-02-01", HBA1C, 47.0),
    ],
)  # fmt: skip


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        ({"latest": {"codelist": "bmi", "min": 30}}, ["B", "C"]),
        ({"not": {"latest": {"codelist": "bmi", "min": 30}}}, ["A", "D", "E", "F"]),
        ({"latest": {"codelist": "bmi", "max": 29.9}}, ["A", "D"]),
        ({"latest": {"codelist": "hba1c", "min": 42, "max": 47}}, ["E", "F"]),
        ({"latest": {"codelist": "bmi", "min": 30, "within_days": 180}}, []),
    ],
)
def test_latest_reads_the_latest_value_up_to_the_index_date(definition, expected):
    assert _ids(LATEST, definition) == expected


def test_the_population_is_the_registered_living_population_on_the_index_date():
    frames = _tiny(
        [_person("A", "1970-01-01"), _person("B", "1970-01-01", end="2024-06-29"),
         _person("C", "1970-01-01", died="2024-06-30"), _person("D", "1970-01-01",
                                                                end="2024-06-30")],
        events=[(p, "2020-01-01", DIABETES, np.nan) for p in "ABCD"],
    )  # fmt: skip

    assert _ids(frames, {"has": "diabetes"}) == ["A", "D"]


# --- Validation --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ([], 'the definition must be an object such as {"all": [...]}'),
        ({}, "the definition is empty: it needs one of all, any, not"),
        ({"alll": []}, "alll is not a known key"),
        ({"all": []}, "all must be a non-empty list of conditions"),
        ({"all": {"age": {}}}, "all must be a non-empty list of conditions"),
        ({"not": [{"has": "smi"}]}, "not must be an object"),
        ({"all": [{"has": "smi"}, {"age": {"min": 20.5}}]},
         "all[1].age.min must be a whole number"),
        ({"age": {"min": True}}, "age.min must be a whole number"),
        ({"age": {"min": -1}}, "age.min must be a whole number (0 or more)"),
        ({"age": {"min": 65, "max": 16}}, "age.min must not be more than age.max"),
        ({"age": {}}, "age needs min or max"),
        ({"age": {"min": None, "max": None}}, "age needs min or max"),
        ({"age": {"from": 3}}, "age.from is not a known key (expected min, max)"),
        ({"age": 20}, "age must be an object"),
        ({"sex": "F"}, "sex must be a non-empty list of text values"),
        ({"sex": ["X"]}, "sex[0]: 'X' is not one of M, F, I, U"),
        ({"ethnic_group": ["White", "Purple"]}, "ethnic_group[1]: 'Purple' is not one of White"),
        ({"imd_decile": [0]}, "imd_decile[0]: 0 is not one of 1, 2"),
        ({"imd_decile": ["1"]}, "imd_decile[0] must be a whole number"),
        ({"imd_quintile": [6]}, "imd_quintile[0]: 6 is not one of 1, 2, 3, 4, 5"),
        ({"core20": 1}, "core20 must be true or false"),
        ({"practice": []}, "practice must be a non-empty list of text values"),
        ({"pcn": [7]}, "pcn[0] must be text"),
        ({"has": "diabetis"}, "has: unknown codelist 'diabetis'"),
        ({"has": 3}, "has must be a codelist id (text)"),
        ({"has": "smi", "within_days": 0}, "within_days must be a whole number of days"),
        ({"has": "smi", "within": 30}, "within is not allowed beside has"),
        ({"age": {"min": 3}, "within_days": 30}, "within_days is not allowed beside age"),
        ({"age": {"min": 3}, "sex": ["F"]},
         "the definition has more than one condition (age, sex)"),
        ({"any": [{"events": {"codelist": "nope", "at_least": 1}}]},
         "any[0].events.codelist: unknown codelist 'nope'"),
        ({"events": {"codelist": "smi"}}, "events needs at_least or at_most"),
        ({"events": {"codelist": "smi", "at_least": 3, "at_most": 1}},
         "events.at_least must not be more than events.at_most"),
        ({"events": {"codelist": "smi", "at_least": 1, "count": 1}}, "events.count is not a known"),
        ({"activity": {"kind": "visits", "at_least": 1}}, "activity.kind must be one of"),
        ({"activity": {"kind": "ae_attendances", "at_least": 1, "within_days": "a year"}},
         "activity.within_days must be a whole number of days"),
        ({"latest": {"codelist": "bmi"}}, "latest needs min or max"),
        ({"latest": {"codelist": "bmi", "min": "30"}}, "latest.min must be a number"),
        ({"latest": {"codelist": "bmi", "min": float("nan")}}, "latest.min must be a number"),
        ({"latest": {"codelist": "med_antipsychotics", "min": 1}},
         "latest.codelist: codelist 'med_antipsychotics' has no GP codes"),
        ({"not": {"all": [{"not": {"age": {"max": "x"}}}]}},
         "not.all[0].not.age.max must be a whole number"),
    ],
)  # fmt: skip
def test_validate_names_each_problem_and_its_path(definition, message):
    problems = cohorts.validate(definition)

    assert any(p.startswith(message) for p in problems), problems


def test_validate_reports_every_problem_not_just_the_first():
    definition = {"all": [{"age": {"min": "x"}}, {"has": "nope"}, {"sex": ["Q"]}]}

    assert len(cohorts.validate(definition)) == 3


@pytest.mark.parametrize("name", list(PILOT_COHORTS))
def test_pilot_cohorts_are_valid_and_json_serialisable(name):
    definition = PILOT_COHORTS[name]

    assert cohorts.validate(definition) == []
    assert json.loads(json.dumps(definition)) == definition


def test_evaluate_refuses_an_invalid_definition_with_the_messages():
    with pytest.raises(AnalysisInputError, match=r"all\[0\]\.age\.min must be a whole number"):
        cohorts.evaluate(BASIC, {"all": [{"age": {"min": "x"}}]}, index_date=INDEX)


@pytest.mark.parametrize(
    ("frames", "definition", "names"),
    [
        ({"gp_events": BASIC["gp_events"]}, {"sex": ["F"]}, ["patients"]),
        ({"patients": BASIC["patients"]}, {"has": "diabetes"}, ["gp_events", "apc_spells"]),
        ({"patients": BASIC["patients"]},
         {"activity": {"kind": "emergency_admissions", "at_least": 1}}, ["apc_spells"]),
        ({**BASIC, "patients": BASIC["patients"].drop(columns="ethnicity")},
         {"ethnic_group": ["Asian"]}, ["ethnicity", "patients"]),
        ({**BASIC, "patients": BASIC["patients"].drop(columns="imd_decile")}, {"core20": True},
         ["imd_decile"]),
    ],
)  # fmt: skip
def test_a_missing_table_or_column_is_refused_naming_it(frames, definition, names):
    with pytest.raises(AnalysisInputError) as raised:
        cohorts.evaluate(frames, definition, index_date=INDEX)

    assert all(name in str(raised.value) for name in names)


# --- Reading a definition ----------------------------------------------------------------
def test_definition_hash_is_stable_under_key_order_and_changes_with_content():
    one = {"all": [{"age": {"min": 20, "max": None}}, {"has": "smi", "within_days": 30}]}
    two = {"all": [{"age": {"max": None, "min": 20}}, {"within_days": 30, "has": "smi"}]}
    three = {"all": [{"age": {"min": 21, "max": None}}, {"has": "smi", "within_days": 30}]}

    assert cohorts.definition_hash(one) == cohorts.definition_hash(two)
    assert cohorts.definition_hash(one) != cohorts.definition_hash(three)
    assert len(cohorts.definition_hash(one)) == 64


@pytest.mark.parametrize(
    ("definition", "text"),
    [
        ({"age": {"min": 20}}, "aged 20 or more"),
        ({"age": {"min": 16, "max": 64}}, "aged 16 to 64"),
        ({"all": [{"sex": ["F"]}, {"any": [{"has": "copd"}, {"has": "asthma"}]}]},
         "sex F and (has COPD or has asthma)"),
        ({"not": {"has": "diabetes", "within_days": 365}},
         "not (has diabetes mellitus in the last 365 days)"),
        ({"events": {"codelist": "depression", "within_days": 365, "at_most": 2}},
         "2 or less depression events in the last 365 days"),
        ({"activity": {"kind": "emergency_admissions", "within_days": 365, "at_least": 1}},
         "1 or more emergency admissions in the last 365 days"),
        ({"latest": {"codelist": "hba1c", "min": 42, "max": 47}}, "latest HbA1c 42 to 47"),
        ({"imd_decile": [1, 2]}, "IMD decile 1 or 2"),
        ({"ethnic_group": ["Asian", "Black", "Mixed"]}, "ethnic group Asian, Black or Mixed"),
        ({"core20": True}, "in Core20 (IMD deciles 1-2)"),
    ],
)  # fmt: skip
def test_describe_reads_as_one_line_of_english(definition, text):
    assert cohorts.describe(definition) == text


def test_codelists_used_lists_every_list_once_with_its_version():
    definition = PILOT_COHORTS["working_age_minority_smi_obese"]

    assert cohorts.codelists_used(definition) == {"bmi": 1, "diabetes": 1, "obesity": 1,
                                                  "smi": 1}  # fmt: skip


# --- The pilot cohorts on synthetic data -------------------------------------------------
@pytest.fixture(scope="module")
def drop():
    return synth.generate(
        patients=PEOPLE, seed=2718, config=synth.SynthConfig(faults=synth.FaultRates.none())
    )


@pytest.fixture(scope="module")
def frames(drop):
    return frames_from_tables(drop)


@pytest.fixture(scope="module")
def brute(drop, frames):
    """Per registered person on the index date, computed directly from the tables with
    the generator's codes (not the library): age, group, decile, flags, latest values."""
    day = pd.Timestamp(drop.end)
    p = frames["patients"]
    alive = (
        (p["registration_end"].isna() | (p["registration_end"] >= day))
        & (p["date_of_death"].isna() | (p["date_of_death"] > day))
        & (p["registration_start"] <= day)
    )
    p = p[alive].set_index("person_id")
    born = p["birth_month"]
    birthday_to_come = (born.dt.month * 100 + born.dt.day) > (day.month * 100 + day.day)
    out = pd.DataFrame({"age": day.year - born.dt.year - birthday_to_come.astype(int),
                        "group": p["ethnicity"].str.split(":").str[0],
                        "decile": p["imd_decile"]})  # fmt: skip
    events = frames["gp_events"][frames["gp_events"]["date"] <= day]
    spells = frames["apc_spells"][frames["apc_spells"]["admission_date"] <= day]
    for name, c in CONDITIONS.items():
        codes = {c.snomed} | {"diabetes": {synth.TYPE1_DIABETES}, "smi": {synth.BIPOLAR}}.get(
            name, set())  # fmt: skip
        who = set(events.loc[events["snomed_code"].isin(codes), "person_id"])
        if c.icd10 and name != "learning_disability":
            who |= set(spells.loc[spells["primary_diagnosis_icd10"] == c.icd10, "person_id"])
        out[name] = out.index.isin(list(who))
    out["obesity_code"] = out.index.isin(events.loc[events["snomed_code"] == synth.OBESITY,
                                                    "person_id"])  # fmt: skip
    for name, code in (("bmi", sf.BMI), ("hba1c", sf.HBA1C)):
        readings = events[(events["snomed_code"] == code) & events["value"].notna()]
        last = readings.sort_values("date", kind="stable").groupby("person_id")["value"].last()
        out[name] = last.reindex(out.index)
    out["obese"] = out["obesity_code"] | (out["bmi"] >= 30)
    return out


@pytest.fixture(scope="module")
def pilots(drop, frames):
    """Each pilot cohort's person_ids on the extract date, evaluated once."""
    return {name: cohorts.evaluate(frames, definition, index_date=drop.end)
            for name, definition in PILOT_COHORTS.items()}  # fmt: skip


def _brute_pilot(b, name):
    adult = b["age"] >= 18
    if name == "osteoarthritis_deprived":
        return (
            (b["age"] >= 20)
            & b["osteoarthritis"]
            & (b["hypertension"] | b["obese"] | b["depression"])
            & b["decile"].isin([1, 2])
        )
    if name == "smi_substance_dependence":
        return adult & b["smi"] & (b["drug_dependence"] | b["alcohol_dependence"])
    if name == "prediabetes_mental_health":
        pre = b["prediabetes"] | b["hba1c"].between(42, 47)
        return adult & ~b["diabetes"] & pre & (b["depression"] | b["anxiety"])
    minority = b["group"].isin(["Asian", "Black", "Mixed", "Other"])
    return b["age"].between(16, 64) & minority & b["smi"] & b["obese"] & ~b["diabetes"]


@pytest.mark.parametrize("name", list(PILOT_COHORTS))
def test_pilot_cohort_equals_a_brute_force_computation(pilots, brute, name):
    found = pilots[name]

    expected = brute.index[_brute_pilot(brute, name).to_numpy(dtype=bool)]
    assert len(found) > 0
    assert set(found) == set(expected)


@pytest.fixture(scope="module")
def truth(drop, frames, brute):
    ids = dict(zip(drop["patients"]["nhs_number"], frames["patients"]["person_id"], strict=True))
    return drop.truth.set_index(drop.truth["nhs_number"].map(ids)).loc[brute.index]


MINORITY = ["Asian", "Black", "Mixed", "Other"]


# (cohort, what every member truly has, who the truth alone puts in it or None). Codes
# are recorded for everyone with a condition (no faults) and non-diabetic HbA1c readings
# of 42-47 come only from prediabetes, so two cohorts are exactly the truth's; the BMI
# route has no truth column, so the others are bounded from one or both sides.
@pytest.mark.parametrize(
    ("name", "members_have", "truth_cohort"),
    [
        ("osteoarthritis_deprived",
         lambda t: t["osteoarthritis"] & t["imd_decile"].isin([1, 2]),
         lambda t: t["osteoarthritis"] & (t["hypertension"] | t["depression"])
         & t["imd_decile"].isin([1, 2])),
        ("smi_substance_dependence",
         lambda t: t["smi"] & (t["drug_dependence"] | t["alcohol_dependence"]), "same"),
        ("prediabetes_mental_health",
         lambda t: t["prediabetes"] & ~t["diabetes"] & (t["depression"] | t["anxiety"]), "same"),
        ("working_age_minority_smi_obese",
         lambda t: t["smi"] & ~t["diabetes"] & t["ethnicity_group"].isin(MINORITY), None),
    ],
)  # fmt: skip
def test_pilot_cohort_agrees_with_the_generators_truth(
    pilots, brute, truth, name, members_have, truth_cohort
):
    found = set(pilots[name])
    of_age = brute["age"] >= (20 if name == "osteoarthritis_deprived" else 18)

    assert members_have(truth.loc[list(found)]).all()
    if truth_cohort == "same":
        assert found == set(truth.index[(members_have(truth) & of_age).to_numpy(dtype=bool)])
    elif truth_cohort is not None:
        assert set(truth.index[(truth_cohort(truth) & of_age).to_numpy(dtype=bool)]) <= found


@pytest.mark.parametrize("name", list(PILOT_COHORTS))
def test_pilot_cohort_sizes_are_plausible_shares_of_the_population(pilots, brute, name):
    """Loose bounds from the generator's prevalences (per 100,000 registered)."""
    population, found = brute.index, pilots[name]
    low, high = {"osteoarthritis_deprived": (300, 2000), "smi_substance_dependence": (20, 300),
                 "prediabetes_mental_health": (200, 1500),
                 "working_age_minority_smi_obese": (10, 200)}[name]  # fmt: skip

    assert low <= 100_000 * len(found) / len(population) <= high


# --- The analysis ------------------------------------------------------------------------
def test_cohort_analysis_counts_the_cohort_overall_and_by_band_sex_and_quintile(
    drop, frames, pilots
):
    definition = PILOT_COHORTS["prediabetes_mental_health"]
    people = pilots["prediabetes_mental_health"]

    result = cohorts.cohort_analysis(frames, index_date=drop.end, definition=definition,
                                     name="prediabetes")  # fmt: skip

    size = result.table("cohort_size").frame
    assert size.to_dict("records") == [{"cohort": "prediabetes", "people": len(people)}]
    for table, column in (("cohort_by_age_band", "age_band"), ("cohort_by_sex", "sex"),
                          ("cohort_by_imd_quintile", "imd_quintile")):  # fmt: skip
        frame = result.table(table).frame
        assert frame["people"].sum() == len(people)
        assert list(result.table(table).dimensions) == [column]
        json.dumps(result.table(table).sidecar())
    assert result.charts[0].table == "cohort_by_age_band" and result.charts[0].kind == "bar"
    assert result.codelists == {"anxiety": 1, "depression": 1, "diabetes": 1, "hba1c": 1,
                                "prediabetes": 1}  # fmt: skip
    assert result.parameters["definition_hash"] == cohorts.definition_hash(definition)
    assert result.parameters["description"] == cohorts.describe(definition)
    assert json.loads(json.dumps(result.parameters))["definition"] == definition
    assert list(result.cohort) == list(people)


def test_cohort_analysis_of_an_empty_cohort_reports_zero():
    result = cohorts.cohort_analysis(BASIC, index_date=INDEX, definition={"place": ["Nowhere"]})

    assert result.table("cohort_size").frame["people"].tolist() == [0]
    assert result.table("cohort_by_age_band").frame.empty
    assert result.cohort is not None and result.cohort.empty
