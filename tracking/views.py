"""The links in our emails: open pixel, click redirect, unsubscribe page, preference centre.

The pixel and the redirect are the hot path: one statement each (see hits.py), no session, no
template. The pages are plain HTML that works without JavaScript and reflect nothing from the request.
"""

import logging
import math
import re
from functools import wraps

from django import forms
from django.conf import settings
from django.db import DatabaseError
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods

from campaigns.rendering import RenderFailed, customer_context
from campaigns.sender import composer_for
from campaigns.tokens import TokenKind, make_token, read_token
from core.clients import client_address, client_key
from tenancy.middleware import TRANSPARENT_GIF

from . import hits, ratelimit, selectors
from .models import HitKind
from .preferences import customer_preferences_update, recipient_unsubscribe

logger = logging.getLogger(__name__)

PIXEL_GIF = TRANSPARENT_GIF
NO_STORE = "no-store, no-cache, must-revalidate, max-age=0, private"


def _pixel():
    response = HttpResponse(PIXEL_GIF, content_type="image/gif")
    response["Cache-Control"] = NO_STORE
    response["Pragma"] = "no-cache"
    response["Expires"] = "0"
    return response


@csrf_exempt
def open_pixel(request, token):
    """`GET /t/o/<token>`: always the 1x1 GIF; a valid token's GET is recorded as an open, within the
    token's budget (see ratelimit: over it, the same GIF and only a count)."""
    if request.method == "GET":
        ids = read_token(TokenKind.OPEN, token)
        if ids and len(ids) == 1:
            try:
                if ratelimit.hit_allowed(kind=HitKind.OPEN, recipient_id=ids[0]):
                    hits.hit_record_open(
                        tenant=request.tenant,
                        recipient_id=ids[0],
                        ip=client_address(request),
                        user_agent=request.META.get("HTTP_USER_AGENT", ""),
                    )
                else:
                    ratelimit.unstored_hit(recipient_id=ids[0])
                ratelimit.unstored_report()
            except Exception:  # the pixel is an image whatever happens behind it
                logger.exception("open hit not recorded")
    return _pixel()


class _Redirect(HttpResponseRedirect):
    allowed_schemes = ["http", "https"]


def _headers(response):
    """Pages behind our email links: never cached, never indexed, never framed, no referrer carries
    the token to another site, no script runs."""
    response["Cache-Control"] = NO_STORE
    # same-origin, not no-referrer: with no-referrer browsers send "Origin: null" on the form's
    # POST and CSRF rejects the preference centre; other sites still never see the token.
    response["Referrer-Policy"] = "same-origin"
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; "
        "base-uri 'none'"
    )
    return response


def _page_headers(view):
    """The headers of every answer behind our email links (`_headers`) on a view's responses."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        return _headers(view(request, *args, **kwargs))

    return wrapped


def _page(request, template, context=None, status=200):
    tenant = request.tenant
    return render(
        request, f"tracking/{template}", {"tenant_name": tenant.name, **(context or {})}, status=status
    )


def _too_many(request):
    response = _page(request, "rate_limited.html", status=429)
    response["Retry-After"] = str(math.ceil(settings.TRACKING_PAGE_INTERVAL_SECONDS))
    return response


def _invalid_link(request):
    # Only links that are not valid are limited per address: valid ones have their token's budget.
    if not ratelimit.invalid_link_allowed(client=client_key(request)):
        return _too_many(request)
    return _page(request, "invalid_link.html", status=404)


INVALID = "invalid"
UNAVAILABLE = "unavailable"


def _click(request, token):
    """The click's redirect, or why it gets a page instead (INVALID, UNAVAILABLE): (response, None) or
    (None, reason). Within the token's budget the click is recorded; over it, the same redirect and
    only a count. Nothing is written when the answer is a page."""
    ids = read_token(TokenKind.CLICK, token)
    if not ids or len(ids) != 2 or request.method not in ("GET", "HEAD"):
        return None, INVALID
    recipient_id, link_id = ids
    if not ratelimit.hit_allowed(kind=HitKind.CLICK, recipient_id=recipient_id, link_id=link_id):
        url = ratelimit.click_url_recall(recipient_id=recipient_id, link_id=link_id)
        if url:
            ratelimit.unstored_hit(recipient_id=recipient_id)
            ratelimit.unstored_report()
            return _Redirect(url), None
        # No URL known for it yet (the link does not resolve, or the database failed each time): the
        # usual answer below, which for a link that does not resolve stores nothing either.
    try:
        url = hits.hit_record_click(
            tenant=request.tenant,
            recipient_id=recipient_id,
            link_id=link_id,
            ip=client_address(request),
            user_agent=request.META.get("HTTP_USER_AGENT", ""),
            # Link checkers and scanners ask with HEAD; a person's browser never does.
            machine=request.method == "HEAD",
        )
    except DatabaseError:
        logger.exception("click not resolved")
        return None, UNAVAILABLE
    if not url or not url.lower().startswith(("http://", "https://")):
        return None, INVALID
    ratelimit.click_url_remember(recipient_id=recipient_id, link_id=link_id, url=url)
    ratelimit.unstored_report()
    return _Redirect(url), None


def click_answer(request, token):
    """The click's redirect (recorded within the token's budget), or None when its answer is a page:
    tracking.middleware answers the redirects without the middleware a page needs."""
    response = _click(request, token)[0]
    return None if response is None else _headers(response)


@_page_headers
@csrf_exempt
def click_redirect(request, token):
    """`GET /t/c/<token>`: 302 to the link's URL, only if the link is in the recipient's campaign.
    Within the token's budget the click is recorded; over it, the same redirect and only a count."""
    response, reason = _click(request, token)
    if response is not None:
        return response
    if reason == UNAVAILABLE:
        return _page(request, "unavailable.html", status=503)
    return _invalid_link(request)


