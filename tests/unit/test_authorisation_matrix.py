"""The authorisation matrix (issue 8): every URL pattern the resolver knows, pages and API
alike, visited as every actor (tests/authz_world.py), with the answer each must get.

``RULES`` says, for every URL name, who may use it: through the policy function the view
itself consults where there is one (called with the actor and the world's object), or an
explicit set of actors with the reason. A check raises NotFound (the actor may not see the
object: 404, "denied means invisible"), PermissionDenied (they see it but may not act:
403), returns None (allowed: the page's own success status), or returns the status the
code deliberately gives instead (a redirect, say). A URL without a rule fails
``test_every_url_has_a_rule``.

Every URL is fetched with GET as every actor. Every URL that takes a write (POST for the
pages; the API view's own unsafe methods) gets that write, with an empty body, from every
actor who may not make it, and must refuse it and change nothing: not the audit log, not
the world's objects. Nobody allowed writes here (side effects)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.test import Client
from django.urls import URLResolver, get_resolver, reverse
from django.urls.resolvers import RoutePattern
from django.utils import timezone

from access_requests import services as applications
from access_requests.models import AccessRequest, Attachment, Comment
from outputs.models import ReleaseFile, ReleaseRequest, Review
from sde import policy
from sde.analysis import services as analysis_services
from sde.analysis.models import Cohort, Job, Script
from sde.data.models import Ingest, OptOutChange
from sde.directcare import services as directcare_services
from sde.directcare.models import ReidentificationRequest
from sde.exceptions import NotFound, PermissionDenied
from sde.identity.models import ApiToken, Organisation, OrganisationMembership, User
from sde.identity.roles import Capability, Role
from sde.projects.models import Project, ProjectMembership
from tests import authz_world
from tests.conftest import private_settings, session_client, verified_client
from tests.events import mark
from tests.shared_db import shared_rows

pytestmark = pytest.mark.django_db

# --- The URLs ---------------------------------------------------------------------------
# The object a path parameter names. ``pk`` names a different object under each prefix.
PK_BY_PREFIX = (
    ("/api/v1/projects/", "project"), ("/projects/", "project"),
    ("/api/v1/access-requests/", "application"), ("/applications/", "application"),
    ("/api/v1/releases/", "release"), ("/api/v1/reviews/", "review"),
    ("/api/v1/people/", "person"), ("/people/", "person"), ("/organisations/", "organisation"),
    ("/api/v1/ingests/", "ingest"), ("/data/ingests/", "ingest"),
    ("/api/v1/optouts/changes/", "change"), ("/data/optouts/changes/", "change"),
    ("/direct-care/cohorts/", "cohort"), ("/api/v1/direct-care/requests/", "reid"),
    ("/direct-care/requests/", "reid"), ("/account/tokens/", "token"),
    ("/api/v1/organisations/", "organisation"), ("/api/v1/tokens/", "token"),
)  # fmt: skip
PARAMETERS = {
    "job_id": "job", "output_id": "output", "script_id": "script", "name": "analysis",
    "release_id": "release", "file_id": "release_file", "user_id": "person",
    "user_pk": "person", "sequence": "sequence", "role": "role",
    "membership_pk": "membership", "slug": "dataset", "number": "project",
    "project_id": "project", "attachment_pk": "attachment", "section": "section",
}  # fmt: skip
UNSAFE = ("post", "put", "patch", "delete")


@dataclass(frozen=True)
class Url:
    name: str
    route: str  # "/projects/<int:pk>/"
    callback: Any

    @property
    def api(self) -> bool:
        return self.route.startswith("/api/")

    @property
    def public(self) -> bool:
        return bool(getattr(self.callback, "sde_public", False))

    def kinds(self) -> dict[str, str]:
        """Each path parameter and the kind of object it names (KeyError: teach the
        tables above what a new parameter names)."""
        found = {}
        for parameter in re.findall(r"<(?:\w+:)?(\w+)>", self.route):
            if parameter == "pk":
                found[parameter] = next(k for p, k in PK_BY_PREFIX if self.route.startswith(p))
            else:
                found[parameter] = PARAMETERS[parameter]
        return found

    def path(self, ids: dict[str, Any]) -> str:
        kinds = self.kinds()
        return re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(ids[kinds[m[1]]]), self.route)

    def api_writes(self) -> tuple[str, ...]:
        view = getattr(self.callback, "view_class", None)
        return tuple(m for m in UNSAFE if view is not None and hasattr(view, m))

    def __str__(self) -> str:
        return self.name


def _walk(resolver: URLResolver, prefix: str = "/") -> Iterator[Url]:
    for entry in resolver.url_patterns:
        if not isinstance(entry.pattern, RoutePattern):
            raise TypeError(f"the matrix cannot fill {entry.pattern!r}: teach it regex patterns")
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from _walk(entry, route)
        else:
            yield Url(entry.name or route, route, entry.callback)


URLS = {url.name: url for url in _walk(get_resolver())}


# --- The world's objects, as a check sees them ------------------------------------------
class Objects:
    """The world's objects, fetched fresh in each test when a check first asks."""

    def __init__(self, world: authz_world.World) -> None:
        self.ids = world.ids

    @cached_property
    def project(self) -> Project:
        return Project.objects.get(pk=self.ids["project"])

    @cached_property
    def release(self) -> ReleaseRequest:
        return ReleaseRequest.objects.get(pk=self.ids["release"])

    @cached_property
    def application(self) -> AccessRequest:
        return AccessRequest.objects.get(pk=self.ids["application"])

    @cached_property
    def reid(self) -> ReidentificationRequest:
        return ReidentificationRequest.objects.get(pk=self.ids["reid"])

    @cached_property
    def cohort(self) -> Cohort:
        return Cohort.objects.get(pk=self.ids["cohort"])

    @cached_property
    def change(self) -> OptOutChange:
        return OptOutChange.objects.get(pk=self.ids["change"])

    @cached_property
    def person(self) -> User:
        return User.objects.get(pk=self.ids["person"])

    @cached_property
    def job(self) -> Job:
        return Job.objects.get(pk=self.ids["job"])

    @cached_property
    def token(self) -> ApiToken:
        return ApiToken.objects.get(pk=self.ids["token"])


