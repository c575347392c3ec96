from datetime import timedelta

from django.utils import timezone

from events.models import InboxMessage, OutboxEvent
from events.services import inbox_prune, outbox_prune
from events.tasks import prune_inbox, prune_outbox


def test_it_prunes_published_events_past_retention_and_keeps_the_rest(tenant, settings):
    settings.EVENTS_OUTBOX_RETENTION_DAYS = 7
    now = timezone.now()
    old = OutboxEvent.objects.create(
        tenant="tenant_a", type="customer.created", published_at=now - timedelta(days=8)
    )
    recent = OutboxEvent.objects.create(
        tenant="tenant_a", type="customer.created", published_at=now - timedelta(days=6)
    )
    waiting = OutboxEvent.objects.create(
        tenant="tenant_a", type="customer.created", occurred_at=now - timedelta(days=30)
    )

    deleted = prune_outbox.apply().get()

    assert deleted >= 1
    assert not OutboxEvent.objects.filter(pk=old.pk).exists()
    assert OutboxEvent.objects.filter(pk__in=[recent.pk, waiting.pk]).count() == 2


def test_it_prunes_in_chunks(tenant):
    long_ago = timezone.now() - timedelta(days=60)
    OutboxEvent.objects.bulk_create(
        [OutboxEvent(tenant="tenant_a", type="customer.created", published_at=long_ago) for _ in range(25)]
    )

    assert outbox_prune(chunk=10) >= 25
    assert not OutboxEvent.objects.filter(published_at__lte=long_ago).exists()


def test_it_forgets_applied_webshop_messages_after_their_retention(tenant, settings):
    settings.EVENTS_INBOX_RETENTION_DAYS = 30
    now = timezone.now()
    old = InboxMessage.objects.create(
        tenant="tenant_a", message_id="m-old", type="order.created", processed_at=now - timedelta(days=31)
    )
    kept = InboxMessage.objects.create(
        tenant="tenant_a", message_id="m-new", type="order.created", processed_at=now - timedelta(days=29)
    )

    prune_inbox.apply()

    assert not InboxMessage.objects.filter(pk=old.pk).exists()
    assert InboxMessage.objects.filter(pk=kept.pk).exists()
    assert (
        inbox_prune() == 0
        or not InboxMessage.objects.filter(processed_at__lt=now - timedelta(days=30)).exists()
    )
