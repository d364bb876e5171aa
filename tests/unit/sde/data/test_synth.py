"""The synthetic ICS dataset: determinism, NHS numbers, schemas, realism against the spec's
targets on 200,000 people, the known risk model, faults, the command and dummy data."""

import hashlib
import json
from io import StringIO
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from django.core.management import CommandError, call_command

from sde.data import source_format as sf
from sde.data import synth
from sde.data.pseudonymisation import valid_nhs_numbers
from sde.exceptions import ValidationError

PEOPLE = 200_000
DOCS = Path(__file__).resolve().parents[4] / "docs" / "synthetic-data.md"
# What an analyst's codelist would hold for each condition (the generic concept and the
# more specific ones the generator also records).
CODELISTS = {c.name: {c.snomed} for c in synth.CONDITIONS}
CODELISTS["diabetes"].add(synth.TYPE1_DIABETES)
CODELISTS["smi"].add(synth.BIPOLAR)


@pytest.fixture(scope="module")
def drop():
    return synth.generate(patients=PEOPLE, seed=20240401)


@pytest.fixture(scope="module")
def people(drop):
    """The clean patients table (valid NHS numbers, no duplicates) with age and flags."""
    patients = drop["patients"].drop_duplicates()
    patients = patients[valid_nhs_numbers(patients["nhs_number"])].set_index("nhs_number")
    end = pd.Timestamp(drop.end)
    patients["age"] = (end - patients["date_of_birth"]).dt.days / 365.25
    patients["registered"] = patients["registration_end"].isna()
    events = drop["gp_events"]
    for name, codes in CODELISTS.items():
        with_code = events.loc[events["snomed_code"].isin(codes), "nhs_number"].unique()
        patients[name] = patients.index.isin(with_code)
    return patients


@pytest.fixture(scope="module")
def person_years(drop, people):
    start, end = pd.Timestamp(drop.start), pd.Timestamp(drop.end)
    first = people["registration_start"].clip(lower=start)
    last = people["registration_end"].fillna(end).clip(upper=end)
    return ((last - first).dt.days + 1).clip(lower=0).sum() / 365.25


def _rank_auc(score: np.ndarray, outcome: np.ndarray) -> float:
    ranks = pd.Series(score).rank().to_numpy()
    positives = int(outcome.sum())
    negatives = outcome.size - positives
    return (ranks[outcome].sum() - positives * (positives + 1) / 2) / (positives * negatives)


# --- determinism -----------------------------------------------------------------------


def _drop_bytes(tmp_path: Path, seed: int, name: str) -> dict[str, bytes]:
    out = tmp_path / name
    synth.write_drop(synth.generate(patients=1_000, seed=seed), out)
    return {path.name: path.read_bytes() for path in sorted(out.iterdir())}


def test_same_seed_writes_byte_identical_files(tmp_path):
    first = _drop_bytes(tmp_path, 7, "a")
    second = _drop_bytes(tmp_path, 7, "b")

    assert set(first) == set(synth.drop_files())
    assert first == second


def test_different_seeds_write_different_files(tmp_path):
    first = _drop_bytes(tmp_path, 7, "a")
    second = _drop_bytes(tmp_path, 8, "b")

    assert all(first[name] != second[name] for name in first)


def test_asking_for_fewer_tables_changes_none_of_them():
    full = synth.generate(patients=1_000, seed=5)
    some = synth.generate(patients=1_000, seed=5, tables=["ae_attendances", "op_appointments"])

    assert list(some) == ["ae_attendances", "op_appointments"]
    for name in some:
        pd.testing.assert_frame_equal(some[name], full[name])
    assert set(some.faults) == {"ae_attendances", "op_appointments"}


# --- NHS numbers ---------------------------------------------------------------------------


def test_check_digit_matches_the_data_dictionary_example():
    assert synth.nhs_check_digits(np.array([943476591]))[0] == 9


def test_generated_nhs_numbers_are_valid_unique_and_never_issued():
    numbers = synth.generate_nhs_numbers(np.random.default_rng(1), 50_000)

    strings = pd.Series(numbers.astype(str))
    assert valid_nhs_numbers(strings).all()
    assert strings.is_unique
    assert strings.str.startswith("9").all()