@dataclass(frozen=True)
class Actor:
    name: str
    user: User


Check = Callable[[Actor, Objects], "int | None"]


@dataclass(frozen=True)
class Rule:
    """Who may use a URL. ``see``: the GET (``ok`` is its status when allowed: 405 for a
    URL that takes only writes). ``write``: the POST (or the API view's unsafe methods);
    None for a URL that takes none. ``why``: the reason, where the rule is not simply the
    policy function it calls."""

    see: Check
    write: Check | None = None
    ok: int = 200
    why: str = ""


def expect(check: Check, actor: Actor, objects: Objects, ok: int) -> int:
    try:
        status = check(actor, objects)
    except NotFound:
        return 404
    except PermissionDenied:
        return 403
    return ok if status is None else status


# --- Building blocks of the rules -------------------------------------------------------
def anyone(actor: Actor, o: Objects) -> None:
    """Every signed-in person."""


def only(*names: str, denied: type[Exception] = NotFound) -> Check:
    """The named actors; everyone else gets ``denied``."""

    def check(actor: Actor, o: Objects) -> None:
        if actor.name not in names:
            raise denied(f"not for {actor.name}")

    return check


def capability(wanted: Capability, denied: type[Exception] = PermissionDenied) -> Check:
    def check(actor: Actor, o: Objects) -> None:
        if not policy.has_capability(actor.user, wanted):
            raise denied(f"needs {wanted}")

    return check


def both(*checks: Check) -> Check:
    """Each in turn: the first refusal stands (visibility first, as the views check)."""

    def check(actor: Actor, o: Objects) -> int | None:
        result = None
        for one in checks:
            result = one(actor, o) or result
        return result

    return check


def status(code: int, check: Check = anyone) -> Check:
    """Allowed by ``check``, with ``code`` instead of the URL's usual success."""

    def answer(actor: Actor, o: Objects) -> int:
        check(actor, o)
        return code

    return answer


def view_project(a: Actor, o: Objects) -> None:
    policy.check_view_project(a.user, o.project)


def use_project_data(a: Actor, o: Objects) -> None:
    policy.check_use_project_data(a.user, o.project, today=timezone.localdate())


def manage_project(a: Actor, o: Objects) -> None:
    policy.check_manage_project(a.user, o.project)


def job_owner(a: Actor, o: Objects) -> None:
    # cancel_job / rerun_job: the project's viewer who started the job
    policy.check_view_project(a.user, o.project)
    if o.job.requested_by_id != a.user.pk:
        raise PermissionDenied("only the person who started a job")


def view_release(a: Actor, o: Objects) -> None:
    policy.check_view_release_request(a.user, o.release)


def release_author(a: Actor, o: Objects) -> None:
    policy.check_release_author(a.user, o.release, today=timezone.localdate())


def request_release(a: Actor, o: Objects) -> None:
    policy.check_request_release(a.user, o.project, today=timezone.localdate())


def download_release(a: Actor, o: Objects) -> None:
    policy.check_download_release(a.user, o.release)


def revoke_release(a: Actor, o: Objects) -> None:
    policy.check_revoke_release(a.user, o.release)


def review_release(a: Actor, o: Objects) -> None:
    policy.check_review_release(a.user, o.release)


