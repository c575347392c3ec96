"""An admin upload imported by a real Celery worker (its own process and connection)."""

import os
import signal
import subprocess
import time

from celery import current_app
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django_tenants.utils import schema_context

from customers.models import Customer, ImportJob
from customers.services import import_job_start
from tests import processes


def test_it_imports_an_uploaded_list_on_a_real_worker(fresh_tenant, django_db_blocker, redis_service):
    host, schema, token = fresh_tenant
    queue = f"customers-import-test-{os.getpid()}"
    workers = processes.CeleryWorkers(queue=queue)
    worker = workers.start(pool="solo", stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        with django_db_blocker.unblock(), schema_context(schema):
            upload = SimpleUploadedFile("list.csv", b"email,first_name,tags\nw1@example.com,W,vip\nbad,X,\n")

            current_app.conf.task_default_queue = queue
            try:
                job = import_job_start(upload=upload)  # autocommit: enqueued at once
            finally:
                current_app.conf.task_default_queue = settings.CELERY_TASK_DEFAULT_QUEUE
            deadline = time.monotonic() + 45
            while time.monotonic() < deadline:
                job.refresh_from_db()
                if job.status in ("done", "failed"):
                    break
                time.sleep(0.3)
            assert (job.status, job.rows, job.created, job.failed, job.percent) == ("done", 2, 1, 1, 100)
            assert job.errors == [[3, "email 'bad' is not a valid address"]]
            assert list(Customer.objects.values_list("email", "first_name")) == [("w1@example.com", "W")]
            ImportJob.objects.all().delete()
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        output = worker.communicate(timeout=20)[0].decode(errors="replace")
        workers.stop_all()
        assert "Traceback" not in output, output