def test_nhs_numbers_are_valid_except_the_injected_invalid_ones(drop):
    for name, table in drop.items():
        invalid = int((~valid_nhs_numbers(table["nhs_number"])).sum())
        assert invalid == drop.faults[name]["invalid_nhs_number"], name


def test_patients_have_unique_nhs_numbers_apart_from_duplicate_rows(drop, people):
    patients = drop["patients"]
    valid = patients[valid_nhs_numbers(patients["nhs_number"])]

    assert people.index.is_unique
    assert len(valid) - len(people) == drop.faults["patients"]["duplicate_row"]


# --- schema --------------------------------------------------------------------------------


def test_every_code_the_models_record_is_in_the_contracts_code_lists():
    measured = {synth.BMI, synth.HBA1C, synth.SYSTOLIC_BP, synth.DIASTOLIC_BP, synth.OBESITY}
    snomed = {c.snomed for c in (*synth.CONDITIONS, *synth.DEFICITS)} | measured | {
        synth.TYPE1_DIABETES, synth.BIPOLAR, synth.TYPE1_DISSENT,
        *(code for code, _ in (*synth.CKD_STAGES, *synth.SMOKING)),
    }  # fmt: skip
    generic = (*synth.EMERGENCY_GENERIC.values(), *synth.ELECTIVE_GENERIC.values())
    icd10 = {c.icd10 for c in synth.CONDITIONS if c.icd10} | {synth.CHEMOTHERAPY}
    icd10 |= {code for code, _ in synth.MATERNITY} | {code for codes in generic for code in codes}
    medicines = {code for m in (*synth.CONDITIONS, *synth.DEFICITS) for code, _ in m.medicines}
    specialties = {c.specialty for c in synth.CONDITIONS if c.specialty}
    specialties |= {code for codes in synth.OP_GENERIC.values() for code in codes}

    assert snomed == set(sf.SNOMED_CODES)
    assert icd10 == set(sf.ICD10_CODES)
    assert medicines | {synth.ANTIBIOTICS} <= set(sf.BNF_SECTIONS)
    assert specialties <= set(sf.SPECIALTIES)
    assert [code for code, _ in synth.AE_DISPOSALS] == list(sf.AE_DISPOSAL_CODES)


def test_every_table_has_its_documented_columns_and_dtypes(drop):
    assert list(drop) == list(synth.TABLES)
    for name, table in drop.items():
        dtypes = {column: str(dtype) for column, dtype in table.dtypes.items()}
        assert dtypes == dict(synth.TABLE_SCHEMAS[name]), name


def test_codes_are_realistically_formatted(drop):
    patients = drop["patients"]

    assert patients["lsoa_code"].str.fullmatch(r"E01\d{6}").all()
    assert patients["practice_ods"].str.fullmatch(r"Y\d{5}").all()
    assert patients["pcn_code"].str.fullmatch(r"U\d{5}").all()
    assert {"Y99001", "Y99002"} <= set(patients["practice_ods"])
    assert patients.groupby("lsoa_code")["imd_decile"].nunique().max() == 1
    assert patients.groupby("practice_ods")["pcn_code"].nunique().max() == 1
    assert patients.groupby("pcn_code")["place"].nunique().max() == 1
    assert set(patients["sex"]) == {"F", "M"}


# --- realism -------------------------------------------------------------------------------


def test_age_and_sex_structure_is_close_to_englands(people):
    registered = people[people["registered"]]

    assert registered["age"].lt(16).mean() == pytest.approx(0.19, abs=0.015)
    assert registered["age"].ge(65).mean() == pytest.approx(0.18, abs=0.015)
    assert registered["sex"].eq("F").mean() == pytest.approx(0.505, abs=0.015)


