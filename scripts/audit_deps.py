"""Audit the installed Python packages for known vulnerabilities (pip-audit).

Fails (exit 1) when a package has a known vulnerability, naming it, its version, the
advisories and the versions that fix them. When the advisory database cannot be reached
(a machine with only a package mirror), nothing can be audited: that is reported, and the
run passes, so an offline CI is not blocked by what it cannot know.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

COMMAND = [sys.executable, "-m", "pip_audit", "--format", "json", "--progress-spinner", "off",
           "--vulnerability-service", "pypi"]  # fmt: skip


def summarise(report: dict[str, Any]) -> tuple[list[str], int]:
    """The lines to print and the exit status for pip-audit's JSON ``report``."""
    packages = report.get("dependencies")
    if packages is None:
        return ["audit-deps: pip-audit gave no report; nothing was audited (report only)"], 0
    skipped = [p for p in packages if p.get("skip_reason")]
    vulnerable = [p for p in packages if p.get("vulns")]
    audited = len(packages) - len(skipped)
    lines = []
    for package in vulnerable:
        for vuln in package["vulns"]:
            fixes = ", ".join(vuln.get("fix_versions") or []) or "no fixed version yet"
            lines.append(f"VULNERABLE {package['name']} {package['version']}: {vuln['id']} "
                         f"(fixed in {fixes})")  # fmt: skip
    lines.append(
        f"audit-deps: {len(packages)} packages installed, {audited} audited, "
        f"{len(skipped)} not audited, {len(vulnerable)} with known vulnerabilities"
    )
    if audited == 0 and packages:
        lines.append("audit-deps: the advisory database could not be reached, so no package "
                     "was audited (report only)")  # fmt: skip
    return lines, 1 if vulnerable else 0


def main() -> int:
    try:
        done = subprocess.run(COMMAND, capture_output=True, text=True, timeout=900, check=False)
    except subprocess.TimeoutExpired:
        print("audit-deps: pip-audit did not finish in 15 minutes; nothing was audited")
        return 0
    try:
        report = json.loads(done.stdout or "{}")
    except json.JSONDecodeError:
        report = {}
    lines, status = summarise(report)
    print("\n".join(lines))
    if "dependencies" not in report:
        print(done.stderr.strip()[-2000:])
    return status


if __name__ == "__main__":
    sys.exit(main())
