"""Celery tasks of the events app: thin, idempotent, each calling one service."""

from celery import shared_task

from . import services


@shared_task(bind=True, ignore_result=True, max_retries=None)
def publish_outbox(self):
    """Beat runs this every 10 s and every emitting transaction kicks it after commit.

    While the broker is down the service backs off on the waiting row; the run that failed also
    retries itself at that time (beat would too), so publishing resumes without beat as well.
    """
    result = services.outbox_publish()
    if result.more:
        publish_outbox.apply_async(headers={"_schema_name": "public"})
    elif result.error and not self.request.is_eager:
        raise self.retry(countdown=result.retry_in)
    return result.published


@shared_task(ignore_result=True)
def prune_outbox():
    """Delete outbox rows the broker confirmed longer ago than EVENTS_OUTBOX_RETENTION_DAYS."""
    return services.outbox_prune()


@shared_task(ignore_result=True)
def prune_inbox():
    """Forget applied webshop message ids older than EVENTS_INBOX_RETENTION_DAYS."""
    return services.inbox_prune()
