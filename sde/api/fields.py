"""Serializer fields the data-layer API shares, with how the OpenAPI schema names them.

The opt-out choice sets appear under the same field name with different values (``kind``
is an organisation's kind, an opt-out's kind and a change's kind) and the same values
under different names (a decision-table cell under ``ndop`` and ``type1``), which
drf-spectacular can only name with a warning. Each set here is one named component.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any, TypeVar

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from sde.data import register
from sde.data.models import OptOutKind
from sde.data.optouts import Application, ConfidentialityBasis

F = TypeVar("F", bound=type[serializers.Field])
POLICY_VALUES = (Application.APPLIED.value, Application.NOT_APPLIED.value)


def _named_enum(component: str, values: tuple[str, ...]) -> Callable[[F], F]:
    schema = {"type": "string", "enum": list(values)}
    return extend_schema_field(schema, component_name=component)  # type: ignore[no-any-return]


class _NamedChoiceField(serializers.ChoiceField):
    """A choice among ``values``; an invalid choice is refused without repeating the
    input (which, in an opt-out request, could be an NHS number typed in the wrong box)."""

    values: tuple[str, ...] = ()

    def __init__(self, **kwargs: Any) -> None:
        allowed = ", ".join(self.values)
        kwargs.setdefault("error_messages", {"invalid_choice": f"Choose one of: {allowed}."})
        super().__init__(choices=list(self.values), **kwargs)


def _values(enum: type[StrEnum]) -> tuple[str, ...]:
    return tuple(member.value for member in enum)


@_named_enum("OptOutKindEnum", tuple(OptOutKind.values))
class OptOutKindField(_NamedChoiceField):
    values = tuple(OptOutKind.values)


@_named_enum("ConfidentialityBasisEnum", _values(ConfidentialityBasis))
class BasisField(_NamedChoiceField):
    values = _values(ConfidentialityBasis)


@_named_enum("OptOutApplicationEnum", _values(Application))
class ApplicationField(_NamedChoiceField):
    values = _values(Application)


@_named_enum("OptOutPolicyValueEnum", POLICY_VALUES)
class PolicyValueField(_NamedChoiceField):
    """Applied or not applied: a platform-policy cell, a Caldicott decision."""

    values = POLICY_VALUES


@extend_schema_field(OpenApiTypes.BINARY)
class UploadField(serializers.FileField):
    """A file sent as a part of a ``multipart/form-data`` body."""


@extend_schema_field(
    {
        "type": "string",
        "nullable": True,  # DRF answers null for no count, without to_representation
        "description": 'A count of people, or "fewer than 10" for 1 to 9 (small counts '
        "are never shown exactly); null when there is no count (yet).",
    }
)
class SuppressedCountField(serializers.ReadOnlyField):
    def to_representation(self, value: int | None) -> str:
        return register.suppressed(value)
