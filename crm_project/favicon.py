"""/favicon.ico on every host: browsers ask for it on each page, and a 404 there is noise in every log."""

from pathlib import Path

from django.http import HttpResponse
from django.views.decorators.http import require_safe

ICON = (Path(__file__).resolve().parent / "static" / "crm_admin" / "favicon.svg").read_bytes()


@require_safe
def favicon(request):
    response = HttpResponse(ICON, content_type="image/svg+xml")
    response["Cache-Control"] = "public, max-age=86400"
    return response