def checker(a: Actor, o: Objects) -> None:
    """The output checkers' pages and API: 404 for everyone else."""
    if not policy.user_checks_outputs(a.user):
        raise NotFound("the output checkers' pages")


def view_application(a: Actor, o: Objects) -> None:
    policy.check_view_access_request(a.user, o.application)


def applicant(a: Actor, o: Objects) -> None:
    policy.check_applicant(a.user, o.application)


def reviewer(a: Actor, o: Objects) -> None:
    applications.check_reviewer(a.user, o.application)


def public_interest(a: Actor, o: Objects) -> None:
    conflict = applications.conflict_of(a.user, o.application)
    policy.check_sign_off_public_interest(a.user, o.application, conflict=conflict)


def reviews_or_signs_off(a: Actor, o: Objects) -> None:
    if not (
        policy.user_reviews_access_requests(a.user) or policy.user_signs_off_public_interest(a.user)
    ):
        raise NotFound("the review pages")


def commenter(a: Actor, o: Objects) -> None:
    # add_comment: an independent reviewer, or the applicant
    policy.check_view_access_request(a.user, o.application)
    if policy.user_reviews_access_requests(a.user) and not applications.conflict_of(
        a.user, o.application
    ):
        return
    policy.check_applicant(a.user, o.application)


def applies(a: Actor, o: Objects) -> None:
    policy.check_apply_for_access(a.user)


def project_change(a: Actor, o: Objects) -> None:
    # start_change: a member of the project who applies for access
    policy.check_view_project(a.user, o.project)
    policy.check_apply_for_access(a.user)
    if not o.project.memberships.filter(user=a.user, removed_at__isnull=True).exists():
        raise PermissionDenied("only a member applies for a change")


def application_list(a: Actor, o: Objects) -> int | None:
    """Reviewers are sent on to their queue; applicants see their own; nobody else."""
    if policy.user_reviews_access_requests(a.user) or policy.user_signs_off_public_interest(a.user):
        return 302
    policy.check_apply_for_access(a.user)  # PermissionDenied, shown as 404 below
    return None


def as_404(check: Check) -> Check:
    """``check``, with a refusal shown as 404 (the page is not there for them)."""

    def answer(actor: Actor, o: Objects) -> int | None:
        try:
            return check(actor, o)
        except PermissionDenied as error:
            raise NotFound(str(error)) from error

    return answer


def redirect_reviewers(check: Check) -> Check:
    """``check``; a reviewer who passes it is sent to the review page."""

    def answer(actor: Actor, o: Objects) -> int | None:
        check(actor, o)
        if policy.user_reviews_access_requests(actor.user) or (
            policy.user_signs_off_public_interest(actor.user)
        ):
            return 302
        return None

    return answer


def list_people(a: Actor, o: Objects) -> None:
    if not policy.visible_people_for(a.user).filter(pk=o.person.pk).exists():
        raise NotFound("no such person")


def grant_role(a: Actor, o: Objects) -> None:
    policy.check_grant_role(a.user, o.person)


def record_accreditation(a: Actor, o: Objects) -> None:
    policy.check_record_accreditation(a.user, o.person)


def suspend_person(a: Actor, o: Objects) -> None:
    policy.check_suspend_person(a.user, o.person)


def manage_account(a: Actor, o: Objects) -> None:
    policy.check_manage_accounts(a.user, o.person)


def manage_organisations(a: Actor, o: Objects) -> None:
    policy.check_manage_organisations(a.user)


def read_audit(a: Actor, o: Objects) -> None:
    policy.check_read_audit_log(a.user)


def manage_datasets(a: Actor, o: Objects) -> None:
    policy.check_manage_datasets(a.user)


def manage_optouts(a: Actor, o: Objects) -> None:
    policy.check_manage_optouts(a.user)


def decide_change(a: Actor, o: Objects) -> None:
    policy.check_decide_optout_change(a.user, o.change)


def withdraw_change(a: Actor, o: Objects) -> None:
    policy.check_withdraw_optout_change(a.user, o.change)


def token_owner(a: Actor, o: Objects) -> None:
    policy.check_manage_api_token(a.user, o.token.user)


def direct_care(a: Actor, o: Objects) -> None:
    """Clinicians, and the people who sign their requests off; 404 for everyone else."""
    if not (
        policy.user_requests_reidentification(a.user)
        or policy.reidentification_sign_off_roles(a.user)
    ):
        raise NotFound("the direct care pages")


def see_cohort(a: Actor, o: Objects) -> None:
    cohorts = Cohort.objects.filter(pk=o.cohort.pk)
    if not policy.visible_cohorts_for_reidentification(a.user, cohorts).exists():
        raise NotFound("no such cohort")