def test_ethnicity_mix_matches_the_configured_mix(people):
    group = people["ethnicity"].str.split(":").str[0]
    stated = group[group != synth.NOT_STATED].value_counts(normalize=True)

    assert (group == synth.NOT_STATED).mean() == pytest.approx(0.05, abs=0.005)
    expected = {"White": 0.82, "Asian": 0.09, "Black": 0.04, "Mixed": 0.03, "Other": 0.02}
    for name, share in expected.items():
        assert stated[name] == pytest.approx(share, abs=0.012), name


def test_ethnic_minorities_are_younger_and_more_deprived(people):
    minority = ~people["ethnicity"].str.startswith(("White", synth.NOT_STATED))

    assert people.loc[minority, "age"].median() < people.loc[~minority, "age"].median() - 5
    assert people.loc[minority, "imd_decile"].mean() < people.loc[~minority, "imd_decile"].mean()


def test_imd_deciles_follow_the_configured_distribution(people):
    shares = people["imd_decile"].value_counts(normalize=True).sort_index()
    configured = np.array(synth.SynthConfig().imd_deciles)

    np.testing.assert_allclose(shares.to_numpy(), configured / configured.sum(), atol=0.006)


@pytest.mark.parametrize("condition", synth.CONDITIONS, ids=lambda c: c.name)
def test_recorded_prevalence_is_close_to_the_target(people, condition):
    registered = people[people["registered"] & people["age"].ge(condition.denominator_age)]

    observed = registered[condition.name].mean()
    assert observed == pytest.approx(condition.target, rel=0.12, abs=0.001)


def test_diabetes_and_copd_are_clearly_more_common_in_the_most_deprived_decile(people):
    by_decile = people.groupby("imd_decile")[["diabetes", "copd", "smi"]].mean()

    assert (by_decile.loc[1] > 1.6 * by_decile.loc[10]).all()


def test_multimorbidity_rises_with_age(people):
    conditions = people[list(synth.CONDITION_NAMES)].sum(axis=1)
    band = pd.cut(people["age"], [0, 16, 45, 65, 75, 85, 120], right=False)
    two_or_more = conditions.ge(2).groupby(band, observed=True).mean()

    assert two_or_more.is_monotonic_increasing
    assert two_or_more.iloc[-1] > 0.5 > two_or_more.iloc[1]


def test_frailty_is_concentrated_over_65(drop):
    truth = drop.truth
    frail = truth["frailty_category"].isin(["moderate", "severe"])
    over_65 = truth["age"] >= 63  # age at the window start; 65 by its end

    assert over_65[frail].mean() > 0.95
    assert frail[truth["age"] >= 85].mean() > 0.4
    np.testing.assert_array_equal(
        synth.frailty_category(np.array([0, 4, 5, 8, 9, 12, 13, 36])), [0, 0, 1, 1, 2, 2, 3, 3]
    )


def test_event_rates_match_the_spec(drop, people, person_years):
    apc = drop["apc_spells"]
    emergency = (apc["admission_method"] == "emergency").sum() / person_years
    attendances = len(drop["ae_attendances"]) / person_years
    deaths = people["date_of_death"].notna().sum() / person_years

    assert emergency == pytest.approx(0.100, abs=0.008)
    assert attendances == pytest.approx(0.400, abs=0.03)
    assert deaths == pytest.approx(0.010, abs=0.0015)


def test_deaths_are_concentrated_in_the_old_and_frail(drop, people):
    died = people["date_of_death"].notna()
    truth = drop.truth.set_index("nhs_number").loc[people.index]
    by_frailty = died.groupby(truth["frailty_category"].to_numpy()).mean()

    age_at_death = (people["date_of_death"] - people["date_of_birth"]).dt.days / 365.25
    assert age_at_death[died].median() > 75
    assert by_frailty["severe"] > 10 * by_frailty["fit"]


def test_the_truth_function_is_the_generators_model(drop):
    truth = drop.truth

    expected = synth.emergency_admission_probability(truth)
    np.testing.assert_allclose(truth["p_emergency_admission"], expected)


