"""Helpers for the release API tests (tests/unit/outputs/test_api.py): API clients for
each kind of caller, and the request resting in a state for the permission matrix.

The project, the people, the jobs and the requests in every state come from the outputs
conftest (``releases``), made through the real services by tests/unit/outputs/builders.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.test import Client

from outputs.models import ReleaseFile, ReleaseRequest, Review
from sde.analysis.models import Job
from sde.identity import services as identity
from sde.identity.models import User
from sde.projects.models import Project
from tests.conftest import verified_client
from tests.unit.outputs import builders

JSON = "application/json"
# The callers of the permission matrix, in its columns' order.
ROLES = ("author", "other_member", "outsider", "checker", "member_checker", "ig", "anonymous")


def token_client(user: User) -> Client:
    """A client that authenticates with a personal API token (as a script would)."""
    _, key = identity.create_api_token(user=user, name="scripts", by=user)
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}")


def client_of(people: builders.Cast, role: str) -> Client:
    """Session clients (MFA done) for people, a bare client for ``anonymous``."""
    if role == "anonymous":
        return Client()
    return verified_client(people.actor(role))


def errors(response: Any) -> dict[str, list[str]]:
    """Field errors from a 400, whether a serializer's or a service's."""
    body = response.json()
    return body["errors"] if "errors" in body and "detail" in body else body


def content(response: Any) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


@dataclass
class World:
    """A request in one state, with what the URLs of the matrix need."""

    project: Project
    job: Job
    people: builders.Cast
    request: ReleaseRequest
    review: Review | None  # the checker's open review, in the "_open" states
    releases: Any  # everything the conftest shares (``Releases``)

    def file(self, name: str) -> ReleaseFile:
        return self.request.files.get(name=name, removed_round__isnull=True)

    def file_in(self, state: str, name: str) -> ReleaseFile:
        """A file of the shared request resting in another state."""
        return builders.file_named(self.releases.request(state), name)

    def output_id(self, name: str) -> int:
        return builders.output_of(self.job, name).pk


def world_in(state: str, releases: Any) -> World:
    """The shared request resting in ``state`` (tests/unit/outputs/conftest.py)."""
    request = releases.request(state)
    review = None
    if state.endswith("_open"):
        review = Review.objects.get(request=request, round=request.round,
                                    reviewer=releases.people.checker)  # fmt: skip
    return World(releases.project, releases.job, releases.people, request, review, releases)