def view_reid(a: Actor, o: Objects) -> None:
    policy.check_view_reidentification_request(a.user, o.reid)


def sign_off_reid(a: Actor, o: Objects) -> None:
    policy.check_sign_off_reidentification(a.user, o.reid, "ig")  # the body's role (below)


def withdraw_reid(a: Actor, o: Objects) -> None:
    policy.check_withdraw_reidentification(a.user, o.reid)


def reid_list(a: Actor, o: Objects) -> None:
    policy.check_obtain_reidentified_list(a.user, o.reid)


def reviewer_of_review(a: Actor, o: Objects) -> None:
    """A review round is its reviewer's alone (their decisions in progress)."""
    review = Review.objects.get(pk=o.ids["review"])
    if review.reviewer_id != a.user.pk:
        raise NotFound("no such review")


def content_for_checkers(a: Actor, o: Objects) -> None:
    """The file's full content is for the checkers judging it: others who see the request
    get 403 (they see its findings, and members have the file in the workspace)."""
    policy.check_view_release_request(a.user, o.release)
    if not policy.user_checks_outputs(a.user):
        raise PermissionDenied("for output checkers")


def optout_change_api(a: Actor, o: Objects) -> None:
    policy.check_manage_optouts(a.user)


SIGNED_IN_302 = status(302)  # a signed-in person is sent on (sign-in, MFA steps, home)
WRITE_ONLY = 405  # ``ok`` for a URL that takes only writes: GET is the wrong method


# --- The rules --------------------------------------------------------------------------
def _project_writes(**writes: Check) -> dict[str, Rule]:
    """Project pages that take only a POST: the project is looked up first (404), then
    the method (405), then the service's check."""
    return {
        name: Rule(view_project, both(view_project, check), ok=WRITE_ONLY)
        for name, check in writes.items()
    }


def _every_405(**writes: Check) -> dict[str, Rule]:
    """URLs that refuse GET before looking anything up (require_POST, an API view with no
    GET): 405 for everyone signed in."""
    return {name: Rule(anyone, check, ok=WRITE_ONLY) for name, check in writes.items()}


