"""The ACRO side of the parity harness really gets its verdicts from ACRO 1.0.2.

Small generated microdata with cells deliberately at 9, 10 and 11 rows, an empty cell, a
cell dominated by one person and one dominated by two, go through the runner, and ACRO's
documented rules must show: threshold fails below 10 and not at 10, zeros fail, the
n-k rule and the p% rule each catch their cell. The known holes and quirks of 1.0.2 that
our checker closes are pinned too, so an ACRO upgrade that changes them is noticed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.parity.acro_env import AcroRunnerError, AcroUnavailable, run_acro

pytestmark = pytest.mark.parity

Run = Callable[..., dict[str, Any]]

# (region, rows, persons, income pattern) of each F cell; every M cell has 20
# ordinary rows, one person each, so only the F column carries the cases under test.
F_CELLS = [
    ("r09", 9, 9, "plain"),
    ("r10", 10, 10, "plain"),
    ("r11", 11, 11, "plain"),
    ("rdup", 10, 3, "plain"),  # 10 rows but only 3 people
    ("rdom", 30, 30, "one_dominates"),  # one 100,000 among 29 of 100
    ("rduo", 12, 12, "two_dominate"),  # two of 1,000 among ten of 15
    ("rzero", 0, 0, "plain"),  # no F rows at all
]


def _incomes(pattern: str, rows: int, rng: np.random.Generator) -> np.ndarray:
    if pattern == "one_dominates":
        # top 2 share 0.973 >= k=0.90; (total - x1 - x2) / x1 = 0.028 < p=0.10
        return np.array([100_000.0] + [100.0] * (rows - 1))
    if pattern == "two_dominate":
        # top 2 share 0.930 >= 0.90, but (total - x1 - x2) / x1 = 0.15 passes p%
        return np.array([1_000.0, 1_000.0] + [15.0] * (rows - 2))
    return rng.normal(1_000.0, 50.0, size=rows)


def make_microdata(seed: int = 20240611) -> pd.DataFrame:
    """One row per record; ``person_id`` repeats only in the ``rdup`` cell."""
    rng = np.random.default_rng(seed)
    frames = []
    next_person = 0
    for region, f_rows, f_persons, pattern in F_CELLS:
        for sex, rows, persons, kind in (("F", f_rows, f_persons, pattern), ("M", 20, 20, "plain")):
            if rows == 0:
                continue
            ids = next_person + np.arange(rows) % persons
            next_person += persons
            frames.append(
                pd.DataFrame(
                    {
                        "person_id": ids,
                        "region": region,
                        "sex": sex,
                        "income": _incomes(kind, rows, rng),
                    }
                )
            )
    data = pd.concat(frames, ignore_index=True)
    n = len(data)
    data["age"] = rng.integers(18, 90, size=n)
    data["x1"] = rng.normal(size=n)
    data["y"] = 1.0 + 2.0 * data["x1"] + rng.normal(size=n)
    data["b"] = (data["y"] > 1.0).astype(int)
    # Every step of the survival curve has at least 15 events.
    data["time"] = rng.integers(1, 6, size=n)
    data["event"] = 1
    # With 3 bins the edges are 0, 1, 2, 3 and the last bin holds exactly 10 records,
    # one of them the maximum.
    data["score"] = np.repeat([0.0, 1.5, 2.9, 3.0], [n - 30, 20, 9, 1])
    return data


@pytest.fixture(scope="module")
def microdata() -> pd.DataFrame:
    return make_microdata()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, microdata: pd.DataFrame) -> Run:
    """Run the ACRO runner on the microdata (written once to parquet), or skip cleanly."""
    workdir = tmp_path_factory.mktemp("acro")
    data_path = workdir / "microdata.parquet"
    microdata.to_parquet(data_path)

    def go(*outputs: dict[str, Any], **request: Any) -> dict[str, Any]:
        try:
            response = run_acro(
                {"data": str(data_path), "outputs": list(outputs), **request}, workdir=workdir
            )
        except AcroUnavailable as exc:
            pytest.skip(f"ACRO parity harness skipped: {exc}")
        return response

    return go


def cell(table: dict[str, Any], row: str, column: str) -> Any:
    """A cell of a runner table by its (single-level) row and column labels."""
    return table["data"][table["index"].index([row])][table["columns"].index([column])]


def flags(output: dict[str, Any], row: str, column: str = "F") -> list[str]:
    return cell(output["outcome"], row, column)


@pytest.fixture(scope="module")
def default_run(run: Run) -> dict[str, Any]:
    """One ACRO session with every output kind, at ACRO's default risk appetite."""
    by_region_sex = {"index": ["region"], "columns": ["sex"]}
    response = run(
        {"id": "counts", "kind": "crosstab", **by_region_sex},
        {"id": "counts_suppressed", "kind": "crosstab", **by_region_sex, "suppress": True},
        {"id": "margins", "kind": "crosstab", **by_region_sex, "margins": True},
        {"id": "mean", "kind": "crosstab", **by_region_sex, "values": "income", "aggfunc": "mean"},
        {"id": "sum", "kind": "pivot_table", **by_region_sex, "values": "income", "aggfunc": "sum"},
        {"id": "sum_by_region", "kind": "pivot_table", "index": ["region"], "values": "income",
         "aggfunc": "sum"},
        *(
            {"id": agg, "kind": "pivot_table", **by_region_sex, "values": "income", "aggfunc": agg}
            for agg in ("median", "min", "max", "mode", "std")
        ),
        {"id": "ols", "kind": "ols", "formula": "y ~ x1 + age"},
        {"id": "ols_saturated", "kind": "ols", "formula": "y ~ C(person_id)"},
        {"id": "logit", "kind": "logit", "formula": "b ~ x1"},
        {"id": "probit", "kind": "probit", "formula": "b ~ x1"},
        {"id": "survival", "kind": "surv_func", "time": "time", "status": "event"},
        {"id": "hist", "kind": "hist", "column": "income", "bins": 5},
        {"id": "score_hist", "kind": "hist", "column": "score", "bins": 3},
        {"id": "missing_column", "kind": "crosstab", "index": ["nope"], "columns": ["sex"]},
    )  # fmt: skip
    return response


