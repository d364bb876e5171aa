"""Statistical disclosure control: the automated checks every output passes before two
output checkers see it (reference/disclosure-control.md).

Pure pandas/numpy/scipy: no ORM, no settings, no requests. ``check_file`` takes a file
(and its evidence sidecar, if any), a ``Policy`` and optionally the project's differencing
ledger, and returns a ``Verdict``: one ``Finding`` per rule per cell that did not pass,
the output's status (the worst), and, where the policy mitigates, the mitigated table
with the rules re-run on it.
"""

from outputs.sdc.policy import PRESETS, Policy, policy_from_json
from outputs.sdc.results import CHECKER_VERSION, Finding, Status, Verdict

__all__ = [
    "CHECKER_VERSION", "PRESETS", "Finding", "Policy", "Status", "Verdict", "policy_from_json",
]  # fmt: skip
