import pytest

from crm_project.celery import app as celery_app
from tests import processes
from tests.events.conftest import fresh_tenant  # noqa: F401  (a fixture)


@pytest.fixture
def smtp_sink(settings):
    """The SMTP sink (tests.processes), and the mail settings that send to it."""
    with processes.smtp_sink() as sink:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST = "127.0.0.1"
        settings.EMAIL_PORT = sink.port
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
        settings.DKIM_SELECTOR = ""
        yield sink


@pytest.fixture
def eager_tasks():
    """Tasks run in-process as they are enqueued (the real task code, the real SMTP backend)."""
    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    try:
        yield
    finally:
        celery_app.conf.task_always_eager = before
