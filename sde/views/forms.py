"""Forms for the core pages. Forms validate input only; services do the writing."""

from __future__ import annotations

from typing import Any

from django import forms

from sde.exceptions import ValidationError
from sde.identity.models import Accreditation, Organisation
from sde.identity.roles import Role


def apply_errors(form: forms.Form, error: ValidationError) -> None:
    """Put a service's ValidationError onto the form, field by field."""
    if not error.errors:
        form.add_error(None, str(error))
    for name, messages in error.errors.items():
        for message in messages:
            form.add_error(name if name in form.fields else None, message)


class AccountForm(forms.Form):
    username = forms.RegexField(
        regex=r"^[A-Za-z0-9.@+_-]{3,150}$",
        max_length=150,
        help_text="3 to 150 letters, digits and . @ + - _",
    )
    first_name = forms.CharField(max_length=150)
    last_name = forms.CharField(max_length=150)
    email = forms.EmailField()
    password = forms.CharField(
        strip=False,
        label="Initial password",
        help_text="At least 12 characters, not a common password. Share it securely; the "
        "person sets up their authenticator app at first sign-in.",
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )


class GrantRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)
    reason = forms.CharField(
        max_length=500,
        required=False,
        help_text="Why this person needs the role (kept with the grant).",
    )


class AccreditationForm(forms.Form):
    kind = forms.ChoiceField(choices=Accreditation.Kind.choices, label="Accreditation")
    issued_on = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    expires_on = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    certificate_reference = forms.CharField(max_length=100, required=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if (
            data.get("issued_on")
            and data.get("expires_on")
            and (data["expires_on"] <= data["issued_on"])
        ):
            self.add_error("expires_on", "The expiry date must be after the issue date.")
        return data


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=300, widget=forms.Textarea(attrs={"rows": 3}))


class OrganisationForm(forms.Form):
    name = forms.CharField(max_length=200)
    kind = forms.ChoiceField(choices=Organisation.Kind.choices, label="Type")
    ods_code = forms.RegexField(
        regex=r"^[A-Za-z0-9]{3,10}$",
        required=False,
        label="ODS code",
        help_text="Required for a GP practice, for example Y99001.",
    )
    parent = forms.ModelChoiceField(
        queryset=Organisation.objects.all(), required=False, label="Part of"
    )


class MembershipForm(forms.Form):
    username = forms.CharField(max_length=150, label="Username")
    job_title = forms.CharField(max_length=200, required=False)


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What the token is for, e.g. 'R scripts'.")
