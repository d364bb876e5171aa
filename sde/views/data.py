"""The dataset catalogue (metadata for everyone signed in) and ingestion (custodians)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.core.files.uploadedfile import UploadedFile
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from sde import policy, uploads
from sde.data import catalogue, ingestion
from sde.data.models import Ingest
from sde.identity.models import User


def catalogue_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "data/catalogue.html",
        {
            "datasets": catalogue.catalogue_for(request.user),  # type: ignore[arg-type]
            "can_manage": policy.user_can_manage_datasets(request.user),
        },
    )


def dataset_detail(request: HttpRequest, slug: str) -> HttpResponse:
    dataset = get_object_or_404(catalogue.catalogue_for(request.user), slug=slug)  # type: ignore[arg-type]
    return render(
        request,
        "data/dataset.html",
        {
            "dataset": dataset,
            "versions": dataset.versions.all(),
            "can_manage": policy.user_can_manage_datasets(request.user),
        },
    )


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files in one field. FileField cleans a single file and rejects the list a
    multiple widget gives it ("No file was submitted"), so each file is cleaned in turn
    (Django's documented recipe); no file at all is still "required"."""

    def clean(self, data: Any, initial: Any = None) -> Any:
        if not data:
            return super().clean(data, initial)
        files = data if isinstance(data, list | tuple) else [data]
        return [super(MultipleFileField, self).clean(item, initial) for item in files]


class DropUploadForm(forms.Form):
    label = forms.CharField(
        max_length=200,
        required=False,
        help_text="A name for this drop, e.g. 'GP and acute, November'.",
    )
    drop_files = MultipleFileField(
        label="Files",
        widget=MultipleFileInput(attrs={"multiple": True, "accept": ".csv,.json"}),
        help_text="The drop's CSV files (patients.csv and any others) and its manifest.json.",
    )

    def clean_drop_files(self) -> list[UploadedFile]:
        files = self.files.getlist("drop_files")
        error = uploads.drop_files_error(files)
        if error:
            raise forms.ValidationError(error)
        return files


@require_http_methods(["GET", "POST"])
def ingest_list(request: HttpRequest) -> HttpResponse:
    policy.check_manage_datasets(request.user)
    form = DropUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            ingest = uploads.ingest_uploaded_drop(
                files=form.cleaned_data["drop_files"],
                label=form.cleaned_data["label"],
                by=request.user,  # type: ignore[arg-type]
            )
        except ingestion.IngestError as error:
            form.add_error(None, str(error))
        else:
            if ingest.status == Ingest.Status.SUCCEEDED:
                messages.info(request, "This drop was already ingested: no new version made.")
            return redirect("ingest-detail", pk=ingest.pk)
    ingests = Ingest.objects.select_related("requested_by").order_by("-created_at")[:50]
    return render(
        request,
        "data/ingests.html",
        {"form": form, "ingests": ingests},
        status=400 if form.errors else 200,
    )


def _ingest(request: HttpRequest, pk: int) -> Ingest:
    policy.check_manage_datasets(request.user)
    return get_object_or_404(Ingest, pk=pk)


def ingest_detail(request: HttpRequest, pk: int) -> HttpResponse:
    ingest = _ingest(request, pk)
    return render(
        request,
        "data/ingest.html",
        {
            "ingest": ingest,
            "versions": ingest.versions.select_related("dataset"),
            "running": ingest.status in (Ingest.Status.QUEUED, Ingest.Status.RUNNING),
        },
    )


def ingest_status(request: HttpRequest, pk: int) -> JsonResponse:
    """For the progress bar: database state only, never a Celery result."""
    ingest = _ingest(request, pk)
    return JsonResponse(
        {"status": ingest.status, "stage": ingest.stage, "progress": ingest.progress}
    )


def quarantine_report(request: HttpRequest, pk: int) -> FileResponse:
    """Row numbers and reasons only (no row contents). Downloads are audited."""
    ingest = _ingest(request, pk)
    user: User = request.user  # type: ignore[assignment]
    return FileResponse(
        ingestion.open_quarantine_report(ingest=ingest, by=user),
        as_attachment=True,
        filename=f"quarantine-ingest-{ingest.pk}.csv",
        content_type="text/csv",
    )
