import datetime
import hashlib
import hmac

import numpy as np
import pandas as pd
import pytest

from sde.data.pseudonymisation import (
    generalise_date_of_birth,
    is_valid_nhs_number,
    normalise_nhs_numbers,
    project_key,
    project_pseudonyms,
    system_pseudonyms,
    valid_nhs_numbers,
)

SYSTEM_KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
MASTER_KEY = bytes(range(100, 132))


def synthetic_nhs_numbers(count: int, rng: np.random.Generator) -> list[str]:
    """Valid, distinct NHS numbers (random nine-digit stems with their check digit)."""
    stems = rng.choice(900_000_000, size=count * 2, replace=False) + 100_000_000
    digits = (stems[:, None] // 10 ** np.arange(8, -1, -1)) % 10
    check = 11 - (digits @ np.arange(10, 1, -1)) % 11
    check[check == 11] = 0
    keep = check != 10
    return [str(n) for n in (stems[keep] * 10 + check[keep])[:count]]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("9434765919", True),  # the spec's worked example: sum 299, 299 mod 11 = 2, 11-2 = 9
        ("943 476 5919", True),
        ("943-476-5919", True),
        (" 943 476-5919 ", True),  # spaces and hyphens anywhere are stripped
        ("9434765918", False),  # wrong check digit
        ("943 476 5918", False),
        ("4010232137", True),
        ("9876543210", True),  # sum 330, remainder 0: check digit 11 is written 0
        ("9876543211", False),
        ("1234567890", False),  # sum 210, remainder 1: check digit 10, never valid
        ("1000000010", False),  # sum 12, remainder 1: check digit 10
        ("123456789", False),  # nine digits
        ("94347659190", False),  # eleven digits
        ("", False),
        ("          ", False),
        ("943476591X", False),  # a letter
        ("94347A5919", False),
        ("9434765919\n", False),  # only spaces and hyphens are separators
        ("943.476.5919", False),
        ("٩٤٣٤٧٦٥٩١٩", False),  # Arabic-Indic digits are not ASCII digits
        ("９４３４７６５９１９", False),  # full-width digits
        ("+943476591", False),
    ],
)
def test_nhs_number_validation_table(value: str, expected: bool) -> None:
    assert is_valid_nhs_number(value) is expected
    assert bool(valid_nhs_numbers(pd.Series([value])).iloc[0]) is expected


@pytest.mark.parametrize("stem", ["100000001", "123456789"])
def test_check_digit_of_ten_is_invalid_whatever_the_last_digit(stem: str) -> None:
    candidates = [f"{stem}{last}" for last in range(10)]
    assert not any(is_valid_nhs_number(value) for value in candidates)
    assert not valid_nhs_numbers(pd.Series(candidates)).any()


def test_non_strings_are_invalid_for_the_scalar_check() -> None:
    assert is_valid_nhs_number(None) is False  # type: ignore[arg-type]
    assert is_valid_nhs_number(9434765919) is False  # type: ignore[arg-type]


def _random_strings(count: int, rng: np.random.Generator) -> list[str | None]:
    valid = synthetic_nhs_numbers(count, rng)
    alphabet = list("0123456789") * 4 + list(" -aX٣９\t")
    out: list[str | None] = []
    for index in range(count):
        kind = index % 6
        if kind == 0:
            out.append(valid[index])
        elif kind == 1:
            number = valid[index]
            out.append(f"{number[:3]} {number[3:6]}-{number[6:]}")
        elif kind == 2:
            out.append("".join(rng.choice(list("0123456789"), size=10)))
        elif kind == 3:
            out.append("".join(rng.choice(alphabet, size=int(rng.integers(0, 14)))))
        elif kind == 4:
            number = list(valid[index])
            number[int(rng.integers(0, 10))] = str(rng.choice(alphabet))
            out.append("".join(number))
        else:
            out.append(None if index % 12 == 5 else valid[index][: int(rng.integers(8, 10))])
    return out


def test_vectorised_validation_agrees_with_scalar_on_100_000_random_strings() -> None:
    values = _random_strings(100_000, np.random.default_rng(20240611))
    expected = [is_valid_nhs_number(value) for value in values]  # type: ignore[arg-type]

    result = valid_nhs_numbers(pd.Series(values, dtype=object))

    assert result.dtype == bool
    assert result.tolist() == expected
    assert 0.2 < result.mean() < 0.8  # the sample really mixes valid and invalid