RULES: dict[str, Rule] = {
    # Public, and the sign-in steps
    "healthz": Rule(anyone, why="public: the load balancer's check"),
    "favicon": Rule(anyone, ok=204, why="public: no icon, no error"),
    "register": Rule(anyone, why="public transparency register"),
    "register-entry": Rule(anyone, why="public: the project is on the register"),
    "register-json": Rule(anyone, why="public transparency register"),
    "register-csv": Rule(anyone, why="public transparency register"),
    "login": Rule(SIGNED_IN_302, why="public; a signed-in person is sent on"),
    "home": Rule(SIGNED_IN_302, why="sends everyone to their dashboard"),
    "logout": Rule(anyone, write=None, ok=WRITE_ONLY, why="signing out is a POST"),
    "mfa-enrol": Rule(SIGNED_IN_302, why="MFA done: sent on"),
    "mfa-verify": Rule(SIGNED_IN_302, why="MFA done: sent on"),
    "mfa-recovery-codes": Rule(SIGNED_IN_302, why="shown once after enrolment: sent on"),
    # Everyone signed in
    "dashboard": Rule(anyone),
    "account": Rule(anyone, why="their own account"),
    "password-change": Rule(anyone, why="their own password"),
    **_every_405(**{"recovery-codes-regenerate": anyone, "token-create": anyone}),
    "token-revoke": Rule(anyone, token_owner, ok=WRITE_ONLY),
    "catalogue": Rule(anyone, why="metadata, never rows (user_can_read_catalogue)"),
    "dataset-detail": Rule(anyone, why="metadata, never rows"),
    "organisation-list": Rule(anyone, manage_organisations, why="directory information"),
    "organisation-detail": Rule(anyone, why="directory information"),
    **_every_405(
        **{
            "organisation-add-member": manage_organisations,
            "organisation-remove-member": manage_organisations,
        }
    ),
    "projects": Rule(anyone, why="each sees only their visible_projects_for"),
    # People
    "people-list": Rule(anyone, why="visible_people_for: themselves, or everyone for admin/IG"),
    "person-create": Rule(
        capability(Capability.MANAGE_ACCOUNTS),
        manage_account,
        why="403: the page's existence is no secret",
    ),
    "person-detail": Rule(list_people),
    **_every_405(
        **{
            # the person is looked up among those the actor may see first (404)
            "person-grant-role": both(list_people, grant_role),
            "person-remove-role": both(list_people, grant_role),
            "person-record-accreditation": both(list_people, record_accreditation),
            "person-suspend": both(list_people, suspend_person),
            "person-reinstate": both(list_people, suspend_person),
            "person-unlock": both(list_people, manage_account),
            "person-reset-mfa": both(list_people, manage_account),
        }
    ),
    # Audit: IG's alone, 403 (the log's existence is no secret)
    "audit-log": Rule(read_audit),
    "audit-export": Rule(read_audit),
    "audit-event": Rule(read_audit),
    # Data custodians: 403 (ingestion's existence is no secret)
    "ingest-list": Rule(manage_datasets, manage_datasets),
    "ingest-detail": Rule(manage_datasets),
    "ingest-status": Rule(manage_datasets),
    "ingest-quarantine": Rule(
        both(manage_datasets, status(404)), why="a clean drop quarantines nothing: no report"
    ),
    # The opt-out register: IG officers, 404 for everyone else
    "optout-register": Rule(manage_optouts),
    **{
        name: Rule(manage_optouts, manage_optouts)
        for name in (
            "optout-manual-add",
            "optout-manual-withdraw",
            "optout-ndop-import",
            "optout-policy-propose",
            "optout-exemption-propose",
        )
    },
    "optout-change": Rule(manage_optouts),
    "optout-change-decide": Rule(manage_optouts, decide_change, ok=WRITE_ONLY),
    "optout-change-withdraw": Rule(manage_optouts, withdraw_change, ok=WRITE_ONLY),
    # Projects and the workspace: members and IG, 404 for everyone else
    "project-detail": Rule(view_project),
    "project-workspace": Rule(view_project),
    "job-detail": Rule(view_project),
    "job-status": Rule(view_project),
    "job-log": Rule(view_project, why="a dummy run: its log is shown to who sees the project"),
    "job-output": Rule(view_project, why="a dummy run: its outputs are shown"),
    **_project_writes(
        **{
            "run-analysis": use_project_data,
            "save-script": use_project_data,
            "run-script": use_project_data,
            "job-cancel": job_owner,
            "job-rerun": use_project_data,
            "project-suspend": manage_project,
            "project-resume": manage_project,
            "project-revoke": manage_project,
            "project-close": manage_project,
            "project-member-add": manage_project,
            "project-member-remove": manage_project,
            "project-compliance-dates": manage_project,
            "release-create": request_release,
            "release-add-file": both(view_release, release_author),
            "release-remove-file": both(view_release, release_author),
            # the world's file has no failing rule to ask an exception for: 404 for all
            # (the author check is in tests/unit/outputs/test_pages.py)
            "release-exception": as_404(both(view_release, release_author)),
            "release-submit": both(view_release, release_author),
            "release-withdraw": both(view_release, release_author),
            "release-revoke": both(view_release, revoke_release),
        }
    ),
    "release-list": Rule(view_project),
    "release-detail": Rule(both(view_project, view_release)),
    "release-download": Rule(both(view_project, download_release)),
    "release-download-all": Rule(both(view_project, download_release)),
    # Output checking: output checkers, 404 for everyone else
    "output-queue": Rule(checker),
    "output-review": Rule(both(checker, view_release)),
    "output-chart": Rule(both(checker, view_release)),
    "output-start-review": Rule(
        both(checker, view_release), both(checker, review_release), ok=WRITE_ONLY
    ),
    "output-decide": Rule(
        both(checker, view_release), both(checker, review_release), ok=WRITE_ONLY
    ),
    "output-submit-review": Rule(
        both(checker, view_release), both(checker, review_release), ok=WRITE_ONLY
    ),
    # Access requests: the applicant, and IG and the Caldicott Guardian once submitted
    "applications": Rule(as_404(application_list)),
    "application-new": Rule(as_404(applies), as_404(applies)),
    "review-queue": Rule(reviews_or_signs_off),
    "application-change": Rule(anyone, project_change, ok=WRITE_ONLY),
    "application": Rule(redirect_reviewers(view_application)),
    "application-review": Rule(both(view_application, reviews_or_signs_off)),
    **_every_405(
        **{
            # the review pages are IG's and the Caldicott Guardian's (404), then the
            # request must be visible to them (404), then the service's check
            "application-start-review": both(reviews_or_signs_off, view_application, reviewer),
            "application-assign": both(reviews_or_signs_off, view_application, reviewer),
            "application-approve": both(reviews_or_signs_off, view_application, reviewer),
            "application-return": both(reviews_or_signs_off, view_application, reviewer),
            "application-reject": both(reviews_or_signs_off, view_application, reviewer),
            "application-sign-off": both(reviews_or_signs_off, view_application, public_interest),
            "application-comment": commenter,
            "application-attachment-redact": reviewer,
            "application-autosave": applicant,
        }
    ),
    "application-attachments": Rule(applicant, applicant),
    "application-attachment": Rule(view_application),
    "application-submit": Rule(applicant, applicant),
    "application-withdraw": Rule(applicant, applicant),
    "application-section": Rule(applicant, applicant),
    # Direct care: clinicians, IG and the Caldicott Guardian, 404 for everyone else
    "direct-care": Rule(direct_care),
    "direct-care-request-new": Rule(
        see_cohort,
        see_cohort,
        why="any clinician may open the form; the practice is "
        "checked on the choice (an empty form is a 400)",
    ),
    "direct-care-request": Rule(view_reid),
    "direct-care-sign-off": Rule(view_reid, sign_off_reid, ok=WRITE_ONLY),
    "direct-care-withdraw": Rule(view_reid, withdraw_reid, ok=WRITE_ONLY),
    "direct-care-list": Rule(reid_list),
    "direct-care-list-csv": Rule(reid_list),
    # The API
    "api-schema": Rule(anyone),
    "api-me": Rule(anyone),
    "api-analyses": Rule(anyone, why="the built-in analyses' descriptions"),
    "api-audit-events": Rule(read_audit),
    "api-audit-event": Rule(read_audit),
    "api-people": Rule(
        anyone, capability(Capability.MANAGE_ACCOUNTS), why="visible_people_for; creating: 403"
    ),
    **_every_405(
        **{
            "api-person-roles": both(list_people, grant_role),
            "api-person-role": both(list_people, grant_role),
        }
    ),
    **_every_405(
        **{
            "api-person-accreditations": both(list_people, record_accreditation),
            "api-person-suspend": both(list_people, suspend_person),
            "api-person-reinstate": both(list_people, suspend_person),
            "api-person-unlock": both(list_people, manage_account),
            "api-person-reset-mfa": both(list_people, manage_account),
            "api-organisation-members": manage_organisations,
            "api-organisation-member": manage_organisations,
        }
    ),
    "api-organisations": Rule(anyone, manage_organisations, why="directory information"),
    "api-organisation": Rule(anyone, why="directory information"),
    "api-tokens": Rule(anyone, why="each lists their own tokens"),
    "api-token": Rule(anyone, token_owner, ok=WRITE_ONLY, why="revoking one's own token"),
    "api-datasets": Rule(anyone),
    "api-dataset": Rule(anyone),
    "api-ingests": Rule(manage_datasets, manage_datasets),
    "api-ingest": Rule(manage_datasets),
    "api-ingest-quarantine": Rule(
        both(manage_datasets, status(404)), why="a clean drop quarantines nothing: no report"
    ),
    "api-optouts": Rule(manage_optouts),
    **{
        name: Rule(manage_optouts, manage_optouts, ok=WRITE_ONLY)
        for name in (
            "api-optout-manual",
            "api-optout-manual-withdraw",
            "api-optout-ndop",
            "api-optout-policy",
            "api-optout-exemption",
        )
    },
    "api-optout-change": Rule(manage_optouts),
    "api-optout-change-approve": Rule(manage_optouts, decide_change, ok=WRITE_ONLY),
    "api-optout-change-reject": Rule(manage_optouts, decide_change, ok=WRITE_ONLY),
    "api-optout-change-withdraw": Rule(manage_optouts, withdraw_change, ok=WRITE_ONLY),
    "api-projects": Rule(anyone, why="visible_projects_for"),
    "api-project": Rule(view_project),
    **_every_405(
        **{
            "api-project-suspend": manage_project,
            "api-project-resume": manage_project,
            "api-project-revoke": manage_project,
            "api-project-close": manage_project,
            "api-project-members": manage_project,
            "api-project-member": manage_project,
            "api-project-compliance": manage_project,
            "api-project-changes": project_change,
        }
    ),
    "api-project-jobs": Rule(view_project, use_project_data),
    "api-project-job": Rule(view_project),
    "api-project-job-cancel": Rule(view_project, job_owner, ok=WRITE_ONLY),
    "api-project-job-rerun": Rule(view_project, use_project_data, ok=WRITE_ONLY),
    "api-project-job-log": Rule(view_project, why="a dummy run's log"),
    "api-project-job-output": Rule(view_project, why="a dummy run's output"),
    "api-project-scripts": Rule(view_project, use_project_data),
    "api-project-cohorts": Rule(view_project),
    "api-direct-care-cohorts": Rule(direct_care),
    "api-direct-care-requests": Rule(
        direct_care, as_404(capability(Capability.REQUEST_REIDENTIFICATION))
    ),
    "api-direct-care-request": Rule(view_reid),
    "api-direct-care-sign-off": Rule(view_reid, sign_off_reid, ok=WRITE_ONLY),
    "api-direct-care-withdraw": Rule(view_reid, withdraw_reid, ok=WRITE_ONLY),
    "api-direct-care-list": Rule(reid_list),
    "api-direct-care-list-csv": Rule(reid_list),
    "api-access-requests": Rule(anyone, applies, why="each sees visible_access_requests"),
    "api-access-request-review-queue": Rule(reviews_or_signs_off),
    "api-access-request": Rule(view_application, applicant),
    **_every_405(
        **{
            "api-access-request-submit": applicant,
            "api-access-request-withdraw": applicant,
            "api-access-request-attachment-redact": reviewer,
            "api-access-request-start": reviewer,
            "api-access-request-approve": reviewer,
            "api-access-request-return": reviewer,
            "api-access-request-reject": reviewer,
            "api-access-request-assign": reviewer,
            "api-access-request-sign-off": public_interest,
        }
    ),
    "api-access-request-comments": Rule(view_application, commenter),
    "api-access-request-attachments": Rule(view_application, applicant),
    "api-access-request-attachment": Rule(view_application),
    "api-releases": Rule(anyone, why="each sees visible_release_requests"),
    "api-project-releases": Rule(view_project, request_release),
    "api-release": Rule(view_release),
    "api-release-submit": Rule(view_release, release_author, ok=WRITE_ONLY),
    "api-release-withdraw": Rule(view_release, release_author, ok=WRITE_ONLY),
    "api-release-revoke": Rule(view_release, revoke_release, ok=WRITE_ONLY),
    "api-release-results": Rule(view_release),
    "api-release-download-all": Rule(download_release),
    "api-release-files": Rule(view_release, release_author, ok=WRITE_ONLY),
    "api-release-file": Rule(view_release, release_author),
    "api-release-file-exceptions": Rule(view_release, release_author, ok=WRITE_ONLY),
    "api-release-file-download": Rule(download_release),
    "api-release-file-content": Rule(content_for_checkers),
    "api-output-queue": Rule(checker),
    "api-release-reviews": Rule(view_release, review_release, ok=WRITE_ONLY),
    "api-review": Rule(reviewer_of_review),
    "api-review-decision": Rule(reviewer_of_review, reviewer_of_review, ok=WRITE_ONLY),
    "api-review-submit": Rule(reviewer_of_review, reviewer_of_review, ok=WRITE_ONLY),
}

