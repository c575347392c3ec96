"""API tokens that die: when their user is deactivated, when the user's password changes, and after
API_TOKEN_TTL_DAYS without use (PRODUCT.md "API conventions").

DRF's `Token` stays the token (its key, its user, its table in the tenant's schema); `TokenUse` beside
it remembers the last use and the password the token was issued under. A token made outside
`token_issue` (the admin's token page, a script) gets its `TokenUse` at its first use, with the
password of that moment and its creation as its last use.
"""

import hashlib
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication as DRFTokenAuthentication
from rest_framework.authtoken.models import Token

from .models import TokenUse

# Last use is recorded at most this often per token: one UPDATE an hour instead of one per request.
TOUCH_SECONDS = 3600


def password_fingerprint(user):
    return hashlib.sha256(user.password.encode()).hexdigest()


def _death(token, use, now):
    """Why the token is dead, or None when it lives."""
    if not token.user.is_active:
        return "User inactive or deleted."
    if use.password_fingerprint != password_fingerprint(token.user):
        return "The password changed since this token was issued; log in again."
    if use.last_used_at < now - timedelta(days=settings.API_TOKEN_TTL_DAYS):
        return f"The token was not used for {settings.API_TOKEN_TTL_DAYS} days and expired; log in again."
    return None


def _use_of(token):
    try:
        return token.use
    except TokenUse.DoesNotExist:
        TokenUse.objects.bulk_create(
            [
                TokenUse(
                    token=token,
                    last_used_at=token.created,
                    password_fingerprint=password_fingerprint(token.user),
                )
            ],
            ignore_conflicts=True,  # two first uses at once
        )
        return TokenUse.objects.get(token=token)


def token_issue(*, user):
    """The user's living token (a new one when there is none or it died)."""
    now = timezone.now()
    with transaction.atomic():
        token = Token.objects.select_for_update().select_related("user").filter(user=user).first()
        if token is not None and _death(token, _use_of(token), now):
            token.delete()
            token = None
        if token is None:
            token, created = Token.objects.get_or_create(user=user)  # a login at the same moment
            if created:
                TokenUse.objects.create(
                    token=token, last_used_at=now, password_fingerprint=password_fingerprint(user)
                )
    return token


def token_verify(token):
    """Check a presented token: a dead one is deleted and refused (401), a living one's use recorded."""
    now = timezone.now()
    use = _use_of(token)
    reason = _death(token, use, now)
    if reason:
        Token.objects.filter(pk=token.pk).delete()
        raise exceptions.AuthenticationFailed(reason)
    stale = now - timedelta(seconds=TOUCH_SECONDS)
    if use.last_used_at < stale:
        # Conditional: of the requests that see a stale time at once, one writes.
        TokenUse.objects.filter(pk=use.pk, last_used_at__lt=stale).update(last_used_at=now)


def tokens_of_deactivated_user_delete(sender, instance, **kwargs):
    """post_save of the user model: a deactivated user's tokens die with the deactivation, so turning
    the user back on does not bring them back. (A receiver because Django's admin and forms save users;
    token_verify refuses inactive users whatever path deactivated them.)"""
    if not instance.is_active:
        Token.objects.filter(user=instance).delete()


class TokenAuthentication(DRFTokenAuthentication):
    """DRF's `Authorization: Token <key>`, refusing dead tokens (see token_verify)."""

    def authenticate_credentials(self, key):
        try:
            token = Token.objects.select_related("user", "use").get(key=key)
        except Token.DoesNotExist:
            raise exceptions.AuthenticationFailed("Invalid token.")
        token_verify(token)
        return token.user, token