def test_runner_reports_acro_version_and_default_risk_appetite(default_run: dict) -> None:
    assert default_run["acro_version"] == "1.0.2"
    assert default_run["config"] == {
        "safe_threshold": 10,
        "safe_dof_threshold": 10,
        "safe_nk_n": 2,
        "safe_nk_k": 0.9,
        "safe_pratio_p": 0.1,
        "check_missing_values": False,
        "zeros_are_disclosive": True,
    }


def test_frequency_table_threshold_fails_below_10_and_passes_at_10(default_run: dict) -> None:
    counts = default_run["outputs"]["counts"]

    assert counts["error"] is None
    assert counts["status"] == "fail"
    assert cell(counts["tables"][0], "r09", "F") == 9
    assert flags(counts, "r09") == ["MinimumThresholdCheck"]
    assert flags(counts, "r10") == []
    assert flags(counts, "r11") == []
    assert flags(counts, "r09", "M") == []
    assert "MinimumThresholdCheck: fail - 2 cells may need suppressing." in counts["summary"]


def test_frequency_table_zero_cell_fails_zero_and_threshold(default_run: dict) -> None:
    counts = default_run["outputs"]["counts"]

    assert cell(counts["tables"][0], "rzero", "F") == 0
    assert flags(counts, "rzero") == ["PresenceOfZeroCheck", "MinimumThresholdCheck"]


def test_threshold_counts_rows_not_people(default_run: dict, microdata: pd.DataFrame) -> None:
    rdup = microdata[(microdata.region == "rdup") & (microdata.sex == "F")]
    assert rdup.person_id.nunique() == 3

    assert flags(default_run["outputs"]["counts"], "rdup") == []


