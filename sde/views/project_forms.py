"""Forms for IG's project actions. Forms validate input only; ``sde.projects.services``
does the writing and the real checks (states, who may be a data-using member)."""

from __future__ import annotations

from datetime import date
from typing import Any

from django import forms
from django.utils import timezone

from sde import policy
from sde.projects.models import Project, ProjectMembership
from sde.projects.selectors import DATE_LABELS


def _text(
    label: str, help_text: str, max_length: int, required: str, rows: int = 3
) -> forms.CharField:
    return forms.CharField(
        label=label, max_length=max_length, help_text=help_text,
        error_messages={"required": required}, widget=forms.Textarea(attrs={"rows": rows}),
    )  # fmt: skip


class SuspendForm(forms.Form):
    reason = _text(
        "Why access is paused",
        "Members see this reason on the project page. Resume the project when it is resolved.",
        300,
        "Give the reason for suspending the project.",
    )


class RevokeForm(forms.Form):
    reason = _text(
        "Why access is withdrawn",
        "Revoking ends access for good: it cannot be resumed. Members see this reason.",
        300,
        "Give the reason for revoking access.",
    )


class CloseForm(forms.Form):
    attestation = _text(
        "Destruction attestation",
        "How and when the project's data and outputs were destroyed, and by whom (for "
        "example a certificate reference). Closing deletes the project's extracts and ends "
        "members' access to the project's record.",
        2000,
        "Record how and when the data was destroyed.",
        rows=4,
    )


class AddMemberForm(forms.Form):
    username = forms.CharField(
        max_length=150, help_text="The person's account username.",
        error_messages={"required": "Enter the person's username."},
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )  # fmt: skip
    role = forms.ChoiceField(label="Role in the project", choices=ProjectMembership.Role.choices)
    accesses_data = forms.BooleanField(
        required=False,
        initial=True,
        label="Uses the project's data",
        help_text="They also need current safe researcher and data security training. IG "
        "officers never use data.",
    )


class ComplianceDatesForm(forms.Form):
    """The project's s251, REC and DSPT dates, shown as they are; only those changed are
    sent to the service."""

    s251_expiry = forms.DateField(
        required=False, label=DATE_LABELS["s251_expiry"],
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )  # fmt: skip
    rec_expiry = forms.DateField(
        required=False, label=DATE_LABELS["rec_expiry"],
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )  # fmt: skip
    dspt_expiry = forms.DateField(
        required=False, label=DATE_LABELS["dspt_expiry"],
        help_text="The earliest DSPT date of the project's organisations. Leave a date blank "
        "when the project does not rely on it.",
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )  # fmt: skip

    def __init__(self, *args: Any, project: Project, **kwargs: Any) -> None:
        self.project = project
        kwargs["initial"] = {
            name: getattr(project, name) for name in policy.PROJECT_COMPLIANCE_DATES
        }
        super().__init__(*args, **kwargs)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        today = timezone.localdate()
        for name in self.changed_dates():
            value = data.get(name)
            if value is not None and value < today:
                self.add_error(name, "A renewed date cannot be in the past.")
        if not self.errors and not self.changed_dates():
            raise forms.ValidationError("Change at least one date.")
        return data

    def changed_dates(self) -> dict[str, date | None]:
        """The dates that differ from the project's (a blank one is None)."""
        data = getattr(self, "cleaned_data", {})
        return {
            name: data.get(name)
            for name in policy.PROJECT_COMPLIANCE_DATES
            if name in data and data.get(name) != getattr(self.project, name)
        }
