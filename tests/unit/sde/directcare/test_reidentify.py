"""Who is on a re-identification list (sde.directcare.reidentify): pure pandas, no database.

The cohort is built here the way the analysis builds it, as project pseudonyms of chosen
system pseudonyms under a fixed project key, so each case names exactly who should be on
the list."""

from __future__ import annotations

import hashlib
from datetime import date, timedelta

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sde.data.pseudonymisation import project_pseudonyms
from sde.directcare.reidentify import DEMOGRAPHICS, cohort_members, registered_at

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
TODAY = date(2026, 3, 15)
YESTERDAY, TOMORROW = TODAY - timedelta(days=1), TODAY + timedelta(days=1)
HERE, THERE = "Y99001", "Y99002"


def sp(name: str) -> str:
    """A system pseudonym (64 lower-case hex characters) named for the reader."""
    return hashlib.sha256(name.encode()).hexdigest()


def people(*rows: dict) -> pd.DataFrame:
    """A people table; each row defaults to registered ``HERE``, no end, alive."""
    defaults = {
        "practice_ods": HERE,
        "registration_end": None,
        "date_of_death": None,
        "birth_month": pd.Timestamp("1970-01-01"),
        "sex": "F",
    }
    columns = ["person_id", *defaults]
    frame = pd.DataFrame([{**defaults, **row} for row in rows], columns=columns)
    for column in ("registration_end", "date_of_death", "birth_month"):
        frame[column] = pd.to_datetime(frame[column])
    return frame


def cohort_of(*names: str, key: bytes = KEY) -> pd.Series:
    return project_pseudonyms(pd.Series([sp(n) for n in names], dtype="string"), key)


def members(table: pd.DataFrame, cohort: pd.Series, **kwargs) -> list[str]:
    found = cohort_members(table, cohort, project_key=KEY, practice_ods=HERE, today=TODAY, **kwargs)
    return found["system_pseudonym"].tolist()


# --- registered_at ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("row", "registered"),
    [
        ({}, True),
        ({"registration_end": YESTERDAY}, False),
        ({"registration_end": TODAY}, False),  # ended on or before today: gone
        ({"registration_end": TOMORROW}, True),  # still registered today
        ({"date_of_death": YESTERDAY}, False),
        ({"date_of_death": TODAY}, False),
        ({"date_of_death": TOMORROW}, True),  # a recorded future date does not count yet
        ({"practice_ods": THERE}, False),
        ({"practice_ods": None}, False),
        ({"practice_ods": HERE.lower()}, False),  # codes are matched exactly
        ({"registration_end": TOMORROW, "date_of_death": TODAY}, False),
        ({"registration_end": YESTERDAY, "practice_ods": THERE}, False),
    ],
    ids=[
        "current", "ended-yesterday", "ended-today", "ends-tomorrow", "died-yesterday",
        "died-today", "dies-tomorrow", "other-practice", "no-practice", "lower-case-code",
        "dead-though-registered", "ended-elsewhere",
    ],
)  # fmt: skip
def test_registered_at_keeps_only_people_registered_at_the_practice_and_alive_today(
    row, registered
):
    table = people({"person_id": sp("a"), **row})

    result = registered_at(table, HERE, TODAY)

    assert result["person_id"].tolist() == ([sp("a")] if registered else [])


def test_registered_at_reads_iso_date_strings_as_dates():
    table = pd.DataFrame(
        {
            "person_id": [sp("ended"), sp("current"), sp("dead")],
            "practice_ods": [HERE] * 3,
            "registration_end": [TODAY.isoformat(), None, None],
            "date_of_death": [None, None, YESTERDAY.isoformat()],
        }
    )

    assert registered_at(table, HERE, TODAY)["person_id"].tolist() == [sp("current")]


