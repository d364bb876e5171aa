"""Every page, reached as each person by following links through the world of world.py:

- script injection: every free-text field of every model holds a payload, and every page
  renders it escaped (the API answers it as JSON data);
- bad form input: every form found is posted with text no form should accept (oversized,
  NUL bytes, control characters, invalid NHS numbers and dates), and answers a page with
  the form's error or a refusal, never a 500."""

from __future__ import annotations

import json
import re
from typing import Any, Final

import pytest
from django.test import Client
from django.urls import reverse

from tests.conftest import verified_client
from tests.unit.bad_input import world as hostile
from tests.unit.bad_input.conftest import PAGES, START
from tests.unit.bad_input.crawl import Form, body, crawl

pytestmark = pytest.mark.django_db

ESCAPED = re.compile(r"&lt;script&gt;alert\((?:&quot;|&#34;|&#x27;|\")([^&\"]+)")
API = ["api-me", "api-projects", "api-access-requests", "api-people", "api-datasets"]
CRAWLED = ("admin", "custodian", "ig", "caldicott", "author", "applicant", "clinician",
           "checker")  # fmt: skip
# Fields a page must show (escaped), so the sweep cannot pass by showing nothing.
MUST_SHOW = {
    "Project.title", "Project.lay_summary", "Organisation.name", "User.first_name",
    "User.last_name", "AccessRequest.title", "Comment.body", "ReleaseRequest.title",
    "ReleaseFile.context", "ReleaseFile.controls", "ExceptionRequest.justification",
    "Script.name", "Cohort.name", "Dataset.name",
    "answers.project.aims",
}  # fmt: skip


def test_every_text_field_is_classified():
    """A new text field is either free text (the sweep fills it) or named, with the
    reason, in NOT_FREE_TEXT."""
    labels = {m._meta.label for m, _ in hostile.text_fields()}
    stale = {
        (model, name)
        for model, names in hostile.NOT_FREE_TEXT.items()
        for name in names
        if name != "*"
        and model in labels
        and name not in {f.name for m, f in hostile.text_fields() if m._meta.label == model}
    }
    assert not stale, f"NOT_FREE_TEXT names fields that are gone or hold choices: {stale}"
    assert len(hostile.free_text_fields()) > 40


def test_every_page_escapes_hostile_text_in_every_field(world: hostile.World, crawl_as):
    assert not [label for label, rows in world.written.items() if rows == 0], (
        "the world has no row for these fields: add one to world.build"
    )
    shown: set[str] = set()
    visited = 0
    for who in (*CRAWLED, "anonymous"):
        found = crawl(Client(), START, limit=PAGES) if who == "anonymous" else crawl_as(who)
        visited += len(found.pages)
        # Well-formed as well as safe: a repeated id sends a label or a link to the wrong field.
        assert not found.repeated_ids, (who, found.repeated_ids)
        for url, response in found.pages.items():
            assert response.status_code < 500, (who, url)
            content = body(response).decode("utf-8", "replace")
            kind = response.get("Content-Type", "")
            if kind.startswith("text/html"):
                leaked = [m for m in hostile.RAW_MARKERS if m in content]
                assert not leaked, (
                    f"{who} {url}: unescaped {content[content.find(leaked[0]) - 200 :][:400]}"
                )
                shown.update(ESCAPED.findall(content))
            elif kind.startswith("application/json"):
                json.loads(content)
    missing = MUST_SHOW - shown
    assert not missing, (
        f"not rendered on any page reached: {sorted(missing)} (shown: {sorted(shown)})"
    )
    assert visited > 100
    # The API and register.json answer the same text as JSON data, never as a page.
    for who in ("author", "ig", "admin", "applicant"):
        client = verified_client(world.people[who])
        urls = [reverse(name) for name in API] + [
            reverse("register-json"),
            reverse("api-project", args=[world.project.pk]),
            reverse("api-access-request", args=[world.access_request.pk]),
        ]
        for url in urls:
            response = client.get(url, HTTP_ACCEPT="application/json")
            assert response.status_code < 500, (who, url)
            if response.status_code == 200:
                assert response["Content-Type"].startswith("application/json"), (who, url)
                json.loads(response.content)


# --- bad form input ---
TEXT_TYPES: Final = {"text", "textarea", "email", "search", "number", "url", "tel", "password"}
OVERSIZED: Final = "x" * 20_000  # past every limit (the longest text is 5,000)
JUNK: Final = "a\x00b\x01\x08\x0b\x1b[31m\x7f\u202e\ud800"[:-1] + "\ufffe"
BAD_NHS: Final = "9434765918"  # the check digit is wrong
BAD_DATE: Final = "2026-02-30"
NOT_POSTED: Final = ("/accounts/", "/account/password/")  # sign-in and MFA steps
PEOPLE: Final = ("admin", "custodian", "ig", "caldicott", "author", "applicant", "clinician",
                 "checker")  # fmt: skip


def _bad_value(name: str, kind: str, junk: str) -> str:
    if "nhs" in name.lower():
        return BAD_NHS if junk == JUNK else junk
    if kind == "date" or "date" in name.lower():
        return BAD_DATE
    return junk


def _filled(form: Form) -> dict[str, Any]:
    """The first text field oversized, every other one junk (one post checks both)."""
    data: dict[str, Any] = {}
    junk = OVERSIZED
    for name, kind in form.fields.items():
        if kind in ("submit", "file", "button", "image"):
            if kind == "submit" and form.values.get(name):
                data[name] = form.values[name]
            continue
        if kind in TEXT_TYPES or kind == "date":
            data[name] = _bad_value(name, kind, junk)
            junk = JUNK
        elif kind in ("select", "radio") and form.options.get(name):
            data[name] = form.options[name][-1]
        elif kind == "checkbox":
            data[name] = form.options[name][0]
        else:  # hidden: as served (a revision, a next page)
            data[name] = form.values.get(name, "")
    return data


def test_every_form_answers_bad_text_without_a_500(world: hostile.World, crawl_as):
    posted, seen = 0, set()
    for who in PEOPLE:
        client = verified_client(world.people[who])
        for form in crawl_as(who).forms:
            key = (form.action, tuple(sorted(form.fields)))
            if form.method != "post" or form.action.startswith(NOT_POSTED) or key in seen:
                continue
            seen.add(key)
            response = client.post(form.action, _filled(form))
            posted += 1
            assert response.status_code < 500, (who, form.page, form.action)
    assert posted > 15