def test_per_check_results_carry_labelled_masks(default_run: dict) -> None:
    (frequency,) = default_run["outputs"]["counts"]["checks"]
    threshold = frequency["checks"]["MinimumThresholdCheck"]

    assert frequency["analysis"] == "FrequencyTable"
    assert threshold["status"] == "fail"
    assert cell(threshold["outcome"], "r09", "F") is True
    assert cell(threshold["outcome"], "r10", "F") is False


def test_suppression_blanks_flagged_cells_and_keeps_the_rest(default_run: dict) -> None:
    suppressed = default_run["outputs"]["counts_suppressed"]
    table = suppressed["tables"][0]

    assert suppressed["suppress"] is True
    assert suppressed["status"] == "review"
    assert suppressed["exception"] == "Suppression automatically applied where needed"
    assert cell(table, "r09", "F") is None
    assert cell(table, "rzero", "F") is None
    assert cell(table, "r10", "F") == 10
    assert cell(table, "r09", "M") == 20
    assert flags(suppressed, "r09") == ["MinimumThresholdCheck"]


def test_margins_are_checked_as_cells(default_run: dict) -> None:
    margins = default_run["outputs"]["margins"]

    assert margins["tables"][0]["index"][-1] == ["All"]
    assert cell(margins["tables"][0], "All", "F") == 9 + 10 + 11 + 10 + 30 + 12
    assert flags(margins, "All", "All") == []
    assert flags(margins, "r09") == ["MinimumThresholdCheck"]


def test_mean_flags_threshold_nk_and_p_ratio(default_run: dict) -> None:
    mean = default_run["outputs"]["mean"]

    assert mean["status"] == "fail"
    assert flags(mean, "r09") == ["MinimumThresholdCheck"]
    assert flags(mean, "r10") == []
    assert flags(mean, "rdom") == ["NKCheck", "PPercentCheck"]
    # Zeros are not a risk ACRO's ontology attaches to means: only the threshold fails.
    assert flags(mean, "rzero") == ["MinimumThresholdCheck"]


def test_two_equal_dominant_contributors_fail_nk_but_pass_p_ratio(default_run: dict) -> None:
    assert flags(default_run["outputs"]["sum"], "rduo") == ["NKCheck"]


def test_pivot_table_sum_without_columns(default_run: dict) -> None:
    by_region = default_run["outputs"]["sum_by_region"]

    assert by_region["tables"][0]["columns"] == [["income"]]
    assert cell(by_region["outcome"], "r09", "income") == []
    assert cell(by_region["outcome"], "rzero", "income") == []


def test_median_min_max_only_get_the_threshold(default_run: dict) -> None:
    outputs = default_run["outputs"]
    for name in ("median", "min", "max"):
        assert flags(outputs[name], "r09") == ["MinimumThresholdCheck"], name
        assert flags(outputs[name], "r10") == [], name
        assert flags(outputs[name], "rdom") == [], name
    # The extreme of a cell is one person's value, yet ACRO 1.0.2 passes it.
    assert cell(outputs["max"]["tables"][0], "rdom", "F") == 100_000.0


def test_mode_is_not_threshold_checked(default_run: dict) -> None:
    mode = default_run["outputs"]["mode"]

    assert [check["analysis"] for check in mode["checks"]] == ["ModeCalculation"]
    assert flags(mode, "r09") == []


def test_std_fails_on_dof_but_its_cell_flags_mark_every_nonzero_dof(default_run: dict) -> None:
    std = default_run["outputs"]["std"]

    assert std["status"] == "fail"
    assert "MinimumDoFCheck: fail dof=-1 < 10" in std["summary"]
    # ACRO casts the dof table itself to a mask, so a cell with dof 29 is "flagged" too.
    assert flags(std, "rdom") == ["MinimumDoFCheck"]
    assert flags(std, "r09") == ["MinimumDoFCheck"]


