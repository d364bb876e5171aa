"""Run ACRO 1.0.2 on a batch of outputs and print its verdicts as JSON.

This script is executed by the Python of ACRO's own throwaway virtual environment (see
``acro_env.py``), never by the project's: ACRO pins older libraries, so it may import
acro, pandas and numpy from that environment but nothing from the ``sde`` project.

Usage: ``python -I acro_runner.py REQUEST.json``. The request names one microdata file
(parquet or csv), optional overrides of ACRO's risk appetite, and a list of outputs; the
response on stdout gives, per output id, exactly what ACRO recorded (status, summary,
per-cell outcome, the table it computed or suppressed) plus the per-check results that
ACRO computes but does not keep on its records. Exit status 2 means the request itself is
malformed; an ACRO exception on one output is reported in that output's ``error`` and the
others still run, because "ACRO crashes on this" is itself a parity finding.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import math
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import acro
import numpy as np
import pandas as pd

# The risk-appetite keys of acro/default.yaml that the request may override, with their
# types. ``survival_safe_threshold`` is deliberately absent: ACRO 1.0.2 reads it from the
# yaml but never uses it (acro_tables.SURVIVAL_THRESHOLD is a hard-coded 10).
SETTINGS: dict[str, type] = {
    "safe_threshold": int,
    "safe_dof_threshold": int,
    "safe_nk_n": int,
    "safe_nk_k": float,
    "safe_pratio_p": float,
    "check_missing_values": bool,
    "zeros_are_disclosive": bool,
}
TABLE_KINDS = {"crosstab", "pivot_table"}
REGRESSION_KINDS = {"ols": "olsr", "logit": "logitr", "probit": "probitr"}
KINDS = TABLE_KINDS | set(REGRESSION_KINDS) | {"surv_func", "hist", "pie"}


class RequestError(ValueError):
    """The request file is malformed (the harness's bug, not ACRO's behaviour)."""


def main(argv: list[str]) -> int:
    """Read the request, run every output through one ACRO session, print the response."""
    if len(argv) != 2:
        print("usage: acro_runner.py REQUEST.json", file=sys.stderr)
        return 2
    try:
        request = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
        if not isinstance(request, dict) or not isinstance(request.get("data"), str):
            raise RequestError("the request must be an object with a data path")
        settings = _settings(request.get("settings") or {})
        outputs = _outputs(request.get("outputs"))
        default_suppress = _flag(request, "suppress")
        data = _load_data(request["data"])
    except (OSError, ValueError) as exc:  # RequestError and json.JSONDecodeError included
        print(f"acro_runner: bad request: {exc}", file=sys.stderr)
        return 2
    # ACRO writes its plots under ./acro_artifacts, and statsmodels prints optimiser
    # progress on stdout: run in a scratch directory with stdout sent to stderr, so the
    # only thing on the real stdout is the JSON response.
    with (
        tempfile.TemporaryDirectory(prefix="acro-runner-") as scratch,
        contextlib.chdir(scratch),
        contextlib.redirect_stdout(sys.stderr),
    ):
        response = _run(data, settings, outputs, default_suppress)
    json.dump(response, sys.stdout, allow_nan=False)
    sys.stdout.write("\n")
    return 0


def _load_data(name: str) -> pd.DataFrame:
    path = Path(name).resolve()
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".csv":
        return pd.read_csv(path)
    raise RequestError(f"data must be a .parquet or .csv file, not {path.name}")


def _settings(overrides: dict[str, Any]) -> dict[str, Any]:
    unknown = set(overrides) - set(SETTINGS)
    if unknown:
        raise RequestError(f"unknown settings {sorted(unknown)}; allowed: {sorted(SETTINGS)}")
    for key, value in overrides.items():
        wanted = SETTINGS[key]
        if not _is_a(value, wanted):
            raise RequestError(f"setting {key} must be {wanted.__name__}, not {value!r}")
    return overrides


def _is_a(value: Any, wanted: type) -> bool:
    # bool is an int subclass, so it must not pass for a number; an int is a fine float.
    if wanted is bool or isinstance(value, bool):
        return wanted is bool and isinstance(value, bool)
    return isinstance(value, int) if wanted is int else isinstance(value, (int, float))


def _outputs(outputs: Any) -> list[dict[str, Any]]:
    if not isinstance(outputs, list) or not outputs:
        raise RequestError("outputs must be a non-empty list")
    seen: set[str] = set()
    for spec in outputs:
        if not isinstance(spec, dict) or not isinstance(spec.get("id"), str):
            raise RequestError(f"every output needs a string id: {spec!r}")
        if spec["id"] in seen:
            raise RequestError(f"duplicate output id {spec['id']!r}")
        seen.add(spec["id"])
        if spec.get("kind") not in KINDS:
            raise RequestError(f"output {spec['id']}: kind must be one of {sorted(KINDS)}")
        _flag(spec, "suppress")
        _flag(spec, "margins")
    return outputs


def _flag(mapping: dict[str, Any], key: str, default: bool = False) -> bool:
    value = mapping.get(key, default)
    if not isinstance(value, bool):
        raise RequestError(f"{key} must be true or false, not {value!r}")
    return value


def _run(
    data: pd.DataFrame,
    settings: dict[str, Any],
    outputs: list[dict[str, Any]],
    default_suppress: bool,
) -> dict[str, Any]:
    session = acro.ACRO(suppress=False)
    # ACRO's checks read the risk appetite from session.config (the very dict handed to
    # SDCChecks and to every TableModelDetails), so updating it in place is how a TRE's
    # own yaml values would reach the checks; ACRO(config=...) only accepts the name of a
    # yaml file inside the installed acro package.
    if session.sdc_checks.risk_appetite is not session.config:
        raise RuntimeError("this ACRO no longer shares its config with its checks")
    session.config.update(settings)
    captured = _capture_check_results(session)
    results: dict[str, Any] = {}
    for spec in outputs:
        captured.clear()
        session.suppress = _flag(spec, "suppress", default_suppress)
        before = session.results.output_id
        entry: dict[str, Any] = {"id": spec["id"], "kind": spec["kind"]}
        entry["suppress"] = session.suppress
        try:
            extra = _call(session, spec, data.copy(deep=False))
            entry.update(_record(session, before))
            entry.update(extra)
            entry["checks"] = [_checks_json(name, result) for name, result in captured]
            entry["error"] = None
        except Exception as exc:  # noqa: BLE001 - an ACRO crash is a finding to report
            entry["error"] = {
                "type": type(exc).__name__,
                "message": str(exc),
                "traceback": traceback.format_exc(),
            }
        results[spec["id"]] = entry
    return {
        "acro_version": importlib.metadata.version("acro"),
        "versions": {
            name: importlib.metadata.version(name) for name in ("pandas", "numpy", "statsmodels")
        },
        "config": {key: session.config[key] for key in SETTINGS},
        "outputs": results,
    }


def _capture_check_results(session: acro.ACRO) -> list[tuple[str, Any]]:
    """Record what every ``run_checks_for_analysis`` call returns during an output.

    ACRO's records keep only the collated per-cell strings and, in ``sdc``, the cell
    positions; the per-check masks with their row and column labels (and for a histogram
    the only labelled per-bin result) exist only in the ChecksResults it returns here.
    """
    captured: list[tuple[str, Any]] = []
    original: Callable[..., Any] = session.sdc_checks.run_checks_for_analysis

    def recording(analysis_name: str, evidence: Any, model: Any) -> Any:
        result = original(analysis_name, evidence, model)
        captured.append((analysis_name, result))
        return result

    session.sdc_checks.run_checks_for_analysis = recording  # type: ignore[method-assign]
    return captured


def _columns(data: pd.DataFrame, names: list[str]) -> list[pd.Series]:
    return [data[name] for name in names]


def _call(session: acro.ACRO, spec: dict[str, Any], data: pd.DataFrame) -> dict[str, Any]:
    """Make the one ACRO call the spec asks for; return any facts not on the record."""
    kind = spec["kind"]
    if kind == "crosstab":
        values = spec.get("values")
        session.crosstab(
            _columns(data, spec["index"]),
            _columns(data, spec["columns"]),
            values=None if values is None else data[values],
            aggfunc=spec.get("aggfunc"),
            margins=_flag(spec, "margins"),
        )
        return {}
    if kind == "pivot_table":
        session.pivot_table(
            data,
            values=spec["values"],
            index=list(spec["index"]),
            columns=list(spec.get("columns") or []),
            aggfunc=spec.get("aggfunc") or "mean",
            margins=_flag(spec, "margins"),
        )
        return {}
    if kind in REGRESSION_KINDS:
        fitted = getattr(session, REGRESSION_KINDS[kind])(spec["formula"], data=data)
        return {"model": {"nobs": int(fitted.nobs), "n_params": len(fitted.params)}}
    if kind == "surv_func":
        session.surv_func(data[spec["time"]], data[spec["status"]], output="table")
        return {}
    if kind == "hist":
        bins = spec.get("bins", 10)
        session.hist(data, spec["column"], bins=bins)
        # ACRO's per-bin result is keyed by np.digitize bin id i (1-based), the interval
        # [edges[i-1], edges[i]); these are the edges it computed. Values equal to the
        # last edge get id bins+1, which ACRO drops: its last bin misses the maximum.
        edges = np.histogram_bin_edges(data[spec["column"]].dropna(), bins)
        return {"bin_edges": [float(edge) for edge in edges]}
    session.pie(data, spec["column"])
    return {}


def _record(session: acro.ACRO, before: int) -> dict[str, Any]:
    if session.results.output_id == before:
        raise RuntimeError("ACRO recorded no output for this call")
    record = session.results.get_index(-1)
    tables = [item for item in record.output if isinstance(item, pd.DataFrame)]
    outcome = record.outcome
    return {
        "status": record.status,
        "summary": record.summary,
        "output_type": record.output_type,
        "method": record.properties.get("method"),
        "exception": record.exception,
        "dof": _scalar(record.properties["dof"]) if "dof" in record.properties else None,
        "sdc": _plain(record.sdc),
        "tables": [_frame_json(table) for table in tables],
        "outcome": None if outcome.empty else _frame_json(outcome, cell=_flags),
    }


def _flags(cell: Any) -> list[str]:
    """ACRO's outcome cell text as tokens: "NKCheck; PPercentCheck; " -> two; "ok" -> []."""
    tokens = [token.strip() for token in str(cell).split(";")]
    return [token for token in tokens if token and token != "ok"]


