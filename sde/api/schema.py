"""How the OpenAPI schema describes the API's two ways in (drf-spectacular extensions).

Without these the schema has no security schemes for our authentication classes, and
``manage.py check --deploy`` warns (drf_spectacular.W001) on every view.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.authentication import SessionScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object


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
