"""What every API view module needs: the caller, and a request body checked by its
serializer (a 400 with field errors otherwise)."""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request

from sde.identity.models import User


def user_of(request: Request) -> User:
    return request.user  # type: ignore[return-value]


def validated(serializer_class: type[Any], request: Request) -> dict[str, Any]:
    body = serializer_class(data=request.data)
    body.is_valid(raise_exception=True)
    return body.validated_data  # type: ignore[no-any-return]
