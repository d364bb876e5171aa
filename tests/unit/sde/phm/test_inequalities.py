"""Rates by breakdown, the deprivation gradient and Core20PLUS5: against known properties
of the synthetic data (generated from documented parameters), hand-built extracts, and
the evidence output checking reads."""

import json
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from sde.data import synth
from sde.phm import codelists
from sde.phm.core20plus5 import AREAS, DEFINITIONS, core20plus5
from sde.phm.frames import AnalysisInputError, frames_from_tables
from sde.phm.inequalities import BREAKDOWNS, inequality_gradient, rates_by
from sde.phm.population import ESP2013_BANDS, ESP2013_WEIGHTS, registered_population

PEOPLE = 20_000
INDEX = date(2025, 4, 1)  # the day after the default window: the last year is the window's
END = INDEX - timedelta(days=1)
OUTCOMES = ["emergency_admissions", {"prevalence": "diabetes"}]


@pytest.fixture(scope="module")
def drop():
    config = synth.SynthConfig(faults=synth.FaultRates.none())
    return synth.generate(patients=PEOPLE, seed=11, config=config)


@pytest.fixture(scope="module")
def frames(drop):
    return frames_from_tables(drop)


@pytest.fixture(scope="module")
def population(frames):
    return registered_population(frames, INDEX)


@pytest.fixture(scope="module")
def truth(drop, frames):
    """The generator's truth per person, indexed by the extract's person_id."""
    ids = dict(zip(drop["patients"]["nhs_number"], frames["patients"]["person_id"], strict=True))
    return drop.truth.assign(person_id=drop.truth["nhs_number"].map(ids)).set_index("person_id")


@pytest.fixture(scope="module")
def plus5(frames):
    return core20plus5(frames, index_date=INDEX, plus_groups=("ethnic_minority", "black"))


def _cell(table, **where):
    frame = table.frame
    mask = np.logical_and.reduce([frame[k] == v for k, v in where.items()])
    return frame.loc[mask].iloc[0]


# --- rates_by -----------------------------------------------------------------------------
def test_emergency_admissions_are_about_100_per_1000_a_year_as_the_risk_model_says(
    frames, population, truth
):
    result = rates_by(frames, index_date=INDEX, outcome="emergency_admissions", by="sex")

    crude = result.tables[0].frame
    per_1000 = crude["events"].sum() / crude["people"].sum() * 1_000
    # Expected: P(at least one) per person, times 1 + Poisson(0.45) admissions.
    p = truth.loc[population["person_id"], "p_emergency_admission"]
    expected = p.mean() * (1 + synth.EXTRA_EMERGENCY_ADMISSIONS) * 1_000
    assert 75 < per_1000 < 125
    assert per_1000 == pytest.approx(expected, rel=0.1)


def test_prevalence_counts_the_people_the_generator_gave_the_condition(frames, population, truth):
    result = rates_by(frames, index_date=INDEX, outcome={"prevalence": "copd"}, by="place")

    counted = result.tables[0].frame["people_with"].sum()
    assert counted == truth.loc[population["person_id"], "copd"].sum()
    assert result.codelists == {"copd": codelists.get("copd").version}


@pytest.mark.parametrize("outcome", OUTCOMES, ids=["events", "prevalence"])
@pytest.mark.parametrize("by", list(BREAKDOWNS))
def test_each_breakdown_covers_the_whole_population_once(frames, population, outcome, by):
    result = rates_by(frames, index_date=INDEX, outcome=outcome, by=by, standardise=False)

    crude = result.tables[0].frame
    assert crude["people"].sum() == len(population) == result.parameters["people"]
    assert crude[by].is_unique
    assert result.parameters[f"people_without_{by}_or_age"] == 0


