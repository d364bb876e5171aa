"""The question set (access_requests/questions.py): the shape check on every save (a
refused save changes nothing), per-section completeness and the rules that keep a request
from being submitted, the scope and opt-out basis derived from the answers, and the flags
shown to reviewers."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import date, timedelta
from itertools import product
from typing import Any

import pytest

from access_requests import questions, selectors, services
from access_requests.models import AccessRequest
from sde.audit.events import EventType as E
from sde.data import extracts
from sde.data.optouts import DEFAULT_DECISION_TABLE, ConfidentialityBasis, treatment_for
from sde.exceptions import InvalidTransition, ValidationError
from sde.identity.models import Accreditation, Organisation, User
from sde.identity.roles import Role
from tests import scenarios
from tests.events import events_since, mark, types_since
from tests.unit.access_requests.builders import (
    END,
    PUBLIC_INTEREST,
    START,
    TODAY,
    WHY,
    answers,
    drafted,
    fresh,
    ig_officer,
)
from tests.unit.sde.projects.builders import accredit, researcher

pytestmark = pytest.mark.django_db

S = AccessRequest.Status
PI = "principal_investigator"
Answers = dict[str, dict[str, Any]]


@pytest.fixture
def complete(organisation: Organisation, applicant: User) -> Answers:
    return answers(organisation, [(applicant, PI, True)])


def _set(path: str, value: Any) -> Callable[[Answers], Answers]:
    """A change to one answer (``section.question`` or ``section.question.key``)."""

    def change(a: Answers) -> Answers:
        changed = copy.deepcopy(a)
        section, *keys = path.split(".")
        target = changed.setdefault(section, {})
        for key in keys[:-1]:
            target = target.setdefault(key, {})
        target[keys[-1]] = value
        return changed

    return change


def _org(**item: Any) -> Callable[[Answers], Answers]:
    def change(a: Answers) -> Answers:
        changed = copy.deepcopy(a)
        first = changed["people"]["organisations"][0]
        changed["people"]["organisations"] = [{**first, **item}]
        return changed

    return change


def _twice(section: str, question: str) -> Callable[[Answers], Answers]:
    def change(a: Answers) -> Answers:
        changed = copy.deepcopy(a)
        changed[section][question] = changed[section][question] * 2
        return changed

    return change


def _member(**item: Any) -> Callable[[Answers], Answers]:
    def change(a: Answers) -> Answers:
        changed = copy.deepcopy(a)
        changed["people"]["members"] = [{**changed["people"]["members"][0], **item}]
        return changed

    return change


# =========================================================================================
# check_shape: every save
# =========================================================================================
def test_a_complete_application_has_the_right_shape(complete):
    assert questions.check_shape(complete) == complete


def test_unanswered_questions_and_sections_are_dropped_and_filled_in():
    given = {"meta": {"title": "T", "iras_id": "", "dsa_reference": None}, "data": {"cohort": {}}}

    assert questions.check_shape(given) == {**questions.empty_answers(), "meta": {"title": "T"}}


def test_the_question_set_has_the_nine_sections_of_the_application_form():
    assert [(s.letter, s.key) for s in questions.SECTIONS] == [
        ("A", "meta"),
        ("B", "people"),
        ("C", "project"),
        ("D", "legal"),
        ("E", "data"),
        ("F", "settings"),
        ("G", "outputs"),
        ("H", "retention"),
        ("I", "declarations"),
    ]
    assert set(questions.QUESTIONS) == set(questions.SECTION_KEYS)


BAD_SHAPES: dict[str, tuple[Callable[[Answers], Answers], str]] = {
    "unknown-section": (_set("finance.budget", "1000"), "finance"),
    "unknown-question": (_set("meta.colour", "blue"), "meta.colour"),
    "section-not-a-mapping": (lambda a: {**a, "meta": ["title"]}, "meta"),
    "not-an-application": (lambda a: ["meta"], "answers"),  # type: ignore[list-item]
    "text-not-text": (_set("project.aims", 5), "project.aims"),
    "text-too-long": (_set("project.aims", "x" * (questions.MAX_TEXT + 1)), "project.aims"),
    "short-text-too-long": (_set("meta.title", "x" * (questions.MAX_SHORT + 1)), "meta.title"),
    "date-not-a-date": (_set("meta.start_date", "1st January"), "meta.start_date"),
    "date-not-text": (_set("meta.end_date", 20271231), "meta.end_date"),
    "impossible-date": (_set("meta.end_date", "2027-02-30"), "meta.end_date"),
    "yes-no-not-bool": (
        _set("project.commercial_involvement", "no"), "project.commercial_involvement"
    ),
    "choice-not-offered": (_set("project.purpose", "marketing"), "project.purpose"),
    "choice-not-text": (_set("legal.article6", 1), "legal.article6"),
    "choices-not-a-list": (_set("outputs.output_types", "tables"), "outputs.output_types"),
    "choices-not-offered": (
        _set("outputs.output_types", ["tables", "videos"]), "outputs.output_types"
    ),
    "too-many-choices": (_set("outputs.output_types", ["tables"] * 51), "outputs.output_types"),
    "age-out-of-range": (_set("data.cohort.age_min", 131), "data.cohort"),
    "age-negative": (_set("data.cohort.age_max", -1), "data.cohort"),
    "age-a-bool": (_set("data.cohort.age_min", True), "data.cohort"),
    "age-text": (_set("data.cohort.age_min", "18"), "data.cohort"),
    "unknown-cohort-filter": (_set("data.cohort.postcode", "LS1"), "data.cohort"),
    "places-not-a-list": (_set("data.cohort.places", "North"), "data.cohort"),
    "dataset-not-offered": (_set("data.datasets.tax-records", {"income": WHY}), "data.datasets"),
    "field-not-offered": (_set("data.datasets.patients.nhs_number", WHY), "data.datasets"),
    "dataset-without-fields": (_set("data.datasets.patients", {}), "data.datasets"),
    "fields-not-a-mapping": (_set("data.datasets.patients", ["sex"]), "data.datasets"),
    "justification-not-text": (_set("data.datasets.patients.sex", 5), "data.datasets"),
    "justification-too-long": (_set("data.datasets.patients.sex", "x" * 5001), "data.datasets"),
    "objective-of-a-dataset-not-offered": (
        _set("project.dataset_objectives.tax-records", "Income."),
        "project.dataset_objectives",
    ),
    "unknown-organisation": (_org(organisation_id=10**9), "people.organisations"),
    "organisation-not-picked": (_org(organisation_id="Leeds"), "people.organisations"),
    "organisation-listed-twice": (_twice("people", "organisations"), "people.organisations"),
    "organisation-extra-question": (_org(bank="HSBC"), "people.organisations"),
    "organisation-role-not-offered": (_org(role="owner"), "people.organisations"),
    "organisation-dspt-date-bad": (_org(dspt_expiry="soon"), "people.organisations"),
    "organisation-text-too-long": (_org(ico_number="x" * 201), "people.organisations"),
    "organisations-not-a-list": (_set("people.organisations", {"a": 1}), "people.organisations"),
    "person-listed-twice": (_twice("people", "members"), "people.members"),
    "person-extra-question": (_member(password="hunter2"), "people.members"),
    "person-without-username": (_member(username=""), "people.members"),
    "person-role-not-offered": (_member(role="boss"), "people.members"),
    "person-accesses-data-not-bool": (_member(accesses_data="yes"), "people.members"),
}  # fmt: skip


def _shape_errors(answers: Any) -> set[str] | None:
    """The questions check_shape names (None: it accepts the answers)."""
    try:
        questions.check_shape(answers)
    except ValidationError as error:
        return set(error.errors)
    return None


def test_check_shape_refuses_what_the_question_set_does_not_ask(complete):
    """One row per way of being wrong, each naming the one question at fault (the
    whole table is compared at once: every check_shape call is cheap, the fixtures not)."""
    observed = {case: _shape_errors(change(complete)) for case, (change, _) in BAD_SHAPES.items()}

    assert observed == {case: {key} for case, (_, key) in BAD_SHAPES.items()}


def test_check_shape_names_every_problem_at_once(complete):
    changed = _set("meta.colour", "blue")(_set("project.aims", 5)(_set("x.y", 1)(complete)))

    with pytest.raises(ValidationError) as raised:
        questions.check_shape(changed)

    assert set(raised.value.errors) == {"meta.colour", "project.aims", "x"}


def test_a_long_but_allowed_text_is_kept(complete):
    changed = _set("project.aims", "x" * questions.MAX_TEXT)(complete)

    assert questions.check_shape(changed)["project"]["aims"] == "x" * questions.MAX_TEXT


@pytest.mark.parametrize(
    "change",
    [
        _set("outputs.output_types", [{"tables": True}]),
        _member(role=["principal_investigator"]),
        _org(role={"controller": True}),
    ],
    ids=["choice-a-mapping", "person-role-a-list", "organisation-role-a-mapping"],
)
def test_an_unhashable_answer_is_refused_as_invalid(complete, change):
    with pytest.raises(ValidationError):
        questions.check_shape(change(complete))


@pytest.mark.parametrize("value", ["20260701", "2026-W27-3"])
def test_only_a_date_written_as_yyyy_mm_dd_is_accepted(complete, value):
    with pytest.raises(ValidationError) as raised:
        questions.check_shape(_set("meta.end_date", value)(complete))

    assert set(raised.value.errors) == {"meta.end_date"}


def test_an_over_long_username_is_refused(complete):
    with pytest.raises(ValidationError) as raised:
        questions.check_shape(_member(username="x" * (questions.MAX_SHORT + 1))(complete))

    assert set(raised.value.errors) == {"people.members"}


# =========================================================================================
# save_answers: a refused save changes nothing
# =========================================================================================
def _stored(request: AccessRequest) -> tuple[Any, ...]:
    saved = fresh(request)
    return saved.status, saved.revision, saved.title, saved.answers


def test_a_save_that_fails_the_shape_check_changes_nothing(organisation, applicant, complete):
    """Every bad shape, posted with a good change beside it: the whole save is refused."""
    request = drafted(applicant, organisation, _set("meta.title", "Before")(complete))
    before, at = _stored(request), mark()
    refused = {}

    for case, (change, _) in BAD_SHAPES.items():
        try:
            services.save_answers(
                request=request,
                by=applicant,
                revision=request.revision,
                answers=change(_set("meta.title", "After")(complete)),
            )
        except ValidationError:
            refused[case] = _stored(request) == before
        else:
            refused[case] = False

    assert refused == dict.fromkeys(BAD_SHAPES, True)
    assert types_since(at) == []


def test_a_save_of_a_section_that_does_not_exist_changes_nothing(organisation, applicant, complete):
    request = drafted(applicant, organisation, complete)
    before, at = _stored(request), mark()

    with pytest.raises(ValidationError) as raised:
        services.save_answers(
            request=request,
            by=applicant,
            revision=request.revision,
            answers=complete,
            sections=["meta", "finance"],
        )

    assert set(raised.value.errors) == {"finance"}
    assert _stored(request) == before
    assert types_since(at) == []


def test_a_stale_save_is_refused_and_changes_nothing(organisation, applicant, complete):
    request = drafted(applicant, organisation, complete)
    stale = request.revision
    services.save_answers(
        request=request,
        by=applicant,
        revision=stale,
        answers=_set("meta.title", "From the first tab")(complete),
    )
    before, at = _stored(request), mark()

    with pytest.raises(InvalidTransition):
        services.save_answers(
            request=request,
            by=applicant,
            revision=stale,
            answers=_set("meta.title", "From the second tab")(complete),
        )

    assert _stored(request) == before
    assert before[2] == "From the first tab"
    assert types_since(at) == []


def test_a_save_of_some_sections_changes_only_those_and_raises_the_revision(
    organisation, applicant, complete
):
    request = drafted(applicant, organisation, complete)
    revision = request.revision
    changed = _set("meta.title", "New title")(_set("project.aims", "New aims.")(complete))
    at = mark()

    saved, errors = services.save_answers(
        request=request, by=applicant, revision=revision, answers=changed, sections=["project"]
    )

    assert saved.revision == revision + 1
    assert saved.answers["project"]["aims"] == "New aims."
    assert saved.answers["meta"] == complete["meta"] and saved.title == complete["meta"]["title"]
    assert errors == {section: {} for section in questions.SECTION_KEYS}
    (event,) = events_since(at)
    assert (event.event_type, event.data) == (
        E.REQUEST_DRAFT_SAVED,
        {"sections": ["project"], "revision": revision + 1},
    )


def test_a_new_draft_is_empty_and_may_be_incomplete(organisation, applicant):
    request = services.create_request(by=applicant, organisation=organisation, title="T")

    saved, errors = services.save_answers(
        request=request, by=applicant, revision=request.revision, answers={"meta": {"title": "T"}}
    )

    assert saved.status == S.DRAFT and saved.question_set_version == questions.VERSION
    assert errors["meta"] == {
        "meta.start_date": ["Answer this question."],
        "meta.end_date": ["Answer this question."],
    }
    assert all(errors[s] for s in questions.SECTION_KEYS if s != "meta")


def test_an_application_is_made_for_an_organisation_the_applicant_belongs_to(applicant):
    with pytest.raises(ValidationError) as raised:
        services.create_request(by=applicant, organisation=scenarios.organisation())

    assert set(raised.value.errors) == {"organisation"}
    assert not AccessRequest.objects.exists()


# =========================================================================================
# section_errors: what stops a submission, per section
# =========================================================================================
def test_a_complete_application_has_no_errors(complete):
    assert questions.section_errors(questions.check_shape(complete)) == {
        section: {} for section in questions.SECTION_KEYS
    }


OBJECTIVES = {"patients": "The population.", "gp-events": "Diagnoses."}
# id -> (sections changed (None: unanswered), the section and question in error)
INCOMPLETE: dict[str, tuple[dict[str, dict[str, Any]], str]] = {
    "no-title": ({"meta": {"title": None}}, "meta.title"),
    "no-start": ({"meta": {"start_date": None}}, "meta.start_date"),
    "no-end": ({"meta": {"end_date": None}}, "meta.end_date"),
    "end-before-start": ({"meta": {"end_date": "2025-12-31"}}, "meta.end_date"),
    "no-organisations": ({"people": {"organisations": None}}, "people.organisations"),
    "no-people": ({"people": {"members": None}}, "people.members"),
    "no-dspt": ("dspt", "people.organisations"),
    "unknown-person": ("unknown-person", "people.members"),
    "no-principal-investigator": ("no-pi", "people.members"),
    "no-lay-summary": ({"project": {"lay_summary": None}}, "project.lay_summary"),
    "no-purpose": ({"project": {"purpose": None}}, "project.purpose"),
    "no-aims": ({"project": {"aims": None}}, "project.aims"),
    "no-public-benefit": ({"project": {"public_benefit": None}}, "project.public_benefit"),
    "commercial-unanswered": (
        {"project": {"commercial_involvement": None}}, "project.commercial_involvement"
    ),
    "commercial-without-details": (
        {"project": {"commercial_involvement": True, "commercial_purposes": ["other"]}},
        "project.commercial_details",
    ),
    "commercial-without-purposes": (
        {"project": {"commercial_involvement": True, "commercial_details": "A spin-out."}},
        "project.commercial_purposes",
    ),
    "marketing": (
        {"project": {"commercial_involvement": True, "commercial_details": "An agency.",
                     "commercial_purposes": ["product_development", "marketing"]}},
        "project.commercial_purposes",
    ),
    "insurance": (
        {"project": {"commercial_purposes": ["insurance"]}}, "project.commercial_purposes"
    ),
    "dataset-without-objective": (
        {"project": {"dataset_objectives": {"patients": "The population."}}},
        "project.dataset_objectives",
    ),
    "no-article-6": ({"legal": {"article6": None}}, "legal.article6"),
    "no-article-9": ({"legal": {"article9": None}}, "legal.article9"),
    "no-schedule-1-condition": (
        {"legal": {"article9": "g", "schedule1_condition": None}}, "legal.schedule1_condition"
    ),
    "no-confidentiality-basis": (
        {"legal": {"confidentiality_basis": None}}, "legal.confidentiality_basis"
    ),
    "s251-without-regulation": ({"legal": {"s251_regulation": None}}, "legal.s251_regulation"),
    "s251-without-expiry": ({"legal": {"s251_expiry": None}}, "legal.s251_expiry"),
    "no-ethics": ({"legal": {"ethics": None}}, "legal.ethics"),
    "ethics-not-required-without-reason": (
        {"legal": {"ethics": "not_required"}}, "legal.ethics_reason"
    ),
    "favourable-ethics-without-date": (
        {"legal": {"rec_opinion_date": None}}, "legal.rec_opinion_date"
    ),
    "no-datasets": ({"data": {"datasets": None}, "project": {"dataset_objectives": None}},
                    "data.datasets"),
    "no-level": ({"data": {"level": None}}, "data.level"),
    "blank-justification": (
        {"data": {"datasets": {"patients": {"person_id": WHY, "place": "  "}},
                  "cohort": {"age_min": 18}}},
        "data.datasets",
    ),
    "sensitive-field-justified-in-a-word": (
        {"data": {"datasets": {"patients": {"person_id": WHY, "ethnicity": "Equity."}}}},
        "data.datasets",
    ),
    "date-range-reversed": (
        {"data": {"date_from": "2024-01-01", "date_to": "2023-12-31"}}, "data.date_to"
    ),
    "ages-reversed": ({"data": {"cohort": {"age_min": 40, "age_max": 30}}}, "data.cohort"),
    "no-processing-location": (
        {"settings": {"processing_location": None}}, "settings.processing_location"
    ),
    "processing-outside-the-uk": (
        {"settings": {"processing_location": "outside_uk"}}, "settings.processing_location"
    ),
    "no-output-types": ({"outputs": {"output_types": None}}, "outputs.output_types"),
    "no-publication-plan": ({"outputs": {"publication_plan": None}}, "outputs.publication_plan"),
    "no-disclosure-rules": ({"outputs": {"disclosure_rules": None}}, "outputs.disclosure_rules"),
    "stricter-rules-undescribed": (
        {"outputs": {"disclosure_rules": "stricter"}}, "outputs.stricter_rules"
    ),
    "no-retention": ({"retention": {"retain_until": None}}, "retention.retain_until"),
    "kept-for-less-time-than-used": (
        {"retention": {"retain_until": "2027-06-30"}}, "retention.retain_until"
    ),
    "agreement-not-accepted": ({"declarations": {"accepted": False}}, "declarations.accepted"),
    "old-agreement-accepted": (
        {"declarations": {"agreement_version": "2025.1"}}, "declarations.accepted"
    ),
}  # fmt: skip


def _filled(organisation: Organisation, applicant: User, changes: Any) -> Answers:
    members: list[tuple[User, str, bool]] = [(applicant, PI, True)]
    if changes == "no-pi":
        return answers(organisation, [(applicant, "analyst", True)])
    if changes == "unknown-person":
        filled = answers(organisation, members)
        filled["people"]["members"].append(
            {"username": "nobody-by-this-name", "role": "analyst", "accesses_data": True}
        )
        return filled
    if changes == "dspt":
        return _org(dspt_status="", dspt_expiry=None)(answers(organisation, members))
    return answers(organisation, members, **changes)


def test_section_errors_name_the_question_in_its_section(organisation, applicant):
    """One row per rule: the error is in the rule's section, on its question, and no
    other section has any."""
    observed, expected = {}, {}
    for case, (changes, key) in INCOMPLETE.items():
        errors = questions.section_errors(
            questions.check_shape(_filled(organisation, applicant, changes))
        )
        observed[case] = {s: key in found for s, found in errors.items() if found}
        expected[case] = {key.split(".")[0]: True}

    assert observed == expected


ACCEPTABLE: dict[str, dict[str, dict[str, Any]]] = {
    "article-9-without-schedule-1": {"legal": {"article9": "a", "schedule1_condition": None}},
    "ethics-not-required-with-reason": {
        "legal": {"ethics": "not_required", "ethics_reason": "Service evaluation only."}
    },
    "ethics-pending": {"legal": {"ethics": "pending", "rec_opinion_date": None}},
    "public-interest-without-s251-answers": {"legal": PUBLIC_INTEREST},
    "commercial-evaluation-for-the-nhs": {
        "project": {"commercial_involvement": True, "commercial_details": "A supplier.",
                    "commercial_purposes": ["evaluation_for_nhs"]}
    },
    "stricter-rules-described": {
        "outputs": {"disclosure_rules": "stricter", "stricter_rules": "Counts of 20 or more."}
    },
    "sensitive-field-justified-in-a-sentence": {
        "data": {"datasets": {"patients": {"person_id": WHY, "sex": "x" * 20}}},
        "project": {"dataset_objectives": {"patients": "The population."}},
    },
    "standard-field-justified-in-a-word": {
        "data": {"datasets": {"patients": {"person_id": WHY, "place": "Areas."}}},
        "project": {"dataset_objectives": {"patients": "The population."}},
    },
    "one-day-project": {"meta": {"end_date": START.isoformat()},
                        "retention": {"retain_until": START.isoformat()}},
    "children-included": {"data": {"cohort": {"age_min": 0, "age_max": 15}}},
}  # fmt: skip


def test_acceptable_variations_have_no_errors(organisation, applicant):
    observed = {
        case: questions.section_errors(
            questions.check_shape(answers(organisation, [(applicant, PI, True)], **changes))
        )
        for case, changes in ACCEPTABLE.items()
    }

    assert observed == {case: {s: {} for s in questions.SECTION_KEYS} for case in ACCEPTABLE}


def test_a_sensitive_field_needs_a_justification_of_at_least_a_sentence(organisation, applicant):
    def errors(justification: str) -> dict[str, list[str]]:
        filled = answers(
            organisation,
            [(applicant, PI, True)],
            data={"datasets": {"patients": {"person_id": WHY, "sex": justification}}},
            project={"dataset_objectives": {"patients": "The population."}},
        )
        return questions.section_errors(filled)["data"]

    assert errors("x" * 20) == {}
    assert errors("x" * 19 + "   ") == {
        "data.datasets": [
            "Sensitive fields need an explicit justification (at least a sentence): patients.sex."
        ]
    }


# =========================================================================================
# Submission
# =========================================================================================
REFUSED_OUTRIGHT = {
    "marketing": ({"project": {"commercial_involvement": True, "commercial_details": "Agency.",
                               "commercial_purposes": ["marketing"]}},
                  "project.commercial_purposes"),
    "insurance": ({"project": {"commercial_involvement": True, "commercial_details": "Insurer.",
                               "commercial_purposes": ["insurance"]}},
                  "project.commercial_purposes"),
    "outside-the-uk": ({"settings": {"processing_location": "outside_uk"}},
                       "settings.processing_location"),
}  # fmt: skip


@pytest.mark.parametrize(("changes", "key"), REFUSED_OUTRIGHT.values(), ids=REFUSED_OUTRIGHT)
def test_a_prohibited_purpose_is_drafted_but_never_submitted(organisation, applicant, changes, key):
    request = drafted(
        applicant, organisation, answers(organisation, [(applicant, PI, True)], **changes)
    )
    before, at = _stored(request), mark()

    with pytest.raises(ValidationError) as raised:
        services.submit(request=request, by=applicant, today=TODAY)

    assert set(raised.value.errors) == {key}
    assert _stored(request) == before
    assert types_since(at) == []


def _person(**kinds: tuple[date, date]) -> User:
    person = scenarios.person(Role.RESEARCHER)
    for kind, (issued, expires) in kinds.items():
        accredit(person, kinds=(Accreditation.Kind(kind),), issued_on=issued, expires_on=expires)
    return person


CURRENT = (date(2025, 1, 1), END)
LAPSED = (date(2025, 1, 1), TODAY - timedelta(days=1))
TRAINING: dict[str, Callable[[], User]] = {
    "both-lapsed": lambda: _person(safe_researcher=LAPSED, data_security=LAPSED),
    "safe-researcher-lapsed": lambda: _person(safe_researcher=LAPSED, data_security=CURRENT),
    "data-security-lapsed": lambda: _person(safe_researcher=CURRENT, data_security=LAPSED),
    "no-data-security-training": lambda: _person(safe_researcher=CURRENT),
    "not-yet-valid": lambda: _person(safe_researcher=(TODAY + timedelta(days=1), END),
                                     data_security=CURRENT),
    "none-recorded": lambda: _person(),
}  # fmt: skip


def test_data_users_without_current_training_are_drafted_but_not_submitted(organisation, applicant):
    analysts = [make() for make in TRAINING.values()]
    team = [(applicant, PI, True), *((a, "analyst", True) for a in analysts)]
    request = drafted(applicant, organisation, answers(organisation, team))
    assert request.status == S.DRAFT  # drafting is never blocked by training
    before, at = _stored(request), mark()

    with pytest.raises(ValidationError) as raised:
        services.submit(request=request, by=applicant, today=TODAY)

    assert raised.value.errors == {
        "people.members": [
            "Each person who will access data needs current safe researcher and data "
            f"security training: not recorded for {', '.join(a.username for a in analysts)}."
        ]
    }
    assert _stored(request) == before
    assert types_since(at) == []


def test_a_member_who_does_not_use_data_needs_no_training(organisation, applicant):
    supervisor = _person()
    team = [(applicant, PI, True), (supervisor, "supervisor", False)]
    request = drafted(applicant, organisation, answers(organisation, team))

    assert services.submit(request=request, by=applicant, today=TODAY).status == S.SUBMITTED


def test_training_is_judged_on_the_day_of_submission(organisation, applicant):
    analyst = _person(safe_researcher=CURRENT, data_security=CURRENT)
    team = [(applicant, PI, True), (analyst, "analyst", True)]
    request = drafted(applicant, organisation, answers(organisation, team))

    with pytest.raises(ValidationError):
        services.submit(request=request, by=applicant, today=END + timedelta(days=1))
    assert services.submit(request=request, by=applicant, today=END).status == S.SUBMITTED


def test_an_ig_officer_may_be_on_the_team_but_never_use_data(organisation, applicant):
    ig = accredit(ig_officer())
    request = drafted(
        applicant,
        organisation,
        answers(organisation, [(applicant, PI, True), (ig, "supervisor", True)]),
    )

    with pytest.raises(ValidationError) as raised:
        services.submit(request=request, by=applicant, today=TODAY)

    assert raised.value.errors == {
        "people.members": [
            f"IG officers never see row-level data: {ig.username} cannot access data."
        ]
    }
    request, _ = services.save_answers(
        request=request,
        by=applicant,
        revision=fresh(request).revision,
        sections=["people"],
        answers=answers(organisation, [(applicant, PI, True), (ig, "supervisor", False)]),
    )
    assert services.submit(request=request, by=applicant, today=TODAY).status == S.SUBMITTED


def test_every_reason_a_submission_is_refused_is_given_at_once(organisation, applicant):
    unaccredited = researcher(expires_on=TODAY - timedelta(days=1))
    filled = answers(
        organisation,
        [(applicant, PI, True), (unaccredited, "analyst", True)],
        meta={"title": None},
        settings={"processing_location": "outside_uk"},
    )
    request = drafted(applicant, organisation, filled)

    with pytest.raises(ValidationError) as raised:
        services.submit(request=request, by=applicant, today=TODAY)

    assert set(raised.value.errors) == {
        "meta.title",
        "settings.processing_location",
        "people.members",
    }


@pytest.mark.parametrize(
    "deciles", [[11], [0], ["3"], ["x"], [True]], ids=["11", "0", "text-3", "x", "bool"]
)
def test_a_cohort_that_cannot_become_an_extract_scope_is_refused_at_save(
    organisation, applicant, deciles
):
    request = services.create_request(by=applicant, organisation=organisation)
    filled = answers(
        organisation,
        [(applicant, PI, True)],
        data={"cohort": {"age_min": 18, "imd_deciles": deciles}},
    )

    with pytest.raises(ValidationError) as raised:
        services.save_answers(request=request, by=applicant, answers=filled, revision=1)

    assert set(raised.value.errors) == {"data.cohort"}
    assert AccessRequest.objects.get(pk=request.pk).revision == 1


# =========================================================================================
# The scope and the opt-out basis derived from the answers
# =========================================================================================
# The confidentiality answer (and the CAG exemption) -> the decision table's basis.
BASES: dict[str, tuple[dict[str, Any], str]] = {
    "explicit-consent": ({"confidentiality_basis": "explicit_consent"}, "explicit_consent"),
    "s251": ({"confidentiality_basis": "s251"}, "s251_standard"),
    "s251-exemption-answered-no": (
        {"confidentiality_basis": "s251", "cag_ndop_exemption": False}, "s251_standard"
    ),
    "s251-with-cag-exemption": (
        {"confidentiality_basis": "s251", "cag_ndop_exemption": True}, "s251_cag_ndop_exemption"
    ),
    "copi": ({"confidentiality_basis": "copi_reg3"}, "copi_reg3"),
    "legal-requirement": ({"confidentiality_basis": "legal_requirement"}, "legal_requirement"),
    "overriding-public-interest": (
        {"confidentiality_basis": "overriding_public_interest"}, "overriding_public_interest"
    ),
    "not-confidential": ({"confidentiality_basis": "not_confidential"}, "not_confidential"),
    "a-cag-exemption-without-s251-means-nothing": (
        {"confidentiality_basis": "explicit_consent", "cag_ndop_exemption": True},
        "explicit_consent",
    ),
    "unanswered": ({}, "unknown"),
    "made-up": ({"confidentiality_basis": "because"}, "unknown"),
}  # fmt: skip


def test_the_extract_basis_is_derived_from_the_legal_answers():
    observed = {
        case: (
            questions.extract_basis(legal),
            questions.scope_from({"data": {}, "project": {}, "legal": legal})["legal_basis"],
        )
        for case, (legal, _) in BASES.items()
    }

    assert observed == {case: (basis, basis) for case, (_, basis) in BASES.items()}


def test_every_basis_offered_has_a_row_of_the_decision_table():
    derived = {
        questions.extract_basis({"confidentiality_basis": b, "cag_ndop_exemption": e})
        for b in questions.CONFIDENTIALITY
        for e in (False, True)
    }
    rows = {row.basis for row in DEFAULT_DECISION_TABLE.rows if row.basis is not None}
    assert derived == rows
    assert ConfidentialityBasis.UNKNOWN not in derived


def test_the_scope_is_what_the_answers_ask_for_and_a_valid_extract_scope(complete):
    filled = copy.deepcopy(complete)
    filled["data"].update(
        date_from="2020-01-01",
        date_to="2025-12-31",
        cohort={"age_min": 18, "age_max": None, "places": [], "imd_deciles": [1, 2]},
    )

    scope = questions.scope_from(filled)

    assert scope == {
        "datasets": {"patients": ["person_id", "sex"], "gp-events": ["date", "person_id"]},
        "purpose": "research",
        "legal_basis": "s251_standard",
        "date_from": "2020-01-01",
        "date_to": "2025-12-31",
        "cohort": {"age_min": 18, "imd_deciles": [1, 2]},
    }
    checked = extracts.ExtractScope.from_json({**scope, "project_id": 1})
    assert set(extracts.validate_scope(checked)) == {"patients", "gp-events"}


PURPOSES = ["research", "planning", "direct_care", None]


def test_the_opt_out_treatment_is_the_decision_tables_for_the_derived_basis():
    """Every purpose with every basis: the request's treatment is the current (default)
    decision table's for the basis derived by hand in BASES."""
    observed, expected = {}, {}
    for purpose, (case, (legal, basis)) in product(PURPOSES, BASES.items()):
        request = AccessRequest(answers={"legal": legal, "project": {"purpose": purpose}})
        observed[purpose, case] = selectors.opt_out_treatment(request)  # read only, unsaved
        expected[purpose, case] = treatment_for(
            DEFAULT_DECISION_TABLE, purpose=purpose, basis=basis
        )

    assert observed == expected


