"""How the OpenAPI schema describes the API's two ways in (drf-spectacular extensions),
and the errors every operation may answer (``AutoSchema``, the DEFAULT_SCHEMA_CLASS).

Without these the schema has no security schemes for our authentication classes, and
``manage.py check --deploy`` warns (drf_spectacular.W001) on every view.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular import openapi
from drf_spectacular.authentication import SessionScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from rest_framework import serializers


class MFASessionScheme(SessionScheme):
    """The session cookie, valid only after the second factor."""

    target_class = "sde.api.authentication.MFASessionAuthentication"
    name = "cookieAuth"


class HashedTokenScheme(OpenApiAuthenticationExtension):
    """``Authorization: Bearer sde_...`` personal API tokens."""

    target_class = "sde.api.authentication.HashedTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return build_bearer_security_scheme_object(  # type: ignore[no-any-return]
            header_name="Authorization", token_prefix=self.target.keyword
        )


class ErrorSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """What every error answers (sde/api/exceptions.py): DRF's ``detail``, a service's
    ``detail`` with its field ``errors``, or a serializer's errors keyed by field."""

    detail = serializers.CharField(required=False)
    errors = serializers.DictField(child=serializers.ListField(), required=False)


# Why each error status is answered: by every call, by every call that changes something,
# and by every call that filters (a bad filter is a 400, sde/api/exceptions.py).
ANY_CALL = {
    "401": "No credentials, or an invalid or expired token.",
    "403": "Signed in, but not allowed to do this (or the session has not passed MFA).",
    "404": "No such object, or one the caller may not see (denied means invisible).",
}
CHANGE = {
    "400": "The request is invalid (field errors).",
    "409": "The object is not in a state that allows this.",
}
FILTER = {"400": "A filter is invalid (field errors)."}
NOT_FILTERS = {"page", "format"}  # a bad page or format is a 404


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's, with what the URL patterns and the exception handler do written
    down: an id in a path is a whole number (``<int:...>`` matches digits only, anything
    else is no URL at all), and every operation documents the error responses it may
    answer (without them each 4xx is an undocumented status code)."""

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation: dict[str, Any] | None = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        parameters = operation.get("parameters", [])
        for parameter in parameters:
            if parameter["in"] != "path":
                continue
            if parameter["schema"].get("type") == "integer":
                parameter["schema"] = {**parameter["schema"], "minimum": 0}
            elif parameter["name"] == "slug":  # <slug:...>
                parameter["schema"] = {**parameter["schema"], "pattern": "^[-a-zA-Z0-9_]+$"}
        errors = dict(ANY_CALL)
        if self.method not in ("GET", "HEAD", "OPTIONS"):
            errors.update(CHANGE)
        elif any(p["in"] == "query" and p["name"] not in NOT_FILTERS for p in parameters):
            errors.update(FILTER)
        responses = operation["responses"]
        for code, description in errors.items():
            if code not in responses:
                response = self._get_response_for_code(ErrorSerializer, code)
                # A file or CSV view renders an error as text in its own type (a file
                # view's "*/*" as text/plain: sde.api.analysis_views.FileRenderer).
                content = {
                    media_type: body if media_type == "application/json"
                    else {"schema": {"type": "string"}}
                    for media_type, body in response.get("content", {}).items()
                }  # fmt: skip
                if "*/*" in content:
                    content["text/plain"] = content.pop("*/*")
                response = {**response, "content": content}
                responses[code] = {**response, "description": description}
        return operation