@pytest.mark.parametrize("outcome", OUTCOMES, ids=["events", "prevalence"])
@pytest.mark.parametrize("by", ["imd_decile", "core20", "ethnic_group", "pcn_code"])
def test_evidence_lines_up_with_every_published_cell(frames, outcome, by):
    result = rates_by(frames, index_date=INDEX, outcome=outcome, by=by)

    assert [t.name.endswith("_standardised") for t in result.tables] == [False, True]
    for table in result.tables:
        frame, persons = table.frame, table.persons
        numerator = "events" if isinstance(outcome, str) else "people_with"
        assert (persons["people"] == frame["people"]).all()
        if numerator == "events":  # distinct people behind the events
            assert (persons["events"] <= frame["events"]).all()
            assert ((persons["events"] > 0) == (frame["events"] > 0)).all()
        else:
            assert (persons["people_with"] == frame["people_with"]).all()
        for column, sources in table.derived_from.items():
            assert set(sources) == {numerator, "people"}
            assert (persons[column] == persons[numerator]).all()
        assert set(table.statistics) == set(frame.columns) - {by}
        json.dumps(table.sidecar(extract="test"))
    assert {(c.table, c.y) for c in result.charts} == {
        (result.tables[0].name, "rate" if isinstance(outcome, str) else "proportion"),
        (result.tables[1].name, "dsr"),
    }


def test_people_behind_the_events_are_counted_from_the_rows(frames, population):
    result = rates_by(frames, index_date=INDEX, outcome="emergency_admissions",
                      by="imd_decile")  # fmt: skip

    spells = frames["apc_spells"]
    window = spells["admission_date"].between(pd.Timestamp(INDEX.replace(year=2024)),
                                              pd.Timestamp(END))  # fmt: skip
    emergency = spells.loc[window & (spells["admission_method"] == "emergency")]
    decile1 = population.loc[population["imd_decile"] == 1, "person_id"]
    rows = emergency.loc[emergency["person_id"].isin(decile1)]
    table = result.tables[0]
    first = table.frame.index[table.frame["imd_decile"] == 1][0]
    assert table.frame.at[first, "events"] == len(rows)
    assert table.persons.at[first, "events"] == rows["person_id"].nunique()


