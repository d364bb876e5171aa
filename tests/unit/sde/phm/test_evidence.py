"""The order-statistic tables (sde/phm/evidence.py ``statistic_table``): the published
value and the evidence each rule needs, computed from person-level rows."""

from __future__ import annotations

import pandas as pd
import pytest

from sde.phm.evidence import statistic_table


def rows(values: list[float], group: str = "a") -> pd.DataFrame:
    return pd.DataFrame({"person_id": [f"p{i}" for i in range(len(values))],
                         "g": group, "v": values})  # fmt: skip


def cell(values: list[float], statistic: str, **options: object) -> dict:
    result = statistic_table(rows(values), name="t", title="t", by=["g"], value="v",
                             statistic=statistic, **options)  # fmt: skip
    [only] = result.sidecar()["cells"]
    return {"value": result.frame.at[0, f"{statistic}_v"], **only}


def test_a_median_records_the_people_either_side_of_it():
    found = cell([1, 2, 3, 4, 5, 6, 7], "median")

    assert found["value"] == 4
    assert found["quantiles"] == {"median_v": {"below": 3, "above": 3}}
    assert found["persons"] == {"people": 7, "median_v": 7}


def test_a_percentile_uses_the_quantile_asked_for():
    found = cell(list(range(1, 101)), "percentile", quantile=0.9)

    assert found["value"] == pytest.approx(90.1)
    assert found["quantiles"]["percentile_v"] == {"below": 90, "above": 10}


@pytest.mark.parametrize(("values", "distinct"), [([3, 3, 3], 1), ([3, 3, 4], 2)])
def test_a_mode_records_how_many_different_values_the_cell_has(values, distinct):
    found = cell(values, "mode")

    assert found["value"] == 3 and found["modes"] == {"mode_v": {"distinct": distinct}}


@pytest.mark.parametrize(
    ("statistic", "safe", "expected"),
    [("max", None, 20), ("min", None, 1), ("max", 3, 19), ("min", 3, 2)],
)
def test_an_extreme_is_one_persons_value_unless_a_safe_extreme_is_asked_for(
    statistic, safe, expected
):
    found = cell(list(range(1, 21)), statistic, safe_extreme=safe)

    assert found["value"] == expected  # the mean of the 3 most extreme: 18,19,20 or 1,2,3
    assert found["extremes"] == {f"{statistic}_v": {"safe": int(safe is not None)}}


def test_a_standard_deviation_counts_the_people_with_a_value():
    found = cell([1.0, 3.0, None, 5.0], "std")

    assert found["value"] == pytest.approx(2.0) and found["persons"]["std_v"] == 3


def test_a_statistic_that_is_not_an_order_statistic_is_refused():
    with pytest.raises(ValueError, match="order statistic"):
        statistic_table(rows([1.0]), name="t", title="t", by=["g"], value="v", statistic="sum")
