"""Run the automated disclosure checks on an output file and print the verdict as JSON.

    python manage.py check_output results/by_sex.csv --rules '{"preset": "ons-10-5"}'

The evidence is found beside the file as the helper library writes it
(``<name>.evidence.json`` for a table, ``<name>.chart.json`` for a chart, whose data table
is checked first). A file without evidence gets what can be checked (its type and shape)
and ``review`` for the rest. Exit status: 0 pass, 1 review, 2 fail.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from outputs.sdc import Status, policy_from_json
from outputs.sdc.check import check_output
from outputs.sdc.policy import Policy
from outputs.sdc.results import Verdict

MAX_BYTES = 512 * 1024 * 1024


class Command(BaseCommand):
    help = "Check an output file against the disclosure rules; print the verdict as JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="The output file (CSV, PNG, text ...).")
        parser.add_argument(
            "--rules",
            default="{}",
            help='The policy: a JSON object or a path to one, e.g. {"preset": "ons-10-5", '
            '"threshold": 12}. Default: the acro-default preset.',
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            policy = policy_from_json(_read_rules(options["rules"]))
        except ValueError as error:
            raise CommandError(f"--rules: {error}") from error
        verdict = check_path(Path(options["file"]), policy)
        self.stdout.write(json.dumps(verdict.as_json(), indent=1))
        status = verdict.outcome
        if status is not Status.PASS:
            sys.exit(1 if status is Status.REVIEW else 2)


def check_path(path: Path, policy: Policy) -> Verdict:
    """Check ``path`` with the evidence the helper library writes beside it."""
    data = _read(path)
    suffix = path.suffix.lower()
    related: dict[str, Verdict] = {}
    sidecar = path.with_name(path.name[: -len(suffix)] + ".evidence.json") if suffix else None
    if suffix == ".png":
        sidecar = path.with_suffix(".chart.json")
        try:
            table = json.loads(sidecar.read_bytes()).get("table") if sidecar.is_file() else None
        except ValueError:
            table = None
        source = path.with_name(f"{table}.csv") if isinstance(table, str) else None
        if source is not None and source.is_file() and source.parent == path.parent:
            related[source.name] = check_path(source, policy)
    evidence = _read(sidecar) if sidecar is not None and sidecar.is_file() else None
    return check_output(path.name, data, policy=policy, evidence=evidence, related=related)


def _read(path: Path) -> bytes:
    if not path.is_file():
        raise CommandError(f"{path}: no such file")
    if path.stat().st_size > MAX_BYTES:
        raise CommandError(f"{path}: larger than {MAX_BYTES // 2**20} MiB; not an output")
    return path.read_bytes()


def _read_rules(rules: str) -> str:
    candidate = Path(rules)
    if not rules.lstrip().startswith("{") and candidate.is_file():
        return candidate.read_text()
    return rules