def test_valid_nhs_numbers_keeps_the_index() -> None:
    series = pd.Series(["9434765919", "nope"], index=[10, 20])

    assert valid_nhs_numbers(series).to_dict() == {10: True, 20: False}


def test_normalise_strips_spaces_and_hyphens_and_keeps_missing_values() -> None:
    series = pd.Series(["943 476 5919", "943-476-5919", None], index=["a", "b", "c"])

    normalised = normalise_nhs_numbers(series)

    assert normalised.iloc[:2].tolist() == ["9434765919", "9434765919"]
    assert pd.isna(normalised.iloc[2])
    assert list(normalised.index) == ["a", "b", "c"]


@pytest.mark.parametrize(
    "series",
    [pd.Series([9434765919]), pd.Series([9434765919.0]), pd.Series(["9434765919", 12])],
)
def test_normalise_refuses_values_that_are_not_strings(series: pd.Series) -> None:
    with pytest.raises(TypeError):
        normalise_nhs_numbers(series)


def test_system_pseudonym_is_the_full_hmac_sha256_of_the_ten_digits() -> None:
    expected = hmac.new(SYSTEM_KEY, b"9434765919", hashlib.sha256).hexdigest()

    result = system_pseudonyms(pd.Series(["943 476 5919"]), SYSTEM_KEY)

    assert result.iloc[0] == expected
    assert len(expected) == 64


def test_same_nhs_number_same_key_gives_the_same_system_pseudonym() -> None:
    series = pd.Series(["9434765919", "943 476 5919", "943-476-5919"])

    first = system_pseudonyms(series, SYSTEM_KEY)
    again = system_pseudonyms(series, SYSTEM_KEY)

    assert first.nunique() == 1
    assert first.tolist() == again.tolist()


def test_different_keys_give_different_system_pseudonyms() -> None:
    series = pd.Series(["9434765919"])

    assert (
        system_pseudonyms(series, SYSTEM_KEY).iloc[0]
        != system_pseudonyms(series, OTHER_KEY).iloc[0]
    )


def test_system_pseudonym_is_not_a_plain_sha256_of_the_nhs_number() -> None:
    result = system_pseudonyms(pd.Series(["9434765919"]), SYSTEM_KEY).iloc[0]

    assert result != hashlib.sha256(b"9434765919").hexdigest()
    assert result != hashlib.sha256(b"943 476 5919").hexdigest()


def test_system_pseudonyms_map_repeated_numbers_back_to_every_row() -> None:
    numbers = synthetic_nhs_numbers(50, np.random.default_rng(1))
    series = pd.Series(numbers * 3, index=range(100, 250))

    result = system_pseudonyms(series, SYSTEM_KEY)

    assert list(result.index) == list(range(100, 250))
    assert result.nunique() == 50
    for position, number in enumerate(series):
        assert result.iloc[position] == hmac.new(SYSTEM_KEY, number.encode(), "sha256").hexdigest()


@pytest.mark.parametrize("bad", ["9434765918", "123", "", None, "943476591X", "1234567890"])
def test_system_pseudonyms_refuse_any_invalid_nhs_number(bad: str | None) -> None:
    with pytest.raises(ValueError, match="1 of 2 values are not valid NHS numbers") as caught:
        system_pseudonyms(pd.Series(["9434765919", bad], dtype=object), SYSTEM_KEY)
    if bad:
        assert bad not in str(caught.value)  # counts only, never identifiers


@pytest.mark.parametrize("key", [b"", b"short", "a string key of more than thirty-two chars"])
def test_system_pseudonyms_refuse_a_short_or_non_bytes_key(key: bytes) -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        system_pseudonyms(pd.Series(["9434765919"]), key)


def test_system_pseudonyms_of_an_empty_column_is_empty() -> None:
    assert system_pseudonyms(pd.Series([], dtype="string"), SYSTEM_KEY).empty


