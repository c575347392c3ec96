"""Sustained mixed load: API reads and tracking hits on one tenant, then on 50 tenants at once.

    python -m bench.soak [--tenants 1,50] [--seconds 180] [--connections 16]

Serves the project with gunicorn (4 sync workers) on its own database (crm_soak), replays a mix of
requests with wrk for the given time per scenario, and reports requests/s, errors (any response that
is not 2xx/3xx, any socket error), p50/p95/p99 latency and the web workers' memory (RSS at start and
end, sampled every 5 s). Results: bench/results/soak.md.
"""

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import django
import psutil
import psycopg
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
CUSTOMERS_PER_TENANT = 200


def _setup_django(database_url):
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm_project.settings")
    sys.path.insert(0, str(ROOT))

    name = database_url.rsplit("/", 1)[1]
    admin_url = database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')

    django.setup()

    call_command("migrate", verbosity=0, interactive=False)


def _tenant_with_traffic(index):
    """A tenant with customers, a sent campaign with recipients and a link; returns its request list."""
    from django_tenants.utils import schema_context  # noqa: PLC0415  (reads settings at import: after _setup_django())
    from rest_framework.authtoken.models import Token  # noqa: PLC0415  (imports models: after _setup_django())

    from campaigns.models import Campaign, CampaignLink, CampaignRecipient  # noqa: PLC0415  (imports models: after _setup_django())
    from campaigns.tokens import make_token  # noqa: PLC0415  (imports models: after _setup_django())
    from customers.models import Customer  # noqa: PLC0415  (imports models: after _setup_django())
    from tenancy.models import Tenant  # noqa: PLC0415  (imports models: after _setup_django())
    from tenancy.services import tenant_create  # noqa: PLC0415  (imports models: after _setup_django())

    slug, domain = f"soak-{index}", f"soak-{index}.localhost"
    tenant = Tenant.objects.filter(schema_name=slug.replace("-", "_")).first()
    if tenant is None:
        tenant = tenant_create(
            slug=slug, domain=domain, admin_email="soak@example.com", admin_password="soak-pass-123"
        ).tenant
    connection.set_schema_to_public()
    with schema_context(tenant.schema_name):
        user = get_user_model().objects.get(username="soak@example.com")
        token = Token.objects.get_or_create(user=user)[0].key
        if not Customer.objects.exists():
            customers = Customer.objects.bulk_create(
                Customer(
                    email=f"c{i}@soak{index}.example",
                    first_name=f"Name{i}",
                    city="Szeged",
                    email_marketing=True,
                )
                for i in range(CUSTOMERS_PER_TENANT)
            )
            campaign = Campaign.objects.create(
                name="Soak", subject="Hi", status="sent", sent_at=timezone.now()
            )
            link = CampaignLink.objects.create(campaign=campaign, url="https://example.com/offer")
            CampaignRecipient.objects.bulk_create(
                CampaignRecipient(
                    campaign=campaign,
                    customer=c,
                    email=c.email,
                    status="sent",
                    sent_at=timezone.now() - timezone.timedelta(hours=1),
                )
                for c in customers
            )
        campaign = Campaign.objects.get(name="Soak")
        link = CampaignLink.objects.get(campaign=campaign)
        recipients = list(CampaignRecipient.objects.filter(campaign=campaign).values_list("id", flat=True))
        customer_ids = list(Customer.objects.values_list("id", flat=True)[:50])
        lines = []
        for _ in range(40):
            lines.append(("GET", domain, f"/t/o/{make_token('o', random.choice(recipients))}", ""))
        for _ in range(20):
            lines.append(("GET", domain, f"/t/c/{make_token('c', random.choice(recipients), link.id)}", ""))
        lines += [("GET", domain, "/api/customers?page_size=20", token)] * 10
        lines += [("GET", domain, "/api/customers?search=name1&ordering=-total_spent", token)] * 5
        lines += [("GET", domain, f"/api/customers/{random.choice(customer_ids)}", token) for _ in range(10)]
        lines += [("GET", domain, "/api/segments", token)] * 5
        lines += [("GET", domain, f"/api/campaigns/{campaign.id}/stats", token)] * 5
        lines += [("GET", domain, "/healthz", "")] * 5
    return lines


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rss_of_workers(master_pid):
    try:
        master = psutil.Process(master_pid)
        return sum(child.memory_info().rss for child in master.children()) / 1024 / 1024
    except psutil.Error:
        return None


