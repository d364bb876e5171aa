"""IG's opt-out register pages: 404 for everyone but IG officers on every URL and method;
each form's happy path (state, message, audit events) and its refusals; the two-person
rule for changes; and no NHS number or pseudonym on any page, small counts suppressed."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from sde.audit.events import EventType
from sde.data import optout_changes, register, synth
from sde.data.extracts import ExtractScope, build_extract
from sde.data.ingestion import request_ingest, run_ingest
from sde.data.models import ManualOptOut, OptOutChange, OptOutSnapshot
from sde.identity.models import User
from sde.identity.roles import Role
from sde.keys import rotate_development_key
from tests import scenarios
from tests.events import events_since, mark, types_since

pytestmark = pytest.mark.django_db

E = EventType
Status = OptOutChange.Status
NOT_IG = [role for role in Role if role != Role.IG_OFFICER]


def nhs_number(base: int) -> str:
    """A valid (Modulus 11) NHS number from nine digits, skipping bases with no check digit."""
    while True:
        digits = f"{base:09d}"
        total = sum(int(d) * (10 - i) for i, d in enumerate(digits))
        check = 11 - total % 11
        check = 0 if check == 11 else check
        if check != 10:
            return digits + str(check)
        base += 1


VALID = "9434765919"
NUMBERS = [nhs_number(943476500 + 7 * i) for i in range(15)]


@pytest.fixture(autouse=True)
def data_root(private_data_root: Path) -> Path:
    return private_data_root


@pytest.fixture(autouse=True)
def var_dir(settings: Any, tmp_path: Path) -> Path:
    settings.VAR_DIR = tmp_path / "var"
    return tmp_path / "var"


def _uploads_left(var_dir: Path) -> list[Path]:
    folder = var_dir / "uploads"
    return sorted(folder.rglob("*")) if folder.exists() else []


def _ndop(content: bytes, name: str = "ndop.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, "text/csv")


def _lines(numbers: list[str]) -> bytes:
    return ("\n".join(numbers) + "\n").encode()


def _html(response: Any) -> str:
    return response.content.decode()


def _messages(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


# --- a world with something in every list ----------------------------------------------
@dataclass
class World:
    me: User  # the IG officer acting
    other: User  # a second IG officer
    mine: OptOutChange  # proposed by me
    theirs: OptOutChange  # proposed by the other officer


def _world() -> World:
    me, other = scenarios.person(Role.IG_OFFICER), scenarios.person(Role.IG_OFFICER)
    register.add_manual_optout(nhs_number=NUMBERS[0], kind="type1", reason="letter", by=other)
    mine = optout_changes.propose_exemption(project_id=4, cag_letter_disapplies_type1=True,
                                      reason="CAG letter 21/CAG/0001", by=me)  # fmt: skip
    theirs = optout_changes.propose_exemption(project_id=5, instrument_overrides_type1=True,
                                        reason="Instrument SI 2020/1", by=other)  # fmt: skip
    return World(me, other, mine, theirs)


@dataclass(frozen=True)
class Page:
    url: Callable[[World], str]
    methods: tuple[str, ...]
    post: Callable[[World], dict[str, Any]]


POLICY_CHANGE = {
    "policy__copi_reg3__type1": "not_applied",
    "policy__not_confidential__type1": "applied",
    "reason": "COPI: direct public health need",
}


def _no_data(w: World) -> dict[str, Any]:
    return {}


PAGES: dict[str, Page] = {
    "overview": Page(lambda w: reverse("optout-register"), ("get",), _no_data),
    "manual-add": Page(
        lambda w: reverse("optout-manual-add"),
        ("get", "post"),
        lambda w: {"nhs_number": VALID, "kind": "ndop", "reason": "email from the patient"},
    ),
    "manual-withdraw": Page(
        lambda w: reverse("optout-manual-withdraw"),
        ("get", "post"),
        lambda w: {"nhs_number": NUMBERS[0], "kind": "type1", "reason": "changed their mind"},
    ),
    "ndop": Page(
        lambda w: reverse("optout-ndop-import"),
        ("get", "post"),
        lambda w: {"label": "", "ndop_file": _ndop(_lines(NUMBERS[:3]))},
    ),
    "policy": Page(
        lambda w: reverse("optout-policy-propose"),
        ("get", "post"),
        lambda w: POLICY_CHANGE,
    ),
    "exemption": Page(
        lambda w: reverse("optout-exemption-propose"),
        ("get", "post"),
        lambda w: {"project_id": "9", "caldicott_type1_decision": "none", "reason": "CAG"},
    ),
    "change": Page(lambda w: reverse("optout-change", args=[w.theirs.pk]), ("get",), _no_data),
    "change-decide": Page(
        lambda w: reverse("optout-change-decide", args=[w.theirs.pk]),
        ("post",),
        lambda w: {"decision": "approve", f"change-{w.theirs.pk}-decision_reason": ""},
    ),
    "change-withdraw": Page(
        lambda w: reverse("optout-change-withdraw", args=[w.mine.pk]), ("post",), _no_data
    ),
}


def _send(client: Client, method: str, page: str, world: World) -> Any:
    spec = PAGES[page]
    data = spec.post(world) if method == "post" else {}
    return getattr(client, method)(spec.url(world), data)


def _state() -> tuple[Any, ...]:
    return (
        OptOutSnapshot.objects.count(),
        ManualOptOut.objects.filter(withdrawn_at__isnull=True).count(),
        sorted(OptOutChange.objects.values_list("pk", "status")),
    )


# --- who may open what -----------------------------------------------------------------
DENIED = [(role, page) for role in [*NOT_IG, None] for page in PAGES]


@pytest.mark.parametrize(
    ("role", "page"), DENIED, ids=[f"{r.value if r else 'no-role'}-{p}" for r, p in DENIED]
)
@pytest.mark.parametrize("method", ["get", "post"])
def test_every_register_url_is_a_404_for_anyone_but_ig(client_for, role, page, method):
    world = _world()
    person = scenarios.person(role) if role else scenarios.person()
    before, at = _state(), mark()

    response = _send(client_for(person), method, page, world)

    assert response.status_code == 404
    assert _state() == before
    assert types_since(at) == []


def test_a_person_holding_every_other_role_gets_404_everywhere(client_for):
    world = _world()
    person = scenarios.person(*NOT_IG)
    client = client_for(person)

    for page in PAGES:
        for method in ("get", "post"):
            response = _send(client, method, page, world)
            assert response.status_code == 404, (page, method)


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("method", ["get", "post"])
def test_every_register_url_sends_an_anonymous_visitor_to_sign_in(client, page, method):
    world = _world()
    url = PAGES[page].url(world)

    response = _send(client, method, page, world)

    assert response.status_code == 302
    assert response.url == f"{reverse('login')}?next={url}"


ALLOWED = [(page, method) for page, spec in PAGES.items() for method in spec.methods]


@pytest.mark.parametrize(("page", "method"), ALLOWED, ids=[f"{p}-{m}" for p, m in ALLOWED])
def test_every_register_url_opens_for_an_ig_officer(client_for, page, method):
    world = _world()

    response = _send(client_for(world.me), method, page, world)

    if method == "get":
        assert response.status_code == 200
        assert _html(response).count("<h1") == 1
    else:
        assert response.status_code == 302
        assert response.url == reverse("optout-register")


NOT_ALLOWED = [
    (page, method) for page, spec in PAGES.items() for method in ("get", "post")
    if method not in spec.methods
]  # fmt: skip


@pytest.mark.parametrize(("page", "method"), NOT_ALLOWED, ids=[f"{p}-{m}" for p, m in NOT_ALLOWED])
def test_an_ig_officer_gets_405_for_the_wrong_method(client_for, page, method):
    world = _world()
    before = _state()

    response = getattr(client_for(world.me), method)(PAGES[page].url(world))

    assert response.status_code == 405
    assert _state() == before


def test_an_unknown_change_is_a_404_for_ig(client_for):
    ig = scenarios.person(Role.IG_OFFICER)

    response = client_for(ig).get(reverse("optout-change", args=[424242]))

    assert response.status_code == 404


# --- the overview ----------------------------------------------------------------------
def test_opening_the_register_is_recorded(client_for):
    world = _world()
    at = mark()

    response = client_for(world.me).get(reverse("optout-register"))

    assert response.status_code == 200
    (event,) = events_since(at)
    assert event.event_type == E.OPT_OUT_REGISTER_VIEWED
    assert event.actor_id == world.me.pk
    assert event.data == {"snapshot": 1, "decision_table_version": 1, "pending_changes": 2}


def test_the_register_shows_the_snapshot_table_and_changes(client_for):
    world = _world()

    html = _html(client_for(world.me).get(reverse("optout-register")))

    snapshot = register.current_snapshot()
    assert snapshot is not None
    assert f'<span id="snapshot-number">{snapshot.number}</span>' in html
    assert snapshot.content_hash in html
    assert re.search(r"<dt>Imported sources</dt><dd>None yet</dd>", html)  # manual only
    assert "Decision table, version 1" in html
    assert "Applied, unless the project&#x27;s CAG letter disapplies it" in html
    assert "Applied (platform policy)" in html
    assert "Case by case" in html
    assert "Instrument SI 2020/1" in html and "CAG letter 21/CAG/0001" in html
    assert "Legal instrument overrides Type 1: yes" in html
    # I may decide the other officer's change, and only withdraw my own.
    assert reverse("optout-change-decide", args=[world.theirs.pk]) in html
    assert reverse("optout-change-decide", args=[world.mine.pk]) not in html
    assert reverse("optout-change-withdraw", args=[world.mine.pk]) in html
    assert reverse("optout-change-withdraw", args=[world.theirs.pk]) not in html


def test_an_empty_register_says_so(client_for):
    ig = scenarios.person(Role.IG_OFFICER)

    response = client_for(ig).get(reverse("optout-register"))

    assert response.status_code == 200
    assert "there is no snapshot" in _html(response)
    assert "No extracts yet." in _html(response)


def test_manual_entries_from_before_a_key_rotation_are_flagged(client_for):
    world = _world()
    client = client_for(world.me)
    calm = _html(client.get(reverse("optout-register")))
    assert rotate_development_key("system") == 2
    client.post(reverse("optout-ndop-import"), {"ndop_file": _ndop(_lines(NUMBERS[1:4]))})

    html = _html(client.get(reverse("optout-register")))

    assert "entered under an earlier system key version" not in calm
    assert "fewer than 10 manual opt-outs were entered under an earlier system key" in html
    assert _count_cell(html, "System key version") == "2"


def _count_cell(html: str, label: str) -> str:
    found = re.search(rf"<dt>{label}</dt><dd>([^<]*)</dd>", html)
    assert found, label
    return found.group(1)


def test_small_counts_are_suppressed_and_larger_ones_shown(client_for):
    ig = scenarios.person(Role.IG_OFFICER)
    client = client_for(ig)
    client.post(reverse("optout-ndop-import"), {"ndop_file": _ndop(_lines(NUMBERS[:3]))})

    small = _html(client.get(reverse("optout-register")))
    client.post(reverse("optout-ndop-import"), {"ndop_file": _ndop(_lines(NUMBERS[:12]))})
    large = _html(client.get(reverse("optout-register")))

    assert _count_cell(small, "People with a national data opt-out") == "fewer than 10"
    assert _count_cell(large, "People with a national data opt-out") == "12"
    assert _count_cell(large, "People with a GP Type 1 opt-out") == "0"
    snapshots = re.search(r"Recent opt-out snapshots.*?</table>", small, re.S)
    assert snapshots and "fewer than 10" in snapshots.group(0)
    assert re.search(r'<td class="numeric">3</td>', snapshots.group(0)) is None


# --- manual entries --------------------------------------------------------------------
def test_adding_a_manual_opt_out_makes_a_snapshot_and_says_so(client_for):
    ig = scenarios.person(Role.IG_OFFICER)
    at = mark()

    response = client_for(ig).post(
        reverse("optout-manual-add"),
        {"nhs_number": "943 476 5919", "kind": "type1", "reason": "letter of 3 May"},
        follow=True,
    )

    entry = ManualOptOut.objects.get()
    assert (entry.kind, entry.reason, entry.added_by_id) == ("type1", "letter of 3 May", ig.pk)
    snapshot = register.current_snapshot()
    assert snapshot is not None and snapshot.number == 1 and snapshot.type1_count == 1
    assert types_since(at) == [
        E.OPT_OUT_MANUAL_ADDED, E.OPT_OUT_SNAPSHOT_IMPORTED, E.OPT_OUT_REGISTER_VIEWED
    ]  # fmt: skip
    assert response.redirect_chain == [(reverse("optout-register"), 302)]
    assert _messages(response) == [
        "Manual entry (GP Type 1 opt-out) recorded. The register is now snapshot 1."
    ]
    assert VALID not in _html(response) and "943 476 5919" not in _html(response)


def test_withdrawing_a_manual_opt_out_makes_a_snapshot_without_it(client_for):
    world = _world()
    at = mark()

    response = client_for(world.me).post(
        reverse("optout-manual-withdraw"),
        {"nhs_number": NUMBERS[0], "kind": "type1", "reason": "asked to lift it"},
        follow=True,
    )

    entry = ManualOptOut.objects.get()
    assert entry.withdrawn_by_id == world.me.pk and entry.withdrawal_reason == "asked to lift it"
    snapshot = register.current_snapshot()
    assert snapshot is not None and snapshot.number == 2 and snapshot.type1_count == 0
    assert types_since(at)[:2] == [E.OPT_OUT_MANUAL_WITHDRAWN, E.OPT_OUT_SNAPSHOT_IMPORTED]
    assert "Manual entry (GP Type 1 opt-out) withdrawn" in _messages(response)[0]


BAD_MANUAL = {
    "invalid NHS number": (
        "optout-manual-add",
        {"nhs_number": "9434765918", "kind": "ndop", "reason": "letter"},
        "nhs_number",
        "Not a valid NHS number",
    ),
    "not digits": (
        "optout-manual-add",
        {"nhs_number": "94347x5919", "kind": "ndop", "reason": "letter"},
        "nhs_number",
        "Not a valid NHS number",
    ),
    "empty reason": (
        "optout-manual-add",
        {"nhs_number": VALID, "kind": "ndop", "reason": "   "},
        "reason",
        "This field is required.",
    ),
    "unknown kind": (
        "optout-manual-add",
        {"nhs_number": VALID, "kind": "both", "reason": "letter"},
        "kind",
        "Select a valid choice.",
    ),
    "already recorded": (
        "optout-manual-add",
        {"nhs_number": NUMBERS[0], "kind": "type1", "reason": "second letter"},
        "nhs_number",
        "Already recorded",
    ),
    "nothing to withdraw": (
        "optout-manual-withdraw",
        {"nhs_number": NUMBERS[0], "kind": "ndop", "reason": "asked"},
        "nhs_number",
        "No active manual entry of that kind.",
    ),
    "withdraw without reason": (
        "optout-manual-withdraw",
        {"nhs_number": NUMBERS[0], "kind": "type1", "reason": ""},
        "reason",
        "This field is required.",
    ),
}


@pytest.mark.parametrize(("url", "data", "field", "message"), BAD_MANUAL.values(), ids=BAD_MANUAL)
def test_a_bad_manual_entry_is_a_form_error_and_changes_nothing(
    client_for, url, data, field, message
):
    world = _world()
    before, at = _state(), mark()

    response = client_for(world.me).post(reverse(url), data)

    assert response.status_code == 200
    assert any(message in error for error in response.context["form"].errors[field])
    html = _html(response)
    assert 'class="error-summary"' in html
    assert data["nhs_number"] not in html  # not even an invalid number is echoed back
    assert _state() == before
    assert types_since(at) == []


# --- importing an NDOP file ------------------------------------------------------------
def test_importing_an_ndop_file_makes_a_snapshot_and_deletes_the_upload(client_for, var_dir):
    ig = scenarios.person(Role.IG_OFFICER)
    at = mark()

    response = client_for(ig).post(
        reverse("optout-ndop-import"),
        {"label": "NDOP, May", "ndop_file": _ndop(_lines([*NUMBERS[:12], "1234567890"]))},
        follow=True,
    )

    snapshot = register.current_snapshot()
    assert snapshot is not None
    assert (snapshot.ndop_count, snapshot.invalid_count) == (12, 1)
    assert snapshot.source_label == "NDOP, May" and len(snapshot.source_hash) == 64
    assert types_since(at) == [E.OPT_OUT_SNAPSHOT_IMPORTED, E.OPT_OUT_REGISTER_VIEWED]
    assert _messages(response) == [
        "National data opt-out file imported: the register is now snapshot 1. "
        "1 lines were not valid NHS numbers (skipped)."
    ]
    assert _uploads_left(var_dir) == []
    html = _html(response)
    assert not any(number in html for number in [*NUMBERS, "1234567890"])


def test_importing_the_same_file_again_changes_nothing(client_for, var_dir):
    ig = scenarios.person(Role.IG_OFFICER)
    client = client_for(ig)
    first = {"ndop_file": _ndop(_lines(NUMBERS[:3]))}
    client.post(reverse("optout-ndop-import"), first, follow=True)
    at = mark()

    response = client.post(
        reverse("optout-ndop-import"), {"ndop_file": _ndop(_lines(NUMBERS[:3]))}, follow=True
    )

    assert OptOutSnapshot.objects.count() == 1
    assert types_since(at) == [E.OPT_OUT_SNAPSHOT_UNCHANGED, E.OPT_OUT_REGISTER_VIEWED]
    assert _messages(response) == ["The file changes nothing: the register is still snapshot 1."]
    assert _uploads_left(var_dir) == []


BAD_FILES = {
    "over the limit": (_lines(NUMBERS[:3]), "ndop.csv is 33 bytes; the limit is 20."),
    "not UTF-8": (b"\xff\xfe\x00not text\n", "the file is not UTF-8 text"),
    "two columns": (b"9434765919,extra\n", "malformed CSV: data line 1 has 2 fields, expected 1"),
    "empty": (b"", "The submitted file is empty."),
    "blank": (b"\n\n", "the file is empty"),
    "not NHS numbers": (b"alice\nbob\n", "Only 0 of 2 lines are valid NHS numbers"),
}


@pytest.mark.parametrize(("content", "message"), BAD_FILES.values(), ids=BAD_FILES)
def test_a_bad_ndop_file_is_a_clear_form_error_and_changes_nothing(
    client_for, settings, var_dir, content, message
):
    settings.SDE_MAX_UPLOAD_BYTES = 20
    if "limit" not in message:
        settings.SDE_MAX_UPLOAD_BYTES = 10**6
    ig = scenarios.person(Role.IG_OFFICER)
    at = mark()

    response = client_for(ig).post(reverse("optout-ndop-import"), {"ndop_file": _ndop(content)})

    assert response.status_code == 200
    (error,) = response.context["form"].errors["ndop_file"]
    assert message in error
    assert 'class="error-summary"' in _html(response)
    assert not OptOutSnapshot.objects.exists()
    assert types_since(at) == []
    assert _uploads_left(var_dir) == []


def test_no_file_at_all_is_a_form_error(client_for):
    ig = scenarios.person(Role.IG_OFFICER)

    response = client_for(ig).post(reverse("optout-ndop-import"), {"label": "x"})

    assert response.status_code == 200
    assert response.context["form"].errors["ndop_file"] == ["This field is required."]


# --- proposing changes -----------------------------------------------------------------
def test_proposing_a_platform_policy_change(client_for):
    ig = scenarios.person(Role.IG_OFFICER)
    at = mark()

    response = client_for(ig).post(
        reverse("optout-policy-propose"),
        POLICY_CHANGE,
        follow=True,
    )

    change = OptOutChange.objects.get()
    assert (change.kind, change.status, change.based_on_version) == (
        OptOutChange.Kind.DECISION_TABLE, Status.PROPOSED, 1
    )  # fmt: skip
    assert change.payload["platform_policy"]["copi_reg3"]["type1"] == "not_applied"
    assert change.reason == "COPI: direct public health need"
    assert types_since(at) == [E.OPT_OUT_CHANGE_PROPOSED, E.OPT_OUT_REGISTER_VIEWED]
    assert _messages(response) == [
        "Platform policy change proposed. A second IG officer must approve it."
    ]
    assert "GP Type 1 opt-out under COPI Regulation 3: Not applied (now applied)" in _html(response)


def test_the_policy_form_offers_one_select_per_platform_policy_cell(client_for):
    ig = scenarios.person(Role.IG_OFFICER)

    response = client_for(ig).get(reverse("optout-policy-propose"))

    form = response.context["form"]
    cells = [name for name in form.fields if name.startswith("policy__")]
    assert cells == ["policy__copi_reg3__type1", "policy__not_confidential__type1"]
    assert all(form[name].value() == "applied" for name in cells)
    assert '<select name="policy__copi_reg3__type1"' in _html(response)


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (
            {"policy__copi_reg3__type1": "applied", "policy__not_confidential__type1": "applied",
             "reason": "tidy"},
            None,
            "Change at least one cell.",
        ),
        (
            {"policy__copi_reg3__type1": "not_applied",
             "policy__not_confidential__type1": "applied", "reason": ""},
            "reason",
            "This field is required.",
        ),
        (
            {"policy__copi_reg3__type1": "case_by_case",
             "policy__not_confidential__type1": "applied", "reason": "x"},
            "policy__copi_reg3__type1",
            "Select a valid choice.",
        ),
    ],
    ids=["no-change", "no-reason", "not-a-policy-value"],
)  # fmt: skip
def test_a_bad_policy_proposal_is_a_form_error(client_for, data, field, message):
    ig = scenarios.person(Role.IG_OFFICER)
    at = mark()

    response = client_for(ig).post(reverse("optout-policy-propose"), data)

    assert response.status_code == 200
    errors = response.context["form"].errors.get(field or "__all__", [])
    assert any(message in error for error in errors)
    assert not OptOutChange.objects.exists()
    assert types_since(at) == []


def test_proposing_a_project_exemption(client_for):
    ig = scenarios.person(Role.IG_OFFICER)
    at = mark()

    response = client_for(ig).post(
        reverse("optout-exemption-propose"),
        {"project_id": "12", "cag_letter_disapplies_type1": "on",
         "caldicott_type1_decision": "not_applied", "reason": "CAG letter 22/CAG/0042"},
        follow=True,
    )  # fmt: skip

    change = OptOutChange.objects.get()
    assert (change.kind, change.project_id, change.proposed_by_id) == ("exemption", 12, ig.pk)
    assert change.payload == {
        "cag_letter_disapplies_type1": True,
        "instrument_overrides_type1": False,
        "caldicott_type1_decision": "not_applied",
    }
    assert types_since(at) == [E.OPT_OUT_CHANGE_PROPOSED, E.OPT_OUT_REGISTER_VIEWED]
    assert _messages(response) == [
        "Exemption for project 12 proposed. A second IG officer must approve it."
    ]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"project_id": "0", "caldicott_type1_decision": "none", "reason": "x"}, "project_id"),
        ({"project_id": "", "caldicott_type1_decision": "none", "reason": "x"}, "project_id"),
        ({"project_id": "3", "caldicott_type1_decision": "maybe", "reason": "x"},
         "caldicott_type1_decision"),
        ({"project_id": "3", "caldicott_type1_decision": "none", "reason": " "}, "reason"),
    ],
    ids=["project-zero", "no-project", "bad-decision", "no-reason"],
)  # fmt: skip
def test_a_bad_exemption_is_a_form_error(client_for, data, field):
    ig = scenarios.person(Role.IG_OFFICER)

    response = client_for(ig).post(reverse("optout-exemption-propose"), data)

    assert response.status_code == 200
    assert response.context["form"].errors[field]
    assert not OptOutChange.objects.exists()


# --- deciding and withdrawing ----------------------------------------------------------
def _decide(client: Client, change: OptOutChange, decision: str, reason: str = "") -> Any:
    return client.post(
        reverse("optout-change-decide", args=[change.pk]),
        {"decision": decision, f"change-{change.pk}-decision_reason": reason},
        follow=True,
    )


def test_a_second_ig_officer_approves_an_exemption(client_for):
    world = _world()
    at = mark()

    response = _decide(client_for(world.me), world.theirs, "approve")

    world.theirs.refresh_from_db()
    assert world.theirs.status == Status.APPROVED and world.theirs.decided_by_id == world.me.pk
    assert types_since(at) == [E.OPT_OUT_EXEMPTION_APPROVED, E.OPT_OUT_REGISTER_VIEWED]
    assert _messages(response) == ["The exemption for project 5 is approved."]
    assert optout_changes.exemption_for(5) == world.theirs


def test_approving_a_policy_change_makes_the_next_table_version(client_for):
    proposer, decider = scenarios.person(Role.IG_OFFICER), scenarios.person(Role.IG_OFFICER)
    client_for(proposer).post(reverse("optout-policy-propose"), POLICY_CHANGE)
    change = OptOutChange.objects.get()
    at = mark()

    response = _decide(client_for(decider), change, "approve")

    assert types_since(at) == [E.OPT_OUT_POLICY_CHANGED, E.OPT_OUT_REGISTER_VIEWED]
    assert _messages(response) == [
        "The platform policy change is approved: the decision table is now version 2."
    ]
    html = _html(response)
    assert "Decision table, version 2" in html
    assert "Not applied (platform policy)" in html
    assert optout_changes.current_decision_table().version == 2


def test_rejecting_needs_a_reason_shown_on_the_form(client_for):
    world = _world()
    at = mark()

    response = _decide(client_for(world.me), world.theirs, "reject", reason="")

    assert response.status_code == 200
    assert response.context["form"].errors["decision_reason"] == ["Give the reason."]
    assert 'class="error-summary"' in _html(response)
    world.theirs.refresh_from_db()
    assert world.theirs.status == Status.PROPOSED
    assert types_since(at) == []


def test_rejecting_with_a_reason(client_for):
    world = _world()
    at = mark()

    response = _decide(client_for(world.me), world.theirs, "reject", reason="no instrument seen")

    world.theirs.refresh_from_db()
    assert world.theirs.status == Status.REJECTED
    assert world.theirs.decision_reason == "no instrument seen"
    assert types_since(at) == [E.OPT_OUT_CHANGE_REJECTED, E.OPT_OUT_REGISTER_VIEWED]
    assert _messages(response) == ["The exemption for project 5 is rejected."]
    assert "no instrument seen" in _html(response)  # in the decided changes


def test_a_decision_without_approve_or_reject_is_a_form_error(client_for):
    world = _world()

    response = _decide(client_for(world.me), world.theirs, "maybe")

    assert response.status_code == 200
    assert "Choose Approve or Reject." in _html(response)
    world.theirs.refresh_from_db()
    assert world.theirs.status == Status.PROPOSED


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_the_proposer_cannot_decide_their_own_change(client_for, decision):
    world = _world()
    at = mark()

    response = _decide(client_for(world.me), world.mine, decision, reason="mine")

    assert response.status_code == 403
    world.mine.refresh_from_db()
    assert world.mine.status == Status.PROPOSED
    assert types_since(at) == []


def test_deciding_twice_is_a_409(client_for):
    world = _world()
    third = scenarios.person(Role.IG_OFFICER)
    _decide(client_for(world.me), world.theirs, "approve")
    at = mark()

    again = _decide(client_for(third), world.theirs, "reject", reason="too late")

    assert again.status_code == 409
    world.theirs.refresh_from_db()
    assert world.theirs.status == Status.APPROVED
    assert types_since(at) == []


def test_the_proposer_withdraws_their_change(client_for):
    world = _world()
    at = mark()

    response = client_for(world.me).post(
        reverse("optout-change-withdraw", args=[world.mine.pk]), follow=True
    )

    world.mine.refresh_from_db()
    assert world.mine.status == Status.WITHDRAWN
    assert types_since(at) == [E.OPT_OUT_CHANGE_WITHDRAWN, E.OPT_OUT_REGISTER_VIEWED]
    assert _messages(response) == ["The exemption for project 4 is withdrawn."]


def test_only_the_proposer_may_withdraw_and_only_once(client_for):
    world = _world()
    client = client_for(world.me)

    theirs = client.post(reverse("optout-change-withdraw", args=[world.theirs.pk]))
    client.post(reverse("optout-change-withdraw", args=[world.mine.pk]))
    again = client.post(reverse("optout-change-withdraw", args=[world.mine.pk]))

    assert theirs.status_code == 403
    assert again.status_code == 409
    world.theirs.refresh_from_db()
    assert world.theirs.status == Status.PROPOSED


def test_the_change_page_shows_the_decision_buttons_only_to_a_second_officer(client_for):
    world = _world()
    client = client_for(world.me)

    theirs = _html(client.get(reverse("optout-change", args=[world.theirs.pk])))
    mine = _html(client.get(reverse("optout-change", args=[world.mine.pk])))

    assert 'value="approve"' in theirs and 'value="reject"' in theirs
    assert 'value="approve"' not in mine
    assert reverse("optout-change-withdraw", args=[world.mine.pk]) in mine


# --- nav and dashboard -----------------------------------------------------------------
@pytest.mark.parametrize("role", list(Role), ids=[r.value for r in Role])
def test_only_ig_sees_the_register_in_the_nav_and_on_the_dashboard(client_for, role):
    person = scenarios.person(role)

    html = _html(client_for(person).get(reverse("dashboard")))

    shown = reverse("optout-register") in html
    assert shown == (role == Role.IG_OFFICER)
    assert ("Opt-out register" in html) == shown


def test_the_ig_dashboard_card_counts_pending_changes(client_for):
    world = _world()

    response = client_for(world.me).get(reverse("dashboard"))

    (card,) = [c for c in response.context["cards"] if c.title == "Opt-out register"]
    assert card.count == 2
    assert "1 of them can be decided by you." in card.lines
    assert card.link_url == reverse("optout-register")
    assert card.tone == "warning"


# --- nothing identifying on any page ----------------------------------------------------
def _ingested(tmp_path: Path, custodian: User) -> None:
    config = synth.SynthConfig(faults=synth.FaultRates.none())
    drop = synth.generate(
        patients=300, seed=2, config=config, tables=["patients", "gp_events", "ndop"]
    )
    synth.write_drop(drop, tmp_path / "drop")
    run_ingest(ingest=request_ingest(drop_dir=tmp_path / "drop", by=custodian, enqueue=False),
               by=custodian)  # fmt: skip


def test_no_nhs_number_or_pseudonym_appears_on_any_register_page(tmp_path, client_for, custodian):
    _ingested(tmp_path, custodian)
    drop_numbers = set((tmp_path / "drop" / "ndop.csv").read_text().split())
    world = _world()
    client = client_for(world.me)
    client.post(reverse("optout-manual-add"), PAGES["manual-add"].post(world))
    scope = ExtractScope.from_json({
        "project_id": 3, "datasets": {"patients": ["person_id", "sex"]},
        "purpose": "research", "legal_basis": "s251_standard",
    })  # fmt: skip
    extract = build_extract(scope=scope, by=custodian)
    secrets = {*drop_numbers, *NUMBERS, VALID}
    secrets |= set(register.snapshot_entries(register.current_snapshot())["person_id"])
    secrets |= set(ManualOptOut.objects.values_list("system_pseudonym", flat=True))
    assert len(secrets) > 20

    pages = {
        name: client.get(spec.url(world)) for name, spec in PAGES.items() if "get" in spec.methods
    }
    pages["dashboard"] = client.get(reverse("dashboard"))

    for name, response in pages.items():
        html = _html(response)
        assert response.status_code == 200, name
        leaked = [s for s in secrets if s in html]
        assert not leaked, (name, leaked[:3])
    overview = _html(pages["overview"])
    assert f"<td>{extract.project_id}</td>" in overview
    assert "patients v1" in overview
    assert extract.people_removed > 0
    assert register.suppressed(extract.people_removed) in overview


def test_the_upload_is_deleted_even_when_the_import_fails_unexpectedly(
    client_for, monkeypatch, var_dir
):
    ig = scenarios.person(Role.IG_OFFICER)
    seen: list[Path] = []

    def broken(*, path: Path, by: User, label: str) -> OptOutSnapshot:
        seen.append(path)
        assert path.read_bytes() == _lines(NUMBERS[:3])
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(register, "import_ndop_file", broken)

    with pytest.raises(RuntimeError, match="disk on fire"):
        client_for(ig).post(
            reverse("optout-ndop-import"), {"ndop_file": _ndop(_lines(NUMBERS[:3]))}
        )

    assert seen and seen[0].is_relative_to(var_dir / "uploads")
    assert _uploads_left(var_dir) == []
