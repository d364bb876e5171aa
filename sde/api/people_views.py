"""People, organisations and one's own API tokens: the API of the pages in
sde/views/people.py, organisations.py and account.py, with the same services and the same
checks (a person or organisation the caller may not see is a 404; the permission is
checked before the body, so a refusal never depends on what was sent)."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from sde import policy
from sde.api import serializers as s
from sde.api.common import user_of, validated
from sde.exceptions import NotFound
from sde.identity import authentication, services
from sde.identity.models import ApiToken, Organisation, OrganisationMembership, User
from sde.identity.roles import Role


def _person(request: Request, pk: int) -> User:
    return get_object_or_404(policy.visible_people_for(user_of(request)), pk=pk)


def _organisation(request: Request, pk: int) -> Organisation:
    return get_object_or_404(policy.visible_organisations_for(user_of(request)), pk=pk)


class PersonList(generics.ListAPIView):
    """The people the caller may see (GET); create an account (POST: administrators)."""

    serializer_class = s.PersonSerializer

    def get_queryset(self) -> Any:
        return policy.visible_people_for(self.request.user).order_by("username")

    @extend_schema(request=s.AccountCreateSerializer, responses={201: s.PersonSerializer})
    def post(self, request: Request) -> Response:
        policy.check_manage_accounts(user_of(request))
        body = validated(s.AccountCreateSerializer, request)
        person = services.create_account(by=user_of(request), **body)
        return Response(s.PersonSerializer(person).data, status=status.HTTP_201_CREATED)


class PersonRoles(APIView):
    """Grant a role (POST) to a person; nobody can grant one to themselves."""

    @extend_schema(request=s.RoleGrantSerializer, responses={201: None})
    def post(self, request: Request, pk: int) -> Response:
        person = _person(request, pk)
        policy.check_grant_role(user_of(request), person)
        body = validated(s.RoleGrantSerializer, request)
        services.grant_role(
            user=person, role=Role(body["role"]), by=user_of(request), reason=body["reason"]
        )
        return Response(status=status.HTTP_201_CREATED)


class PersonRole(APIView):
    """Remove a role (DELETE)."""

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int, role: str) -> Response:
        person = _person(request, pk)
        if role not in Role.values:
            raise NotFound("no such role")
        services.remove_role(user=person, role=Role(role), by=user_of(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class PersonAccreditations(APIView):
    """Record an accreditation (POST), as the person's page does."""

    @extend_schema(request=s.AccreditationSerializer, responses={201: s.AccreditationSerializer})
    def post(self, request: Request, pk: int) -> Response:
        person = _person(request, pk)
        policy.check_record_accreditation(user_of(request), person)
        body = validated(s.AccreditationSerializer, request)
        accreditation = services.record_accreditation(user=person, by=user_of(request), **body)
        return Response(
            s.AccreditationSerializer(accreditation).data, status=status.HTTP_201_CREATED
        )


class PersonSuspend(APIView):
    """Suspend an account (POST, with the reason): its sessions and tokens stop."""

    @extend_schema(request=s.ReasonSerializer, responses={204: None})
    def post(self, request: Request, pk: int) -> Response:
        person = _person(request, pk)
        policy.check_suspend_person(user_of(request), person)
        body = validated(s.ReasonSerializer, request)
        services.suspend_account(user=person, by=user_of(request), reason=body["reason"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class PersonReinstate(APIView):
    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request, pk: int) -> Response:
        services.reinstate_account(user=_person(request, pk), by=user_of(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class PersonUnlock(APIView):
    """Unlock an account locked after failed sign-ins."""

    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request, pk: int) -> Response:
        services.unlock_account(user=_person(request, pk), by=user_of(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class PersonResetMfa(APIView):
    """The person sets up a new authenticator at their next sign-in."""

    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request, pk: int) -> Response:
        authentication.reset_mfa(user=_person(request, pk), by=user_of(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class OrganisationList(generics.ListAPIView):
    """The organisations (GET); add one (POST: who manages organisations)."""

    serializer_class = s.OrganisationSerializer

    def get_queryset(self) -> Any:
        return (
            policy.visible_organisations_for(self.request.user)
            .select_related("parent")
            .order_by("name", "pk")
        )

    @extend_schema(
        request=s.OrganisationCreateSerializer, responses={201: s.OrganisationSerializer}
    )
    def post(self, request: Request) -> Response:
        policy.check_manage_organisations(user_of(request))
        body = validated(s.OrganisationCreateSerializer, request)
        organisation = services.create_organisation(by=user_of(request), **body)
        return Response(s.OrganisationSerializer(organisation).data, status=status.HTTP_201_CREATED)


class OrganisationDetail(APIView):
    """One organisation and its members."""

    @extend_schema(responses={200: s.OrganisationDetailSerializer})
    def get(self, request: Request, pk: int) -> Response:
        return Response(s.OrganisationDetailSerializer(_organisation(request, pk)).data)


class OrganisationMembers(APIView):
    """Add a member by username (POST)."""

    @extend_schema(request=s.MembershipCreateSerializer, responses={201: s.MembershipSerializer})
    def post(self, request: Request, pk: int) -> Response:
        organisation = _organisation(request, pk)
        policy.check_manage_organisations(user_of(request))
        body = validated(s.MembershipCreateSerializer, request)
        person = get_object_or_404(
            policy.visible_people_for(user_of(request)), username__iexact=body["username"]
        )
        membership = services.add_membership(
            user=person, organisation=organisation, by=user_of(request), job_title=body["job_title"]
        )
        return Response(s.MembershipSerializer(membership).data, status=status.HTTP_201_CREATED)


class OrganisationMember(APIView):
    """Remove a membership (DELETE)."""

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int, membership_pk: int) -> Response:
        organisation = _organisation(request, pk)
        membership = get_object_or_404(
            OrganisationMembership, pk=membership_pk, organisation=organisation
        )
        services.remove_membership(membership=membership, by=user_of(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class TokenList(generics.ListAPIView):
    """The caller's own API tokens (never their keys: a key is shown once, on the account
    page that makes it, which needs a session past MFA)."""

    serializer_class = s.ApiTokenSerializer
    pagination_class = None

    def get_queryset(self) -> Any:
        return ApiToken.objects.filter(user=self.request.user).order_by("-created_at", "-pk")


class TokenDetail(APIView):
    """Revoke one of the caller's tokens (DELETE); another person's token is a 404."""

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        token = get_object_or_404(ApiToken, pk=pk, user=user_of(request))
        services.revoke_api_token(token=token, by=user_of(request))
        return Response(status=status.HTTP_204_NO_CONTENT)
