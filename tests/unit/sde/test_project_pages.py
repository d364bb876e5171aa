"""The project pages: who sees the list and a project's page (404 for everyone else, on
every project URL from the resolver), what a member and an IG officer see there, each IG
action through its service (and refused to members with nothing changed), the services'
refusals in their words, the extract states, and no IG-only figure on a member's page.

Dates are relative to today: the pages read the real clock."""

from __future__ import annotations

import copy
import html
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.urls import URLResolver, get_resolver, reverse
from django.utils import timezone

from sde.audit.events import EventType
from sde.audit.services import get_system_user
from sde.data import register
from sde.data.extracts import current_extract
from sde.identity.models import Organisation, User
from sde.identity.roles import Role
from sde.projects import services
from sde.projects.models import Project, ProjectMembership
from tests import scenarios
from tests.conftest import private_settings
from tests.events import mark, types_since
from tests.shared_db import module_custodian, shared_rows
from tests.unit.sde.projects.builders import SCOPE, accredit
from tests.unit.sde.projects.conftest import drop_dir, ingested  # noqa: F401

pytestmark = pytest.mark.django_db

S = Project.Status
E = EventType
VALID_NHS_NUMBER = "9434765919"


def _today() -> date:
    return timezone.localdate()


@pytest.fixture(autouse=True)
def data_root(private_data_root: Path, custodian: User) -> Path:
    """A private data root, fast hashing and the catalogue (scopes are checked on it)."""
    return private_data_root


# Every test here has the catalogue (``data_root``): made once for the module.
custodian = module_custodian


def trained(user: User) -> User:
    today = _today()
    return accredit(
        user, issued_on=today - timedelta(days=365), expires_on=today + timedelta(days=365)
    )


@pytest.fixture
def ig() -> User:
    return scenarios.person(Role.IG_OFFICER)


@pytest.fixture
def member() -> User:
    return trained(scenarios.person(Role.RESEARCHER))


@pytest.fixture
def organisation() -> Organisation:
    return scenarios.organisation()


def _new_project(ig: User, member: User, organisation: Organisation, **changes: Any) -> Project:
    today = _today()
    fields: dict[str, Any] = {
        "title": "Hypertension in North Place",
        "lay_summary": "Who is treated for high blood pressure, and who is missed.",
        "organisation": organisation,
        "scope": {**copy.deepcopy(SCOPE), "cohort": {"age_min": 18}},
        "start_date": today - timedelta(days=30),
        "end_date": today + timedelta(days=180),
        "members": [services.MemberSpec(member, "principal_investigator")],
        "by": ig,
        "conditions": "Publish nothing below ward level.",
    }
    fields.update(changes)
    return services.create_project(**fields)


@pytest.fixture
def make_project(ig: User, member: User, organisation: Organisation) -> Callable[..., Project]:
    def make(**changes: Any) -> Project:
        return _new_project(ig, member, organisation, **changes)

    return make


@pytest.fixture
def project(make_project: Callable[..., Project]) -> Project:
    return make_project()


def _html(response: Any) -> str:
    return html.unescape(response.content.decode())


