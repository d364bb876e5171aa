"""Disclosure policy: versioned data owned by the environment, never by researchers.

The presets are those of reference/disclosure-control.md. ``acro-default`` is the parity
setting (ACRO 1.0.2's defaults); a project may be given a stricter policy at approval,
recorded as a preset name plus overrides, and every verdict records the policy's name and
version.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Final

# The smallest value of each whole-number setting (``redaction`` may also be None).
_LEAST: Final = {"threshold": 1, "dof": 0, "nk_n": 1, "rounding_base": 1, "redaction": 0,
                 "safe_extreme": 1, "max_csv_rows": 1}  # fmt: skip
# (setting, low, high, low included, high included)
_FRACTIONS: Final = (
    ("nk_k", 0, 1, False, True), ("p_ratio", 0, 1, True, False),
    ("saturation", 0, 1, False, True),
)  # fmt: skip


@dataclass(frozen=True)
class Policy:
    """Thresholds for every rule. Counts are of distinct persons.

    ``threshold``: smallest publishable cell (T1, S1, P1, H1, K1, M3, X1 range).
    ``dof``: smallest residual degrees of freedom (M1, S1).
    ``nk_n``/``nk_k``: dominance, the top n persons' share of a magnitude cell (D1).
    ``p_ratio``: the p% rule's smallest (total - x1 - x2)/x1 (D2).
    ``zeros_disclosive``: a zero in a frequency table fails (T2).
    ``rounding_base``: mitigation rounds counts to this base (R1 checks it).
    ``redaction``: counts at or below this are suppressed before rounding (None: below
    ``threshold``).
    ``saturation``: the largest parameters / observations of a model (M2).
    ``safe_extreme``: persons averaged for a safe minimum or maximum (E1).
    ``max_csv_rows``: a CSV longer than this looks like microdata (F1).
    ``check_missing``: negative or missing contributions make a magnitude ``review`` (D3).
    """

    name: str = "acro-default"
    version: int = 1
    threshold: int = 10
    dof: int = 10
    nk_n: int = 2
    nk_k: float = 0.90
    p_ratio: float = 0.10
    zeros_disclosive: bool = True
    rounding_base: int = 5
    redaction: int | None = None
    saturation: float = 0.33
    safe_extreme: int = 10
    max_csv_rows: int = 5000
    check_missing: bool = True
    mitigate: str = "suppress"  # "suppress" | "round" (redact then round) | "none"

    def __post_init__(self) -> None:
        # Each message names the setting: the rules JSON is typed by an administrator.
        for name, least in _LEAST.items():
            value = getattr(self, name)
            if name == "redaction" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{name} must be a whole number of at least {least}: {value!r}")
        for name, low, high, low_in, high_in in _FRACTIONS:
            value = getattr(self, name)
            fits = (
                isinstance(value, int | float) and not isinstance(value, bool)
                and (low <= value if low_in else low < value)
                and (value <= high if high_in else value < high)
            )  # fmt: skip
            if not fits:
                raise ValueError(
                    f"{name} must be in {'[' if low_in else '('}{low}, {high}"
                    f"{']' if high_in else ')'}: {value!r}"
                )
        for name in ("zeros_disclosive", "check_missing"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false: {getattr(self, name)!r}")
        if self.mitigate not in {"suppress", "round", "none"}:
            raise ValueError(f"mitigate must be suppress, round or none: {self.mitigate!r}")

    @property
    def redaction_level(self) -> int:
        """Counts at or below this are suppressed."""
        return self.threshold - 1 if self.redaction is None else self.redaction

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


PRESETS: Final[dict[str, Policy]] = {
    policy.name: policy
    for policy in (
        Policy(),
        # OpenSAFELY: redact counts of 7 or fewer, then round to the nearest 5.
        Policy(name="opensafely-7-5", threshold=8, redaction=7, mitigate="round"),
        Policy(name="ons-10-5", threshold=10, rounding_base=5, mitigate="round"),
        # DataSHIELD's nfilter.tab (3) and nfilter.glm (0.33).
        Policy(name="datashield-3", threshold=3, dof=3, saturation=0.33),
    )
}
_FIELDS: Final = {f.name for f in fields(Policy)} - {"name", "version"}


def policy_from_json(data: str | dict[str, Any] | None) -> Policy:
    """A preset (``{"preset": "ons-10-5"}``, default ``acro-default``) with overrides
    (``{"threshold": 12}``). An override makes a new policy named ``<preset>+custom``
    whose version is the preset's: unknown keys are an error, never ignored."""
    spec = json.loads(data) if isinstance(data, str) else dict(data or {})
    if not isinstance(spec, dict):
        raise ValueError("rules must be a JSON object")
    preset = spec.pop("preset", "acro-default")
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; presets: {', '.join(sorted(PRESETS))}")
    unknown = sorted(set(spec) - _FIELDS)
    if unknown:
        raise ValueError(f"unknown policy settings: {', '.join(unknown)}")
    base = PRESETS[preset]
    return replace(base, name=f"{preset}+custom", **spec) if spec else base
