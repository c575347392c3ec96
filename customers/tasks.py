from celery import shared_task

from . import services


@shared_task(acks_late=True)
def import_customers_job(job_id):
    """Run an admin-started CSV import (the tenant's schema comes with the message)."""
    services.customers_import_job(job_id=job_id)