def test_regressions_check_residual_degrees_of_freedom(default_run: dict) -> None:
    outputs = default_run["outputs"]
    rows = outputs["ols"]["model"]["nobs"]

    assert outputs["ols"]["status"] == "pass"
    assert outputs["ols"]["dof"] == rows - 3
    assert outputs["ols"]["method"] == "olsr"
    assert outputs["ols_saturated"]["status"] == "fail"
    assert outputs["ols_saturated"]["dof"] < 10
    assert (outputs["logit"]["status"], outputs["logit"]["dof"]) == ("pass", rows - 2)
    assert (outputs["probit"]["status"], outputs["probit"]["method"]) == ("pass", "probitr")


def test_survival_always_fails_even_with_large_steps(default_run: dict) -> None:
    survival = default_run["outputs"]["survival"]

    assert min(row[3] for row in survival["tables"][0]["data"]) >= 15
    assert survival["status"] == "fail"
    assert "MinimumDoFCheck: fail dof=0 < 10" in survival["summary"]


def bin_flags(output: dict[str, Any]) -> dict[str, bool]:
    """ACRO's per-bin threshold result, keyed by its 1-based bin id."""
    (histogram,) = output["checks"]
    mask = histogram["checks"]["MinimumThresholdCheck"]["outcome"]
    return {label: row[0] for (label,), row in zip(mask["index"], mask["data"], strict=True)}


def test_histogram_threshold_is_checked_per_bin(default_run: dict) -> None:
    hist = default_run["outputs"]["hist"]
    (histogram,) = hist["checks"]

    assert hist["output_type"] == "histogram"
    assert hist["outcome"] is None
    assert hist["bin_edges"][0] == 15.0 and hist["bin_edges"][-1] == 100_000.0
    # Everyone is in the first bin but the one 100,000: bins 2-5 are empty or 1.
    assert hist["status"] == "fail"
    assert bin_flags(hist) == {"1": False, "2": True, "3": True, "4": True, "5": True}
    # Masks that flag nothing are sent as null (ACRO's are one row per data value).
    assert histogram["checks"]["PresenceOfZeroCheck"] == {"status": "pass", "outcome": None}


def test_histogram_drops_the_maximum_from_the_last_bin(
    default_run: dict, microdata: pd.DataFrame
) -> None:
    counts, edges = np.histogram(microdata["score"], bins=3)
    assert counts.tolist() == [len(microdata) - 30, 20, 10]
    hist = default_run["outputs"]["score_hist"]

    assert hist["bin_edges"] == edges.tolist()
    assert bin_flags(hist) == {"1": False, "2": False, "3": True}


def test_acro_error_on_one_output_is_reported_not_fatal(default_run: dict) -> None:
    broken = default_run["outputs"]["missing_column"]

    assert broken["error"]["type"] == "KeyError"
    assert default_run["outputs"]["counts"]["error"] is None


def test_settings_override_the_risk_appetite(run: Run) -> None:
    response = run(
        {"id": "counts", "kind": "crosstab", "index": ["region"], "columns": ["sex"]},
        settings={"safe_threshold": 11, "zeros_are_disclosive": False},
    )
    counts = response["outputs"]["counts"]

    assert response["config"]["safe_threshold"] == 11
    assert flags(counts, "r10") == ["MinimumThresholdCheck"]
    assert flags(counts, "r11") == []
    assert flags(counts, "rzero") == ["MinimumThresholdCheck"]


def test_nk_and_p_ratio_settings_are_honoured(run: Run) -> None:
    response = run(
        {"id": "sum", "kind": "pivot_table", "index": ["region"], "columns": ["sex"],
         "values": "income", "aggfunc": "sum"},
        settings={"safe_nk_k": 0.95, "safe_pratio_p": 0.2},
    )  # fmt: skip
    total = response["outputs"]["sum"]

    assert flags(total, "rduo") == ["PPercentCheck"]
    assert flags(total, "rdom") == ["NKCheck", "PPercentCheck"]


def test_bad_request_is_rejected(run: Run) -> None:
    with pytest.raises(AcroRunnerError, match="unknown settings"):
        run({"id": "t", "kind": "crosstab", "index": ["region"], "columns": ["sex"]},
            settings={"safe_thresold": 5})  # fmt: skip
