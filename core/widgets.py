"""Form widgets the admin shares: the browser's own date-time picker, in the tenant's time zone."""

from datetime import datetime, timedelta

from django import forms
from django.utils import timezone
from unfold.widgets import DATETIME_CLASSES

LOCAL_DATETIME_FORMAT = "%Y-%m-%dT%H:%M"


class LocalDateTimeInput(forms.DateTimeInput):
    """`<input type="datetime-local">`: a real picker, read and shown in the active (tenant's) zone."""

    input_type = "datetime-local"

    def __init__(self, attrs=None):
        super().__init__(
            attrs={"class": " ".join(DATETIME_CLASSES), "step": "60", **(attrs or {})},
            format=LOCAL_DATETIME_FORMAT,
        )


def local_input_value(value):
    """An aware datetime as the value of a datetime-local input, in the active time zone."""
    return timezone.localtime(value).strftime(LOCAL_DATETIME_FORMAT) if value else ""


def parse_local_datetime(text):
    """'2030-01-31T09:00' or '2030-01-31 09:00' (the active zone's wall clock) -> aware; None if unparsable."""
    text = (text or "").strip().replace(" ", "T", 1)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    if timezone.is_naive(value):
        value = timezone.make_aware(value)  # the active zone: the tenant's on a tenant host
    return value


def next_quarter_hour_plus_hour(now=None):
    """A sensible default send time: the next round quarter hour, one hour on (10:07 -> 11:15)."""
    now = timezone.localtime(now or timezone.now())
    rounded = now.replace(second=0, microsecond=0) + timedelta(minutes=15 - now.minute % 15)
    return rounded + timedelta(hours=1)