def test_emergency_admissions_follow_the_known_model(drop, people):
    """Observed admission in the last year of the window, among people registered all year,
    tracks the true probability decile by decile, and the truth discriminates."""
    last_year = pd.Timestamp(drop.end) - pd.DateOffset(years=1) + pd.Timedelta(days=1)
    apc = drop["apc_spells"]
    admitted = apc.loc[
        (apc["admission_method"] == "emergency") & (apc["admission_date"] >= last_year),
        "nhs_number",
    ].unique()
    cohort = people[people["registered"] & (people["registration_start"] <= last_year)]
    truth = drop.truth.set_index("nhs_number")["p_emergency_admission"]
    expected = truth.loc[cohort.index].to_numpy()
    observed = cohort.index.isin(admitted)

    decile = pd.qcut(expected, 10, labels=False)
    table = pd.DataFrame({"d": decile, "p": expected, "y": observed}).groupby("d").mean()
    np.testing.assert_allclose(table["y"], table["p"], rtol=0.15, atol=0.004)
    assert _rank_auc(expected, observed) > 0.72


def test_type1_and_national_opt_outs_are_at_their_shares(drop, people):
    events = drop["gp_events"]
    type1 = events.loc[events["snomed_code"] == synth.TYPE1_DISSENT, "nhs_number"].nunique()
    ndop = drop["ndop"]["nhs_number"]

    assert type1 / PEOPLE == pytest.approx(0.03, abs=0.003)
    assert len(ndop) / PEOPLE == pytest.approx(0.05, abs=0.003)
    assert valid_nhs_numbers(ndop).all()
    assert ndop.is_unique
    assert ndop.isin(people.index).mean() > 0.99  # a few patients rows carry invalid numbers


def test_measurements_carry_plausible_values(drop):
    events = drop["gp_events"]
    ranges = {synth.BMI: (10, 80), synth.HBA1C: (20, 140), synth.SYSTOLIC_BP: (80, 230),
              synth.DIASTOLIC_BP: (40, 140)}  # fmt: skip
    measured = events["snomed_code"].isin(ranges)
    known = events["snomed_code"].isin(synth.CODE_LISTS["gp_events"]["snomed_code"])

    assert events.loc[measured, "value"].notna().all()
    assert events.loc[~measured & known, "value"].isna().all()  # unknown codes keep values
    for code, (low, high) in ranges.items():
        assert events.loc[events["snomed_code"] == code, "value"].between(low, high).all(), code


def test_medications_are_consistent_with_conditions(drop, people):
    issues = drop["gp_medications"]
    checks = {"0601": "diabetes", "0402": "smi", "0411": "dementia", "0301": "asthma"}
    for section, condition in checks.items():
        treated = issues.loc[issues["bnf_section"] == section, "nhs_number"].unique()
        has = people.loc[people.index.intersection(treated), condition]
        if condition == "asthma":  # inhalers are for COPD too
            has = has | people.loc[has.index, "copd"]
        assert has.mean() > 0.99, section
    assert (issues["bnf_chapter"] == issues["bnf_section"].str[:2]).all()


# --- faults --------------------------------------------------------------------------------


def _impossible_dates(drop, people, name: str, table: pd.DataFrame) -> int:
    kind, column = synth.DATE_FAULTS[name]
    if kind == "future":
        return int((table[column] > pd.Timestamp(drop.end)).sum())
    if kind == "after_death":
        death = table["nhs_number"].map(people["date_of_death"])
        return int((table[column] > death).sum())
    start = {"before_birth": "date_of_birth", "end_before_start": None}[kind]
    start = start or ("admission_date" if name == "apc_spells" else "start_date")
    return int((table[column] < table[start]).sum())


def test_events_after_death_are_past_the_grace_day_and_of_people_ingestion_can_link():
    config = synth.SynthConfig(faults=synth.FaultRates(impossible_date=0.05))
    drop = synth.generate(patients=5_000, seed=2, config=config, tables=["patients", "gp_events"])
    patients, events = drop["patients"], drop["gp_events"]
    died = events["nhs_number"].map(drop.truth.set_index("nhs_number")["date_of_death"])
    after = events[events["date"] > died]
    # A patients row with an invalid NHS number or registered before birth is quarantined.
    clean = valid_nhs_numbers(patients["nhs_number"])
    clean &= patients["registration_start"] >= patients["date_of_birth"]

    assert len(after) == drop.faults["gp_events"]["impossible_date"] > 0
    assert (after["date"] - died[after.index]).min() > pd.Timedelta(days=sf.DEATH_GRACE_DAYS)
    assert after["nhs_number"].isin(patients.loc[clean, "nhs_number"]).all()