@pytest.mark.parametrize("outcome", OUTCOMES, ids=["events", "prevalence"])
def test_dsr_equals_crude_rate_when_the_population_has_the_esp_structure(
    frames, population, outcome
):
    # Keep 40 people per 500 of ESP weight in each band (400 aged 0-4 ... 80 aged 90+) and
    # put them all in one Place: that one group's DSR must be its crude rate.
    wanted = dict(zip(ESP2013_BANDS, np.asarray(ESP2013_WEIGHTS) // 500 * 40, strict=True))
    band = population["age_band_5y"].astype("str")
    keep = population.groupby(band).cumcount() < band.map(wanted)
    assert band[keep].value_counts().to_dict() == wanted
    patients = frames["patients"]
    patients = patients.loc[patients["person_id"].isin(population.loc[keep, "person_id"])]
    esp_frames = {**frames, "patients": patients.assign(place="Everyone")}

    result = rates_by(esp_frames, index_date=INDEX, outcome=outcome, by="place")

    crude, standardised = (t.frame.iloc[0] for t in result.tables)
    value = crude["rate"] if isinstance(outcome, str) else crude["proportion"] * 100_000
    assert crude["people"] == sum(wanted.values())
    assert standardised["dsr"] == pytest.approx(value, rel=1e-12)
    assert standardised["dsr_lower"] < value < standardised["dsr_upper"]


def test_no_standardised_rates_within_age_bands(frames):
    result = rates_by(frames, index_date=INDEX, outcome="ae_attendances", by="age_band")

    assert [t.name for t in result.tables] == ["ae_attendances_by_age_band"]


# --- inequality_gradient ------------------------------------------------------------------
@pytest.mark.parametrize(
    "outcome", ["emergency_admissions", {"prevalence": "diabetes"}, {"prevalence": "copd"}],
    ids=["emergency_admissions", "diabetes", "copd"],
)  # fmt: skip
def test_outcomes_more_common_in_deprived_areas_have_a_positive_sii(frames, outcome):
    result = inequality_gradient(frames, index_date=INDEX, outcome=outcome)

    name = result.tables[0].name
    deciles = result.table(f"{name}_standardised").frame.set_index("imd_decile")["dsr"]
    sii = result.table(name.replace("_by_imd_decile", "_sii")).frame.iloc[0]
    core20 = result.table(name.replace("imd_decile", "core20") + "_standardised").frame
    assert deciles.loc[1] > deciles.loc[10]
    assert 0 < sii["sii_lower"] < sii["sii"] < sii["sii_upper"]
    assert 0 < sii["rii_lower"] < sii["rii"] < sii["rii_upper"]
    assert sii["rii"] == pytest.approx(sii["sii"] / sii["mean"])
    rates = core20.set_index("core20")["dsr"]
    assert rates["Core20"] > rates["Rest"]


def test_sii_table_is_one_row_with_the_whole_population_as_evidence(frames, population):
    result = inequality_gradient(frames, index_date=INDEX, outcome="emergency_admissions")

    table = result.table("emergency_admissions_sii")
    assert len(table.frame) == 1
    assert table.frame.at[0, "people"] == len(population)
    for column in ("sii", "sii_lower", "sii_upper", "rii", "rii_lower", "rii_upper", "mean"):
        assert table.persons.at[0, column] == len(population)
        assert table.derived_from[column] == ("events", "people")
    json.dumps(table.sidecar())


# --- core20plus5 --------------------------------------------------------------------------
def test_core20plus5_publishes_every_defined_measure_for_every_group(plus5, population):
    assert [t.name for t in plus5.tables] == [f"core20plus5_{a}" for a in AREAS]
    for table in plus5.tables:
        area = table.name.removeprefix("core20plus5_")
        measures = [m.measure for m in DEFINITIONS if m.area == area]
        assert list(table.frame["measure"].unique()) == measures
        assert list(table.frame["group"].unique()) == ["Core20", "ethnic_minority", "black",
                                                       "Rest"]  # fmt: skip
        assert (table.frame["numerator"] <= table.frame["denominator"]).all()
        assert (table.persons["numerator"] == table.frame["numerator"]).all()
        assert (table.persons["denominator"] == table.frame["denominator"]).all()
        assert (table.persons["proportion"] == table.frame["numerator"]).all()
        json.dumps(table.sidecar())
    assert [c.table for c in plus5.charts] == [t.name for t in plus5.tables]


def test_core20plus5_records_the_version_of_every_codelist_it_read(plus5):
    named = {c for m in DEFINITIONS for c in m.codelists}

    assert named <= set(plus5.codelists)
    assert plus5.codelists == {c: codelists.get(c).version for c in plus5.codelists}


def test_core20plus5_groups_are_core20_plus_groups_and_everyone_else(plus5, population):
    smi = plus5.table("core20plus5_smi")
    minority = population["ethnic_group"].isin(["Asian", "Black", "Mixed", "Other"])
    core20 = population["core20"]

    def denominator(group):
        return _cell(smi, measure="prevalence", group=group)["denominator"]

    assert denominator("Core20") == core20.sum()
    assert denominator("ethnic_minority") == minority.sum()
    assert denominator("black") == (population["ethnic_group"] == "Black").sum()
    assert denominator("Rest") == (~core20 & ~minority).sum()


def test_core20plus5_shows_known_inequalities_of_the_synthetic_data(plus5):
    def proportion(area, measure, group):
        return _cell(plus5.table(f"core20plus5_{area}"), measure=measure, group=group)

    # SMI and COPD have strong deprivation terms; SMI a Black ethnicity term too.
    rest = proportion("smi", "prevalence", "Rest")["proportion"]
    assert proportion("smi", "prevalence", "Core20")["proportion_lower"] > rest
    assert proportion("smi", "prevalence", "black")["proportion"] > rest
    # Non-diabetic HbA1c values are at most 47 in the generator: no undiagnosed diabetes.
    assert (plus5.table("core20plus5_diabetes").frame.query("measure == 'gap'")["numerator"]
            == 0).all()  # fmt: skip
    # Undiagnosed hypertension shows as high readings: a case-finding gap, expected > recorded.
    hypertension = plus5.table("core20plus5_hypertension").frame.set_index(["measure", "group"])
    assert (hypertension.loc["gap", "numerator"] > 0).all()
    expected, recorded = (hypertension.loc[m, "proportion"] for m in ("expected", "prevalence"))
    assert (expected > recorded).all()


def test_hypertension_gap_matches_a_direct_count(plus5, frames, population):
    events = frames["gp_events"]
    events = events.loc[events["date"] <= pd.Timestamp(END)]
    coded = set(events.loc[events["snomed_code"] == synth.CONDITIONS[0].snomed, "person_id"])
    systolic = events.loc[events["snomed_code"] == synth.SYSTOLIC_BP]
    latest = systolic.sort_values("date", kind="stable").groupby("person_id")["value"].last()
    people = population.loc[(population["age"] >= 18) & population["core20"], "person_id"]
    high = latest.reindex(people).ge(140) & ~people.isin(coded).to_numpy()

    cell = _cell(plus5.table("core20plus5_hypertension"), measure="gap", group="Core20")

    assert cell["numerator"] == high.sum()
    assert cell["denominator"] == len(people)


def test_core20plus5_without_diabetes_or_limited_to_some_areas(frames):
    areas = ("smi", "diabetes")
    without = core20plus5(frames, index_date=INDEX, include_diabetes=False, areas=areas)

    assert [t.name for t in without.tables] == ["core20plus5_smi"]


def _hand_built_extract():
    """Five registered people (decile, sex, ethnicity) with deliveries, readings and
    admissions placed either side of each window's edge."""
    people = ["A", "B", "C", "D", "E"]
    patients = pd.DataFrame({
        "person_id": people,
        "birth_month": pd.to_datetime(["1995-01-01", "1996-01-01", "1996-01-01", "1950-01-01",
                                         "1990-01-01"]),
        "sex": ["F", "F", "F", "M", "F"],
        "ethnicity": ["White: Irish", "Black: African", "Asian: Indian", "White: Irish",
                      "White: Other White"],
        "imd_decile": [1, 5, 9, 2, 8],
        "registration_start": pd.to_datetime(["2010-01-01"] * 5),
        "registration_end": pd.to_datetime([None] * 5),
        "date_of_death": pd.to_datetime([None] * 5),
    })  # fmt: skip
    spells = [  # person, admitted, discharged, method, diagnosis
        ("A", "2024-06-01", "2024-06-03", "maternity", "O800"),
        ("A", "2024-07-20", "2024-07-21", "emergency", "R104"),  # 47 days after: not a gap
        ("A", "2024-04-02", "2024-04-05", "emergency", "C809"),  # first cancer record
        ("B", "2024-09-01", "2024-09-02", "maternity", "O821"),
        ("B", "2024-09-30", "2024-10-01", "emergency", "N390"),  # 28 days after: a gap
        ("B", "2024-08-05", "2024-08-06", "emergency", "J459"),  # not for cancer
        ("C", "2023-12-01", "2023-12-02", "maternity", "O800"),  # before the 12 months
        ("D", "2024-10-15", "2024-10-20", "emergency", "C809"),  # 14 days after GP record
        ("E", "2025-03-01", "2025-03-02", "maternity", "O800"),
        ("E", "2025-04-05", "2025-04-06", "emergency", "R104"),  # after the index date
    ]
    apc = pd.DataFrame(spells, columns=["person_id", "admission_date", "discharge_date",
                                        "admission_method", "primary_diagnosis_icd10"])  # fmt: skip
    for column in ("admission_date", "discharge_date"):
        apc[column] = pd.to_datetime(apc[column])
    sbp, cancer = synth.SYSTOLIC_BP, codelists.get("cancer")
    cancer_code = sorted(cancer.snomed)[0]
    events = pd.DataFrame(
        [("A", "2024-07-10", sbp, 120.0),  # 39 days after admission: checked
         ("B", "2024-11-15", sbp, 118.0),  # 75 days after: not
         ("E", "2025-03-20", sbp, 125.0),  # 19 days after: checked
         ("A", "2024-05-01", cancer_code, np.nan), ("B", "2024-08-01", cancer_code, np.nan),
         ("D", "2024-10-01", cancer_code, np.nan), ("E", "2020-01-01", cancer_code, np.nan)],
        columns=["person_id", "date", "snomed_code", "value"],
    )  # fmt: skip
    events["date"] = pd.to_datetime(events["date"])
    return {"patients": patients, "apc_spells": apc, "gp_events": events}


# Groups: Core20 = A, D (deciles 1, 2); ethnic_minority = B, C; Rest = E.
HAND_BUILT_CELLS = """
maternity prevalence Core20          1 1
maternity prevalence ethnic_minority 1 2
maternity prevalence Rest            1 1
maternity care       Core20          1 1
maternity care       ethnic_minority 0 1
maternity care       Rest            1 1
maternity gap        Core20          0 1
maternity gap        ethnic_minority 1 1
maternity gap        Rest            0 1
cancer    prevalence Core20          2 2
cancer    prevalence Rest            1 1
cancer    care       Core20          0 2
cancer    gap        Core20          2 2
cancer    care       ethnic_minority 1 1
cancer    gap        ethnic_minority 0 1
cancer    gap        Rest            0 0
"""


@pytest.mark.parametrize(
    ("area", "measure", "group", "numerator", "denominator"),
    [
        (a, m, g, int(k), int(n))
        for a, m, g, k, n in map(str.split, HAND_BUILT_CELLS.strip().splitlines())
    ],
)
def test_core20plus5_windows_on_a_hand_built_extract(area, measure, group, numerator, denominator):
    result = core20plus5(_hand_built_extract(), index_date=INDEX, areas=("maternity", "cancer"))

    cell = _cell(result.table(f"core20plus5_{area}"), measure=measure, group=group)

    assert (cell["numerator"], cell["denominator"]) == (numerator, denominator)
    if denominator == 0:
        assert np.isnan(cell["proportion"]) and np.isnan(cell["proportion_upper"])


# --- Input errors -------------------------------------------------------------------------
def _without(frames, table=None, column=None):
    out = dict(frames)
    if table:
        del out[table]
    if column:
        name, col = column
        out[name] = out[name].drop(columns=[col])
    return out


@pytest.mark.parametrize(
    ("run", "table", "column", "named"),
    [(lambda f: rates_by(f, index_date=INDEX, outcome="emergency_admissions", by="sex"),
      "apc_spells", None, "apc_spells"),
     (lambda f: rates_by(f, index_date=INDEX, outcome="ae_attendances", by="sex"),
      "ae_attendances", None, "ae_attendances"),
     (lambda f: rates_by(_without(f, "apc_spells"), index_date=INDEX,
                         outcome={"prevalence": "diabetes"}, by="sex"),
      "gp_events", None, "gp_events"),
     (lambda f: rates_by(f, index_date=INDEX, outcome="ae_attendances", by="imd_decile"),
      None, ("patients", "imd_decile"), "imd_decile"),
     (lambda f: rates_by(f, index_date=INDEX, outcome="ae_attendances", by="ethnic_group"),
      None, ("patients", "ethnicity"), "ethnicity"),
     (lambda f: inequality_gradient(f, index_date=INDEX, outcome="emergency_admissions"),
      "patients", None, "patients"),
     (lambda f: core20plus5(f, index_date=INDEX, areas=("maternity",)),
      "apc_spells", None, "apc_spells"),
     (lambda f: core20plus5(f, index_date=INDEX, areas=("maternity",)),
      None, ("patients", "sex"), "sex"),
     (lambda f: core20plus5(f, index_date=INDEX, areas=("smi",)), "gp_events", None,
      "gp_events"),
     (lambda f: core20plus5(f, index_date=INDEX, areas=("smi",)), None,
      ("patients", "imd_decile"), "imd_decile")],
)  # fmt: skip
def test_a_missing_table_or_column_is_named(frames, run, table, column, named):
    with pytest.raises(AnalysisInputError, match=named):
        run(_without(frames, table, column))


@pytest.mark.parametrize(
    ("run", "named"),
    [(lambda f: rates_by(f, index_date=INDEX, outcome="admissions", by="sex"), "admissions"),
     (lambda f: rates_by(f, index_date=INDEX, outcome={"prevalence": "gout"}, by="sex"), "gout"),
     (lambda f: rates_by(f, index_date=INDEX, outcome={"incidence": "copd"}, by="sex"),
      "prevalence"),
     (lambda f: rates_by(f, index_date=INDEX, outcome="ae_attendances", by="lsoa"), "lsoa"),
     (lambda f: core20plus5(f, index_date=INDEX, plus_groups=("veterans",)), "veterans"),
     (lambda f: core20plus5(f, index_date=INDEX, areas=("dental",)), "dental")],
)  # fmt: skip
def test_unknown_parameters_are_named(frames, run, named):
    with pytest.raises(AnalysisInputError, match=named):
        run(frames)