def test_registered_at_keeps_the_original_rows_and_columns():
    table = people(
        {"person_id": sp("a"), "sex": "M"}, {"person_id": sp("b"), "practice_ods": THERE}
    )

    result = registered_at(table, HERE, TODAY)

    assert list(result.columns) == list(table.columns)
    assert result.to_dict("records") == table.iloc[[0]].to_dict("records")


# --- cohort_members ------------------------------------------------------------------------
def test_the_members_are_the_cohort_people_registered_at_the_practice_today():
    table = people(
        {"person_id": sp("in-cohort-here")},
        {"person_id": sp("in-cohort-elsewhere"), "practice_ods": THERE},
        {"person_id": sp("in-cohort-left"), "registration_end": TODAY},
        {"person_id": sp("in-cohort-dead"), "date_of_death": YESTERDAY},
        {"person_id": sp("not-in-cohort-here")},
    )
    cohort = cohort_of(
        "in-cohort-here",
        "in-cohort-elsewhere",
        "in-cohort-left",
        "in-cohort-dead",
        "in-cohort-not-in-people",
    )

    assert members(table, cohort) == [sp("in-cohort-here")]


def test_a_cohort_made_under_another_project_key_matches_nobody():
    table = people({"person_id": sp("a")}, {"person_id": sp("b")})

    assert members(table, cohort_of("a", "b", key=OTHER_KEY)) == []


def test_system_pseudonyms_in_the_cohort_are_not_mistaken_for_project_pseudonyms():
    """The cohort holds PPs: a cohort of raw SPs (a mistake upstream) matches nobody."""
    table = people({"person_id": sp("a")})

    assert members(table, pd.Series([sp("a")], dtype="string")) == []


def test_each_person_is_on_the_list_once_in_system_pseudonym_order():
    names = ["c", "a", "b"]
    table = people(
        *({"person_id": sp(n)} for n in names),
        {"person_id": sp("a")},  # a duplicate row
        {"person_id": sp("b"), "practice_ods": THERE},  # and one elsewhere
    )
    cohort = pd.concat([cohort_of(*names), cohort_of("a", "a")], ignore_index=True)

    found = members(table, cohort)

    assert found == sorted(sp(n) for n in names)


def test_a_person_with_an_ended_row_and_a_current_row_at_the_practice_is_on_the_list():
    table = people(
        {"person_id": sp("a"), "registration_end": YESTERDAY},
        {"person_id": sp("a")},
    )

    assert members(table, cohort_of("a")) == [sp("a")]


def test_a_person_who_moved_away_is_not_on_the_list_though_once_registered_here():
    table = people(
        {"person_id": sp("a"), "registration_end": YESTERDAY},
        {"person_id": sp("a"), "practice_ods": THERE},
    )

    assert members(table, cohort_of("a")) == []


@pytest.mark.parametrize(
    ("fields", "columns"),
    [
        ((), ["system_pseudonym"]),
        (("sex",), ["system_pseudonym", "sex"]),
        (("birth_month",), ["system_pseudonym", "birth_month"]),
        (("sex", "birth_month"), ["system_pseudonym", "sex", "birth_month"]),
    ],
)
def test_the_list_carries_the_fields_asked_for_and_no_others(fields, columns):
    table = people(
        {"person_id": sp("a"), "sex": "M", "birth_month": "1950-06-01"},
        {"person_id": sp("b"), "sex": "F", "birth_month": "1980-02-01"},
    )

    found = cohort_members(
        table, cohort_of("a", "b"), project_key=KEY, practice_ods=HERE, today=TODAY, fields=fields
    )

    assert list(found.columns) == columns
    by_person = found.set_index("system_pseudonym")
    if "sex" in fields:
        assert by_person.loc[sp("a"), "sex"] == "M" and by_person.loc[sp("b"), "sex"] == "F"
    if "birth_month" in fields:
        assert by_person.loc[sp("a"), "birth_month"] == pd.Timestamp("1950-06-01")


