"""Validating source files against the source format: check, type, quarantine.

Pure (pandas, NumPy, pyarrow; no Django, no settings). ``read_source_table`` (from
``source_files``, re-exported here with ``SourceFormatError``) reads one CSV as strings.
``validate_table`` splits its rows into a typed ``clean`` frame and a ``quarantine`` of
(row, reason, column), one row per rejected source row with its first reason, so
``clean + quarantine == received``.

Rules are checked in the order of ``REASONS``: first what a row says on its own (missing
values, NHS numbers, dates, codes, ranges, date order), then exact duplicates and repeated
people (the first acceptable row is kept), and last what needs the clean patients table
(unknown person, activity before birth or after death).

Everything is vectorised and most checks run once per distinct value: each column is
factorised, the distinct values are checked and parsed, and the results are mapped back
to the rows with ``take``. A column's distinct values are far fewer than its rows (dates,
codes), or at most the number of people (NHS numbers).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Final, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sde.data import source_format as sf
from sde.data.pseudonymisation import normalise_nhs_numbers, valid_nhs_numbers
from sde.data.source_files import ROW, SourceFormatError

# Re-exported: ingestion reads and validates a drop through this module.
from sde.data.source_files import read_source_table as read_source_table

_Array: TypeAlias = pd.api.extensions.ExtensionArray

REASONS: Final = (
    "missing_value", "invalid_nhs_number", "unparseable_date", "impossible_date",
    "unknown_code", "out_of_range", "future_date", "end_before_start", "before_birth",
    "duplicate_row", "unknown_person", "after_death",
)  # fmt: skip
_CODE: Final = {reason: i + 1 for i, reason in enumerate(REASONS)}  # 0 = no reason
_NAT: Final = np.iinfo(np.int64).min  # a missing day (NaT as datetime64)
_EPOCH: Final = date(1970, 1, 1)
_STR: Final = pd.StringDtype("pyarrow", na_value=np.nan)  # pandas' default "str" dtype
_DATE_RE: Final = r"^\d{4}-\d{2}-\d{2}$"
_INT_RE: Final = r"^-?\d{1,18}$"  # arrow casts no leading "+" to int
_FLOAT_RE: Final = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d{1,3})?$"


@dataclass(frozen=True, eq=False)
class TableResult:
    """One table's validation: ``clean`` (typed, with ``_row``) and ``quarantine``
    (``row``, ``reason``, ``column``); ``len(clean) + len(quarantine) == received``."""

    table: str
    received: int
    clean: pd.DataFrame
    quarantine: pd.DataFrame

    @property
    def counts_by_reason(self) -> dict[str, int]:
        """Quarantined rows per reason (reasons with none left out), in ``REASONS`` order."""
        counts = self.quarantine["reason"].value_counts()
        return {reason: int(counts[reason]) for reason in REASONS if reason in counts.index}


# ---------------------------------------------------------------------------------------
# Checking columns (each on its distinct values)
# ---------------------------------------------------------------------------------------


@dataclass
class _Column:
    """A factorised column: ``codes`` (row -> distinct value, -1 missing) and the checks
    and parsed values of the distinct values (arrays with one extra slot for -1)."""

    name: str
    kind: str
    codes: np.ndarray
    uniques: _Array
    missing: np.ndarray  # per row
    problems: list[tuple[str, np.ndarray]]  # (reason, per distinct value + slot)
    values: np.ndarray | None = None  # parsed, per distinct value + slot
    normalised: _Array | None = None  # NHS numbers, per value

    def parsed(self) -> np.ndarray:
        """The parsed value of every row (the slot's fill where missing)."""
        assert self.values is not None, f"{self.name} has no parsed values"
        return self.values[self.codes]


def _with_slot(values: np.ndarray, fill: Any) -> np.ndarray:
    """``values`` plus one element at the end: what code -1 (missing) takes."""
    return np.append(values, np.asarray([fill], dtype=values.dtype))


def _factorise(series: pd.Series, column: str) -> tuple[np.ndarray, _Array]:
    if not (pd.api.types.is_string_dtype(series.dtype) or series.dtype == object):
        raise TypeError(f"source column {column} must hold strings, got {series.dtype}")
    codes, uniques = pd.factorize(series.astype(_STR).array)
    return codes.astype(np.int64, copy=False), uniques


def _check_column(name: str, kind: str, series: pd.Series, table: str) -> _Column:
    codes, uniques = _factorise(series, name)
    strings = pa.array(uniques, type=pa.large_string())
    blank = _np(pc.equal(pc.utf8_trim_whitespace(strings), ""))
    missing = (codes < 0) | _with_slot(blank, True)[codes]
    problems: list[tuple[str, np.ndarray]] = []
    values: np.ndarray | None = None
    normalised = None
    if kind == "nhs_number":
        spelled = normalise_nhs_numbers(pd.Series(uniques))
        problems.append(("invalid_nhs_number", ~valid_nhs_numbers(spelled).to_numpy()))
        normalised = spelled.astype(_STR).array
    elif kind == "date":
        values, unparseable, impossible = _parse_dates(strings)
        problems += [("unparseable_date", unparseable), ("impossible_date", impossible)]
    elif kind == "code":
        allowed = pa.array(sf.CODED_COLUMNS[table][name], type=pa.large_string())
        problems.append(("unknown_code", ~_np(pc.is_in(strings, value_set=allowed))))
    elif kind == "bool":
        lowered = pc.utf8_lower(strings)
        known = _np(pc.is_in(lowered, value_set=pa.array(list(sf.BOOL_VALUES))))
        problems.append(("unknown_code", ~known))
        values = _np(pc.is_in(lowered, value_set=pa.array(["true", "1"])))
    elif kind in ("int", "float"):
        values, bad = _parse_number(strings, kind, sf.VALUE_RANGES.get(table, {}).get(name))
        problems.append(("out_of_range", bad))
    fill: Any = {"date": _NAT, "float": np.nan, "int": 0, "bool": False}.get(kind, None)
    if values is not None:
        values = _with_slot(values, fill)
    # A blank value is missing, never also malformed.
    problems = [(reason, _with_slot(mask & ~blank, False)) for reason, mask in problems]
    return _Column(name, kind, codes, uniques, missing, problems, values, normalised)


def _np(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(array.to_numpy(zero_copy_only=False), dtype=bool)


def _parse_dates(strings: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(days since 1970, unparseable, impossible) per value. ISO YYYY-MM-DD only; a day
    that does not exist (2023-02-30) or precedes EARLIEST_DATE is impossible."""
    well_formed = _np(pc.match_substring_regex(strings, _DATE_RE))
    safe = pc.if_else(pa.array(well_formed), strings, pa.scalar("1970-01-01", pa.large_string()))

    def part(start: int, stop: int) -> np.ndarray:
        return np.asarray(pc.cast(pc.utf8_slice_codeunits(safe, start, stop), pa.int64()))

    year, month, day = part(0, 4), part(5, 7), part(8, 10)
    first = ((year - 1970) * 12 + np.clip(month, 1, 12) - 1).astype("datetime64[M]")
    length = ((first + 1).astype("datetime64[D]") - first.astype("datetime64[D]")).astype(int)
    days = first.astype("datetime64[D]").astype(np.int64) + day - 1
    real = (month >= 1) & (month <= 12) & (day >= 1) & (day <= length)
    possible = real & (days >= (sf.EARLIEST_DATE - _EPOCH).days)
    return np.where(well_formed & possible, days, _NAT), ~well_formed, well_formed & ~possible


def _parse_number(
    strings: pa.Array, kind: str, bounds: tuple[float, float] | None
) -> tuple[np.ndarray, np.ndarray]:
    """(values, bad) per value: bad if not a number of the kind or outside ``bounds``."""
    numeric = _np(pc.match_substring_regex(strings, _INT_RE if kind == "int" else _FLOAT_RE))
    safe = pc.if_else(pa.array(numeric), strings, pa.scalar("0", pa.large_string()))
    values = np.asarray(pc.cast(safe, pa.int64() if kind == "int" else pa.float64()))
    ok = numeric & np.isfinite(values.astype(float))
    if bounds is not None:
        ok &= (values >= bounds[0]) & (values <= bounds[1])
    return values, ~ok


# ---------------------------------------------------------------------------------------
# Validating a table
# ---------------------------------------------------------------------------------------


class _Verdicts:
    """The first reason (and its column) per row; later flags never overwrite."""

    def __init__(self, n: int, columns: list[str]) -> None:
        self.reason = np.zeros(n, dtype=np.int8)
        self.column = np.full(n, -1, dtype=np.int16)
        self.columns = columns

    @property
    def open(self) -> np.ndarray:
        return self.reason == 0

    def flag(self, mask: np.ndarray, reason: str, column: str | None) -> None:
        rows = mask & self.open
        self.reason[rows] = _CODE[reason]
        self.column[rows] = -1 if column is None else self.columns.index(column)


def validate_table(
    table: str, raw: pd.DataFrame, *, extract_date: date, people: pd.DataFrame | None = None
) -> TableResult:
    """Check ``raw`` (as ``read_source_table`` returns it) against the source format.

    ``people`` (the clean patients frame) enables the checks that link activity to a
    person; it is ignored for the patients table and the opt-out list. Raises
    ``SourceFormatError`` if the columns are not the table's.
    """
    schema = sf.TABLE_SCHEMAS.get(table)
    if schema is None:
        raise SourceFormatError(table, "not a table of the source format")
    names = list(schema)
    if sorted(c for c in raw.columns if c != ROW) != sorted(names):
        raise SourceFormatError(table, "the columns are not the table's source columns")
    n = len(raw)
    rows = raw[ROW].to_numpy(np.int64) if ROW in raw else np.arange(1, n + 1, dtype=np.int64)
    cols = {name: _check_column(name, kind, raw[name], table) for name, kind in schema.items()}
    v = _Verdicts(n, names)
    required = set(sf.required_columns(table))
    for name in names:
        if name in required:
            v.flag(cols[name].missing, "missing_value", name)
    for reason in REASONS[1:6]:  # invalid_nhs_number ... out_of_range
        for name, col in cols.items():
            for problem, per_unique in col.problems:
                if problem == reason:
                    v.flag(per_unique[col.codes], reason, name)
        if reason == "out_of_range" and table == "gp_events":
            v.flag(_implausible_measurements(cols), reason, "value")
    days = {name: col.parsed() for name, col in cols.items() if col.kind == "date"}
    today = (extract_date - _EPOCH).days
    for name, day in days.items():
        v.flag(day > today, "future_date", name)
    for reason in ("end_before_start", "before_birth"):
        for earlier, later, rule_reason in sf.DATE_ORDER.get(table, ()):
            if rule_reason == reason:
                a, b = days[earlier], days[later]
                v.flag((a != _NAT) & (b != _NAT) & (b < a), reason, later)
    v.flag(_repeats(_row_keys(cols), v.open), "duplicate_row", None)
    if table in sf.PERSON_LEVEL_TABLES:  # one row per person: a second is a duplicate
        v.flag(_repeats(_person_ids(cols["nhs_number"]), v.open), "duplicate_row", "nhs_number")
    if people is not None and table in sf.ACTIVITY_TABLES:
        _check_linkage(v, cols["nhs_number"], days, people)
    keep = v.open
    clean = _clean_frame(table, cols, keep, rows[keep])
    reasons = np.asarray(REASONS, dtype=object)[v.reason[~keep] - 1]
    columns = np.asarray([*names, None], dtype=object)[v.column[~keep]]  # -1: whole row
    quarantine = pd.DataFrame(
        {
            "row": rows[~keep],
            "reason": pd.array(reasons, dtype=_STR),
            "column": pd.array(columns, dtype=_STR),
        }
    )
    assert len(clean) + len(quarantine) == n  # the reconciliation invariant
    return TableResult(table=table, received=n, clean=clean, quarantine=quarantine)


def _implausible_measurements(cols: Mapping[str, _Column]) -> np.ndarray:
    code, value = cols["snomed_code"], cols["value"]
    known = np.asarray(code.uniques, dtype=object)
    ranges = [sf.MEASUREMENT_RANGES.get(c, sf.DEFAULT_MEASUREMENT_RANGE) for c in known]
    bounds = np.array(ranges, dtype=float).reshape(-1, 2)
    low = _with_slot(bounds[:, 0], -np.inf)[code.codes]
    high = _with_slot(bounds[:, 1], np.inf)[code.codes]
    x = value.parsed()
    return ~np.isnan(x) & ((x < low) | (x > high))


def _row_keys(cols: Mapping[str, _Column]) -> np.ndarray:
    """One int64 per row, equal exactly when all source values are equal."""
    key = np.zeros(len(next(iter(cols.values())).codes), dtype=np.int64)
    size = 1
    for col in cols.values():
        radix = len(col.uniques) + 1
        if size * radix >= 2**62:  # compress before the mixed-radix number overflows
            key, uniques = pd.factorize(key)
            size = len(uniques)
        key = key * radix + (col.codes + 1)
        size *= radix
    return key


def _repeats(key: np.ndarray, eligible: np.ndarray) -> np.ndarray:
    """Eligible rows whose key appeared on an earlier eligible row."""
    out = np.zeros(key.size, dtype=bool)
    out[eligible] = pd.Series(key[eligible]).duplicated(keep="first").to_numpy()
    return out


def _person_ids(col: _Column) -> np.ndarray:
    """Row -> one id per normalised NHS number (spellings with spaces count as one)."""
    assert col.normalised is not None
    ids, _ = pd.factorize(col.normalised)
    return _with_slot(ids.astype(np.int64), -1)[col.codes]


def _check_linkage(
    v: _Verdicts, nhs: _Column, days: Mapping[str, np.ndarray], people: pd.DataFrame
) -> None:
    assert nhs.normalised is not None
    # One factorisation of the people's numbers and this table's: person row per number.
    known = people["nhs_number"].astype(_STR).array
    both = pa.chunked_array([*_chunks(known), *_chunks(nhs.normalised)], pa.large_string())
    ids, _ = pd.factorize(pd.array(both, dtype=_STR))
    n = len(known)
    position = np.full(len(ids) + 1, -1, dtype=np.int64)
    position[ids[:n][::-1]] = np.arange(n)[::-1]  # a repeated number: the first row wins
    person = _with_slot(position[ids[n:]], -1)[nhs.codes]
    v.flag(person < 0, "unknown_person", nhs.name)
    birth = _with_slot(_days(people["date_of_birth"]), _NAT)[person]
    death = _with_slot(_days(people["date_of_death"]), _NAT)[person]
    for name, day in days.items():
        v.flag((day != _NAT) & (birth != _NAT) & (day < birth), "before_birth", name)
    for name, day in days.items():
        late = (day != _NAT) & (death != _NAT) & (day > death + sf.DEATH_GRACE_DAYS)
        v.flag(late, "after_death", name)


def _chunks(values: _Array) -> list[pa.Array]:
    array = pa.array(values, type=pa.large_string())
    return array.chunks if isinstance(array, pa.ChunkedArray) else [array]


def _days(dates: pd.Series) -> np.ndarray:
    return dates.to_numpy(dtype="datetime64[D]").astype(np.int64)


def _clean_frame(
    table: str, cols: Mapping[str, _Column], keep: np.ndarray, rows: np.ndarray
) -> pd.DataFrame:
    dtypes = sf.pandas_schema(table)
    required = set(sf.required_columns(table))
    data: dict[str, Any] = {}
    for name, col in cols.items():
        # Kept rows have every required value; an optional blank becomes missing.
        codes = col.codes[keep] if name in required else np.where(col.missing, -1, col.codes)[keep]
        if col.kind in ("str", "code"):
            data[name] = pd.Series(col.uniques.take(codes, allow_fill=True), dtype=_STR)
        elif col.kind == "nhs_number":
            assert col.normalised is not None
            data[name] = pd.Series(col.normalised.take(codes, allow_fill=True), dtype=_STR)
        else:
            assert col.values is not None
            values = col.values.take(codes)
            if col.kind == "date":
                data[name] = values.view("datetime64[D]").astype("datetime64[s]")
            elif dtypes[name] in ("Int64", "boolean"):
                data[name] = pd.array(values, dtype=dtypes[name])
                data[name][codes < 0] = pd.NA
            else:
                data[name] = values.astype(dtypes[name])
    data[ROW] = rows
    return pd.DataFrame(data)


# ---------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None


def quality_report(result: TableResult, raw: pd.DataFrame) -> dict[str, Any]:
    """A JSON-serialisable data-quality summary of one table (counts and shares only)."""
    clean, table = result.clean, result.table
    columns = list(sf.TABLE_SCHEMAS[table])
    counts = result.counts_by_reason
    report: dict[str, Any] = {
        "table": table,
        "received": result.received,
        "ingested": len(clean),
        "quarantined": len(result.quarantine),
        "invalid_rate": _share(len(result.quarantine), result.received),
        "counts_by_reason": counts,
        "quarantined_by_column": {
            str(k): int(c) for k, c in result.quarantine["column"].value_counts().items()
        },
        "duplicates": counts.get("duplicate_row", 0),
        "completeness": {c: _share(int(clean[c].notna().sum()), len(clean)) for c in columns},
        "source_completeness": {
            c: _share(int(raw[c].notna().sum()), len(raw)) for c in columns if c in raw
        },
        "date_range": None,
    }
    main = sf.MAIN_DATE[table]
    if main is not None and clean[main].notna().any():
        report["date_range"] = {
            "column": main,
            "min": clean[main].min().date().isoformat(),
            "max": clean[main].max().date().isoformat(),
        }
    if "ethnicity" in clean:
        stated = clean["ethnicity"].notna() & (clean["ethnicity"].str.strip() != "")
        stated &= clean["ethnicity"].str.strip().str.lower() != sf.NOT_STATED.lower()
        report["ethnicity_recorded"] = _share(int(stated.sum()), len(clean))
    return report


def reconcile(manifest: Mapping[str, Any], results: Mapping[str, TableResult]) -> list[str]:
    """Discrepancies between the manifest's row counts per file and the rows received
    (empty when they agree), e.g. ``"gp_events.csv: the manifest says 10 rows, 9 were
    received"``."""
    files = manifest.get("files")
    if not isinstance(files, Mapping):
        return ["the manifest has no list of files"]
    problems = []
    for table, result in results.items():
        entry = files.get(f"{table}.csv")
        rows = entry.get("rows") if isinstance(entry, Mapping) else None
        if entry is None:
            problems.append(f"{table}.csv was received but is not in the manifest")
        elif isinstance(rows, bool) or not isinstance(rows, int):
            problems.append(f"{table}.csv: the manifest gives no row count")
        elif rows != result.received:
            problems.append(
                f"{table}.csv: the manifest says {rows:,} rows, {result.received:,} were received"
            )
    for name in files:
        table = str(name).removesuffix(".csv")
        if table not in sf.TABLES or not str(name).endswith(".csv"):
            problems.append(f"the manifest lists {name}, which is not a source-format table")
        elif table not in results:
            problems.append(f"{name} is in the manifest but was not received")
    return problems
