"""Forms for the application and review pages. The fields of each step are built from the
question set (``questions.QUESTIONS``: types and choices); this module adds only what a
page needs on top (labels, hints, widgets). Forms parse input; ``services.save_answers``
checks the answers (shape on every save, completeness per section) and refuses a save
that names anything the question set, the catalogue or the register does not offer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from django import forms
from django.forms.utils import ErrorDict
from django.template.defaultfilters import filesizeformat

from access_requests import questions as q
from access_requests.models import AccessRequest, Attachment
from sde.data.models import Dataset
from sde.identity.models import Organisation

# (label, hint) for every question of the question set, by section.
LABELS: Final[dict[str, dict[str, tuple[str, str]]]] = {
    "meta": {
        "title": ("Title of the project", "A short name; it is published on the transparency "
                  "register if the application is approved."),
        "dsa_reference": ("Data sharing agreement reference", ""),
        "cag_reference": ("CAG reference", "For section 251 support."),
        "rec_reference": ("Research ethics committee (REC) reference", ""),
        "iras_id": ("IRAS ID", ""),
        "start_date": ("Requested start date", ""),
        "end_date": ("Requested end date", "The end date that is approved is when access ends."),
    },
    "people": {
        "organisations": ("Organisations", "Every organisation involved, with its role."),
        "members": ("People", "Everyone on the team. Each person who will access data needs "
                    "current safe researcher and data security training."),
    },
    "project": {
        "lay_summary": ("Lay summary", "In plain English. It is published on the transparency "
                        "register if the application is approved."),
        "purpose": ("Purpose", ""),
        "aims": ("Aims and objectives", ""),
        "dataset_objectives": ("Which objective each dataset serves", ""),
        "public_benefit": ("Public benefit", "What changes, for whom, how it is measured, when."),
        "commercial_involvement": ("Is there commercial involvement?", ""),
        "commercial_details": ("Commercial involvement: the organisations and the nature of "
                               "their interest", ""),
        "commercial_purposes": ("Commercial purposes", "Marketing and insurance are refused."),
        "funder": ("Funder", ""),
        "sponsor": ("Sponsor", ""),
        "inequality_impact": ("Inequality impact assessment",
                              "Required for population health programmes."),
        "public_involvement": ("Patient and public involvement", ""),
        "dpia_reference": ("DPIA reference", "Attach the DPIA itself under Attachments."),
    },
    "legal": {
        "article6": ("UK GDPR Article 6 basis", ""),
        "article9": ("UK GDPR Article 9(2) condition", ""),
        "schedule1_condition": ("DPA 2018 Schedule 1 condition",
                                "Needed for Article 9(2)(g) to (j)."),
        "confidentiality_basis": ("Basis for setting aside the common law duty of "
                                  "confidentiality", "The opt-out treatment is derived from "
                                  "this answer."),
        "s251_regulation": ("Section 251: regulation", "For section 251 support."),
        "s251_expiry": ("Section 251 support: expiry date", "For section 251 support."),
        "cag_ndop_exemption": ("Did CAG grant an exemption from the national data opt-out?",
                               "For section 251 support."),
        "ethics": ("Ethics", ""),
        "ethics_reason": ("Why ethics approval is not required", ""),
        "rec_opinion_date": ("Date of the favourable REC opinion", ""),
        "rec_expiry": ("REC approval: expiry date", ""),
    },
    "data": {
        "datasets": ("Datasets and fields", "Tick each field you need and say why. Fields "
                     "marked sensitive need an explicit justification (at least a sentence) "
                     "and are flagged to reviewers."),
        "date_from": ("Data from", "The start of the date range."),
        "date_to": ("Data to", "The end of the date range."),
        "cohort": ("Cohort", ""),
        "level": ("Level of data", "Identifiable data is only ever produced through "
                  "re-identification for direct care."),
    },
    "settings": {
        "processing_location": ("Where the data is processed", ""),
        "tools": ("Code or tools to bring in", ""),
    },
    "outputs": {
        "output_types": ("Expected outputs", ""),
        "publication_plan": ("Publication plan", ""),
        "disclosure_rules": ("Disclosure control rules", ""),
        "stricter_rules": ("The stricter rules", ""),
    },
    "retention": {"retain_until": ("Retain until", "At closure access ends, extracts are "
                                   "deleted and a destruction attestation is recorded.")},
    "declarations": {
        "agreement_version": ("User agreement version", ""),
        "accepted": (f"I accept the user agreement and code of conduct (version "
                     f"{q.AGREEMENT_VERSION}) on behalf of the team", ""),
    },
}  # fmt: skip
COHORT_LABELS: Final = {
    "age_min": "Youngest age (years)",
    "age_max": "Oldest age (years)",
    "places": "Places",
    "imd_deciles": "IMD deciles (1 = most deprived)",
}
YES_NO: Final = [("true", "Yes"), ("false", "No")]
PICK, WHY, OBJECTIVE = "pick__", "why__", "objective__"


def label(section: str, name: str) -> str:
    return LABELS.get(section, {}).get(name, (name.replace("_", " ").capitalize(), ""))[0]


def _yes(value: str) -> bool:
    return value == "true"


def _date_widget() -> forms.DateInput:
    return forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


def question_field(section: str, name: str) -> forms.Field:
    """The form field for one question, from its type and choices in the question set."""
    kind, choices = q.QUESTIONS[section][name]
    text, hint = LABELS[section][name]
    common: dict[str, Any] = {"label": text, "help_text": hint, "required": False}
    options = list((choices or {}).items())
    if kind == q.SHORT:
        return forms.CharField(max_length=q.MAX_SHORT, **common)
    if kind == q.TEXT:
        return forms.CharField(
            max_length=q.MAX_TEXT, widget=forms.Textarea(attrs={"rows": 4}), **common
        )
    if kind == q.DATE:
        return forms.DateField(widget=_date_widget(), **common)
    if kind == q.BOOL:
        return forms.TypedChoiceField(
            choices=YES_NO, coerce=_yes, empty_value=None, widget=forms.RadioSelect, **common
        )
    if kind == q.CHOICE:
        return forms.ChoiceField(choices=options, widget=forms.RadioSelect, **common)
    if kind == q.CHOICES:
        return forms.MultipleChoiceField(
            choices=options, widget=forms.CheckboxSelectMultiple, **common
        )
    raise ValueError(f"{section}.{name} ({kind}) has its own form")


def _initial(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _json(value: Any) -> Any:
    """A cleaned form value as the question set stores it (None: leave the answer out)."""
    if value in (None, "", [], {}):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


class ProblemsMixin:
    """Show a service's problems (keyed by question) on the form's fields, on a bound or
    an unbound form alike; problems with no field of their own become non-field errors."""

    fields: dict[str, forms.Field]
    errors: ErrorDict
    error_class: Any

    def show_problems(self, problems: Mapping[str, list[str]]) -> None:
        for name, messages in problems.items():
            key = name if name in self.fields else "__all__"
            css = "nonfield" if key == "__all__" else None
            existing = self.errors.setdefault(key, self.error_class(error_class=css))
            existing.extend(m for m in messages if m not in existing)


class QuestionsForm(ProblemsMixin, forms.Form):
    """One step's plain questions (those with a form field of their own)."""

    PLAIN: Final = frozenset({q.SHORT, q.TEXT, q.DATE, q.BOOL, q.CHOICE, q.CHOICES})

    def __init__(
        self, data: Mapping[str, Any] | None = None, *, section: str,
        answers: Mapping[str, Any], only: Iterable[str] = (),
    ) -> None:  # fmt: skip
        wanted = set(only)
        names = [
            name
            for name, (kind, _) in q.QUESTIONS[section].items()
            if kind in self.PLAIN
            and (not wanted or name in wanted)
            and not (section == "declarations" and name == "agreement_version")
        ]
        initial = {name: _initial(answers.get(name)) for name in names}
        super().__init__(data, initial=initial)
        self.section = section
        self.fields = {name: question_field(section, name) for name in names}
        if section == "declarations":
            self.fields["accepted"] = forms.BooleanField(
                required=False, label=LABELS["declarations"]["accepted"][0]
            )
            self.initial["accepted"] = answers.get("accepted") is True

    def answers(self) -> dict[str, Any]:
        found = {name: _json(self.cleaned_data.get(name)) for name in self.fields}
        if self.section == "declarations":
            found = {"accepted": True, "agreement_version": q.AGREEMENT_VERSION} if (
                self.cleaned_data.get("accepted")
            ) else {}  # fmt: skip
        return {k: v for k, v in found.items() if v is not None}


