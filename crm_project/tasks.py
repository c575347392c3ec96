"""The dashboard's background work (the tenant's schema comes with the message)."""

from celery import shared_task

from .dashboard import dashboard_customers_count


@shared_task
def dashboard_customers_recount():
    """Recount a big account's customer figures for the dashboard (crm_project/dashboard.py)."""
    dashboard_customers_count()
