"""The audit search filters, shared by the page and the API."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from django import forms
from django.utils import timezone

from sde.audit.events import EventType
from sde.identity.models import User


class AuditSearchForm(forms.Form):
    person = forms.ModelChoiceField(
        queryset=User.objects.none(), required=False, help_text="Events by or about this person."
    )
    project = forms.IntegerField(required=False, min_value=1, label="Project id")
    event_type = forms.ChoiceField(required=False, label="Event type")
    date_from = forms.DateField(
        required=False, label="From (inclusive)", widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        required=False, label="To (inclusive)", widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["person"].queryset = User.objects.order_by("username")  # type: ignore[attr-defined]
        self.fields["event_type"].choices = [("", "Any"), *EventType.choices]  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("date_from") and data.get("date_to") and data["date_to"] < data["date_from"]:
            raise forms.ValidationError("The end date is before the start date.")
        return data

    def filters(self) -> dict[str, Any]:
        data = self.cleaned_data
        tz = timezone.get_current_timezone()
        return {
            "person_id": data["person"].pk if data.get("person") else None,
            "project_id": data.get("project"),
            "event_type": data.get("event_type") or "",
            "date_from": datetime.combine(data["date_from"], time.min, tz)
            if data.get("date_from")
            else None,
            "date_to": datetime.combine(data["date_to"] + timedelta(days=1), time.min, tz)
            if data.get("date_to")
            else None,
        }

    def described(self) -> dict[str, Any]:
        """The filters as recorded in the audit event (ids and dates only)."""
        return {
            k: (v.isoformat() if hasattr(v, "isoformat") else v)
            for k, v in self.filters().items()
            if v not in (None, "")
        }