def _checks_json(analysis: str, result: Any) -> dict[str, Any]:
    statuses = result.fair_dict.get("check_status", {})
    return {
        "analysis": analysis,
        "status": result.overall_status,
        "checks": {
            name: {"status": statuses.get(name), "outcome": _check_outcome(outcome)}
            for name, outcome in result.outcomes.items()
        },
    }


def _check_outcome(outcome: Any) -> Any:
    """A check's mask, or null when it is a boolean mask that flags nothing.

    For a histogram or pie chart ACRO builds its all-false masks with one row per
    distinct data value, which on real microdata would be the size of the data itself.
    """
    if (
        isinstance(outcome, pd.DataFrame)
        and all(pd.api.types.is_bool_dtype(dtype) for dtype in outcome.dtypes)
        and not outcome.to_numpy().any()
    ):
        return None
    return _plain(outcome)


def _frame_json(frame: pd.DataFrame, cell: Callable[[Any], Any] | None = None) -> dict[str, Any]:
    """A DataFrame as labels (always lists of strings, one per level) and a cell grid."""
    convert = cell or _scalar
    return {
        "index_names": [_label_name(name) for name in frame.index.names],
        "column_names": [_label_name(name) for name in frame.columns.names],
        "index": [_label(label) for label in frame.index],
        "columns": [_label(label) for label in frame.columns],
        "data": [
            [convert(value) for value in row] for row in frame.itertuples(index=False, name=None)
        ],
    }


def _label_name(name: Any) -> str | None:
    return None if name is None else str(name)


def _label(label: Any) -> list[str]:
    return [str(part) for part in label] if isinstance(label, tuple) else [str(label)]


def _scalar(value: Any) -> Any:
    """A JSON-safe cell: NaN/NA -> null, infinities -> "inf"/"-inf", numpy -> Python."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        if math.isnan(number):
            return None
        return number if math.isfinite(number) else str(number)
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    return str(value)


def _plain(value: Any) -> Any:
    if isinstance(value, pd.DataFrame):
        return _frame_json(value)
    if isinstance(value, pd.Series):
        return _frame_json(value.to_frame())
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return _scalar(value)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