def run_scenario(tenants, seconds, connections, database_url):
    lines = []
    for index in range(tenants):
        lines += _tenant_with_traffic(index)
    random.Random(7).shuffle(lines)
    requests_file = RESULTS / f".soak-requests-{tenants}.tsv"
    requests_file.write_text("\n".join("\t".join(line) for line in lines) + "\n")
    port = _free_port()
    env = dict(os.environ, DATABASE_URL=database_url, SOAK_REQUESTS=str(requests_file))
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "crm_project.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "4",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    samples, stop = [], threading.Event()
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        # Warm up every worker (imports, connections) before measuring memory.
        subprocess.run(
            ["wrk", "-t1", "-c4", "-d3s", "-s", str(ROOT / "bench" / "soak.lua"), f"http://127.0.0.1:{port}"],
            env=env,
            capture_output=True,
        )

        def sample():
            while not stop.is_set():
                samples.append(_rss_of_workers(server.pid))
                stop.wait(5)

        sampler = threading.Thread(target=sample)
        sampler.start()
        result = subprocess.run(
            [
                "wrk",
                "-t2",
                f"-c{connections}",
                f"-d{seconds}s",
                "--timeout",
                "10s",
                "-s",
                str(ROOT / "bench" / "soak.lua"),
                f"http://127.0.0.1:{port}",
            ],
            env=env,
            capture_output=True,
            text=True,
        )
        stop.set()
        sampler.join()
    finally:
        server.terminate()
        server.wait(timeout=30)
        requests_file.unlink(missing_ok=True)
    try:
        summary = json.loads(result.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise SystemExit(f"wrk failed:\n{result.stdout}\n{result.stderr}")
    samples = [s for s in samples if s is not None]
    summary.update(
        tenants=tenants,
        rss_start_mb=round(samples[0], 1),
        rss_end_mb=round(samples[-1], 1),
        rss_max_mb=round(max(samples), 1),
        rps=round(summary["requests"] / summary["seconds"], 1),
    )
    return summary


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tenants", default="1,50")
    parser.add_argument("--seconds", type=int, default=180)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("SOAK_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/crm_soak"),
    )
    args = parser.parse_args()
    _setup_django(args.database_url)
    RESULTS.mkdir(parents=True, exist_ok=True)
    rows = []
    for tenants in [int(t) for t in args.tenants.split(",")]:
        summary = run_scenario(tenants, args.seconds, args.connections, args.database_url)
        print(json.dumps(summary), flush=True)
        rows.append(summary)
    table = [
        "# Sustained mixed load (API reads + open/click hits)",
        "",
        f"`python -m bench.soak --tenants {args.tenants} --seconds {args.seconds} --connections {args.connections}`, "
        f"gunicorn with 4 sync workers and wrk on the same {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}.",
        "",
        "| tenants | seconds | requests | req/s | errors (non-2xx/3xx) | socket errors | p50 ms | p95 ms | p99 ms "
        "| worker RSS start → end (max) MB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        table.append(
            f"| {r['tenants']} | {r['seconds']:.0f} | {r['requests']} | {r['rps']} | {r['non_2xx_3xx']} | "
            f"{r['socket_errors']} | {r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} | "
            f"{r['rss_start_mb']} → {r['rss_end_mb']} ({r['rss_max_mb']}) |"
        )
    (RESULTS / "soak.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))


if __name__ == "__main__":
    main()
