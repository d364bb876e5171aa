"""Recompute the audit hash chain and checkpoints; exit 1 naming the first bad event."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sde.audit.selectors import verify_audit_log
from sde.audit.services import get_system_user, record_verification


class Command(BaseCommand):
    help = "Verify the audit log's hash chain and signed checkpoints."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--no-record",
            action="store_true",
            help="Do not append the verification result to the audit log.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        result = verify_audit_log()
        elapsed = time.perf_counter() - started
        if not options["no_record"]:
            record_verification(result=result, by=get_system_user())
        if not result.ok:
            raise CommandError(
                f"audit log verification FAILED: first bad sequence number "
                f"{result.first_bad_sequence}: {result.reason} "
                f"({result.events_checked} events verified before it)"
            )
        self.stdout.write(
            f"audit log OK: {result.events_checked} events, {result.checkpoints_checked} "
            f"signed checkpoints verified in {elapsed:.2f}s"
        )
