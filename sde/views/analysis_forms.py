"""Forms of the analysis workspace: one form per built-in analysis, built from its
parameters (``sde.analysis.analyses``), and the script form. The service checks the
parameters again; these forms only turn the page's fields into them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date
from typing import Any, Final

from django import forms
from django.utils import timezone

from sde.analysis.analyses import Builtin, Parameter
from sde.phm import cohorts

DATA_CHOICES = (("dummy", "Dummy data (synthetic: full log and outputs shown)"),
                ("real", "Real data (status and outputs listed; contents only after output "
                         "checking)"))  # fmt: skip
OUTCOME_LABELS = {
    "emergency_admissions": "Emergency admissions",
    "ae_attendances": "A&E attendances",
    "elective_admissions": "Elective admissions",
    "outpatient_appointments": "Outpatient appointments",
}
MAX_SCRIPT_UPLOAD = 256 * 1024


def _label(choice: str) -> str:
    if choice.startswith("prevalence:"):
        return "Prevalence: " + choice.split(":", 1)[1].replace("_", " ")
    return OUTCOME_LABELS.get(choice, choice.replace("_", " ").capitalize())


def _field(parameter: Parameter, saved: list[tuple[int, str]], day: date) -> forms.Field:
    common: dict[str, Any] = {"label": parameter.label, "help_text": parameter.help,
                              "required": parameter.required}  # fmt: skip
    if parameter.kind == "date":
        # ISO format: a date input ignores any other value, leaving the field blank.
        widget = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
        return forms.DateField(widget=widget, initial=day, **common)
    if parameter.kind in ("choice", "outcome"):
        return forms.ChoiceField(choices=[(c, _label(c)) for c in parameter.choices], **common)
    if parameter.kind == "saved_cohort":
        return forms.TypedChoiceField(choices=saved, coerce=int, **common)
    if parameter.kind == "int":
        return forms.IntegerField(initial=parameter.default, **common)
    if parameter.kind == "bool":
        return forms.TypedChoiceField(choices=(("true", "Yes"), ("false", "No")), initial="true",
                                      coerce=lambda v: v == "true", **common)  # fmt: skip
    if parameter.kind == "cohort":
        return forms.CharField(widget=forms.Textarea(attrs={"rows": 6, "class": "code"}),
                               help_text=COHORT_HELP, label=parameter.label)  # fmt: skip
    return forms.CharField(max_length=120, **common)


COHORT_HELP: Final = (
    'A cohort definition in JSON, for example {"all": [{"age": {"min": 18}}, {"has": '
    '"hypertension"}]}: combine with "all", "any" and "not"; choose people by '
    + ", ".join(f'"{key}"' for key in cohorts.LEAVES)
    + ' ("has" names a codelist). Or start from a pilot cohort below.'
)


class AnalysisForm(forms.Form):
    """The parameters of one built-in analysis, and whether to run on real or dummy data."""

    run_on = forms.ChoiceField(choices=DATA_CHOICES, widget=forms.RadioSelect, initial="dummy",
                               label="Run on")  # fmt: skip

    def __init__(
        self,
        *args: Any,
        builtin: Builtin,
        saved: Sequence[tuple[int, str]] = (),
        day: date | None = None,
        **kwargs: Any,
    ) -> None:
        """``day``: the date fields' initial value (the last day of the project's data)."""
        kwargs.setdefault("prefix", builtin.name)
        super().__init__(*args, **kwargs)
        self.builtin = builtin
        for name, parameter in builtin.parameters.items():
            self.fields[name] = _field(parameter, list(saved), day or timezone.localdate())
        if "definition" in self.fields:
            self.fields["pilot"] = forms.ChoiceField(
                required=False, label="Or use a pilot cohort",
                choices=[("", "None")] + [(k, k.replace("_", " ")) for k in cohorts.PILOT_COHORTS],
            )  # fmt: skip
            self.fields["definition"].required = False

    def clean_definition(self) -> Any:
        text = self.cleaned_data.get("definition", "")
        if not text:
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise forms.ValidationError(f"This is not valid JSON: {error.msg}.") from None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if "definition" in self.fields:
            pilot = cleaned.get("pilot")
            if pilot:
                cleaned["definition"] = cohorts.PILOT_COHORTS[pilot]
                cleaned.setdefault("name", pilot)
            elif cleaned.get("definition") is None and "definition" not in self.errors:
                self.add_error("definition", "Give a cohort definition or choose a pilot cohort.")
        return cleaned

    def parameters(self) -> dict[str, Any]:
        values = {name: self.cleaned_data.get(name) for name in self.builtin.parameters}
        return {name: value.isoformat() if isinstance(value, date) else value
                for name, value in values.items() if value not in (None, "")}  # fmt: skip


class ScriptForm(forms.Form):
    name = forms.CharField(max_length=120, label="Script name", initial="analysis.py")
    content = forms.CharField(
        required=False, label="Script (Python)",
        widget=forms.Textarea(attrs={"rows": 14, "class": "code", "spellcheck": "false"}),
        help_text="Read the extract with sdelib.read('patients'); publish tables with "
        "sdelib.table(rows, by=[...], name=..., title=...), which adds the evidence output "
        "checking needs.",
    )  # fmt: skip
    upload = forms.FileField(required=False, label="Or upload a .py file")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        upload = cleaned.get("upload")
        if upload is not None:
            if upload.size > MAX_SCRIPT_UPLOAD:
                self.add_error("upload", "A script may be at most 256 KB.")
                return cleaned
            try:
                cleaned["content"] = upload.read().decode("utf-8")
            except UnicodeDecodeError:
                self.add_error("upload", "The file is not UTF-8 text.")
            else:  # as the text box refuses NUL (else the compiler names the text box)
                if "\x00" in cleaned["content"]:
                    self.add_error("upload", "The file holds NUL characters: it is not a script.")
        if not cleaned.get("content") and not self.errors:
            self.add_error("content", "Write the script or upload a file.")
        return cleaned


class RunScriptForm(forms.Form):
    run_on = forms.ChoiceField(choices=DATA_CHOICES, widget=forms.RadioSelect, initial="dummy",
                               label="Run on")  # fmt: skip
