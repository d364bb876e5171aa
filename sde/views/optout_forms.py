"""Forms for IG's opt-out register pages. Forms validate input only; ``sde.data.register``
does the writing and the real checks (NHS number, reasons, the two-person rule)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.files.uploadedfile import UploadedFile

from sde import uploads
from sde.data.models import OptOutKind
from sde.data.optouts import BASIS_LABELS, Application, DecisionTable, PolicyKey

POLICY_CHOICES = [
    (Application.APPLIED.value, "Applied"),
    (Application.NOT_APPLIED.value, "Not applied"),
]
NO_DECISION = "none"
CALDICOTT_CHOICES = [
    (NO_DECISION, "None recorded (applied: fail closed)"),
    (Application.APPLIED.value, "Applied"),
    (Application.NOT_APPLIED.value, "Not applied"),
]


class NoEchoTextInput(forms.TextInput):
    """A text box that never writes its value back into the page: an NHS number typed
    into a form is not shown again, even when the form comes back with an error."""

    def format_value(self, value: Any) -> str | None:
        return None


def _reason(help_text: str) -> forms.CharField:
    return forms.CharField(
        max_length=2000, help_text=help_text, widget=forms.Textarea(attrs={"rows": 3})
    )


class ManualOptOutForm(forms.Form):
    nhs_number = forms.CharField(
        label="NHS number",
        max_length=20,
        help_text="10 digits; spaces are allowed. It is turned into the system pseudonym "
        "at once and never stored or shown.",
        widget=NoEchoTextInput(
            attrs={"autocomplete": "off", "inputmode": "numeric", "spellcheck": "false"}
        ),
    )
    kind = forms.ChoiceField(
        label="Kind of opt-out", choices=OptOutKind.choices, widget=forms.RadioSelect
    )
    reason = _reason("How the objection (or its withdrawal) was received, and any reference.")


class NdopUploadForm(forms.Form):
    label = forms.CharField(
        max_length=200,
        required=False,
        help_text="A name for this import, e.g. 'NDOP list, November'.",
    )
    ndop_file = forms.FileField(
        label="National data opt-out file",
        help_text="One NHS number per line, no header row, UTF-8 text. It replaces the "
        "previously imported list; lines that are not valid NHS numbers are counted and "
        "skipped.",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.txt"}),
    )

    def clean_ndop_file(self) -> UploadedFile:
        upload: UploadedFile = self.cleaned_data["ndop_file"]
        too_big = uploads.size_error(upload)
        if too_big:
            raise forms.ValidationError(too_big)
        return upload


def policy_field_name(key: PolicyKey) -> str:
    basis, kind = key
    return f"policy__{basis.value}__{kind.value}"


class PlatformPolicyForm(forms.Form):
    """One select per "applied (platform policy)" cell of the current table."""

    reason = _reason("Why the platform policy should change (a second IG officer decides).")

    def __init__(self, *args: Any, table: DecisionTable, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cells: dict[str, PolicyKey] = {}
        fields = {}
        for key in table.policy_cells():
            basis, kind = key
            name = policy_field_name(key)
            self.cells[name] = key
            fields[name] = forms.ChoiceField(
                label=f"{OptOutKind(kind.value).label} under {BASIS_LABELS[basis]}",
                choices=POLICY_CHOICES,
                initial=table.platform_policy[key].value,
            )
        # The cells first, then the reason.
        self.fields = {**fields, "reason": self.fields["reason"]}

    def proposed_cells(self) -> dict[tuple[str, str], str]:
        return {
            (basis.value, kind.value): self.cleaned_data[name]
            for name, (basis, kind) in self.cells.items()
        }


class ExemptionForm(forms.Form):
    project_id = forms.IntegerField(
        label="Project number", min_value=1, widget=forms.NumberInput(attrs={"min": 1})
    )
    cag_letter_disapplies_type1 = forms.BooleanField(
        required=False,
        label="The CAG letter disapplies the GP Type 1 opt-out",
        help_text="Only read for s251 support with a CAG exemption from NDOP.",
    )
    instrument_overrides_type1 = forms.BooleanField(
        required=False,
        label="The legal instrument overrides the GP Type 1 opt-out",
        help_text="Only read for a legal requirement.",
    )
    caldicott_type1_decision = forms.ChoiceField(
        label="Caldicott Guardian's decision on the GP Type 1 opt-out",
        choices=CALDICOTT_CHOICES,
        initial=NO_DECISION,
        widget=forms.RadioSelect,
        help_text="Only read for overriding public interest.",
    )
    reason = _reason("The evidence (letter or instrument reference) and why (a second IG "
                     "officer decides).")  # fmt: skip

    def exemption(self) -> dict[str, Any]:
        data = self.cleaned_data
        decision = data["caldicott_type1_decision"]
        return {
            "project_id": data["project_id"],
            "cag_letter_disapplies_type1": data["cag_letter_disapplies_type1"],
            "instrument_overrides_type1": data["instrument_overrides_type1"],
            "caldicott_type1_decision": None if decision == NO_DECISION else decision,
            "reason": data["reason"],
        }


class DecisionForm(forms.Form):
    decision_reason = forms.CharField(
        label="Reason",
        max_length=2000,
        required=False,
        help_text="Required to reject; kept with the decision.",
        widget=forms.Textarea(attrs={"rows": 2}),
    )