# (purpose, legal answers) -> (national data opt-out applied, Type 1 applied), by hand.
FAMILIAR: dict[str, tuple[str | None, dict[str, Any], tuple[bool, bool]]] = {
    "s251": ("research", {"confidentiality_basis": "s251"}, (True, True)),
    "s251-cag-exemption": (
        "research", {"confidentiality_basis": "s251", "cag_ndop_exemption": True}, (False, True)
    ),
    "copi": ("planning", {"confidentiality_basis": "copi_reg3"}, (False, True)),
    "direct-care": ("direct_care", {"confidentiality_basis": "s251"}, (False, False)),
    "no-basis-fails-closed": ("research", {}, (True, True)),
    "no-purpose-fails-closed": (None, {"confidentiality_basis": "not_confidential"}, (True, True)),
}  # fmt: skip


def test_the_opt_out_treatment_of_some_familiar_cases():
    observed = {}
    for case, (purpose, legal, _) in FAMILIAR.items():
        request = AccessRequest(answers={"legal": legal, "project": {"purpose": purpose}})
        treatment = selectors.opt_out_treatment(request)
        observed[case] = (treatment.ndop_applied, treatment.type1_applied)

    assert observed == {case: applied for case, (_, _, applied) in FAMILIAR.items()}


# =========================================================================================
# What reviewers are shown
# =========================================================================================
STANDARD_ONLY = {
    "data": {"datasets": {"patients": {"place": "Areas."}}, "cohort": {"age_min": 18}},
    "project": {"dataset_objectives": {"patients": "The population."}},
}
FLAGS: dict[str, tuple[dict[str, dict[str, Any]], list[str]]] = {
    "nothing-to-flag": (STANDARD_ONLY, []),
    "sensitive-fields": ({}, ["sensitive_fields"]),
    "no-lower-age": ({**STANDARD_ONLY, "data": {**STANDARD_ONLY["data"], "cohort": {}}},
                     ["under_16s"]),
    "aged-15-and-over": ({**STANDARD_ONLY, "data": {**STANDARD_ONLY["data"],
                                                    "cohort": {"age_min": 15}}}, ["under_16s"]),
    "aged-16-and-over": ({**STANDARD_ONLY, "data": {**STANDARD_ONLY["data"],
                                                    "cohort": {"age_min": 16}}}, []),
    "commercial": ({**STANDARD_ONLY, "project": {**STANDARD_ONLY["project"],
                                                 "commercial_involvement": True}},
                   ["commercial"]),
    "s251-ends-before-the-project": ({**STANDARD_ONLY, "legal": {"s251_expiry": "2027-06-30"}},
                                     ["s251_expiry"]),
    "s251-ends-with-the-project": ({**STANDARD_ONLY, "legal": {"s251_expiry": END.isoformat()}},
                                   []),
    "s251-expired": ({**STANDARD_ONLY, "legal": {"s251_expiry": "2026-06-14"}},
                     ["s251_expiry"]),
    "s251-expires-today": ({**STANDARD_ONLY, "meta": {"end_date": "2026-06-15"},
                            "legal": {"s251_expiry": "2026-06-15"}}, []),
    "overriding-public-interest": ({**STANDARD_ONLY, "legal": PUBLIC_INTEREST}, ["caldicott"]),
}  # fmt: skip