def _hkdf_reference(master: bytes, info: bytes) -> bytes:
    # RFC 5869 written out: no salt means a salt of HashLen zero bytes; one block of output.
    prk = hmac.new(b"\0" * 32, master, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


def test_project_key_is_hkdf_sha256_with_the_project_and_version_as_info() -> None:
    assert project_key(MASTER_KEY, 7, 2) == _hkdf_reference(MASTER_KEY, b"project:7:v2")


def test_project_key_is_stable_and_differs_by_project_and_version() -> None:
    keys = {(p, v): project_key(MASTER_KEY, p, v) for p in (1, 2, 12) for v in (1, 2)}

    assert project_key(MASTER_KEY, 1, 1) == keys[(1, 1)]
    assert len(set(keys.values())) == len(keys)
    assert all(len(key) == 32 for key in keys.values())


@pytest.mark.parametrize(("project_id", "version"), [(0, 1), (1, 0), (-1, 1), (True, 1)])
def test_project_key_refuses_ids_and_versions_that_are_not_positive(
    project_id: int, version: int
) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        project_key(MASTER_KEY, project_id, version)


def test_different_projects_get_different_pseudonyms_for_the_same_person() -> None:
    sps = system_pseudonyms(pd.Series(["9434765919", "4010232137"]), SYSTEM_KEY)

    project_one = project_pseudonyms(sps, project_key(MASTER_KEY, 1, 1))
    project_two = project_pseudonyms(sps, project_key(MASTER_KEY, 2, 1))
    project_one_v2 = project_pseudonyms(sps, project_key(MASTER_KEY, 1, 2))

    assert set(project_one).isdisjoint(project_two)
    assert set(project_one).isdisjoint(project_one_v2)
    assert set(project_one).isdisjoint(sps)


def test_project_pseudonyms_are_stable_for_a_project_and_version() -> None:
    sps = system_pseudonyms(pd.Series(["9434765919"]), SYSTEM_KEY)
    key = project_key(MASTER_KEY, 3, 1)

    first = project_pseudonyms(sps, key).iloc[0]

    assert first == project_pseudonyms(sps, project_key(MASTER_KEY, 3, 1)).iloc[0]
    assert first == hmac.new(key, sps.iloc[0].encode(), hashlib.sha256).hexdigest()


@pytest.mark.parametrize("bad", ["9434765919", "A" * 64, "a" * 63, None])
def test_project_pseudonyms_refuse_anything_but_system_pseudonyms(bad: str | None) -> None:
    sps = system_pseudonyms(pd.Series(["9434765919"]), SYSTEM_KEY)

    with pytest.raises(ValueError, match="not system pseudonyms"):
        project_pseudonyms(
            pd.Series([sps.iloc[0], bad], dtype=object), project_key(MASTER_KEY, 1, 1)
        )


def test_date_of_birth_generalised_to_year() -> None:
    dates = pd.Series(["1980-05-17", None, "2001-12-31"], index=[5, 6, 7])

    years = generalise_date_of_birth(dates, to="year")

    assert years.dtype == "Int64"
    assert years.tolist() == [1980, pd.NA, 2001]
    assert list(years.index) == [5, 6, 7]


def test_date_of_birth_generalised_to_first_of_month() -> None:
    dates = pd.Series(pd.to_datetime(["1980-05-17 13:45", "2001-12-31 00:00"]))

    months = generalise_date_of_birth(dates, to="month")

    assert months.tolist() == [pd.Timestamp("1980-05-01"), pd.Timestamp("2001-12-01")]


def test_date_of_birth_generalisation_accepts_date_objects_and_mixed_iso_strings() -> None:
    dates = pd.Series([datetime.date(1980, 5, 17), "2001-12-31", "1999-02-03T04:05", None])

    assert generalise_date_of_birth(dates).tolist() == [1980, 2001, 1999, pd.NA]


def test_date_of_birth_generalisation_refuses_non_dates_without_echoing_them() -> None:
    with pytest.raises(ValueError, match="2 of 3 values are not dates") as caught:
        generalise_date_of_birth(pd.Series(["1980-05-17", "17th of Mayish", "05/06/1980"]))
    assert "Mayish" not in str(caught.value)


def test_date_of_birth_generalisation_refuses_unknown_granularity() -> None:
    with pytest.raises(ValueError, match="'year' or 'month'"):
        generalise_date_of_birth(pd.Series(["1980-05-17"]), to="day")  # type: ignore[arg-type]