# --- Section B: repeatable rows --------------------------------------------------------
class OrganisationRow(forms.Form):
    organisation_id = forms.TypedChoiceField(
        label="Organisation", coerce=int, required=False,
        error_messages={"invalid_choice": "Pick an organisation from the list."},
    )  # fmt: skip
    role = forms.ChoiceField(
        label="Role", required=False,
        choices=[("", "Choose a role"), *q.ORGANISATION_ROLES.items()],
    )  # fmt: skip
    ico_number = forms.CharField(label="ICO registration number", max_length=q.MAX_SHORT,
                                 required=False)  # fmt: skip
    dspt_status = forms.CharField(
        label="DSPT status", max_length=q.MAX_SHORT, required=False,
        help_text="Data Security and Protection Toolkit, for example “Standards met”.",
    )  # fmt: skip
    dspt_expiry = forms.DateField(label="DSPT runs to", required=False, widget=_date_widget())
    country = forms.CharField(label="Country", max_length=q.MAX_SHORT, required=False)

    def __init__(self, *args: Any, organisations: list[tuple[int, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["organisation_id"].choices = [("", "Choose an organisation")] + [  # type: ignore[attr-defined]
            (pk, name) for pk, name in organisations
        ]

    def row(self) -> dict[str, Any] | None:
        data = {k: _json(v) for k, v in self.cleaned_data.items() if k != "DELETE"}
        data = {k: v for k, v in data.items() if v is not None}
        return data or None


class MemberRow(forms.Form):
    username = forms.CharField(label="Username", max_length=150, required=False)
    role = forms.ChoiceField(
        label="Role", required=False,
        choices=[("", "Choose a role"), *q.MEMBER_ROLES.items()],
    )  # fmt: skip
    accesses_data = forms.BooleanField(label="Will access data", required=False, initial=True)

    def row(self) -> dict[str, Any] | None:
        data = self.cleaned_data
        if not (data.get("username") or data.get("role")):
            return None
        found = {"username": data.get("username", ""), "role": data.get("role", "")}
        return {**found, "accesses_data": bool(data.get("accesses_data"))}


class Rows(forms.BaseFormSet):
    def add_fields(self, form: forms.Form, index: int | None) -> None:
        super().add_fields(form, index)
        if "DELETE" in form.fields:
            form.fields["DELETE"].label = "Remove this row"


def _rows_of(form: type[forms.Form]) -> type[forms.BaseFormSet]:
    return forms.formset_factory(
        form, formset=Rows, extra=1, can_delete=True, can_delete_extra=False,
        max_num=q.MAX_ITEMS, absolute_max=q.MAX_ITEMS, validate_max=True,
    )  # fmt: skip


OrganisationRows = _rows_of(OrganisationRow)
MemberRows = _rows_of(MemberRow)


def _rows(formset: forms.BaseFormSet) -> list[dict[str, Any]]:
    rows = []
    for form in formset.forms:
        if not getattr(form, "cleaned_data", None) or form.cleaned_data.get("DELETE"):
            continue
        row = form.row()
        if row:
            rows.append(row)
    return rows


# --- The step editor -------------------------------------------------------------------
@dataclass(frozen=True)
class Choices:
    """What the register and the catalogue offer, loaded by the view."""

    organisations: list[tuple[int, str]]
    datasets: list[Dataset]
    places: list[str]


class SectionEditor:
    """The forms of one step and the answers they give. ``show_problems`` puts what is
    still missing, or why a save was refused, on the fields; ``blocks`` holds the problems
    of questions rendered as a group (organisations, people, datasets, cohort, objectives)."""

    BLOCKS: Final = {"organisations", "members", "datasets", "cohort", "dataset_objectives"}

    def __init__(
        self, section: str, request: AccessRequest, choices: Choices,
        data: Mapping[str, Any] | None = None,
    ) -> None:  # fmt: skip
        self.section, self.choices, self.data = section, choices, data
        answers = request.answers.get(section) or {}
        extension = request.kind == AccessRequest.Kind.EXTENSION
        only = ["end_date"] if extension and section == "meta" else []
        self.form = QuestionsForm(data, section=section, answers=answers, only=only)
        self.formsets: dict[str, forms.BaseFormSet] = {}
        self.blocks: dict[str, list[str]] = {}
        if section == "people":
            # A bound formset gets no initial rows: the rows saved since the page loaded
            # (autosave) would make the page's own "extra" rows look unchanged, and an
            # unchanged extra row is skipped, so the save would drop them.
            kwargs = {"organisations": choices.organisations}
            orgs = [
                {k: _initial(v) for k, v in o.items()} for o in answers.get("organisations", [])
            ]
            self.formsets["organisations"] = OrganisationRows(
                data, prefix="organisations", initial=None if data else orgs, form_kwargs=kwargs
            )
            self.formsets["members"] = MemberRows(
                data, prefix="members", initial=None if data else answers.get("members", [])
            )
        if section == "project":
            self._objective_fields(answers, request)
        if section == "data" and not extension:
            self._data_fields(answers)

    # Section C: an objective per requested dataset.
    def _objective_fields(self, answers: Mapping[str, Any], request: AccessRequest) -> None:
        requested = sorted((request.answers.get("data") or {}).get("datasets") or {})
        names = {d.slug: d.name for d in self.choices.datasets}
        given = answers.get("dataset_objectives") or {}
        self.objectives = []
        for slug in requested:
            name = f"{OBJECTIVE}{slug}"
            self.form.fields[name] = forms.CharField(
                label=names.get(slug, slug), required=False, max_length=q.MAX_TEXT,
                widget=forms.Textarea(attrs={"rows": 2}),
            )  # fmt: skip
            self.form.initial[name] = given.get(slug, "")
            self.objectives.append(name)

    # Section E: a tick and a justification per catalogue field, and the cohort.
    def _data_fields(self, answers: Mapping[str, Any]) -> None:
        chosen = answers.get("datasets") or {}
        fields = self.form.fields
        self.catalogue: list[dict[str, Any]] = []
        for dataset in self.choices.datasets:
            rows = []
            for field in dataset.fields.all():
                key = f"{dataset.slug}__{field.name}"
                fields[PICK + key] = forms.BooleanField(
                    required=False, label=f"Ask for {field.name}"
                )
                fields[WHY + key] = forms.CharField(
                    required=False, max_length=q.MAX_TEXT, label=f"Why you need {field.name}",
                    widget=forms.Textarea(attrs={"rows": 2, "data-pick": f"id_{PICK}{key}"}),
                )  # fmt: skip
                if field.name in chosen.get(dataset.slug, {}):
                    self.form.initial[PICK + key] = True
                    self.form.initial[WHY + key] = chosen[dataset.slug][field.name]
                flagged = field.sensitivity in q.FLAGGED_SENSITIVITIES
                rows.append({"field": field, "flagged": flagged, "key": key})
            self.catalogue.append({"dataset": dataset, "rows": rows})
        cohort = answers.get("cohort") or {}
        for name in ("age_min", "age_max"):
            fields[name] = forms.IntegerField(
                label=COHORT_LABELS[name], required=False, min_value=0, max_value=130,
                widget=forms.NumberInput(attrs={"min": 0, "max": 130}),
            )  # fmt: skip
            self.form.initial[name] = cohort.get(name)
        if self.choices.places or cohort.get("places"):
            places = sorted(set(self.choices.places) | set(cohort.get("places") or []))
            fields["places"] = forms.MultipleChoiceField(
                label=COHORT_LABELS["places"], required=False,
                choices=[(p, p) for p in places], widget=forms.CheckboxSelectMultiple,
                help_text="None ticked: every Place.",
            )  # fmt: skip
            self.form.initial["places"] = cohort.get("places") or []
        fields["imd_deciles"] = forms.TypedMultipleChoiceField(
            label=COHORT_LABELS["imd_deciles"], required=False, coerce=int,
            choices=[(str(d), str(d)) for d in range(1, 11)],
            widget=forms.CheckboxSelectMultiple, help_text="None ticked: every decile.",
        )  # fmt: skip
        self.form.initial["imd_deciles"] = [str(d) for d in cohort.get("imd_deciles") or []]
        for entry in self.catalogue:
            for row in entry["rows"]:
                row["pick"], row["why"] = self.form[PICK + row["key"]], self.form[WHY + row["key"]]
            entry["picked"] = any(row["pick"].value() for row in entry["rows"])

    def is_valid(self) -> bool:
        valid = self.form.is_valid()
        for formset in self.formsets.values():
            valid = formset.is_valid() and valid
        if valid and self.section == "data" and self.data is not None:
            for name in self.form.fields:
                if name.startswith(WHY) and self.form.cleaned_data.get(name):
                    if not self.form.cleaned_data.get(PICK + name[len(WHY) :]):
                        self.form.add_error(
                            name, "Tick the field to ask for it, or clear this justification."
                        )
                        valid = False
        return valid

    def answers(self) -> dict[str, Any]:
        """The step's answers as the question set stores them (only after ``is_valid``).
        Names posted that the page did not offer are passed on, so the service refuses
        them by name rather than the page dropping them silently."""
        found = self.form.answers()
        if self.section == "people":
            found = {
                key: rows for key in ("organisations", "members")
                if (rows := _rows(self.formsets[key]))
            }  # fmt: skip
        if self.section == "project":
            found = {k: v for k, v in found.items() if not k.startswith(OBJECTIVE)}
            objectives = {
                key[len(OBJECTIVE) :]: value for key, value in self._posted(OBJECTIVE) if value
            }
            if objectives:
                found["dataset_objectives"] = objectives
        if self.section == "data" and "age_min" in self.form.fields:
            return self._data_answers(found)
        return found

    def _data_answers(self, found: dict[str, Any]) -> dict[str, Any]:
        found = {k: v for k, v in found.items() if k in q.QUESTIONS["data"]}
        datasets: dict[str, dict[str, str]] = {}
        for key, ticked in self._posted(PICK):
            if not ticked or ticked in ("false", "off"):
                continue
            slug, _, name = key[len(PICK) :].partition("__")
            datasets.setdefault(slug, {})[name] = self._value(WHY + key[len(PICK) :])
        if datasets:
            found["datasets"] = datasets
        data = self.form.cleaned_data
        cohort = {
            name: value for name in q.COHORT_FILTERS
            if (value := _json(data.get(name))) is not None
        }  # fmt: skip
        if cohort:
            found["cohort"] = cohort
        return found

    def _posted(self, prefix: str) -> list[tuple[str, str]]:
        """Every posted name with ``prefix`` and its value (cleaned when the page offered
        the name, as posted otherwise)."""
        names = [n for n in (self.data or {}) if n.startswith(prefix)]
        return [(n, self._value(n)) for n in names]

    def _value(self, name: str) -> Any:
        if name in self.form.fields:
            return self.form.cleaned_data.get(name) or ""
        return (self.data or {}).get(name, "")

    def show_problems(self, problems: Mapping[str, list[str]]) -> None:
        for name, messages in problems.items():
            if name in self.BLOCKS:
                self.blocks.setdefault(name, []).extend(
                    m for m in messages if m not in self.blocks.get(name, [])
                )
            else:
                self.form.show_problems({name: messages})

    def summary(self) -> list[tuple[str, str]]:
        """(link target, message) for the error summary, in page order; each message
        names its question (the service's messages may not)."""
        items = [("", str(m)) for m in self.form.non_field_errors()]
        for name, messages in self.blocks.items():
            title = label(self.section, name)
            items += [(f"#{name.replace('_', '-')}", _named(title, m)) for m in messages]
        for field in self.form:
            items += [(f"#{_target(field)}", _named(field.label, m)) for m in field.errors]
        for key, formset in self.formsets.items():
            title = label(self.section, key)
            items += [(f"#{key}", _named(title, m)) for m in formset.non_form_errors()]
            for number, form in enumerate(formset.forms, start=1):
                for field in form:
                    where = f"{title}, row {number}, {field.label}"
                    items += [(f"#{_target(field)}", _named(where, m)) for m in field.errors]
        return items


def anchor(section: str, name: str) -> str:
    """Where a question is on its step's page (for links from other pages)."""
    if name in SectionEditor.BLOCKS:
        return f"#{name.replace('_', '-')}"
    kind = q.QUESTIONS.get(section, {}).get(name, (q.TEXT, None))[0]
    group = kind in (q.CHOICE, q.CHOICES) or (kind == q.BOOL and name != "accepted")
    return f"#id_{name}_0" if group else f"#id_{name}"


def named(section: str, name: str, message: str) -> str:
    return _named(label(section, name), message)


def _named(title: Any, message: Any) -> str:
    """``message`` led by the question it is about, unless it already says so."""
    title, message = str(title), str(message)
    return message if title.lower() in message.lower() else f"{title}: {message}"


def _target(field: forms.BoundField) -> str:
    """The id an error summary links to: the input, or a group's first input."""
    return str(field.id_for_label or f"{field.auto_id}_0")


# --- Other pages -----------------------------------------------------------------------
class StartForm(forms.Form):
    organisation: forms.ModelChoiceField[Organisation] = forms.ModelChoiceField(
        queryset=Organisation.objects.none(), empty_label=None,
        label="Which organisation are you applying for?",
        error_messages={"invalid_choice": "Pick one of your organisations."},
    )  # fmt: skip
    title = forms.CharField(
        max_length=q.MAX_SHORT, required=False, label=LABELS["meta"]["title"][0],
        help_text="You can change it later.",
    )  # fmt: skip

    def __init__(self, *args: Any, organisations: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["organisation"].queryset = organisations  # type: ignore[attr-defined]


class AttachmentForm(forms.Form):
    kind = forms.ChoiceField(label="What is it?", choices=Attachment.Kind.choices)
    file = forms.FileField(label="File")

    def __init__(self, *args: Any, max_bytes: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields[
            "file"
        ].help_text = (
            f"PDF, Word (.docx), PNG, JPEG or plain text, up to {filesizeformat(max_bytes)}."
        )


class RedactForm(forms.Form):
    reason = forms.CharField(
        label="Why it is redacted", max_length=300, widget=forms.Textarea(attrs={"rows": 2})
    )
    replacement = forms.FileField(
        label="Redacted copy", required=False,
        help_text="Optional. Without one, the file is removed and only the record remains.",
    )  # fmt: skip


class CommentForm(forms.Form):
    body = forms.CharField(
        label="Comment", max_length=q.MAX_TEXT, widget=forms.Textarea(attrs={"rows": 3})
    )


class NoteForm(CommentForm):
    private = forms.BooleanField(
        required=False, label="Private note (only independent IG reviewers see it)"
    )


class ReasonForm(forms.Form):
    reason = forms.CharField(
        label="Reason", max_length=q.MAX_TEXT, widget=forms.Textarea(attrs={"rows": 3}),
        help_text="The applicant sees it.",
    )  # fmt: skip


class ApproveForm(forms.Form):
    end_date = forms.DateField(
        label="Access ends on", widget=_date_widget(),
        help_text="Defaults to the requested end date.",
    )  # fmt: skip
    conditions = forms.CharField(
        label="Conditions", required=False, max_length=q.MAX_TEXT,
        widget=forms.Textarea(attrs={"rows": 3}),
    )  # fmt: skip


class AssignForm(forms.Form):
    assignee = forms.TypedChoiceField(
        label="Assign to", coerce=int,
        error_messages={"invalid_choice": "Pick an independent IG officer."},
    )  # fmt: skip

    def __init__(self, *args: Any, reviewers: list[tuple[int, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["assignee"].choices = reviewers  # type: ignore[attr-defined]


class SignOffForm(forms.Form):
    note = forms.CharField(
        label="Sign-off note", max_length=q.MAX_TEXT, widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Why the public interest overrides the duty of confidentiality here.",
    )  # fmt: skip


CHANGE_KINDS: Final = [
    (k.value, k.label) for k in AccessRequest.Kind if k != AccessRequest.Kind.NEW
]