@pytest.mark.parametrize("name", synth.TABLES[:-1])
def test_faults_are_injected_at_their_documented_rates(drop, people, name):
    table, counts = drop[name], drop.faults[name]
    rates = synth.FaultRates()
    clean_rows = len(table) - counts["duplicate_row"]

    def expected(rate: float) -> int:
        return int(np.floor(rate * clean_rows + 0.5))

    assert counts["invalid_nhs_number"] == expected(rates.invalid_nhs_number) > 0
    assert counts["duplicate_row"] == expected(rates.duplicate_row)
    assert int(table.duplicated().sum()) == counts["duplicate_row"]
    assert counts["impossible_date"] == expected(rates.impossible_date)
    assert _impossible_dates(drop, people, name, table) == counts["impossible_date"]
    for column in synth.UNKNOWN_CODES.get(name, {}):
        unknown = ~table[column].isin(synth.CODE_LISTS[name][column])
        assert int(unknown.sum()) == counts["unknown_code"] == expected(rates.unknown_code)


@pytest.mark.parametrize("name", synth.TABLES[1:-1])
def test_activity_falls_between_birth_and_death_and_the_extract_date_unless_faulty(
    drop, people, name
):
    table = drop[name]
    kind, fault_column = synth.DATE_FAULTS[name]
    injected = drop.faults[name]["impossible_date"]
    born = table["nhs_number"].map(people["date_of_birth"])
    died = table["nhs_number"].map(people["date_of_death"])
    end = pd.Timestamp(drop.end)
    for column, dtype in synth.TABLE_SCHEMAS[name].items():
        if dtype != "datetime64[s]":
            continue
        future = int((table[column] > end).sum())
        after_death = int(((table[column] > died) & (table[column] <= end)).sum())
        assert future == (injected if (kind, column) == ("future", fault_column) else 0)
        assert after_death == (injected if kind == "after_death" else 0), column
        assert not (table[column] < born).any(), column


def test_hospital_spells_of_a_person_never_overlap(drop):
    spells = drop["apc_spells"].drop_duplicates().sort_values(["nhs_number", "admission_date"])
    same_person = spells["nhs_number"].eq(spells["nhs_number"].shift(-1))
    next_admission = spells["admission_date"].shift(-1)

    overlapping = same_person & (spells["discharge_date"] > next_admission)
    assert not overlapping.any()
    assert (spells["cost"] > 0).all()


def test_a_drop_without_faults_is_clean():
    clean = synth.generate(
        patients=2_000, seed=3, config=synth.SynthConfig(faults=synth.FaultRates.none())
    )

    for name, table in clean.items():
        assert valid_nhs_numbers(table["nhs_number"]).all(), name
        assert not table.duplicated().any(), name
        assert sum(clean.faults[name].values()) == 0


def test_bad_requests_are_refused():
    with pytest.raises(ValidationError) as refused:
        synth.generate(patients=0, seed=-1, tables=["nope"])

    assert set(refused.value.errors) == {"patients", "seed", "tables"}


# --- writing a drop and the manifest -------------------------------------------------------


def test_manifest_reconciles_with_the_files(tmp_path):
    drop = synth.generate(patients=1_000, seed=11)
    manifest = synth.write_drop(drop, tmp_path)
    written = json.loads((tmp_path / synth.MANIFEST).read_text())

    assert written["seed"] == 11
    assert written["patients"] == 1_000
    assert written["version"] == synth.VERSION
    assert written["date_range"] == {"start": "2023-04-01", "end": "2025-03-31"}
    assert written["fault_rates"]["duplicate_row"] == synth.FaultRates().duplicate_row
    assert written["faults"] == {name: dict(counts) for name, counts in drop.faults.items()}
    for name, entry in written["files"].items():
        data = (tmp_path / name).read_bytes()
        header = 0 if name == "ndop.csv" else 1
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["rows"] == data.count(b"\n") - header == manifest.files[name].rows


