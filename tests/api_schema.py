"""The OpenAPI document as the schema tests read it."""

from __future__ import annotations

import json
import re
from typing import Any

from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema


def schema_without_warnings(*, validate: bool = True) -> dict[str, Any]:
    """The public OpenAPI document; the test fails if drf-spectacular warned while building
    it or (with ``validate``) if it is not a valid OpenAPI document."""
    GENERATOR_STATS.reset()
    document = SchemaGenerator().get_schema(request=None, public=True)
    assert not GENERATOR_STATS, "drf-spectacular warned: run manage.py spectacular --validate"
    if validate:
        validate_schema(json.loads(json.dumps(document, default=str)))
    return document  # type: ignore[no-any-return]


def openapi_path(route: str) -> str:
    """A Django route's OpenAPI path: "api/v1/x/<int:pk>/y" -> "/api/v1/x/{id}/y"."""
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route).replace("{pk}", "{id}")
