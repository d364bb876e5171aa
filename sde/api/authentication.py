"""API authentication: a session that completed MFA, or a hashed personal token."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from sde.identity.models import ApiToken
from sde.identity.services import hash_api_key, touch_api_token


class MFASessionAuthentication(authentication.SessionAuthentication):
    """Session authentication that refuses a session that has not passed MFA."""

    def authenticate(self, request: Request) -> tuple[Any, None] | None:
        result = super().authenticate(request)
        if result is None:
            return None
        user = request._request.user
        if not user.is_verified():
            raise exceptions.PermissionDenied("Multi-factor authentication is required.")
        return result


class HashedTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer sde_...``. Tokens are created only by a person signed in
    with MFA, expire, and die with a suspended account."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Invalid token header.")
        try:
            key = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        token = (
            ApiToken.objects.select_related("user")
            .filter(
                key_hash=hash_api_key(key), revoked_at__isnull=True, expires_at__gt=timezone.now()
            )
            .first()
        )
        if token is None or not token.user.is_active or token.user.is_system:
            raise exceptions.AuthenticationFailed("Invalid or expired token.")
        touch_api_token(token)
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return self.keyword
