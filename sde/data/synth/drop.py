"""Generating a drop: every table from one seed, each on its own random stream, with
faults injected, as typed DataFrames; and dummy data for a project's approved fields."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date
from typing import Final

import numpy as np
import pandas as pd
import pyarrow as pa

from sde.data.source_format import NOT_STATED, TABLES
from sde.data.synth.arrays import _EPOCH, _NA, _STR, _rng
from sde.data.synth.config import FaultRates, SynthConfig
from sde.data.synth.episodes import _community, _mental_health, _social_care
from sde.data.synth.faults import FAULT_KINDS, _inject_faults, _unlinkable
from sde.data.synth.hospital import _hospital, _outpatients
from sde.data.synth.nhs import _nhs_chars, _nhs_column
from sde.data.synth.population import _population, _window
from sde.data.synth.reference import (
    EFI_DEFICITS,
    ETHNIC_GROUPS,
    FRAILTY_CATEGORIES,
    TABLE_SCHEMAS,
)
from sde.data.synth.tables import _Frame, _gp_events, _gp_medications, _patients
from sde.exceptions import ValidationError


def _dates(days: np.ndarray) -> np.ndarray:
    missing = days == _NA
    out = np.where(missing, 0, days).astype("datetime64[D]").astype("datetime64[s]")
    out[missing] = np.datetime64("NaT")
    return out


def _to_dataframe(frame: _Frame, person_chars: np.ndarray) -> pd.DataFrame:
    data: dict[str, object] = {}
    fault = frame.nhs_fault if frame.nhs_fault is not None else np.zeros(frame.rows, np.int64)
    for column, dtype in TABLE_SCHEMAS[frame.table].items():
        if column == "nhs_number":
            data[column] = _nhs_column(person_chars, frame.person, fault)
        elif column in frame.labels:
            labels = pa.array(frame.labels[column], type=pa.string())
            codes = pa.array(frame.cols[column].astype(np.int32))
            data[column] = pd.Series(pd.array(labels.take(codes), dtype=_STR))
        elif dtype == "datetime64[s]":
            data[column] = _dates(frame.cols[column])
        else:
            data[column] = frame.cols[column].astype(dtype)
    return pd.DataFrame(data)


@dataclass(frozen=True, eq=False)
class SyntheticDrop(Mapping[str, pd.DataFrame]):
    """The tables of one drop (a read-only mapping name -> DataFrame) and what made them.

    ``truth`` has one row per person with the true features and model probabilities
    (``p_emergency_admission``, ``ae_rate``, ``p_death``); it is not part of the drop.
    ``faults`` counts the rows given each fault, by table.
    """

    tables: Mapping[str, pd.DataFrame]
    truth: pd.DataFrame
    seed: int
    patients: int
    config: SynthConfig
    faults: Mapping[str, Mapping[str, int]]
    start: date
    end: date

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.tables[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.tables)

    def __len__(self) -> int:
        return len(self.tables)


_BUILDERS: Final = {
    "gp_events": _gp_events,
    "gp_medications": _gp_medications,
    "op_appointments": _outpatients,
    "community_contacts": _community,
    "mh_contacts": _mental_health,
    "social_care": _social_care,
}


def _check_request(patients: int, seed: int, cfg: SynthConfig, tables: Collection[str]) -> None:
    errors: dict[str, list[str]] = {}
    if patients < 1:
        errors["patients"] = ["must be at least 1"]
    if seed < 0:
        errors["seed"] = ["must be zero or more"]
    if unknown := sorted(set(tables) - set(TABLES)):
        errors["tables"] = [f"unknown table {name!r}" for name in unknown]
    if cfg.years < 1 or (cfg.start.month, cfg.start.day) == (2, 29):
        errors["config.start"] = ["need at least one year, not starting on 29 February"]
    if len(cfg.imd_deciles) != 10 or min(cfg.imd_deciles) < 0 or sum(cfg.imd_deciles) <= 0:
        errors["config.imd_deciles"] = ["ten non-negative weights, not all zero"]
    bad = [label for label in cfg.ethnicity_mix if label.split(":")[0] not in ETHNIC_GROUPS]
    if bad or min(cfg.ethnicity_mix.values(), default=-1) < 0 or not cfg.ethnicity_mix:
        errors["config.ethnicity_mix"] = ['"Group: category" labels with non-negative weights']
    rates = asdict(cfg.faults).values()
    if min(rates) < 0 or sum(rates) > 0.5:
        errors["config.faults"] = ["rates are shares of rows: non-negative, 0.5 in all"]
    if errors:
        raise ValidationError("invalid synthetic data request", errors)


def generate(
    *,
    patients: int,
    seed: int,
    config: SynthConfig | None = None,
    tables: Collection[str] | None = None,
) -> SyntheticDrop:
    """Generate one drop of ``patients`` people, byte-for-byte reproducible from ``seed``.

    ``tables`` limits which tables are built (each has its own random stream, so a table
    is the same whichever others are asked for). Raises ``ValidationError`` on bad input.
    """
    cfg = config if config is not None else SynthConfig()
    wanted = TABLES if tables is None else tuple(name for name in TABLES if name in tables)
    _check_request(patients, seed, cfg, TABLES if tables is None else tables)
    w = _window(cfg)
    pop = _population(patients, seed, cfg, w)
    person_chars = _nhs_chars(pop.nhs)
    pending: dict[str, _Frame] = {"patients": _patients(pop)}
    faults: dict[str, dict[str, int]] = {}
    unlinked = np.zeros(pop.n, dtype=bool)
    out: dict[str, pd.DataFrame] = {}
    for name in TABLES[:-1]:  # one table at a time, so only one is held twice in memory
        if name in ("apc_spells", "ae_attendances") and name in wanted and name not in pending:
            pending["apc_spells"], pending["ae_attendances"] = _hospital(
                _rng(seed, "hospital"), pop, w
            )
        elif name in _BUILDERS and name in wanted:
            pending[name] = _BUILDERS[name](_rng(seed, name), pop, w)
        if name not in pending:
            continue
        frame, faults[name] = _inject_faults(
            _rng(seed, f"faults:{name}"), pending.pop(name), cfg.faults, w, pop.death, unlinked
        )
        if name == "patients":  # no after-death faults for people ingestion cannot link
            unlinked[_unlinkable(frame)] = True
        if name in wanted:
            out[name] = _to_dataframe(frame, person_chars)
        del frame
    if "ndop" in wanted:
        opted = np.sort(pop.nhs[pop.ndop])
        out["ndop"] = pd.DataFrame(
            {
                "nhs_number": _nhs_column(
                    _nhs_chars(opted), np.arange(opted.size), np.zeros(opted.size, np.int64)
                )
            }
        )
        faults["ndop"] = dict.fromkeys(FAULT_KINDS, 0)
    truth = pop.truth
    truth.insert(
        0, "nhs_number", _nhs_column(person_chars, np.arange(pop.n), np.zeros(pop.n, np.int64))
    )
    truth.insert(
        4,
        "ethnicity_group",
        pd.Series(np.array([*ETHNIC_GROUPS, NOT_STATED], dtype=object)[pop.group], dtype=_STR),
    )
    truth["frailty_index"] = truth["frailty_deficits"] / EFI_DEFICITS
    truth["frailty_category"] = pd.Series(
        np.array(FRAILTY_CATEGORIES, dtype=object)[pop.frailty], dtype=_STR
    )
    truth["date_of_death"] = _dates(pop.death)
    truth["registered_at_end"] = pop.reg_end == _NA
    truth["type1_optout"] = pop.type1
    truth["ndop"] = pop.ndop
    return SyntheticDrop(
        out,
        truth,
        seed,
        patients,
        cfg,
        {name: faults[name] for name in out},
        cfg.start,
        date.fromordinal(_EPOCH.toordinal() + w.end),
    )


def generate_dummy(
    *,
    fields: Mapping[str, Sequence[str]],
    patients: int,
    seed: int,
    config: SynthConfig | None = None,
) -> dict[str, pd.DataFrame]:
    """Dummy data for a project's approved fields only: the requested tables and columns,
    with the full generator's column names and dtypes, and no faults unless ``config``
    asks for them. Raises ``ValidationError`` naming unknown tables or columns."""
    errors: dict[str, list[str]] = {}
    for table, columns in fields.items():
        if table not in TABLE_SCHEMAS:
            errors[table] = ["unknown table"]
        elif unknown := [c for c in columns if c not in TABLE_SCHEMAS[table]]:
            errors[table] = [f"unknown column {column!r}" for column in unknown]
    if errors:
        raise ValidationError("dummy data asks for fields the dataset does not have", errors)
    cfg = config if config is not None else SynthConfig(faults=FaultRates.none())
    drop = generate(patients=patients, seed=seed, config=cfg, tables=list(fields))
    return {table: drop[table].loc[:, list(columns)].copy() for table, columns in fields.items()}