def test_the_fields_stay_with_their_person_after_sorting():
    names = [f"person-{i}" for i in range(20)]
    table = people(*({"person_id": sp(n), "sex": n} for n in names))

    found = cohort_members(
        table, cohort_of(*names), project_key=KEY, practice_ods=HERE, today=TODAY, fields=["sex"]
    )

    assert found["system_pseudonym"].is_monotonic_increasing
    assert dict(zip(found["system_pseudonym"], found["sex"], strict=True)) == {
        sp(n): n for n in names
    }


@pytest.mark.parametrize(
    "fields", [["nhs_number"], ["person_id"], ["sex", "date_of_death"], ["practice_ods"]]
)
def test_an_unknown_field_is_refused_by_name(fields):
    table = people({"person_id": sp("a"), "nhs_number": "9434765919"})

    with pytest.raises(ValueError, match="not a list field") as error:
        cohort_members(
            table, cohort_of("a"), project_key=KEY, practice_ods=HERE, today=TODAY, fields=fields
        )
    unknown = [f for f in fields if f not in DEMOGRAPHICS]
    assert all(name in str(error.value) for name in unknown)


@pytest.mark.parametrize(
    ("table", "cohort"),
    [
        (people({"person_id": sp("a"), "practice_ods": THERE}), ["a"]),  # nobody here
        (people({"person_id": sp("a")}), []),  # an empty cohort
    ],
    ids=["nobody-registered", "empty-cohort"],
)
def test_nobody_matching_gives_an_empty_list_with_the_columns(table, cohort):
    found = cohort_members(
        table, cohort_of(*cohort), project_key=KEY, practice_ods=HERE, today=TODAY, fields=["sex"]
    )

    assert found.empty and list(found.columns) == ["system_pseudonym", "sex"]


def test_the_inputs_are_not_changed():
    table = people({"person_id": sp("b")}, {"person_id": sp("a")}, {"person_id": sp("a")})
    cohort = cohort_of("a", "b")
    before_table, before_cohort = table.copy(), cohort.copy()

    members(table, cohort, fields=["sex"])

    pd.testing.assert_frame_equal(table, before_table)
    pd.testing.assert_series_equal(cohort, before_cohort)


# --- Properties ---------------------------------------------------------------------------
NAMES = st.text(alphabet="abcdef", min_size=1, max_size=3)
DAYS = st.one_of(st.none(), st.integers(-3, 3).map(lambda d: TODAY + timedelta(days=d)))
ROWS = st.lists(
    st.fixed_dictionaries(
        {
            "name": NAMES,
            "practice_ods": st.sampled_from([HERE, THERE]),
            "registration_end": DAYS,
            "date_of_death": DAYS,
        }
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=ROWS, cohort_names=st.lists(NAMES, max_size=25))
def test_members_are_exactly_the_cohort_people_registered_here_today(rows, cohort_names):
    table = people(*({"person_id": sp(r["name"]), **_without(r, "name")} for r in rows))

    found = members(table, cohort_of(*cohort_names))

    # Counted here without the code under test: a person is registered here today if some
    # row of theirs is at this practice with no end and no death on or before today.
    def current(row: dict) -> bool:
        ended = row["registration_end"] is not None and row["registration_end"] <= TODAY
        died = row["date_of_death"] is not None and row["date_of_death"] <= TODAY
        return row["practice_ods"] == HERE and not ended and not died

    here = {r["person_id"] for r in table.to_dict("records") if current(_as_dates(r))}
    wanted = {sp(n) for n in cohort_names}
    assert found == sorted(here & wanted)
    assert set(found) <= set(registered_at(table, HERE, TODAY)["person_id"])
    assert len(found) == len(set(found))


def _without(row: dict, key: str) -> dict:
    return {k: v for k, v in row.items() if k != key}


def _as_dates(row: dict) -> dict:
    return {
        k: (v.date() if isinstance(v, pd.Timestamp) else None if v is pd.NaT else v)
        for k, v in row.items()
    }