# Valid bodies for the writes whose forms are checked before the permission: an empty
# body would be refused as invalid (a 400, or the page again with the form's error)
# without the check that matters being reached. A callable gets the world's ids.
Body = dict[str, Any] | Callable[[authz_world.World], dict[str, Any]]
REASON = "authorisation matrix"


def _practice() -> int:
    return Organisation.objects.get(ods_code="Y99001").pk


BODIES: dict[str, Body] = {
    "direct-care-sign-off": {"role": "ig", "ig-outcome": "approve"},
    "api-direct-care-sign-off": {"role": "ig", "outcome": "approve"},
    "direct-care-request-new": lambda w: {"reason": REASON, "practice": _practice()},
    "application-comment": {"body": REASON},
}


# --- The world --------------------------------------------------------------------------
@pytest.fixture(scope="session")
def authz_drop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return authz_world.drop(tmp_path_factory.mktemp("authz-drop"))


@dataclass(frozen=True)
class Built:
    world: authz_world.World
    sessions: dict[str, str] = field(default_factory=dict)  # actor -> session key


@pytest.fixture(scope="module")
def built(
    django_db_setup: None, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory,
    authz_drop: Path,
) -> Iterator[Built]:  # fmt: skip
    """The world, and a signed-in session (MFA done) per actor, made once per module; the
    settings point at the world's own data root and keys for the whole module."""
    folder = tmp_path_factory.mktemp("authz-world")
    private = private_settings(folder)
    patch = pytest.MonkeyPatch()
    for module in (analysis_services, directcare_services):
        patch.setattr(module, "_enqueue", lambda pk: None)  # no broker: nothing is queued

    def build() -> Built:
        world = authz_world.build(folder, authz_drop)
        sessions = {
            name: verified_client(User.objects.get(pk=pk)).session.session_key or ""
            for name, pk in world.people.items()
        }
        return Built(world, sessions)

    private.enable()
    try:
        with shared_rows(django_db_blocker, build) as made:
            yield made
    finally:
        private.disable()
        patch.undo()


