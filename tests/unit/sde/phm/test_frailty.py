"""The electronic frailty index: deficits on hand-built records, the category cut-offs,
person-by-person agreement with the generator's truth, and the published breakdowns."""

import json
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from sde.data import synth
from sde.phm import codelists, frailty
from sde.phm.frames import AnalysisInputError, frames_from_tables
from sde.phm.population import registered_population

INDEX = date(2025, 4, 1)
PEOPLE = 40_000


def _code(codelist_id):
    return min(codelists.get(codelist_id).snomed)


def _frame(rows, columns, dates):
    frame = pd.DataFrame(list(rows), columns=columns)
    for column in dates:
        frame[column] = pd.to_datetime(frame[column]).astype("datetime64[s]")
    return frame.astype({"person_id": "str"})


def _tiny(people, events=(), spells=()):
    """people: (person_id, birth_month, sex, imd_decile)."""
    fixed = ("Y001", "U01", "North Place", "E01000001", "2000-01-01", None, None)
    patients = [
        (pid, born, sex, "White: Irish", decile, *fixed) for pid, born, sex, decile in people
    ]
    columns = ["person_id", "birth_month", "sex", "ethnicity", "imd_decile", "practice_ods",
               "pcn_code", "place", "lsoa_code", "registration_start", "registration_end",
               "date_of_death"]  # fmt: skip
    return {
        "patients": _frame(patients, columns, ["birth_month", "registration_start",
                                               "registration_end", "date_of_death"]),
        "gp_events": _frame(events, ["person_id", "date", "snomed_code", "value"], ["date"]),
        "apc_spells": _frame(spells, ["person_id", "admission_date", "primary_diagnosis_icd10",
                                      "admission_method"], ["admission_date"]),
    }  # fmt: skip


def _one(frames):
    return frailty.efi(frames, index_date=INDEX).set_index("person_id")


# --- Hand-built records -----------------------------------------------------------------
def test_efi_counts_each_deficit_once_over_36():
    day = "2020-06-01"
    codes = [_code("hypertension"), _code("efi_falls"),
             _code("dementia"), _code("efi_memory_impairment"),  # one deficit: memory
             _code("asthma"), _code("copd"),  # one deficit: respiratory
             "433144002"]  # a CKD stage code: the CKD deficit  # fmt: skip
    frames = _tiny([("A", "1940-01-01", "F", 3)], [("A", day, code, None) for code in codes])

    row = _one(frames).loc["A"]

    assert row["deficits"] == 5
    assert row["efi"] == pytest.approx(5 / 36)
    assert row["category"] == "mild"


def test_efi_counts_a_deficit_from_a_hospital_diagnosis():
    frames = _tiny([("A", "1940-01-01", "M", 3)],
                   spells=[("A", "2024-01-10", "I509", "emergency")])  # fmt: skip

    assert _one(frames).loc["A", "deficits"] == 1


def test_efi_counts_codes_before_the_index_date_only():
    frames = _tiny(
        [("A", "1940-01-01", "F", 3)],
        [("A", INDEX - timedelta(days=1), _code("efi_falls"), None),
         ("A", INDEX, _code("efi_dizziness"), None),
         ("A", INDEX + timedelta(days=30), _code("efi_anaemia"), None)],
    )  # fmt: skip

    assert _one(frames).loc["A", "deficits"] == 1


def test_efi_gives_everyone_registered_a_row_and_none_else():
    frames = _tiny([("A", "1940-01-01", "F", 3), ("B", "1990-01-01", "M", 9)])
    frames["patients"].loc[1, "registration_end"] = pd.Timestamp("2024-01-01")

    result = _one(frames)

    assert list(result.index) == ["A"]
    assert result.loc["A", "deficits"] == 0
    assert result.loc["A", "category"] == "fit"


@pytest.mark.parametrize(
    ("deficits", "category"),
    [(0, "fit"), (4, "fit"), (5, "mild"), (8, "mild"), (9, "moderate"), (12, "moderate"),
     (13, "severe"), (19, "severe")],
)  # fmt: skip
def test_efi_category_from_coded_deficits(deficits, category):
    extra = sorted(i for i in frailty.efi_lists() if i.startswith("efi_"))[:deficits]
    frames = _tiny([("A", "1940-01-01", "F", 3)],
                   [("A", "2021-01-01", _code(i), None) for i in extra])  # fmt: skip

    row = _one(frames).loc["A"]

    assert (row["deficits"], row["category"]) == (deficits, category)


@pytest.mark.parametrize(
    ("index", "category"),
    [(0.0, "fit"), (0.12, "fit"), (3 / 25, "fit"), (0.1200001, "mild"), (0.24, "mild"),
     (6 / 25, "mild"), (0.2400001, "moderate"), (0.36, "moderate"), (9 / 25, "moderate"),
     (0.3600001, "severe"), (1.0, "severe")],
)  # fmt: skip
def test_frailty_category_cut_offs_are_inclusive_upper_limits(index, category):
    assert frailty.frailty_category(np.array([index]))[0] == category


