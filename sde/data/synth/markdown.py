"""The parameter tables of ``docs/synthetic-data.md``, rendered from the constants."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict

from sde.data.synth.config import FaultRates
from sde.data.synth.faults import DATE_FAULTS, UNKNOWN_CODES
from sde.data.synth.reference import CONDITIONS, DEFICITS
from sde.data.synth.risk import AE_ATTENDANCE_MODEL, DEATH_MODEL, EMERGENCY_ADMISSION_MODEL


def _row(cells: Sequence[object]) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    return [_row(header), _row(["---"] * len(header)), *(_row(row) for row in rows)]


def reference_tables_markdown() -> str:
    """The parameter tables of docs/synthetic-data.md, rendered from the constants (a test
    checks the document contains exactly this text, so the two cannot drift apart)."""

    def terms(mapping: Mapping[str, float]) -> str:
        return ", ".join(f"{name} {beta:+g}" for name, beta in mapping.items()) or ""

    lines = ["### Long-term conditions (prevalence models)", ""]
    lines += _table(
        ["condition", "SNOMED CT", "target", "of ages", "min age", "intercept", "age", "age²",
         "deprivation", "male", "latent", "smoker / ex", "BMI", "ethnicity", "also if"],
        [[c.name, c.snomed, f"{c.target:.1%}", f"{c.denominator_age}+", c.min_age, c.intercept,
          c.age, c.age2, c.deprivation, c.male, c.latent, f"{c.smoker:g} / {c.ex_smoker:g}",
          c.bmi, terms(c.ethnicity), terms(c.after) + (" (not with diabetes)" * bool(c.excludes))]
         for c in CONDITIONS],
    )  # fmt: skip
    lines += ["", "### Frailty deficits recorded by their own code", ""]
    lines += _table(["deficit", "SNOMED CT", "intercept"],
                    [[d.name, d.snomed, d.intercept] for d in DEFICITS])  # fmt: skip
    models = (EMERGENCY_ADMISSION_MODEL, AE_ATTENDANCE_MODEL, DEATH_MODEL)
    features = list(dict.fromkeys(name for m in models for name in m.coefficients))
    lines += ["", "### Known risk models (log-odds, or log-rate for A&E)", ""]
    lines += _table(
        ["feature", "emergency admission (logit)", "A&E attendances (log rate)", "death (logit)"],
        [["intercept", *(m.intercept for m in models)]]
        + [[name, *(m.coefficients.get(name, "") for m in models)] for name in features],
    )
    lines += ["", "### Faults (share of each table's rows, disjoint rows)", ""]
    rates = asdict(FaultRates())
    date_kinds = "; ".join(f"{t}: {k} ({c})" for t, (k, c) in DATE_FAULTS.items())
    unknown = "; ".join(
        f"{t}.{c} = {v}" for t, cols in UNKNOWN_CODES.items() for c, v in cols.items()
    )
    lines += _table(
        ["fault", "default rate", "where"],
        [["invalid_nhs_number", rates["invalid_nhs_number"],
          "every table but ndop: wrong check digit (60%), nine digits (20%), a letter O (20%)"],
         ["impossible_date", rates["impossible_date"], date_kinds],
         ["unknown_code", rates["unknown_code"], unknown],
         ["duplicate_row", rates["duplicate_row"], "all but ndop: an exact copy, next to it"]],
    )  # fmt: skip
    return "\n".join(lines) + "\n"
