"""The applicant's pages: who sees which page, each step saving through the form and
showing what is still needed, the stale-revision rule, autosave, tampered posts,
attachments, comments, submit and withdraw."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.urls import reverse

from access_requests import questions
from access_requests.models import AccessRequest
from sde.identity.roles import Role
from tests import scenarios
from tests.events import mark, types_since
from tests.unit.access_requests.builders import (
    answers,
    drafted,
    drive_to,
    fresh,
    ig_officer,
    panel,
)
from tests.unit.access_requests.builders import applicant as make_applicant

pytestmark = pytest.mark.django_db
S = AccessRequest.Status


# --- Arrange helpers ---------------------------------------------------------------------
def complete(organisation: Any, applicant: Any) -> dict[str, Any]:
    return answers(organisation, [(applicant, "principal_investigator", True)])


def form_data(section: str, given: dict[str, Any], revision: int) -> dict[str, Any]:
    """What the section's page posts for ``given`` (that section's answers)."""
    data: dict[str, Any] = {"revision": revision, "then": "next"}
    if section == "people":
        for key in ("organisations", "members"):
            rows = given.get(key, [])
            data.update({f"{key}-TOTAL_FORMS": len(rows), f"{key}-INITIAL_FORMS": len(rows),
                         f"{key}-MIN_NUM_FORMS": 0, f"{key}-MAX_NUM_FORMS": 50})  # fmt: skip
            for n, row in enumerate(rows):
                for name, value in row.items():
                    if isinstance(value, bool):
                        if value:
                            data[f"{key}-{n}-{name}"] = "on"
                    else:
                        data[f"{key}-{n}-{name}"] = value
        return data
    for name, value in given.items():
        kind, _ = questions.QUESTIONS[section][name]
        if name == "datasets":
            for slug, fields in value.items():
                for field, why in fields.items():
                    data[f"pick__{slug}__{field}"] = "on"
                    data[f"why__{slug}__{field}"] = why
        elif name == "cohort":
            data.update(value)
        elif name == "dataset_objectives":
            data.update({f"objective__{slug}": text for slug, text in value.items()})
        elif name == "accepted":
            data["accepted"] = "on" if value else ""
        elif name == "agreement_version":
            continue
        elif kind == questions.BOOL:
            data[name] = "true" if value else "false"
        else:
            data[name] = value
    return data


def post_section(client: Any, request: AccessRequest, section: str, given: dict[str, Any],
                 **extra: Any) -> Any:  # fmt: skip
    revision = fresh(request).revision
    url = reverse("application-section", args=[request.pk, section])
    return client.post(url, {**form_data(section, given, revision), **extra})


def html(response: Any) -> str:
    return response.content.decode()


@pytest.fixture
def draft(organisation, applicant) -> AccessRequest:
    return drafted(applicant, organisation, complete(organisation, applicant))


@pytest.fixture
def empty_draft(organisation, applicant) -> AccessRequest:
    from access_requests import services

    return services.create_request(by=applicant, organisation=organisation, title="Blank")


# --- Who sees what -------------------------------------------------------------------------
PEOPLE = ("owner", "other_researcher", "ig", "guardian", "checker")
# (url name, with the request's pk, status) -> answer per person in PEOPLE
PAGES = [
    ("application", S.DRAFT, (200, 404, 404, 404, 404)),
    ("application-section", S.DRAFT, (200, 404, 404, 404, 404)),
    ("application-attachments", S.DRAFT, (200, 404, 404, 404, 404)),
    ("application-submit", S.DRAFT, (200, 404, 404, 404, 404)),
    ("application-withdraw", S.DRAFT, (200, 404, 404, 404, 404)),
    ("application-review", S.DRAFT, (404, 404, 404, 404, 404)),
    ("application", S.SUBMITTED, (200, 404, 302, 302, 404)),
    ("application-section", S.SUBMITTED, (200, 404, 403, 403, 404)),
    ("application-attachments", S.SUBMITTED, (200, 404, 403, 403, 404)),
    ("application-submit", S.SUBMITTED, (200, 404, 403, 403, 404)),
    ("application-review", S.SUBMITTED, (404, 404, 200, 200, 404)),
    ("application-review", S.APPROVED, (404, 404, 200, 200, 404)),
]
LISTS = [
    ("applications", (200, 200, 302, 302, 404)),
    ("application-new", (200, 200, 404, 404, 404)),
    ("review-queue", (404, 404, 200, 200, 404)),
]


def _people(organisation: Any, applicant: Any) -> dict[str, Any]:
    return {
        "owner": applicant,
        "other_researcher": make_applicant(organisation),
        "ig": ig_officer(),
        "guardian": scenarios.person(Role.CALDICOTT_GUARDIAN),
        "checker": scenarios.person(Role.OUTPUT_CHECKER),
    }


@pytest.mark.parametrize(("name", "status", "expected"), PAGES,
                         ids=[f"{n}-{s}" for n, s, _ in PAGES])  # fmt: skip
def test_each_application_page_answers_each_person(
    client_for, organisation, applicant, name, status, expected
):
    request = drive_to(
        drafted(applicant, organisation, complete(organisation, applicant)), status, by=panel()
    )
    people = _people(organisation, applicant)
    args = [request.pk, "meta"] if name == "application-section" else [request.pk]

    answered = [client_for(people[p]).get(reverse(name, args=args)).status_code for p in PEOPLE]

    assert tuple(answered) == expected


@pytest.mark.parametrize(("name", "expected"), LISTS, ids=[n for n, _ in LISTS])
def test_the_list_pages_answer_each_person(client_for, organisation, applicant, name, expected):
    people = _people(organisation, applicant)

    answered = [client_for(people[p]).get(reverse(name)).status_code for p in PEOPLE]

    assert tuple(answered) == expected


def test_the_list_shows_status_and_next_step(client_for, draft, applicant):
    response = client_for(applicant).get(reverse("applications"))

    page = html(response)
    assert draft.title in page and "Draft" in page
    assert "Complete every section, then submit it for review." in page


def test_an_approved_application_links_to_its_project(client_for, organisation, applicant):
    request = drive_to(
        drafted(applicant, organisation, complete(organisation, applicant)), S.APPROVED,
        by=panel(),
    )  # fmt: skip

    page = html(client_for(applicant).get(reverse("application", args=[request.pk])))

    assert f'href="/projects/{request.project_id}/"' in page


# --- Starting ----------------------------------------------------------------------------
def test_starting_an_application_makes_a_draft_for_your_organisation(
    client_for, organisation, applicant
):
    response = client_for(applicant).post(
        reverse("application-new"), {"organisation": organisation.pk, "title": "Asthma"}
    )

    created = AccessRequest.objects.get(applicant=applicant)
    assert response.url == reverse("application-section", args=[created.pk, "meta"])
    assert (created.status, created.title, created.organisation) == (S.DRAFT, "Asthma",
                                                                    organisation)  # fmt: skip


def test_starting_for_an_organisation_you_do_not_belong_to_is_refused(client_for, applicant):
    other = scenarios.organisation()

    response = client_for(applicant).post(reverse("application-new"), {"organisation": other.pk})

    assert response.status_code == 200
    assert "Pick one of your organisations." in html(response)
    assert not AccessRequest.objects.filter(applicant=applicant).exists()


# --- The steps -----------------------------------------------------------------------------
def test_every_step_saved_through_its_page_gives_the_complete_application(
    client_for, organisation, applicant, empty_draft
):
    client = client_for(applicant)
    wanted = complete(organisation, applicant)
    before = mark()

    for section in questions.SECTION_KEYS:
        response = post_section(client, empty_draft, section, wanted[section])
        assert response.status_code == 302, (section, html(response)[:3000])

    saved = fresh(empty_draft)
    assert saved.answers == wanted
    assert saved.revision == empty_draft.revision + len(questions.SECTION_KEYS)
    assert types_since(before) == ["access.draft_saved"] * len(questions.SECTION_KEYS)
    assert all(not e for e in questions.section_errors(saved.answers).values())


@pytest.mark.parametrize("section", questions.SECTION_KEYS)
def test_a_complete_step_continues_to_the_next_one(client_for, draft, applicant, section):
    response = post_section(client_for(applicant), draft, section, draft.answers[section])

    keys = questions.SECTION_KEYS
    following = keys.index(section) + 1
    expected = (
        reverse("application-section", args=[draft.pk, keys[following]])
        if following < len(keys)
        else reverse("application", args=[draft.pk])
    )
    assert response.url == expected


def test_an_incomplete_step_is_saved_and_then_shows_what_is_still_needed(
    client_for, empty_draft, applicant
):
    client = client_for(applicant)

    response = post_section(client, empty_draft, "meta", {"title": "Asthma in South Place"})

    assert response.url == reverse("application-section", args=[empty_draft.pk, "meta"])
    assert fresh(empty_draft).answers["meta"] == {"title": "Asthma in South Place"}
    page = html(client.get(response.url))
    assert "Still needed in this section" in page
    assert page.count("Answer this question.") >= 2  # start and end dates
    assert 'href="#id_start_date"' in page


def test_a_step_with_answers_that_are_not_acceptable_lists_them(client_for, draft, applicant):
    client = client_for(applicant)
    settings_answers = {"processing_location": "outside_uk"}

    response = post_section(client, draft, "settings", settings_answers)

    assert fresh(draft).answers["settings"] == settings_answers  # a draft may be wrong
    assert "Processing outside the UK is refused" in html(client.get(response.url))


def test_the_task_list_shows_each_sections_state(client_for, empty_draft, applicant):
    client = client_for(applicant)
    post_section(client, empty_draft, "meta", {"title": "Only a title"})
    post_section(client, empty_draft, "settings", {"processing_location": "uk"})

    page = html(client.get(reverse("application", args=[empty_draft.pk])))

    def state(key: str) -> str:
        match = re.search(rf'id="task-{key}-status">\s*<strong class="tag[^"]*">([^<]+)<', page)
        assert match, key
        return match.group(1)

    assert state("meta") == "2 to do"
    assert state("settings") == "Complete"
    assert state("legal") == "Not started"
    assert "Opt-out treatment" in page and "fail closed" in page  # no basis answered yet


def test_the_overview_shows_derived_treatment_and_flags(client_for, draft, applicant):
    page = html(client_for(applicant).get(reverse("application", args=[draft.pk])))

    assert "Sensitive fields requested: gp-events.person_id" in page
    assert "Research under" in page  # the treatment's explanation, derived from section D


def test_a_bad_date_is_refused_and_nothing_is_saved(client_for, draft, applicant):
    before = fresh(draft)

    response = post_section(
        client_for(applicant), draft, "meta", {**draft.answers["meta"], "end_date": "2027-13-45"}
    )

    assert response.status_code == 200
    assert "There is a problem: nothing was saved" in html(response)
    assert "Enter a valid date." in html(response)
    assert fresh(draft).revision == before.revision


def test_a_stale_revision_is_409_with_a_clear_message_and_nothing_saved(
    client_for, draft, applicant
):
    client = client_for(applicant)
    url = reverse("application-section", args=[draft.pk, "meta"])
    stale = form_data("meta", {**draft.answers["meta"], "title": "From the old tab"},
                      draft.revision)  # fmt: skip
    post_section(client, draft, "meta", {**draft.answers["meta"], "title": "From the new tab"})
    before = mark()

    response = client.post(url, stale)

    assert response.status_code == 409
    assert "changed elsewhere since this page was loaded" in html(response)
    assert "Your changes were not saved" in html(response)
    assert fresh(draft).title == "From the new tab"
    assert types_since(before) == []


def test_a_post_without_a_revision_is_treated_as_stale(client_for, draft, applicant):
    data = form_data("meta", {**draft.answers["meta"], "title": "No revision"}, 0)
    del data["revision"]

    response = client_for(applicant).post(
        reverse("application-section", args=[draft.pk, "meta"]), data
    )

    assert response.status_code == 409
    assert fresh(draft).title != "No revision"


def test_a_submitted_application_is_read_only(client_for, organisation, applicant):
    request = drive_to(drafted(applicant, organisation, complete(organisation, applicant)),
                       S.SUBMITTED, by=panel())  # fmt: skip
    client = client_for(applicant)
    url = reverse("application-section", args=[request.pk, "meta"])

    page = html(client.get(url))
    response = post_section(client, request, "meta", {**request.answers["meta"], "title": "X"})

    assert '<form method="post" novalidate class="application-form"' not in page
    assert "it cannot be changed now" in page
    assert response.status_code == 409
    assert fresh(request).title == request.title


# --- Autosave ------------------------------------------------------------------------------
def test_autosave_saves_and_answers_json(client_for, draft, applicant):
    url = reverse("application-autosave", args=[draft.pk, "meta"])
    data = form_data("meta", {**draft.answers["meta"], "title": "Autosaved"}, draft.revision)

    response = client_for(applicant).post(url, data)

    body = response.json()
    assert response.status_code == 200
    assert body["saved"] is True and body["revision"] == draft.revision + 1
    assert re.fullmatch(r"\d\d:\d\d", body["saved_at"])
    assert body["problems"] == 0
    assert fresh(draft).title == "Autosaved"


def test_autosave_reports_what_is_still_needed(client_for, empty_draft, applicant):
    url = reverse("application-autosave", args=[empty_draft.pk, "meta"])

    body = client_for(applicant).post(url, {"revision": empty_draft.revision, "title": "T"}).json()

    assert body["saved"] is True and body["problems"] == 2


def test_autosave_of_a_stale_page_is_409_json_and_saves_nothing(client_for, draft, applicant):
    url = reverse("application-autosave", args=[draft.pk, "meta"])
    client = client_for(applicant)
    client.post(url, form_data("meta", draft.answers["meta"], draft.revision))

    response = client.post(url, form_data("meta", {"title": "Stale"}, draft.revision))

    assert response.status_code == 409
    assert response.json()["saved"] is False and response.json()["stale"] is True
    assert "changed elsewhere" in response.json()["message"]
    assert fresh(draft).title == draft.title


def test_autosave_of_an_invalid_answer_is_400_json_and_saves_nothing(client_for, draft, applicant):
    url = reverse("application-autosave", args=[draft.pk, "data"])
    given = {**draft.answers["data"], "datasets": {"no-such-dataset": {"x": "why"}}}

    response = client_for(applicant).post(url, form_data("data", given, draft.revision))

    assert response.status_code == 400
    assert "no-such-dataset is not a dataset offered" in response.json()["message"]
    assert fresh(draft).revision == draft.revision


@pytest.mark.parametrize("person", ["other_researcher", "ig"])
def test_autosave_is_the_applicants_alone(client_for, organisation, applicant, draft, person):
    url = reverse("application-autosave", args=[draft.pk, "meta"])
    someone = _people(organisation, applicant)[person]

    response = client_for(someone).post(url, form_data("meta", {"title": "X"}, draft.revision))

    assert response.status_code == 404
    assert fresh(draft).title == draft.title


def test_autosave_answers_only_post(client_for, draft, applicant):
    response = client_for(applicant).get(reverse("application-autosave", args=[draft.pk, "meta"]))

    assert response.status_code == 405


def test_the_step_page_wires_autosave(client_for, draft, applicant):
    page = html(client_for(applicant).get(reverse("application-section", args=[draft.pk, "meta"])))

    assert f'data-autosave-url="{reverse("application-autosave", args=[draft.pk, "meta"])}"' in page
    assert f'name="revision" value="{draft.revision}"' in page
    assert 'aria-live="polite"' in page
    assert "sde/application.js" in page


# --- Tampered posts ------------------------------------------------------------------------
TAMPERED = {
    "a dataset not offered": (
        "data", {"pick__secret-table__x": "on", "why__secret-table__x": "because"},
        "secret-table is not a dataset offered",
    ),
    "a field not offered": (
        "data", {"pick__patients__nhs_number": "on", "why__patients__nhs_number": "because"},
        "nhs_number is not a field of patients",
    ),
    "an objective for a dataset not offered": (
        "project", {"objective__secret-table": "To peek."}, "A dataset that is not offered.",
    ),
    "an organisation not in the list": (
        "people", {"organisations-0-organisation_id": "999999"},
        "Pick an organisation from the list.",
    ),
    "a choice not offered": ("project", {"purpose": "marketing"}, "Select a valid choice."),
}  # fmt: skip


@pytest.mark.parametrize("case", TAMPERED)
def test_a_tampered_post_is_refused_clearly_and_changes_nothing(client_for, draft, applicant, case):
    section, extra, message = TAMPERED[case]
    before = mark()

    response = post_section(client_for(applicant), draft, section, draft.answers[section], **extra)

    assert response.status_code == 200
    assert "There is a problem: nothing was saved" in html(response)
    assert message in html(response)
    assert fresh(draft).revision == draft.revision
    assert fresh(draft).answers == draft.answers
    assert types_since(before) == []


def test_an_unknown_section_is_404(client_for, draft, applicant):
    client = client_for(applicant)

    assert client.get(reverse("application-section", args=[draft.pk, "secrets"])).status_code == 404
    response = client.post(
        reverse("application-autosave", args=[draft.pk, "secrets"]), {"revision": draft.revision}
    )
    assert response.status_code == 404
    assert fresh(draft).revision == draft.revision


def test_an_extension_saves_only_the_end_date(client_for, organisation, applicant):
    from access_requests import services

    approved = drive_to(
        drafted(applicant, organisation, complete(organisation, applicant)), S.APPROVED,
        by=panel(),
    )  # fmt: skip
    assert approved.project is not None
    extension = services.start_change(project=approved.project, kind="extension", by=applicant)
    client = client_for(applicant)

    page = html(client.get(reverse("application-section", args=[extension.pk, "meta"])))
    response = post_section(
        client, extension, "meta", {"title": "Renamed", "end_date": "2028-06-30"}
    )
    other = html(client.get(reverse("application-section", args=[extension.pk, "data"])))

    assert 'name="title"' not in page and 'name="end_date"' in page
    assert response.status_code == 302
    saved = fresh(extension)
    assert saved.answers["meta"]["end_date"] == "2028-06-30"
    assert saved.title == approved.title
    assert "An extension changes the end date only" in other


def test_an_extension_can_be_completed_and_submitted_through_the_pages(
    client_for, organisation, applicant
):
    from access_requests import services

    approved = drive_to(
        drafted(applicant, organisation, complete(organisation, applicant)), S.APPROVED,
        by=panel(),
    )  # fmt: skip
    assert approved.project is not None
    extension = services.start_change(project=approved.project, kind="extension", by=applicant)
    client = client_for(applicant)
    post_section(client, extension, "meta", {"end_date": "2028-06-30"})
    post_section(client, extension, "declarations", approved.answers["declarations"])

    response = client.post(reverse("application-submit", args=[extension.pk]))

    assert response.status_code == 302
    assert fresh(extension).status == S.SUBMITTED


def test_rows_added_on_the_page_survive_an_autosave_of_them(client_for, empty_draft, applicant):
    # The page was loaded with no rows: its rows are "extra" rows. After an autosave has
    # stored them, the page's own save must still keep them.
    rows = {
        "organisations-TOTAL_FORMS": 1, "organisations-INITIAL_FORMS": 0,
        "organisations-0-organisation_id": empty_draft.organisation_id,
        "organisations-0-role": "controller", "organisations-0-country": "",
        "members-TOTAL_FORMS": 1, "members-INITIAL_FORMS": 0,
        "members-0-username": applicant.username, "members-0-role": "principal_investigator",
        "members-0-accesses_data": "on",
    }  # fmt: skip
    client = client_for(applicant)
    autosave = reverse("application-autosave", args=[empty_draft.pk, "people"])
    client.post(autosave, {**rows, "revision": empty_draft.revision})

    response = client.post(
        reverse("application-section", args=[empty_draft.pk, "people"]),
        {**rows, "revision": empty_draft.revision + 1, "then": "add"},
    )

    assert response.status_code == 302
    people = fresh(empty_draft).answers["people"]
    assert [o["organisation_id"] for o in people["organisations"]] == [empty_draft.organisation_id]
    assert [m["username"] for m in people["members"]] == [applicant.username]


def test_the_dashboard_shows_the_review_queue_and_the_applicants_waiting_applications(
    organisation, applicant, client_for
):
    def card(user: Any, title: str) -> str:
        text = re.sub(r"\s+", " ", client_for(user).get("/dashboard/").content.decode())
        cards = text[text.find("Your work") :] if "Your work" in text else ""
        return re.sub(r"<[^>]+>", " ", cards[cards.find(title) :][:600]) if title in cards else ""

    reviewers = panel()
    reviewer = reviewers.reviewers[0]
    assert "0 of them you can review" in card(reviewer, "Access requests")
    request = drafted(applicant, organisation, complete(organisation, applicant))
    assert "0 returned for changes, 1 drafts" in card(applicant, "Your applications")

    drive_to(request, S.RETURNED, by=reviewers)

    assert "1 returned for changes, 0 drafts" in card(applicant, "Your applications")
    assert "0 of them you can review" in card(reviewer, "Access requests")  # returned: not queued
    assert card(reviewer, "Your applications") == ""
    another = drafted(applicant, organisation, complete(organisation, applicant))
    drive_to(another, S.SUBMITTED, by=reviewers)
    assert "1 of them you can review" in card(reviewer, "Access requests")