def _text(response: Any) -> str:
    """The page's words: tags removed, white space collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", _html(response)).split()).replace(" :", ":")


def _messages(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def _fresh(project: Project) -> Project:
    return Project.objects.get(pk=project.pk)


def _detail(project: Project) -> str:
    return reverse("project-detail", args=[project.pk])


# --- The project URLs, from the resolver --------------------------------------------------
def _routes(resolver: URLResolver, prefix: str = "") -> Iterator[tuple[str, str, str]]:
    for entry in resolver.url_patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from _routes(entry, route)
        else:
            yield entry.name or route, route, entry.callback.__module__


# Every URL about one project (a new one is covered the day it is added); the IG actions
# are this file's pages' (the workspace's are tested in tests/unit/sde/analysis).
ROUTES = [r for r in _routes(get_resolver()) if r[1].startswith("projects/<int:pk>/")]
PROJECT_ROUTES = {name: route for name, route, _ in ROUTES}
ACTION_ROUTES = {name: route for name, route, module in ROUTES
                 if module == "sde.views.projects" and name != "project-detail"}  # fmt: skip
# The other parameters of project URLs: the project hides them (404) whatever they are.
FILLERS = {"<int:job_id>": "1", "<int:output_id>": "1", "<int:script_id>": "1",
           "<slug:name>": "population_profile", "<int:release_id>": "1",
           "<int:file_id>": "1"}  # fmt: skip


def _fill(route: str, project: Project, user: User) -> str:
    path = route.replace("<int:pk>", str(project.pk)).replace("<int:user_id>", str(user.pk))
    for parameter, value in FILLERS.items():
        path = path.replace(parameter, value)
    assert "<" not in path, f"teach the test to fill {route}"
    return "/" + path


def test_the_resolver_finds_the_project_urls():
    assert set(PROJECT_ROUTES) == {
        "project-detail", "project-suspend", "project-resume", "project-revoke", "project-close",
        "project-member-add", "project-member-remove", "project-compliance-dates",
        "project-workspace", "run-analysis", "save-script", "run-script", "job-detail",
        "job-status", "job-cancel", "job-rerun", "job-log", "job-output",
        # the release requests (outputs/urls.py; tested in tests/unit/outputs/test_pages.py)
        "release-list", "release-create", "release-detail", "release-add-file",
        "release-remove-file", "release-exception", "release-download", "release-download-all",
        "release-submit", "release-withdraw", "release-revoke",
    }  # fmt: skip
    assert set(ACTION_ROUTES) == set(VALID_POSTS)


# --- Who sees what ------------------------------------------------------------------------
def _other_researcher() -> User:
    return trained(scenarios.person(Role.RESEARCHER))


OUTSIDERS: dict[str, Callable[[], User]] = {
    "other-researcher": _other_researcher,
    "custodian": lambda: scenarios.person(Role.DATA_CUSTODIAN),
    "output-checker": lambda: scenarios.person(Role.OUTPUT_CHECKER),
    "administrator": scenarios.administrator,
    "caldicott-guardian": lambda: scenarios.person(Role.CALDICOTT_GUARDIAN),
}


def test_a_member_sees_their_project_and_that_they_can_use_its_data(client_for, project, member):
    client = client_for(member)

    listing = client.get(reverse("projects"))
    page = client.get(_detail(project))

    assert listing.status_code == 200 and page.status_code == 200
    assert project.title in _html(listing)
    assert re.search(r"<strong>Yes</strong>", _html(listing))
    text = _text(page)
    assert "You can use this project's data." in text
    assert "Manage the project (IG)" not in text
    assert "Publish nothing below ward level." in text  # the conditions
    assert "Aged 18 or over" in text  # the cohort
    assert "person_id" in text and "sex" in text  # the approved fields
    assert "Principal investigator" in text and "(you)" in text


def test_an_ig_officer_sees_every_project_and_the_management_actions(client_for, project, ig):
    client = client_for(ig)

    listing = client.get(reverse("projects"))
    page = client.get(_detail(project))

    assert project.title in _html(listing)
    assert "Can you use its data now?" not in _html(listing)
    text, markup = _text(page), _html(page)
    assert page.status_code == 200
    assert "Manage the project (IG)" in text
    assert (
        "You oversee this project as an IG officer. IG officers never use a project's data." in text
    )
    assert "You can use this project's data" not in text
    assert "You cannot use this project's data" not in text
    for action in ("project-suspend", "project-revoke", "project-close", "project-member-add",
                   "project-compliance-dates", "project-member-remove"):  # fmt: skip
        assert f'action="{reverse(action, args=_action_args(action, project))}"' in markup
    assert reverse("project-resume", args=[project.pk]) not in markup  # active: nothing to resume


def _action_args(name: str, project: Project) -> list[int]:
    if name == "project-member-remove":
        return [project.pk, project.memberships.get().user_id]
    return [project.pk]


@pytest.mark.parametrize("outsider", OUTSIDERS.values(), ids=OUTSIDERS)
def test_anyone_else_signed_in_gets_an_empty_list_and_404_for_the_project(
    client_for, project, outsider
):
    client = client_for(outsider())

    listing = client.get(reverse("projects"))

    assert listing.status_code == 200
    assert project.title not in _html(listing)
    assert "You are not a member of any project." in _html(listing)
    assert client.get(_detail(project)).status_code == 404


def test_an_anonymous_visitor_is_sent_to_sign_in(client, project):
    for path in (reverse("projects"), _detail(project)):
        response = client.get(path)
        assert response.status_code == 302
        assert response.url.startswith(reverse("login"))


@dataclass(frozen=True)
class Unseen:
    project: int
    member: int
    outsiders: dict[str, int]  # OUTSIDERS' names -> pks


@pytest.fixture(scope="module")
def unseen(
    module_catalogue: int, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Unseen]:
    """For the 404 table (hundreds of requests): a project, its member and one person of
    each kind in OUTSIDERS, made once for the module (tests/shared_db.py)."""
    private = private_settings(tmp_path_factory.mktemp("project-pages"))

    def build() -> Unseen:
        with private:
            member = trained(scenarios.person(Role.RESEARCHER))
            ig = scenarios.person(Role.IG_OFFICER)
            project = _new_project(ig, member, scenarios.organisation())
            outsiders = {name: make().pk for name, make in OUTSIDERS.items()}
            return Unseen(project.pk, member.pk, outsiders)

    with shared_rows(django_db_blocker, build) as world:
        yield world


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("name", sorted(PROJECT_ROUTES))
@pytest.mark.parametrize("outsider", OUTSIDERS)
def test_every_project_url_is_404_to_someone_who_may_not_see_the_project(
    client_for, unseen, outsider, name, method
):
    project = Project.objects.get(pk=unseen.project)
    path = _fill(PROJECT_ROUTES[name], project, User.objects.get(pk=unseen.member))
    client = client_for(User.objects.get(pk=unseen.outsiders[outsider]))
    before = mark()

    response = getattr(client, method)(path, {"suspend-reason": "x"})

    assert response.status_code == 404
    assert types_since(before) == []


@pytest.mark.parametrize("name", sorted(PROJECT_ROUTES))
def test_every_project_url_is_404_for_a_project_that_does_not_exist(client_for, ig, member, name):
    path = _fill(PROJECT_ROUTES[name].replace("<int:pk>", "999999"), Project(pk=1), member)

    assert client_for(ig).post(path).status_code == 404


@pytest.mark.parametrize("name", sorted(ACTION_ROUTES))
def test_the_actions_take_only_post(client_for, project, ig, member, name):
    response = client_for(ig).get(_fill(ACTION_ROUTES[name], project, member))

    assert response.status_code == 405


def test_a_removed_member_no_longer_sees_the_project(client_for, project, member, ig):
    services.remove_member(project=project, user=member, by=ig)

    assert client_for(member).get(_detail(project)).status_code == 404


# --- Members may not act ------------------------------------------------------------------
VALID_POSTS: dict[str, dict[str, str]] = {
    "project-suspend": {"suspend-reason": "DSPT under review"},
    "project-resume": {},
    "project-revoke": {"revoke-reason": "Breach of conditions"},
    "project-close": {"close-attestation": "Destroyed on 1 June, certificate 42"},
    "project-member-add": {"member-username": "someone", "member-role": "analyst"},
    "project-member-remove": {},
    "project-compliance-dates": {"dates-s251_expiry": "2099-01-01"},
}


@pytest.mark.parametrize("name", sorted(ACTION_ROUTES))
def test_a_member_posting_an_ig_action_gets_403_and_nothing_changes(
    client_for, project, member, name
):
    assert set(VALID_POSTS) == set(ACTION_ROUTES)  # every action has a valid post here
    scenarios.person(Role.RESEARCHER, username="someone")
    before = mark()

    response = client_for(member).post(
        _fill(ACTION_ROUTES[name], project, member), VALID_POSTS[name]
    )

    assert response.status_code == 403
    assert types_since(before) == []
    assert _fresh(project).status == S.ACTIVE
    assert project.memberships.filter(removed_at__isnull=True).count() == 1
    assert "You can use this project's data." in _text(client_for(member).get(_detail(project)))


# --- IG actions ---------------------------------------------------------------------------
STATE_CHANGES = {
    "suspend": ("project-suspend", {"suspend-reason": "DSPT under review"}, S.SUSPENDED,
                [E.PROJECT_SUSPENDED]),
    # The member's field permissions, then data permission (and at closure, the view).
    "revoke": ("project-revoke", {"revoke-reason": "Breach of conditions"}, S.REVOKED,
               [E.PROJECT_REVOKED, *[E.OBJECT_PERMISSION_REVOKED] * 2]),
    "close": ("project-close", {"close-attestation": "Destroyed on 1 June, certificate 42"},
              S.CLOSED, [E.PROJECT_CLOSED, *[E.OBJECT_PERMISSION_REVOKED] * 3]),
}  # fmt: skip


@pytest.mark.parametrize(
    ("name", "data", "status", "events"), STATE_CHANGES.values(), ids=STATE_CHANGES
)
def test_ig_changes_the_projects_status(client_for, project, ig, name, data, status, events):
    before = mark()

    response = client_for(ig).post(reverse(name, args=[project.pk]), data, follow=True)

    assert response.redirect_chain == [(_detail(project), 302)]
    assert _fresh(project).status == status
    assert types_since(before) == events
    assert len(_messages(response)) == 1


@pytest.mark.parametrize(("name", "field", "error"), [
    ("project-suspend", "suspend-reason", "Give the reason for suspending the project."),
    ("project-revoke", "revoke-reason", "Give the reason for revoking access."),
    ("project-close", "close-attestation", "Record how and when the data was destroyed."),
])  # fmt: skip
def test_a_state_change_without_its_reason_is_shown_again_with_the_error(
    client_for, project, ig, name, field, error
):
    before = mark()

    response = client_for(ig).post(reverse(name, args=[project.pk]), {field: "  "})

    assert response.status_code == 400
    assert "There is a problem" in _html(response)
    assert error in _html(response)
    assert f'id="id_{field}"' in _html(response)
    assert types_since(before) == [] and _fresh(project).status == S.ACTIVE


def test_members_see_why_the_project_is_suspended(client_for, project, ig, member):
    client_for(ig).post(reverse("project-suspend", args=[project.pk]),
                        {"suspend-reason": "DSPT under review"})  # fmt: skip

    text = _text(client_for(member).get(_detail(project)))

    assert "Reason: DSPT under review" in text
    assert "You cannot use this project's data now: the project is suspended." in text
    listing = _text(client_for(member).get(reverse("projects")))
    assert "No: the project is suspended" in listing


def test_ig_resumes_a_suspended_project(client_for, project, ig):
    services.suspend_project(project=project, reason="DSPT under review", by=ig)

    response = client_for(ig).post(reverse("project-resume", args=[project.pk]), follow=True)

    assert _fresh(project).status == S.ACTIVE
    assert _messages(response) == ["The project is active again: members can use its data."]


def test_resuming_while_a_date_has_lapsed_is_refused_in_the_services_words_until_renewed(
    client_for, make_project, ig
):
    today = _today()
    project = make_project(s251_expiry=today - timedelta(days=1))
    services.suspend_project(project=project, reason="lapsed: s251 support", by=ig)
    client = client_for(ig)

    refused = client.post(reverse("project-resume", args=[project.pk]), follow=True)

    assert _fresh(project).status == S.SUSPENDED
    assert _messages(refused) == [
        "The project was not resumed: record the renewal first: s251 support has lapsed."
    ]
    assert "Lapsed" in _html(refused)

    renewed = (today + timedelta(days=365)).isoformat()
    recorded = client.post(
        reverse("project-compliance-dates", args=[project.pk]),
        {"dates-s251_expiry": renewed, "dates-rec_expiry": "", "dates-dspt_expiry": ""},
        follow=True,
    )
    assert _fresh(project).s251_expiry == today + timedelta(days=365)
    assert (
        "If the project was suspended because a date lapsed, resume it now."
        in _messages(recorded)[0]
    )
    client.post(reverse("project-resume", args=[project.pk]))
    assert _fresh(project).status == S.ACTIVE


def test_recording_dates_sends_only_the_changed_ones(client_for, make_project, ig):
    today = _today()
    project = make_project(
        rec_expiry=today + timedelta(days=10), dspt_expiry=today + timedelta(days=90)
    )
    before = mark()

    client_for(ig).post(
        reverse("project-compliance-dates", args=[project.pk]),
        {"dates-s251_expiry": "", "dates-rec_expiry": (today + timedelta(days=400)).isoformat(),
         "dates-dspt_expiry": (today + timedelta(days=90)).isoformat()},
    )  # fmt: skip

    assert types_since(before) == [E.PROJECT_COMPLIANCE_UPDATED]
    from sde.audit.models import AuditEvent

    event = AuditEvent.objects.get(sequence=before + 1)
    assert event.data == {"rec_expiry": (today + timedelta(days=400)).isoformat()}


@pytest.mark.parametrize(("posted", "error"), [
    ({"dates-s251_expiry": "2001-01-01"}, "A renewed date cannot be in the past."),
    ({}, "Change at least one date."),
    ({"dates-s251_expiry": "tomorrow"}, "Enter a valid date."),
])  # fmt: skip
def test_bad_dates_are_shown_again_and_nothing_is_recorded(client_for, project, ig, posted, error):
    before = mark()

    response = client_for(ig).post(reverse("project-compliance-dates", args=[project.pk]), posted)

    assert response.status_code == 400
    assert error in _html(response)
    assert '<details class="project-manage__action" id="action-dates" open>' in _html(response)
    assert types_since(before) == []


def test_ig_adds_a_member_who_uses_data(client_for, project, ig):
    newcomer = trained(scenarios.person(Role.RESEARCHER))

    response = client_for(ig).post(
        reverse("project-member-add", args=[project.pk]),
        {"member-username": newcomer.username, "member-role": "analyst",
         "member-accesses_data": "on"},
        follow=True,
    )  # fmt: skip

    membership = project.memberships.get(user=newcomer, removed_at__isnull=True)
    assert (membership.role, membership.accesses_data) == ("analyst", True)
    assert _messages(response) == [f"{newcomer.display_name} is now a member of the project."]
    assert "You can use this project's data." in _text(client_for(newcomer).get(_detail(project)))


def test_a_member_who_does_not_use_data_is_told_so(client_for, project, ig):
    newcomer = trained(scenarios.person(Role.RESEARCHER))
    client_for(ig).post(
        reverse("project-member-add", args=[project.pk]),
        {"member-username": newcomer.username, "member-role": "supervisor"},
    )

    text = _text(client_for(newcomer).get(_detail(project)))

    assert ("You cannot use this project's data now: you are not a member of this project who "
            "uses its data.") in text  # fmt: skip


@pytest.mark.parametrize(("who", "status", "error"), [
    ("self", 403, "Nobody grants themselves access to a project's data."),
    ("another-ig-officer", 403, "IG officers may not see row-level data."),
    ("unknown", 400, "No account has this username."),
    ("existing-member", 400, "Already a member."),
])  # fmt: skip
def test_adding_a_member_is_refused_in_the_services_words(
    client_for, project, ig, member, who, status, error
):
    username = {
        "self": ig.username,
        "another-ig-officer": scenarios.person(Role.IG_OFFICER).username,
        "unknown": "nobody-has-this-name",
        "existing-member": member.username,
    }[who]
    before = mark()

    response = client_for(ig).post(
        reverse("project-member-add", args=[project.pk]),
        {"member-username": username, "member-role": "analyst", "member-accesses_data": "on"},
    )

    assert response.status_code == status
    assert error in _html(response)
    assert '<details class="project-manage__action" id="action-member" open>' in _html(response)
    assert types_since(before) == []


def test_ig_removes_a_member_and_their_access_ends(client_for, project, ig, member):
    response = client_for(ig).post(
        reverse("project-member-remove", args=[project.pk, member.pk]), follow=True
    )

    assert not project.memberships.filter(user=member, removed_at__isnull=True).exists()
    assert _messages(response) == [
        f"{member.display_name} is no longer a member: their access ended."
    ]
    assert client_for(member).get(_detail(project)).status_code == 404


def test_removing_someone_who_is_not_a_member_says_so(client_for, project, ig):
    stranger = scenarios.person(Role.RESEARCHER)
    before = mark()

    response = client_for(ig).post(
        reverse("project-member-remove", args=[project.pk, stranger.pk]), follow=True
    )

    assert _messages(response) == ["That person is not a current member of the project."]
    assert types_since(before) == []


def test_a_closed_project_offers_no_actions_and_shows_its_attestation(client_for, project, ig):
    services.close_project(project=project, attestation="Destroyed, certificate 42", by=ig)

    text = _html(client_for(ig).get(_detail(project)))

    assert "Destroyed, certificate 42" in text
    for name in ACTION_ROUTES:
        assert f"/projects/{project.pk}/{name.removeprefix('project-')}" not in text
    assert "/members/" not in text


def test_an_action_the_state_no_longer_allows_is_refused_with_the_services_message(
    client_for, project, ig
):
    services.revoke_project(project=project, reason="Breach", by=ig)
    before = mark()

    response = client_for(ig).post(
        reverse("project-revoke", args=[project.pk]), {"revoke-reason": "again"}, follow=True
    )

    assert response.redirect_chain == [(_detail(project), 302)]
    assert _messages(response) == ["The project is revoked; it cannot be revoked."]
    assert types_since(before) == []


# --- Dates, scope, applications ---------------------------------------------------------
def test_lapsed_and_soon_to_lapse_dates_are_marked(client_for, make_project, member):
    today = _today()
    project = make_project(
        s251_expiry=today - timedelta(days=1), rec_expiry=today + timedelta(days=10),
        dspt_expiry=today + timedelta(days=300),
    )  # fmt: skip

    text = _html(client_for(member).get(_detail(project)))
    dates = text[
        text.index('id="project-dates"') : text.index("</dl>", text.index('id="project-dates"'))
    ]

    assert re.search(r"s251 support ends</dt><dd>[^<]+ <span class=\"tag tag--red\">Lapsed", dates)
    assert "Ends in 10 days" in dates
    assert dates.count("tag--") == 2  # the end date and the DSPT date are far off
    assert (
        "You cannot use this project's data now: the project's approval has lapsed: s251 support."
        in (" ".join(re.sub(r"<[^>]+>", " ", text).split()).replace(" :", ":"))
    )


def test_the_application_and_change_buttons(client_for, organisation):
    from access_requests import services as requests
    from tests.unit.access_requests.builders import END, TODAY, answers, applicant, drafted

    lead, colleague = applicant(organisation), applicant(organisation)
    request = drafted(lead, organisation, answers(
        organisation, [(lead, "principal_investigator", True), (colleague, "analyst", True)]
    ))  # fmt: skip
    request = requests.submit(request=request, by=lead, today=TODAY)
    first, second = scenarios.person(Role.IG_OFFICER), scenarios.person(Role.IG_OFFICER)
    requests.start_review(request=request, by=first)
    requests.approve(request=request, by=first, end_date=END, today=TODAY)
    request = requests.approve(request=request, by=second, end_date=END, today=TODAY)
    project = Project.objects.get(access_request_id=request.pk)
    change = requests.start_change(project=project, kind="extension", by=lead)

    mine = _html(client_for(lead).get(_detail(project)))
    theirs = _html(client_for(colleague).get(_detail(project)))
    igs = _html(client_for(first).get(_detail(project)))

    assert f'<a href="/applications/{request.pk}/">Application {request.pk}</a>' in mine
    assert (
        f'href="/applications/{change.pk}/">Extension (end date only): application {change.pk}'
        in mine
    )
    assert f"Application {request.pk}" in theirs
    assert f'href="/applications/{request.pk}/"' not in theirs  # not theirs to open
    for page in (mine, theirs):
        assert f'action="/applications/change/{project.pk}/"' in page
        for kind in ("amendment", "extension", "renewal"):
            assert f'name="kind" value="{kind}"' in page
    assert f'href="/applications/{request.pk}/"' in igs
    assert "/applications/change/" not in igs  # IG is not a member

    services.revoke_project(project=project, reason="Breach", by=first)
    assert "/applications/change/" not in _html(client_for(lead).get(_detail(project)))


def test_no_change_is_offered_without_an_application_or_once_access_has_ended(
    client_for, project, member, ig
):
    assert "/applications/change/" not in _html(client_for(member).get(_detail(project)))

    services.revoke_project(project=project, reason="Breach", by=ig)
    response = client_for(member).get(_detail(project))

    assert "/applications/change/" not in _html(response)
    assert "Reason: Breach" in _text(response)


# --- Extracts -----------------------------------------------------------------------------
def _extracts(text: str) -> str:
    return text[text.index("<h2>Extracts</h2>") : text.index("<h2>Application and changes</h2>")]


def test_extracts_are_being_built_before_the_worker_has_run(client_for, project, member):
    text = _extracts(_html(client_for(member).get(_detail(project))))

    assert text.count("Being built") == 2


def _build(project: Project) -> None:
    services.build_project_extracts(project=project, by=get_system_user())


@pytest.mark.usefixtures("ingested")
def test_ready_extracts_show_their_tables_and_row_counts(client_for, project, member):
    _build(project)
    real = current_extract(project.pk)
    assert real is not None

    text = _extracts(_html(client_for(member).get(_detail(project))))

    assert text.count("Ready") == 2
    for table in real.tables.values():
        assert f'<td class="numeric">{table["rows"]:,}</td>' in text
    assert "Out of date" not in text


@pytest.mark.usefixtures("ingested")
def test_a_stale_extract_says_why_and_that_it_is_rebuilt_before_use(
    client_for, project, member, ig
):
    _build(project)
    snapshot = register.add_manual_optout(
        nhs_number=VALID_NHS_NUMBER, kind="ndop", reason="Letter received", by=ig
    )

    text = _extracts(_html(client_for(member).get(_detail(project))))

    assert "Out of date" in text
    assert f"the opt-out register has a newer snapshot ({snapshot.number})" in text
    assert "rebuilt before its next use" in text
    assert text.count("Ready") == 1  # the dummy extract: nobody in it is real


@pytest.mark.usefixtures("ingested")
def test_a_closed_projects_extracts_are_deleted(client_for, project, ig):
    _build(project)
    client_for(ig).post(reverse("project-close", args=[project.pk]),
                        {"close-attestation": "Destroyed, certificate 42"})  # fmt: skip

    text = _extracts(_html(client_for(ig).get(_detail(project))))

    assert text.count("Deleted when the project was closed") == 2


def test_a_project_closed_before_its_extracts_were_built_never_had_any(client_for, project, ig):
    services.close_project(project=project, attestation="Nothing was provisioned", by=ig)

    text = _extracts(_html(client_for(ig).get(_detail(project))))

    assert text.count("Access ended before an extract was built.") == 2
    assert "Deleted" not in text


def test_a_suspended_projects_missing_extracts_wait_for_it_to_resume(client_for, project, ig):
    services.suspend_project(project=project, reason="DSPT under review", by=ig)

    text = _extracts(_html(client_for(ig).get(_detail(project))))

    assert text.count("it is built once the project is resumed") == 2


@pytest.mark.usefixtures("ingested")
def test_opt_out_counts_are_for_ig_only(client_for, project, member, ig):
    _build(project)
    real = current_extract(project.pk)
    assert real is not None and real.treatment.get("explanation")

    members_page = _html(client_for(member).get(_detail(project)))
    igs_page = _html(client_for(ig).get(_detail(project)))

    assert "opt-outs removed" in igs_page and "For IG only" in igs_page
    assert real.treatment["explanation"] in igs_page
    for secret in ("opt-outs removed", "For IG only", real.treatment["explanation"],
                   "people_removed", "rows removed"):  # fmt: skip
        assert secret not in members_page
    assert ProjectMembership.objects.filter(project=project).count() == 1
