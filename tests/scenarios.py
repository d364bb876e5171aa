"""Scenario builders: objects in later states, made by calling the real services.

Governed rows (roles, accreditation, organisations) are never made with a factory; they
go through the same service a person would use, so tests exercise the real rules.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from datetime import date, timedelta
from typing import TYPE_CHECKING

from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from sde.audit.services import get_system_user
from sde.identity import services
from sde.identity.models import Accreditation, Organisation, User
from sde.identity.roles import Role

if TYPE_CHECKING:
    from outputs.models import ReleaseRequest
    from sde.analysis.models import Job, JobOutput

_counter = itertools.count(1)


def administrator() -> User:
    """The installation's bootstrap Administrator (created once per test database)."""
    existing = User.objects.filter(username="bootstrap-admin").first()
    if existing is not None:
        return existing
    return services.bootstrap_administrator(
        username="bootstrap-admin",
        email="admin@example.invalid",
        first_name="Boot",
        last_name="Strap",
        password="correct horse battery staple",
        by=get_system_user(),
    )


def person(
    *roles: Role,
    username: str | None = None,
    password: str | None = None,
    mfa: bool = True,
    accredited: bool = False,
) -> User:
    """A person holding ``roles``, granted by the bootstrap Administrator.

    Without ``password`` the account has an unusable password (hashing with argon2 is
    deliberately slow). With ``mfa`` a confirmed TOTP device is enrolled.
    """
    n = next(_counter)
    user = User(
        username=username or f"person{n}",
        email=f"person{n}@example.invalid",
        first_name="Test",
        last_name=f"Person {n}",
    )
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.save()
    admin = administrator()
    for role in roles:
        if role == Role.ADMINISTRATOR and user.pk == admin.pk:
            continue
        services.grant_role(user=user, role=role, by=admin)
    if mfa:
        TOTPDevice.objects.create(user=user, name="test", confirmed=True)
    if accredited:
        accredit(user)
    return user


def accredit(
    user: User,
    *,
    kind: Accreditation.Kind = Accreditation.Kind.SAFE_RESEARCHER,
    issued_on: date | None = None,
    expires_on: date | None = None,
) -> Accreditation:
    today = date.today()
    return services.record_accreditation(
        user=user,
        kind=kind,
        issued_on=issued_on or today - timedelta(days=30),
        expires_on=expires_on or today + timedelta(days=335),
        by=administrator(),
    )


def organisation(
    kind: Organisation.Kind = Organisation.Kind.UNIVERSITY,
    ods_code: str | None = None,
    name: str | None = None,
) -> Organisation:
    n = next(_counter)
    if kind == Organisation.Kind.GP_PRACTICE and ods_code is None:
        ods_code = f"Y{n:05d}"
    return services.create_organisation(
        name=name or f"Organisation {n}", kind=kind, ods_code=ods_code, by=administrator()
    )


def some_events(count: int) -> None:
    """Append ``count`` audit events (one transaction each), through record_event."""
    from sde.audit.events import EventType
    from sde.audit.services import record_event

    actor = get_system_user()
    for i in range(count):
        with transaction.atomic():
            record_event(event_type=EventType.AUDIT_LOG_VIEWED, actor=actor, data={"i": i})


def release_draft(
    job: Job,
    by: User,
    outputs: Iterable[JobOutput],
    *,
    title: str = "Counts by sex",
    context: Callable[[str], str] = lambda name: f"{name}: by sex",
    controls: str = "none",
    justification: str = "The small cell is suppressed before publication.",
) -> ReleaseRequest:
    """A release request of ``job``'s ``outputs`` (JobOutput rows), with an exception
    request for every rule a file did not pass: a draft ready to submit."""
    from outputs import selectors as release_selectors
    from outputs import services as releases
    from outputs.models import ExceptionRequest
    from outputs.models import ReleaseRequest as Request

    request = releases.create_request(project=job.project, by=by, title=title)
    for output in outputs:
        file = releases.add_file(request=request, job=job, output=output, by=by,
                                 context=context(output.name), controls=controls)  # fmt: skip
        for rule in release_selectors.non_pass_rules(file):
            releases.request_exception(file=file, rule=rule, by=by,
                                       reason=ExceptionRequest.Reason.OTHER,
                                       justification=justification)  # fmt: skip
    return Request.objects.get(pk=request.pk)