@pytest.fixture
def world(built: Built, db: None) -> Built:
    return built


def _client(built: Built, actor: str) -> Client:
    return Client() if actor == "anonymous" else session_client(built.sessions[actor])


def _actors(built: Built) -> dict[str, Actor]:
    users = {u.pk: u for u in User.objects.filter(pk__in=built.world.people.values())}
    return {name: Actor(name, users[pk]) for name, pk in built.world.people.items()}


def _is_sign_in(response: Any) -> bool:
    if response.status_code != 302:
        return False
    target = urlsplit(response.url)
    return target.path == reverse("login")


def _anonymous(url: Url, response: Any) -> str | None:
    """What is wrong with the answer an anonymous visitor got (None: nothing)."""
    if url.api:
        return None if response.status_code == 401 else f"API answered {response.status_code}"
    return None if _is_sign_in(response) else f"not sent to sign in: {response.status_code}"


def _snapshot(o: Objects) -> dict[str, Any]:
    """What a refused write must leave as it was: the audit log's length and the rows of
    every object a URL names (and the counts of what a write would add)."""
    ids = o.ids
    rows: dict[str, Any] = {"events": mark()}
    for model, key in (
        (Project, "project"), (ReleaseRequest, "release"), (ReleaseFile, "release_file"),
        (Review, "review"), (AccessRequest, "application"), (Attachment, "attachment"),
        (ReidentificationRequest, "reid"), (OptOutChange, "change"), (User, "person"),
        (Organisation, "organisation"), (OrganisationMembership, "membership"),
        (Ingest, "ingest"), (Job, "job"), (Script, "script"), (ApiToken, "token"),
    ):  # fmt: skip
        rows[key] = list(model.objects.filter(pk=ids[key]).values())  # type: ignore[attr-defined]
    for model in (Job, ReleaseRequest, AccessRequest, Comment, ProjectMembership, ApiToken):
        rows[f"{model.__name__} count"] = model.objects.count()  # type: ignore[attr-defined]
    return rows


