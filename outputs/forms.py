"""Forms for the release pages. They validate input only; the services decide and write."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django import forms

from outputs.models import ExceptionRequest, FileDecision

# A choice of what to add: "<job id>:<output id>" for an output, "<job id>:log" for a log.
LOG = "log"
Grouped = Sequence[tuple[str, Sequence[tuple[str, str]]]]


class CreateRequestForm(forms.Form):
    title = forms.CharField(
        max_length=200,
        help_text="What the outputs are, for example 'Hypertension prevalence by Place, 2025'.",
    )
    job = forms.IntegerField(required=False, widget=forms.HiddenInput)


class AddFileForm(forms.Form):
    source = forms.ChoiceField(
        label="File",
        help_text="An output of one of the project's jobs that succeeded, or the log of a run "
        "on real data. Evidence files stay inside: the checks read them.",
    )
    context = forms.CharField(
        label="What it shows",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="What the file shows, and about which population.",
    )
    controls = forms.CharField(
        label="What was done to make it safe",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="For example: counts below 10 suppressed, rounded to the nearest 5.",
    )

    def __init__(self, *args: Any, choices: Grouped, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["source"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [("", "Choose a file"), *choices]

    def chosen(self) -> tuple[int, int | None]:
        """The chosen job and output (None: the job's log)."""
        job, _, output = self.cleaned_data["source"].partition(":")
        return int(job), None if output == LOG else int(output)


class ExceptionForm(forms.Form):
    reason = forms.ChoiceField(
        label="Why it is safe to release",
        choices=ExceptionRequest.Reason.choices,
        widget=forms.RadioSelect,
    )
    justification = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Which cells, and why they do not disclose anything about a person.",
    )


class DecisionForm(forms.Form):
    """A checker's decision on one file, and on each exception the researcher asked for."""

    decision = forms.ChoiceField(choices=FileDecision.Decision.choices, widget=forms.RadioSelect)
    comment = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Needed to approve a file that failed the checks, to reject one that "
        "passed, to request changes, and for every decision on a file left for review.",
    )

    def __init__(self, *args: Any, rules: Iterable[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rules = list(rules)
        for rule in self.rules:
            self.fields[f"exception_{rule}"] = forms.ChoiceField(
                label=f"The exception for {rule}",
                choices=[("grant", "Grant"), ("refuse", "Refuse")],
                widget=forms.RadioSelect,
            )

    def exceptions(self) -> dict[str, bool]:
        return {rule: self.cleaned_data[f"exception_{rule}"] == "grant" for rule in self.rules}


class RevokeForm(forms.Form):
    reason = forms.CharField(
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Kept with the request and in the audit log; the project's members see it.",
    )
