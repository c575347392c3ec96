"""The state one run shares between workloads: its scale, scratch tenants, an API client, a log."""

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from django.db import connection
from django.test import Client

BASE_DIR = Path(__file__).resolve().parent.parent


@dataclass
class Scale:
    name: str
    sizes: list  # customers, ascending; the largest is the size of the main table
    freeze_share: str  # what the row-3 segment selects (documented in the results)
    send_messages: int
    flow_entrants: int  # row 9a: customers entering the flow at once (and the campaign it is held to)
    flow_waiting_runs: int  # row 9b: runs waiting in a flow, none due
    wrk_seconds: int
    wrk_connections: int
    tenants: list  # tenant counts for the migrate timing, ascending
    creates: int  # tenants created one by one for the create timing
    query_runs: int  # repetitions of each timed query (rows 2, 6, 8)
    freeze_runs: int
    import_sizes: list = field(default_factory=list)  # row 1's sizes (default: sizes)
    idle_tenants: list = field(default_factory=lambda: [10, 30])  # row 11's idle tenant counts, ascending


SCALES = {
    "small": Scale(
        name="small",
        sizes=[1_000, 4_000],
        freeze_share="country = HU",
        send_messages=300,
        flow_entrants=300,
        flow_waiting_runs=20_000,
        wrk_seconds=5,
        wrk_connections=8,
        tenants=[3, 10],
        creates=2,
        query_runs=5,
        freeze_runs=1,
    ),
    "full": Scale(
        name="full",
        sizes=[10_000, 100_000, 1_000_000],
        freeze_share="country = HU",
        send_messages=20_000,
        flow_entrants=100_000,
        flow_waiting_runs=1_000_000,
        wrk_seconds=30,
        wrk_connections=8,
        tenants=[10, 100, 1000],
        creates=5,
        query_runs=20,
        freeze_runs=2,
        idle_tenants=[10, 100, 1000],
    ),
}


@dataclass
class Context:
    scale: Scale
    prefix: str  # every scratch tenant's slug starts with it
    work_dir: Path  # CSV files, wrk scripts, logs
    data_schema: str = ""
    data_domain: str = ""
    token: str = ""
    verbose: bool = True
    facts: dict = field(default_factory=dict)  # extra figures for the results file (peak RSS, ...)

    def log(self, message):
        if self.verbose:
            stamp = time.strftime("%H:%M:%S")
            print(f"[bench {stamp}] {message}", file=sys.stderr, flush=True)

    def api(self):
        """An in-process client on the data tenant's host with its admin's token: the full Django
        stack (middleware, tenant resolution, auth, DRF), without a network hop."""
        return Client(HTTP_HOST=self.data_domain, HTTP_AUTHORIZATION=f"Token {self.token}")

    def child_env(self, **extra):
        """The environment for subprocesses (migrate, celery, gunicorn): this run's database and queue."""
        env = dict(os.environ)
        env["DATABASE_URL"] = settings_database_url()
        env.setdefault("DJANGO_SETTINGS_MODULE", "crm_project.settings")
        env["PYTHONPATH"] = str(BASE_DIR) + os.pathsep + env.get("PYTHONPATH", "")
        env.update({key: str(value) for key, value in extra.items()})
        return env


def settings_database_url():
    """The URL of the database this process is connected to (pytest renames it to test_...)."""
    params = connection.settings_dict
    user = params.get("USER") or "postgres"
    password = f":{params['PASSWORD']}" if params.get("PASSWORD") else ""
    host = quote(params.get("HOST") or "127.0.0.1", safe="")
    port = params.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{params['NAME']}"


def dump(path, data):
    Path(path).write_text(json.dumps(data, indent=2, default=str))
