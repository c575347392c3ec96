"""Beat work of the tenancy app."""

from celery import shared_task

from .work import work_sweep


@shared_task(ignore_result=True)
def sweep_periodic_work():
    """Beat, hourly: every serving tenant's work markers checked against its data (tenancy/work.py)."""
    return work_sweep()