def test_ndop_file_is_one_nhs_number_per_line_without_header(tmp_path):
    drop = synth.generate(patients=1_000, seed=11, tables=["ndop"])
    synth.write_drop(drop, tmp_path)

    lines = (tmp_path / "ndop.csv").read_text().splitlines()
    assert lines == list(drop["ndop"]["nhs_number"])
    assert all(len(line) == 10 and line.isdigit() for line in lines)


def test_docs_carry_the_generators_parameter_tables():
    assert synth.reference_tables_markdown() in DOCS.read_text()


# --- the command ---------------------------------------------------------------------------


def test_synth_command_writes_a_drop_and_reports_counts(tmp_path):
    out = StringIO()

    call_command("synth", "--patients", "1000", "--seed", "3", "--out", str(tmp_path), stdout=out)

    manifest = json.loads((tmp_path / synth.MANIFEST).read_text())
    assert manifest["patients"] == 1_000
    assert manifest["seed"] == 3
    assert "patients.csv" in out.getvalue()
    assert "rows" in out.getvalue() and "s (generate" in out.getvalue()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--patients", "99"], "at least 100"),
        (["--patients", "1000", "--seed", "-1"], "zero or more"),
        (["--patients", "many"], "invalid int value"),
    ],
)
def test_synth_command_refuses_bad_arguments(tmp_path, arguments, message):
    with pytest.raises(CommandError, match=message):
        call_command("synth", *arguments, "--out", str(tmp_path / "drop"))

    assert not (tmp_path / "drop").exists()


def test_synth_command_refuses_to_overwrite_a_drop_unless_forced(tmp_path):
    call_command("synth", "--patients", "100", "--out", str(tmp_path), stdout=StringIO())

    with pytest.raises(CommandError, match="already contains a drop"):
        call_command("synth", "--patients", "100", "--seed", "1", "--out", str(tmp_path))
    call_command("synth", "--patients", "100", "--seed", "1", "--out", str(tmp_path), "--force",
                 stdout=StringIO())  # fmt: skip
    assert json.loads((tmp_path / synth.MANIFEST).read_text())["seed"] == 1


def test_synth_command_refuses_an_out_that_is_a_file(tmp_path):
    target = tmp_path / "file"
    target.write_text("")

    with pytest.raises(CommandError, match="not a directory"):
        call_command("synth", "--patients", "100", "--out", str(target))


# --- dummy data ----------------------------------------------------------------------------


def test_dummy_data_has_only_the_approved_fields_with_the_full_schema():
    fields = {"patients": ["nhs_number", "date_of_birth", "imd_decile"],
              "apc_spells": ["admission_date", "cost", "admission_method"]}  # fmt: skip

    dummy = synth.generate_dummy(fields=fields, patients=1_000, seed=2)

    assert list(dummy) == list(fields)
    for table, columns in fields.items():
        assert list(dummy[table].columns) == columns
        expected = {column: synth.TABLE_SCHEMAS[table][column] for column in columns}
        assert {c: str(t) for c, t in dummy[table].dtypes.items()} == expected
    assert valid_nhs_numbers(dummy["patients"]["nhs_number"]).all()


def test_dummy_data_is_the_clean_full_generators_data():
    clean = synth.SynthConfig(faults=synth.FaultRates.none())
    full = synth.generate(patients=1_000, seed=2, config=clean)

    dummy = synth.generate_dummy(fields={"op_appointments": ["date", "specialty"]},
                                 patients=1_000, seed=2)  # fmt: skip

    pd.testing.assert_frame_equal(
        dummy["op_appointments"], full["op_appointments"][["date", "specialty"]]
    )


def test_dummy_data_refuses_unknown_fields():
    with pytest.raises(ValidationError) as refused:
        synth.generate_dummy(fields={"patients": ["shoe_size"], "x": ["y"]}, patients=100, seed=1)

    assert set(refused.value.errors) == {"patients", "x"}