# --- The tests --------------------------------------------------------------------------
def test_every_url_has_a_rule():
    assert set(RULES) == set(URLS), (
        f"URLs without a rule: {sorted(set(URLS) - set(RULES))}; "
        f"rules without a URL: {sorted(set(RULES) - set(URLS))}"
    )


def test_every_actor_named_by_the_design_is_in_the_world():
    assert set(authz_world.ROLE_ACTORS) == {role.value for role in Role}
    assert len(URLS) >= 190


def test_every_path_parameter_names_an_object_of_the_world():
    for url in URLS.values():
        assert set(url.kinds().values()) <= set(authz_world.OBJECT_KINDS), url


@pytest.mark.parametrize("url", list(URLS.values()), ids=str)
def test_every_actor_gets_the_expected_answer_to_a_get(world, url):
    rule = RULES[url.name]
    objects = Objects(world.world)
    actors = _actors(world)
    path = url.path(world.world.ids)
    wrong = []

    for name in authz_world.ACTORS:
        response = _client(world, name).get(path)
        if name == "anonymous":
            if url.public and response.status_code != rule.ok:
                wrong.append(f"{name}: public, expected {rule.ok}, got {response.status_code}")
            problem = None if url.public else _anonymous(url, response)
            if problem:
                wrong.append(f"{name}: {problem}")
            continue
        expected = expect(rule.see, actors[name], objects, rule.ok)
        if response.status_code != expected:
            wrong.append(f"{name}: expected {expected}, got {response.status_code}")

    assert not wrong, f"GET {path}:\n  " + "\n  ".join(wrong)


WRITABLE = [
    url for url in URLS.values() if RULES[url.name].write is not None
]  # fmt: skip


@pytest.mark.parametrize("url", WRITABLE, ids=str)
def test_a_refused_write_is_refused_and_changes_nothing(world, url):
    rule = RULES[url.name]
    assert rule.write is not None
    objects = Objects(world.world)
    actors = _actors(world)
    path = url.path(world.world.ids)
    methods = url.api_writes() or ("post",)
    body = BODIES.get(url.name, {})
    if callable(body):
        body = body(world.world)
    wrong = []
    before = _snapshot(objects)

    for name in authz_world.ACTORS:
        if name == "anonymous":
            expected = 401 if url.api else 302
        else:
            expected = expect(rule.write, actors[name], objects, 0)
            if expected == 0:
                continue  # allowed: not written (side effects)
        for method in methods:
            kwargs = {"content_type": "application/json"} if url.api else {}
            data: Any = body if not url.api or method == "post" else {}
            response = getattr(_client(world, name), method)(path, data, **kwargs)
            got = response.status_code
            if name == "anonymous" and not url.api:
                ok = _is_sign_in(response)
            else:
                ok = got == expected
            if not ok:
                wrong.append(f"{name} {method.upper()}: expected {expected}, got {got}")
    # Once, after every refused write: refusals change nothing, so neither do all of them.
    after = _snapshot(Objects(world.world))
    changed = sorted(key for key in before if after[key] != before[key])
    if changed:
        wrong.append(f"the refused writes changed {changed}")

    assert not wrong, f"{path}:\n  " + "\n  ".join(wrong)