def test_frailty_category_leaves_missing_missing():
    assert pd.isna(frailty.frailty_category(np.array([np.nan]))[0])


# --- Against the generator ----------------------------------------------------------------
@pytest.fixture(scope="module")
def drop():
    config = synth.SynthConfig(faults=synth.FaultRates.none())
    return synth.generate(patients=PEOPLE, seed=2024, config=config,
                          tables=["patients", "gp_events", "apc_spells"])  # fmt: skip


@pytest.fixture(scope="module")
def frames(drop):
    return frames_from_tables(drop)


@pytest.fixture(scope="module")
def truth(drop, frames):
    ids = dict(zip(drop["patients"]["nhs_number"], frames["patients"]["person_id"], strict=True))
    return drop.truth.set_index(drop.truth["nhs_number"].map(ids))


@pytest.fixture(scope="module")
def scores(drop, frames):
    """The eFI the day after the extract ends: every diagnosis has been recorded."""
    assert drop.end + timedelta(days=1) == INDEX
    return frailty.efi(frames, index_date=INDEX).set_index("person_id")


def test_efi_deficits_match_the_generators_person_by_person(scores, truth):
    expected = truth.loc[scores.index, "frailty_deficits"]

    assert (scores["deficits"] == expected).all()
    assert (scores["category"].astype(str) == truth.loc[scores.index, "frailty_category"]).all()


def test_efi_category_distribution_over_65s_matches_the_truth(scores, frames, truth):
    population = registered_population(frames, INDEX).set_index("person_id")
    older = population.index[population["age"] >= 65]
    ours = scores.loc[older, "category"].value_counts(normalize=True)
    theirs = truth.loc[older, "frailty_category"].value_counts(normalize=True)

    assert ours.reindex(frailty.FRAILTY_CATEGORIES).to_numpy() == pytest.approx(
        theirs.reindex(frailty.FRAILTY_CATEGORIES).to_numpy(), abs=1e-12
    )
    # Most older people are fit, and each step up is rarer (docs/synthetic-data.md).
    shares = ours.reindex(frailty.FRAILTY_CATEGORIES).to_numpy()
    assert 0.5 < shares[0] < 0.75
    assert (np.diff(shares) < 0).all()


def test_frailty_is_commoner_with_age_and_deprivation(frames):
    result = frailty.frailty_analysis(frames, index_date=INDEX)
    by_age = result.table("frailty_by_age_band").frame
    by_imd = result.table("frailty_by_imd_quintile").frame

    fit_by_age = by_age.loc[by_age["category"] == "fit", "share"].to_numpy()
    fit_by_imd = by_imd.loc[by_imd["category"] == "fit", "share"].to_numpy()

    assert (np.diff(fit_by_age) < 0).all()  # 65-74, 75-84, 85+
    assert fit_by_imd[0] < fit_by_imd[-1]  # quintile 1 (most deprived) vs 5


# --- The analysis ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def analysis(frames):
    return frailty.frailty_analysis(frames, index_date=INDEX)


def _groups(table):
    """The table's rows grouped by its dimensions other than the category."""
    keys = list(table.dimensions[:-1])
    frame = table.frame
    return frame.groupby(keys if keys else np.zeros(len(frame)), sort=False)


def test_frailty_analysis_counts_every_person_aged_65_once(analysis, frames):
    population = registered_population(frames, INDEX)
    older = int((population["age"] >= 65).sum())

    for table in analysis.tables:
        groups = _groups(table)
        assert table.frame["people"].sum() == older, table.name
        assert (groups["people"].sum() == groups["group_people"].first()).all(), table.name


def test_frailty_analysis_lists_every_category_in_every_group_with_shares(analysis):
    for table in analysis.tables:
        groups = _groups(table)
        assert all(
            cats == list(frailty.FRAILTY_CATEGORIES) for cats in groups["category"].apply(list)
        )
        assert groups["share"].sum().to_numpy() == pytest.approx(1.0)


def test_frailty_analysis_carries_person_counts_and_versions(analysis):
    table = analysis.table("frailty_by_sex")

    assert table.statistics == {"people": "count", "group_people": "count", "share": "proportion"}
    assert (table.persons["share"] == table.frame["people"]).all()
    assert table.derived_from == {"share": ("people", "group_people")}
    assert set(analysis.codelists) == set(frailty.efi_lists())
    assert analysis.parameters["deficits"] == 36
    assert [t.name for t in analysis.tables] == [
        "frailty_categories", "frailty_by_age_band", "frailty_by_sex", "frailty_by_imd_quintile"
    ]  # fmt: skip


def test_frailty_analysis_evidence_serialises(analysis):
    for table in analysis.tables:
        sidecar = json.loads(json.dumps(table.sidecar(extract="test")))
        assert sidecar["rows"] == len(table.frame)
        assert all(set(cell["persons"]) == set(table.statistics) for cell in sidecar["cells"])


def test_frailty_analysis_needs_the_breakdown_column():
    frames = _tiny([("A", "1940-01-01", "F", 3)])

    with pytest.raises(AnalysisInputError, match="region"):
        frailty.frailty_analysis(frames, index_date=INDEX, by=("region",))
