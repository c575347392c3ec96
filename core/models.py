"""What the API keeps beside DRF's tokens (in each tenant's schema, like the tokens themselves)."""

from django.db import models
from rest_framework.authtoken.models import Token


class TokenUse(models.Model):
    """When an API token was last used, and under which password of its user it was issued.

    A token dies when it has not been used for API_TOKEN_TTL_DAYS, and when its user's password is no
    longer the one it was issued under (core.tokens). `last_used_at` is written at most once an hour
    per token, so using a token costs no write on almost every request.
    """

    token = models.OneToOneField(
        Token, primary_key=True, on_delete=models.CASCADE, related_name="use", db_column="token_key"
    )
    last_used_at = models.DateTimeField()
    # sha256 of the user's password hash at issue: equal as long as the password is unchanged.
    password_fingerprint = models.CharField(max_length=64)

    class Meta:
        db_table = "api_token_use"

    def __str__(self):
        return f"token of user {self.token.user_id}, last used {self.last_used_at:%Y-%m-%d %H:%M}"
