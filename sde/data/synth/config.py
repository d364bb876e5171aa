"""What varies between ICSs and drops: the generator's configuration and fault rates."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

from sde.data.synth.reference import ETHNICITY_ENGLAND, PLACES


@dataclass(frozen=True)
class FaultRates:
    """Share of each table's rows given each fault (rounded to whole rows, disjoint rows)."""

    invalid_nhs_number: float = 0.001
    impossible_date: float = 0.001
    unknown_code: float = 0.001
    duplicate_row: float = 0.001

    @classmethod
    def none(cls) -> FaultRates:
        return cls(0.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True, eq=False)
class SynthConfig:
    """What varies between ICSs and drops. Defaults: an England-like, more deprived ICS."""

    start: date = date(2023, 4, 1)
    years: int = 2
    ethnicity_mix: Mapping[str, float] = field(default_factory=lambda: dict(ETHNICITY_ENGLAND))
    ethnicity_not_stated: float = 0.05
    imd_deciles: tuple[float, ...] = (0.14, 0.12, 0.11, 0.10, 0.10, 0.09, 0.09, 0.09, 0.08, 0.08)
    people_per_lsoa: int = 1_600
    people_per_practice: int = 9_000
    practices_per_pcn: int = 5
    people_per_place: int = 250_000
    places: tuple[str, ...] = PLACES
    joiners_per_year: float = 0.04
    leavers_per_year: float = 0.04
    type1_optout: float = 0.03
    ndop_optout: float = 0.05
    ndop_given_type1: float = 0.3
    faults: FaultRates = field(default_factory=FaultRates)
