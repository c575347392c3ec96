"""Benchmarks of BENCHMARKS.md rows 1 and 6, each against a raw baseline in the same run.

1. import N customers from CSV (the product's importer) vs `COPY` of the same file into a bare table
   with the same columns and indexes (CREATE TABLE ... LIKE customers_customer INCLUDING ALL);
6. `GET /api/customers?search=` and `?ordering=-total_spent` (the API, through Django's full stack)
   vs the equivalent SQL, p95 over repeated requests.

Run inside one tenant's schema (the `bench_customers` command creates a throwaway tenant).
"""

import csv
import random
import statistics
import time
from pathlib import Path

from django.db import connection

from events.models import OutboxEvent

from .importer import import_customers_csv
from .models import Customer

FIRST = "Anna Bence Csaba Dóra Emese Ferenc Gábor Hanna István Judit Kata László Márta Nóra Olivér Péter Réka Sára Tamás Zsófia".split()
LAST = "Nagy Kovács Tóth Szabó Horváth Varga Kiss Molnár Németh Farkas Balogh Papp Takács Juhász Lakatos Mészáros Oláh Simon Rácz Fekete".split()
CITIES = "Budapest Debrecen Szeged Miskolc Pécs Győr Nyíregyháza Kecskemét Székesfehérvár Szombathely Wien Berlin".split()
COUNTRIES = ["HU", "HU", "HU", "HU", "AT", "DE", "SK", "RO"]
ASCII = str.maketrans("áéíóöőúüű", "aeiooouuu")
BENCH_COLUMNS = [
    "email",
    "external_id",
    "first_name",
    "last_name",
    "phone",
    "city",
    "country",
    "email_marketing",
]


def customers_csv_generate(*, path, rows, seed=1):
    """A realistic customers CSV of `rows` rows (unique emails), written in a streaming way."""
    rng = random.Random(seed)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(BENCH_COLUMNS)
        for i in range(rows):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            local = f"{first}.{last}".lower().translate(ASCII)
            writer.writerow(
                [
                    f"{local}.{i}@example{i % 97}.com",
                    f"ws-{i}",
                    first,
                    last,
                    f"+3630{rng.randrange(1000000, 9999999)}",
                    rng.choice(CITIES),
                    rng.choice(COUNTRIES),
                    "true" if rng.random() < 0.6 else "false",
                ]
            )
    return Path(path)


def _raw_copy_seconds(path):
    table = Customer._meta.db_table
    with connection.cursor() as cursor:
        # INCLUDING ALL copies the indexes (trigram included) and gives the id its own identity.
        cursor.execute(
            f"DROP TABLE IF EXISTS bench_raw_customers; CREATE TABLE bench_raw_customers (LIKE {table} INCLUDING ALL)"
        )
        # Django keeps defaults in Python; the bare table needs them in SQL for what the file lacks.
        cursor.execute(
            "ALTER TABLE bench_raw_customers ALTER attributes SET DEFAULT '{}', "
            "ALTER email_transactional SET DEFAULT true, ALTER total_spent SET DEFAULT 0, "
            "ALTER order_count SET DEFAULT 0, ALTER created_at SET DEFAULT now(), ALTER updated_at SET DEFAULT now()"
        )
        started = time.monotonic()
        with (
            open(path, "rb") as handle,
            cursor.cursor.copy(
                f"COPY bench_raw_customers ({', '.join(BENCH_COLUMNS)}) FROM STDIN WITH (FORMAT csv, HEADER true)"
            ) as copy,
        ):
            while block := handle.read(1 << 20):
                copy.write(block)
        seconds = time.monotonic() - started
        cursor.execute("DROP TABLE bench_raw_customers")
    return seconds


def _ours(path, rows, *, emit_events):
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {Customer._meta.db_table} CASCADE")
    OutboxEvent.objects.filter(tenant=connection.schema_name).delete()
    report = import_customers_csv(path_or_file=path, emit_events=emit_events)
    if report.created != rows:
        raise RuntimeError(
            f"the import created {report.created} of {rows} rows, first errors: {report.errors[:5]}"
        )
    return report


def bench_import(*, path, rows):
    """Rows/s of the import without and with events, and of raw COPY of the same file into an
    identically indexed bare table. The machine is shared: the baseline runs before and after ours
    and its mean is the reference. Leaves the tenant holding the imported customers."""
    raw_before = _raw_copy_seconds(path)
    without_events = _ours(path, rows, emit_events=False)
    with_events = _ours(path, rows, emit_events=True)
    raw_after = _raw_copy_seconds(path)
    raw = rows / ((raw_before + raw_after) / 2)
    return {
        "raw": raw,
        "raw_runs": (rows / raw_before, rows / raw_after),
        "without_events": (rows / without_events.seconds, without_events),
        "with_events": (rows / with_events.seconds, with_events),
    }


def _p95(samples):
    return statistics.quantiles(samples, n=20)[-1] * 1000 if len(samples) >= 2 else samples[0] * 1000


def bench_list(*, client, path, sql, params=(), repeat=40):
    """p95 and median in ms of the API request and of the equivalent SQL (both warmed up first):
    (api p95, sql p95, api median, sql median)."""
    api, raw = [], []
    for i in range(repeat + 3):
        started = time.monotonic()
        response = client.get(path)
        elapsed = time.monotonic() - started
        if response.status_code != 200:
            raise RuntimeError(f"{path}: {response.status_code} {response.content[:200]!r}")
        if i >= 3:
            api.append(elapsed)
        with connection.cursor() as cursor:
            started = time.monotonic()
            cursor.execute(sql, params)
            cursor.fetchall()
            elapsed = time.monotonic() - started
        if i >= 3:
            raw.append(elapsed)
    return _p95(api), _p95(raw), statistics.median(api) * 1000, statistics.median(raw) * 1000
