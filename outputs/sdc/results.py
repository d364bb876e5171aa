"""What a check says: per-rule, per-cell findings and the file's verdict."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Final

# Bumped whenever a rule's behaviour changes, so a stored verdict says which checker
# produced it (reference: "every check result records the policy and checker version").
CHECKER_VERSION: Final = "1.0.0"


class Status(enum.IntEnum):
    """Ordered so that ``max`` gives the worst."""

    PASS = 0
    REVIEW = 1
    FAIL = 2

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Finding:
    """One rule's result for one cell (or for the whole file when ``row`` and ``column``
    are None). ``cell``: the cell's dimension values, so a finding about a cell the table
    does not list (an implicit zero) can still be named. ``evidence``: the values the rule
    used, for the checker's page; aggregate numbers only, never person ids."""

    rule: str
    status: Status
    message: str
    row: int | None = None
    column: str | None = None
    cell: Mapping[str, Any] = field(default_factory=dict)
    evidence: Mapping[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = str(self.status)
        data["cell"] = dict(self.cell)
        data["evidence"] = dict(self.evidence)
        return data


@dataclass(frozen=True)
class Mitigation:
    """What the policy did to make the table safe, and the rules re-run on the result.
    ``suppressed``: (row, column) pairs blanked, primary first; ``rounded``: the base."""

    table: Any  # pandas.DataFrame: the table as it would be published
    primary: tuple[tuple[int, str], ...]
    secondary: tuple[tuple[int, str], ...]
    rounding_base: int | None
    findings: tuple[Finding, ...]

    @property
    def status(self) -> Status:
        return worst(self.findings)


@dataclass(frozen=True)
class Verdict:
    """The automated check of one file. ``status`` is the worst finding before mitigation;
    ``outcome`` is what the checkers are told: the status, unless mitigation made every
    rule pass, in which case ``review`` (reference principle 4)."""

    file: str
    kind: str
    policy: str
    policy_version: int
    findings: tuple[Finding, ...]
    mitigation: Mitigation | None = None
    notes: tuple[str, ...] = ()
    checker_version: str = CHECKER_VERSION

    @property
    def status(self) -> Status:
        return worst(self.findings)

    @property
    def outcome(self) -> Status:
        if self.status is Status.PASS:
            return Status.PASS
        if self.mitigation is not None and self.mitigation.status is Status.PASS:
            return Status.REVIEW
        return self.status

    def rules(self) -> dict[str, Status]:
        """The worst status per rule that produced a finding."""
        out: dict[str, Status] = {}
        for finding in self.findings:
            out[finding.rule] = max(out.get(finding.rule, Status.PASS), finding.status)
        return out

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "file": self.file,
            "kind": self.kind,
            "status": str(self.status),
            "outcome": str(self.outcome),
            "policy": self.policy,
            "policy_version": self.policy_version,
            "checker_version": self.checker_version,
            "rules": {rule: str(status) for rule, status in sorted(self.rules().items())},
            "findings": [f.as_json() for f in self.findings],
            "notes": list(self.notes),
        }
        if self.mitigation is not None:
            m = self.mitigation
            data["mitigation"] = {
                "status": str(m.status),
                "primary": [list(c) for c in m.primary],
                "secondary": [list(c) for c in m.secondary],
                "rounding_base": m.rounding_base,
                "findings": [f.as_json() for f in m.findings],
            }
        return data


def worst(findings: Iterable[Finding]) -> Status:
    return max((f.status for f in findings), default=Status.PASS)
