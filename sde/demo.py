"""The demo: organisations and one account per role, for ``make run``.

Demo accounts share one random password, generated per installation into a 0600 file
under ``var/`` (never in the repository). In demo mode (which settings refuse unless
DEBUG is on) the sign-in page lists them and the MFA page shows a demo account's
current code; the MFA step itself is the real one.
"""

from __future__ import annotations

import json
import os
import secrets
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from sde.audit.services import get_system_user
from sde.identity import services
from sde.identity.models import Accreditation, Organisation, User
from sde.identity.roles import Role

DEMO_ORGANISATIONS: list[dict[str, Any]] = [
    {
        "key": "icb",
        "name": "Demo Integrated Care Board",
        "kind": Organisation.Kind.ICB,
        "ods_code": "QZZ",
    },
    {"key": "place_n", "name": "North Place", "kind": Organisation.Kind.PLACE, "parent": "icb"},
    {"key": "place_s", "name": "South Place", "kind": Organisation.Kind.PLACE, "parent": "icb"},
    {
        "key": "pcn",
        "name": "Riverside PCN",
        "kind": Organisation.Kind.PCN,
        "parent": "place_n",
        "ods_code": "U99001",
    },
    {
        "key": "gp1",
        "name": "Riverside Medical Centre",
        "kind": Organisation.Kind.GP_PRACTICE,
        "ods_code": "Y99001",
        "parent": "pcn",
    },
    {
        "key": "gp2",
        "name": "Hillview Surgery",
        "kind": Organisation.Kind.GP_PRACTICE,
        "ods_code": "Y99002",
        "parent": "pcn",
    },
    {"key": "la", "name": "Demo County Council", "kind": Organisation.Kind.LOCAL_AUTHORITY},
    {"key": "uni", "name": "University of Demoshire", "kind": Organisation.Kind.UNIVERSITY},
]

# username, first, last, roles, organisation key, accreditations
DEMO_PEOPLE: list[tuple[str, str, str, list[Role], str, list[Accreditation.Kind]]] = [
    (
        "researcher",
        "Rhea",
        "Searcher",
        [Role.RESEARCHER],
        "uni",
        [Accreditation.Kind.SAFE_RESEARCHER, Accreditation.Kind.DATA_SECURITY],
    ),
    (
        "analyst",
        "Ana",
        "Lyst",
        [Role.RESEARCHER],
        "place_n",  # a Place's analyst: the ICB's IG officers can review her applications
        [Accreditation.Kind.SAFE_RESEARCHER, Accreditation.Kind.DATA_SECURITY],
    ),
    ("ig.officer", "Iggy", "Officer", [Role.IG_OFFICER], "icb", [Accreditation.Kind.DATA_SECURITY]),
    (
        "ig.officer2",
        "Ingrid",
        "Govern",
        [Role.IG_OFFICER],
        "icb",
        [Accreditation.Kind.DATA_SECURITY],
    ),
    (
        "caldicott",
        "Carl",
        "Guardian",
        [Role.CALDICOTT_GUARDIAN],
        "icb",
        [Accreditation.Kind.DATA_SECURITY],
    ),
    (
        "checker",
        "Chet",
        "Checker",
        [Role.OUTPUT_CHECKER],
        "icb",
        [Accreditation.Kind.OUTPUT_CHECKER, Accreditation.Kind.DATA_SECURITY],
    ),
    (
        "checker2",
        "Cora",
        "Checker",
        [Role.OUTPUT_CHECKER],
        "la",
        [Accreditation.Kind.OUTPUT_CHECKER, Accreditation.Kind.DATA_SECURITY],
    ),
    (
        "custodian",
        "Cus",
        "Todian",
        [Role.DATA_CUSTODIAN],
        "icb",
        [Accreditation.Kind.DATA_SECURITY],
    ),
    (
        "clinician",
        "Dr Clare",
        "Nician",
        [Role.CLINICIAN],
        "gp1",
        [Accreditation.Kind.DATA_SECURITY],
    ),
]
ADMIN_USERNAME = "admin"


def _credentials_path() -> Path:
    return Path(settings.VAR_DIR) / "demo-logins.json"


def _demo_password() -> str:
    path = _credentials_path()
    if path.exists():
        return str(json.loads(path.read_text())["password"])
    password = f"demo-{secrets.token_urlsafe(12)}"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"password": password}, handle)
    return password


def demo_credentials() -> list[dict[str, str]]:
    """Username, roles and password of each demo account (demo mode only)."""
    path = _credentials_path()
    if not path.exists():
        return []
    password = json.loads(path.read_text())["password"]
    accounts = []
    for user in User.objects.filter(is_demo=True).order_by("pk"):
        from sde.identity.selectors import current_roles

        roles = ", ".join(sorted(Role(r).label for r in current_roles(user)))
        accounts.append({"username": user.username, "roles": roles, "password": password})
    return accounts


def current_totp(device: TOTPDevice) -> str:
    code = totp(
        device.bin_key, step=device.step, t0=device.t0, digits=device.digits, drift=device.drift
    )
    return str(code).zfill(device.digits)


def _enrol_demo_device(user: User) -> None:
    if not TOTPDevice.objects.filter(user=user, confirmed=True).exists():
        TOTPDevice.objects.create(user=user, name="Demo authenticator", confirmed=True)


def seed_demo() -> list[dict[str, str]]:
    """Create the demo organisations and people (idempotent). Returns the logins."""
    password = _demo_password()
    system = get_system_user()
    admin = User.objects.filter(username=ADMIN_USERNAME).first()
    if admin is None:
        admin = services.bootstrap_administrator(
            username=ADMIN_USERNAME,
            email="admin@demo.invalid",
            first_name="Ada",
            last_name="Ministrator",
            password=password,
            by=system,
        )
        User.objects.filter(pk=admin.pk).update(is_demo=True)
    _enrol_demo_device(admin)

    organisations: dict[str, Organisation] = {}
    for spec in DEMO_ORGANISATIONS:
        existing = Organisation.objects.filter(name=spec["name"]).first()
        organisations[spec["key"]] = existing or services.create_organisation(
            name=spec["name"],
            kind=spec["kind"],
            ods_code=spec.get("ods_code"),
            parent=organisations.get(spec.get("parent", "")),
            by=admin,
        )

    today = date.today()
    for username, first, last, roles, org_key, accreditations in DEMO_PEOPLE:
        if User.objects.filter(username=username).exists():
            continue
        user = services.create_account(
            username=username,
            email=f"{username}@demo.invalid",
            first_name=first,
            last_name=last,
            password=password,
            by=admin,
        )
        User.objects.filter(pk=user.pk).update(is_demo=True)
        for role in roles:
            services.grant_role(user=user, role=role, by=admin, reason="demo")
        services.add_membership(user=user, organisation=organisations[org_key], by=admin)
        for kind in accreditations:
            services.record_accreditation(
                user=user,
                kind=kind,
                issued_on=today - timedelta(days=200),
                expires_on=today + timedelta(days=530),
                certificate_reference="DEMO",
                by=admin,
            )
        _enrol_demo_device(user)
    custodian = User.objects.get(username="custodian")
    from sde.data.catalogue import register_standard_datasets

    register_standard_datasets(by=custodian, dpia_reference="DEMO-DPIA-001")
    return demo_credentials()
