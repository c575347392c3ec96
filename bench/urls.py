"""Tenant URLs for row 5: the product's, plus bare views returning the same bytes as the tracking
views and doing nothing else (the baseline "same server, same middleware, no work")."""

from django.http import HttpResponse, HttpResponseRedirect
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from crm_project.urls import urlpatterns as product_urlpatterns
from tracking.views import NO_STORE, PIXEL_GIF

BARE_REDIRECT_TO = "https://shop.example.com/autumn"


@csrf_exempt
def bare_pixel(request, token):
    response = HttpResponse(PIXEL_GIF, content_type="image/gif")
    response["Cache-Control"] = NO_STORE
    response["Pragma"] = "no-cache"
    response["Expires"] = "0"
    return response


@csrf_exempt
def bare_redirect(request, token):
    response = HttpResponseRedirect(BARE_REDIRECT_TO)
    response["Cache-Control"] = NO_STORE
    response["Referrer-Policy"] = "no-referrer"
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; "
        "base-uri 'none'"
    )
    return response


urlpatterns = [
    path("bench/o/<str:token>", bare_pixel),
    path("bench/c/<str:token>", bare_redirect),
    *product_urlpatterns,
]