def _page_allowed(kind, token):
    """A valid token's page requests are limited per token, not per address: mailbox providers send
    the RFC 8058 one-click POSTs of all their users from a few servers of their own."""
    ids = read_token(kind, token)
    return not ids or len(ids) != 1 or ratelimit.page_allowed(kind=kind, object_id=ids[0])


def _mask(email):
    local, _, domain = (email or "").partition("@")
    if not domain:
        return ""
    return f"{local[:1]}{'•' * 3}@{domain}"


def _consent_context(customer, unsubscribe_token=None):
    return {
        "masked_email": _mask(customer.email),
        "subscribed": customer.email_marketing and customer.unsubscribed_at is None,
        "preferences_path": f"/p/{make_token(TokenKind.PREFERENCES, customer.pk)}",
        "unsubscribe_path": f"/u/{unsubscribe_token}" if unsubscribe_token else None,
    }


# RFC 8058: the mail client POSTs "List-Unsubscribe=One-Click" form-encoded, without cookies or a CSRF
# token. A forged request needs the signed token, which only the recipient has, so CSRF does not apply.
@_page_headers
@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request, token):
    """`GET /u/<token>` shows the choice (a GET never unsubscribes); `POST` unsubscribes, or with
    `action=resubscribe` undoes it."""
    if not _page_allowed(TokenKind.UNSUBSCRIBE, token):
        return _too_many(request)
    recipient = selectors.recipient_for_token(token=token)
    if recipient is None:
        return _invalid_link(request)
    customer = recipient.customer
    if request.method == "POST":
        one_click = request.POST.get("List-Unsubscribe") == "One-Click"
        action = "unsubscribe" if one_click else request.POST.get("action", "unsubscribe")
        if action not in ("unsubscribe", "resubscribe"):
            return _page(request, "bad_request.html", status=400)
        if action == "resubscribe":
            customer_preferences_update(
                customer=customer,
                email_marketing=True,
                email_transactional=customer.email_transactional,
                source="unsubscribe page",
            )
            customer.refresh_from_db()
            return _page(request, "resubscribed.html", _consent_context(customer, token))
        recipient_unsubscribe(recipient=recipient, source="one-click" if one_click else "link")
        if one_click:
            return HttpResponse("Unsubscribed.\n", content_type="text/plain; charset=utf-8")
        customer.refresh_from_db()
        return _page(
            request,
            "unsubscribed.html",
            {"campaign_name": recipient.campaign.name, **_consent_context(customer, token)},
        )
    context = {"campaign_name": recipient.campaign.name, **_consent_context(customer, token)}
    return _page(request, "unsubscribe.html" if context["subscribed"] else "unsubscribed.html", context)


class PreferencesForm(forms.Form):
    email_marketing = forms.BooleanField(required=False, label="News and offers (marketing email)")
    email_transactional = forms.BooleanField(
        required=False, label="Messages about my orders (confirmations, shipping)"
    )


@_page_headers
@csrf_protect
@require_http_methods(["GET", "HEAD", "POST"])
def preferences(request, token):
    """`/p/<token>`: the customer's own choices, marketing and transactional email on or off."""
    if not _page_allowed(TokenKind.PREFERENCES, token):
        return _too_many(request)
    customer = selectors.customer_for_token(token=token)
    if customer is None:
        return _invalid_link(request)
    saved = False
    if request.method == "POST":
        form = PreferencesForm(request.POST)
        form.is_valid()  # two optional checkboxes: any POST is valid, a missing box means "off"
        customer_preferences_update(
            customer=customer,
            email_marketing=form.cleaned_data["email_marketing"],
            email_transactional=form.cleaned_data["email_transactional"],
        )
        customer.refresh_from_db()
        saved = True
    form = PreferencesForm(
        initial={
            "email_marketing": customer.email_marketing and customer.unsubscribed_at is None,
            "email_transactional": customer.email_transactional,
        }
    )
    return _page(request, "preferences.html", {"form": form, "saved": saved, **_consent_context(customer)})


ROBOTS_META = '<meta name="robots" content="noindex, nofollow">'
HEAD_RE = re.compile(r"<head\b[^>]*>", re.IGNORECASE)


@csrf_exempt
@require_http_methods(["GET", "HEAD"])
def web_version(request, token):
    """`GET /v/<token>`: the recipient's personalised email as a page. Not an open (no pixel, nothing
    recorded); never indexed or cached; no script runs, images load from anywhere as in the email.
    Its links are the email's own (tracked clicks when the campaign tracks them)."""
    if not _page_allowed(TokenKind.WEB_VERSION, token):
        return _too_many(request)
    recipient = selectors.recipient_for_web_version(token=token)
    if recipient is None:
        return _invalid_link(request)
    composer = composer_for(campaign=recipient.campaign)
    try:
        page = composer.web_version(
            recipient_id=recipient.pk,
            customer_id=recipient.customer_id,
            customer=customer_context(recipient.customer),
        )
    except RenderFailed:
        logger.exception("web version not rendered")
        return _page(request, "unavailable.html", status=503)
    head = HEAD_RE.search(page)
    page = page[: head.end()] + ROBOTS_META + page[head.end() :] if head else ROBOTS_META + page
    response = HttpResponse(page, content_type="text/html; charset=utf-8")
    response["Cache-Control"] = NO_STORE
    response["Referrer-Policy"] = "no-referrer"
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Content-Security-Policy"] = (
        "default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline'; font-src https:; "
        "form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    )
    return response