def test_review_flags(organisation, applicant):
    observed = {
        case: [
            f.code
            for f in questions.review_flags(
                answers(organisation, [(applicant, PI, True)], **changes), today=TODAY
            )
        ]
        for case, (changes, _) in FLAGS.items()
    }

    assert observed == {case: codes for case, (_, codes) in FLAGS.items()}


def test_review_flags_name_the_sensitive_fields_and_the_dates(organisation, applicant):
    filled = answers(
        organisation,
        [(applicant, PI, True)],
        legal={"s251_expiry": "2027-06-30"},
        project={"commercial_involvement": True},
        data={"cohort": {}},
    )
    request = drafted(applicant, organisation, filled)

    flags = {f.code: f.text for f in selectors.review_flags(request, today=TODAY)}

    assert flags == {
        "sensitive_fields": "Sensitive fields requested: gp-events.person_id, "
        "patients.person_id, patients.sex.",
        "under_16s": "The cohort can include children under 16.",
        "commercial": "There is commercial involvement.",
        "s251_expiry": "The s251 support ends (2027-06-30) before the project.",
    }
    expired = {f.code: f.text for f in selectors.review_flags(request, today=date(2028, 1, 1))}
    assert expired["s251_expiry"] == "The s251 support expired on 2027-06-30."
