"""Forms for the direct care pages. They check the shape of the input only: who may ask,
about which practice, and whether a reason or a refusal's comment is enough is decided by
``sde.directcare.services`` (its ValidationError lands on these forms)."""

from __future__ import annotations

from typing import Any

from django import forms

from sde.directcare.models import ReidentificationDecision
from sde.identity.models import Organisation

Outcome = ReidentificationDecision.Outcome


class PracticeField(forms.ModelChoiceField):  # type: ignore[type-arg]
    def label_from_instance(self, obj: Organisation) -> str:
        return f"{obj.name} ({obj.ods_code})" if obj.ods_code else obj.name


class RequestForm(forms.Form):
    practice = PracticeField(
        queryset=Organisation.objects.none(), label="Your practice",
        help_text="The list holds only the cohort's members registered at this practice today.",
        error_messages={"invalid_choice": "Choose a practice you work at.",
                        "required": "Choose a practice you work at."},
    )  # fmt: skip
    reason = forms.CharField(
        label="The direct care the list is for", max_length=2000,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="For example: invite them for a medication review. The IG officer and the "
        "Caldicott Guardian decide on it.",
    )  # fmt: skip

    def __init__(self, *args: Any, practices: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["practice"]
        assert isinstance(field, PracticeField)
        field.queryset = practices
        if len(practices) == 1:  # one practice: chosen already, nothing to pick
            field.initial = practices[0].pk
            field.empty_label = None


class SignOffForm(forms.Form):
    outcome = forms.ChoiceField(
        label="Your decision", choices=Outcome.choices, widget=forms.RadioSelect,
        error_messages={"required": "Approve or refuse."},
    )  # fmt: skip
    comment = forms.CharField(
        label="Comment", required=False, max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Needed to refuse: the clinician sees it.",
    )  # fmt: skip
