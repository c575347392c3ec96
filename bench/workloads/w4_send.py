"""Row 4: deliver N personalised messages to Postfix's smtp-sink through the real pipeline (freeze,
Celery batch tasks on a worker with the product's concurrency, render, SMTP, bookkeeping), against a
bare smtplib loop sending pre-built messages to the same sink with the same parallelism."""

import multiprocessing
import os
import smtplib
import time
from email.message import EmailMessage
from email.utils import make_msgid

from django.conf import settings
from django.db import connection
from django_tenants.utils import schema_context

from bench import services
from bench.core import Check, Row
from campaigns.editing import campaign_create
from campaigns.lifecycle import campaign_send_now
from campaigns.models import Campaign
from crm_project.celery import app
from segments.models import Segment
from tenancy.models import Tenant

TARGET = "≥ 80% of baseline msg/s (stretch ≥ 100%)"
SUBJECT = "{{ customer.first_name|default:'Hello' }}, our autumn picks for {{ customer.city }}"
HTML = """<html><body>
<h1>Hello {{ customer.first_name|default:"there" }} {{ customer.last_name }}!</h1>
<p>We picked these for you in {{ customer.city|default:"your town" }}:</p>
<ul>{% for n in "12345" %}<li>Product {{ n }}: a short description of the product, its price and a
reason to buy it now rather than later.</li>{% endfor %}</ul>
<p><a href="https://shop.example.com/autumn">See the autumn collection</a> or
<a href="https://shop.example.com/sale?utm_source=crm">the sale</a>.</p>
<p style="font-size:small">You get this because you subscribed.
<a href="{{ unsubscribe_url }}">Unsubscribe</a> · <a href="{{ preferences_url }}">Preferences</a></p>
</body></html>"""
TEXT = """Hello {{ customer.first_name|default:"there" }}!

Our autumn picks for {{ customer.city|default:"your town" }}: https://shop.example.com/autumn
The sale: https://shop.example.com/sale?utm_source=crm

Unsubscribe: {{ unsubscribe_url }}
"""


def _campaign(ctx, count):
    """A draft campaign to `count` customers (a static segment of the first marketable ones)."""
    with schema_context("public"):
        # The benchmark measures the pipeline, not the tenant's configured rate (default 50/s).
        Tenant.objects.filter(schema_name=ctx.data_schema).update(send_rate_per_second=10000)
    with schema_context(ctx.data_schema):
        segment = Segment.objects.create(name=f"bench: send {count}", kind="static")
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO segments_segmentmember (segment_id, customer_id, added_at)
                SELECT %s, id, now() FROM customers_customer
                WHERE email_marketing AND unsubscribed_at IS NULL AND erased_at IS NULL
                ORDER BY id LIMIT %s
                """,
                [segment.pk, count],
            )
        return campaign_create(
            name=f"bench: send {count}",
            subject=SUBJECT,
            html_body=HTML,
            text_body=TEXT,
            segment=segment,
            # The platform address, unsigned like the baseline's messages (no DKIM key is set for the
            # bench): the row measures the sending engine against raw SMTP, not RSA.
            from_email=settings.MAIL_FROM_ADDRESS,
            from_name="Bench Shop",
        )


def _prebuilt(count):
    """The baseline's messages, built before the clock starts: same size and shape as ours."""
    messages = []
    for number in range(count):
        message = EmailMessage()
        message["Subject"] = f"Anna, our autumn picks for Budapest #{number}"
        message["From"] = "Bench Shop <news@shop.example.com>"
        message["To"] = f"customer{number}@example.com"
        message["Message-ID"] = make_msgid(domain="shop.example.com")
        message["List-Unsubscribe"] = f"<https://bench.example.com/u/{number}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        message.set_content(TEXT.replace("{{", "").replace("}}", ""))
        message.add_alternative(HTML.replace("{{", "").replace("}}", ""), subtype="html")
        messages.append((message["To"], message.as_bytes()))
    return messages


def _bare_sender(args):
    port, messages = args
    sent = 0
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for recipient, raw in messages:
            refused = smtp.sendmail("news@shop.example.com", [recipient], raw)
            sent += 0 if refused else 1
    return sent


def _baseline(port, count, parallel):
    messages = _prebuilt(count)
    slices = [(port, messages[index::parallel]) for index in range(parallel)]
    context = multiprocessing.get_context("fork")
    with context.Pool(parallel) as pool:
        started = time.perf_counter()
        sent = sum(pool.map(_bare_sender, slices))
        seconds = time.perf_counter() - started
    return seconds, sent


def _worker(ctx, port, concurrency):
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    env = ctx.child_env(
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=port,
        MAIL_MAILER="smtp",
        EMAIL_USE_TLS="false",
        DEBUG="false",
        CELERY_QUEUE=queue,
    )
    args = services.python_module(
        "celery",
        "-A",
        "crm_project",
        "worker",
        "-Q",
        queue,
        "--concurrency",
        str(concurrency),
        "-l",
        "info",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "-n",
        f"bench-{os.getpid()}@%h",
    )
    return services.Process(args, log_path=ctx.work_dir / "celery-worker.log", env=env)


def _purge_queue():
    with app.connection_for_write() as conn:
        try:
            conn.default_channel.queue_purge(settings.CELERY_TASK_DEFAULT_QUEUE)
        except Exception:  # a queue that does not exist yet has nothing to purge
            pass


def run(ctx):
    count = ctx.scale.send_messages
    base = Row(key="4", workload=f"deliver {count:,} personalised messages to smtp-sink", target=TARGET)
    sink_program = services.ensure_debian_package(
        program_names=services.SMTP_SINK_PATHS, package="postfix", log=ctx.log
    )
    if not sink_program:
        base.status, base.note = (
            "not available",
            "Postfix's smtp-sink is not installed (Debian package postfix)",
        )
        return [base]
    concurrency = max(1, settings.CAMPAIGN_SEND_CONCURRENCY)
    port = services.free_port()
    sink_args = [sink_program, *(["-u", "nobody"] if os.geteuid() == 0 else []), f"127.0.0.1:{port}", "1000"]
    campaign = _campaign(ctx, count)
    with services.Process(sink_args, log_path=ctx.work_dir / "smtp-sink.log") as sink:
        if not services.wait_for_port(port):
            raise RuntimeError(f"smtp-sink did not start: {sink.log_text()[-500:]}")
        base_seconds, base_sent = _baseline(port, count, concurrency)
        ctx.log(
            f"row 4 baseline: {base_sent:,} messages in {base_seconds:.1f} s ({count / base_seconds:,.0f}/s)"
        )
        _purge_queue()
        with _worker(ctx, port, concurrency) as worker:
            if not worker.wait_for_log("ready.", timeout=60):
                raise RuntimeError(f"the Celery worker did not start: {worker.log_text()[-1500:]}")
            with services.RssWatcher(worker.popen.pid) as rss:
                started = time.perf_counter()
                with schema_context(ctx.data_schema):
                    campaign_send_now(campaign=campaign)
                    deadline = time.monotonic() + max(600, count / 10)
                    status = "sending"
                    while time.monotonic() < deadline:
                        status = Campaign.objects.filter(pk=campaign.pk).values_list("status", flat=True)[0]
                        if status not in ("sending", "paused"):
                            break
                        time.sleep(0.1)
                seconds = time.perf_counter() - started
            if status != "sent":
                raise RuntimeError(
                    f"campaign still {status} after {seconds:.0f} s: {worker.log_text()[-1500:]}"
                )
    with schema_context(ctx.data_schema):
        states = _status_counts(campaign.pk)
    ours_rate, base_rate = count / seconds, count / base_seconds
    per_worker = ours_rate / concurrency
    ctx.facts["sender: messages/s per worker process (row 4)"] = f"{per_worker:,.0f}"
    ctx.facts["sender: peak RSS of one worker process / whole worker (row 4)"] = (
        f"{rss.peak_process_mb:.0f} MB / {rss.peak_total_mb:.0f} MB"
    )
    ctx.log(
        f"row 4: {count:,} messages in {seconds:.1f} s ({ours_rate:,.0f}/s), peak RSS {rss.peak_process_mb:.0f} MB"
    )
    base.unit, base.sense = "msg/s", "higher"
    base.ours, base.baseline = ours_rate, base_rate
    base.rule = lambda ours, baseline, ratio: ratio >= 0.8
    base.note = (
        f"{concurrency} worker processes (CAMPAIGN_SEND_CONCURRENCY) vs {concurrency} smtplib connections; "
        f"from the send call to status `sent` (freeze and queueing included); peak RSS of a worker "
        f"process {rss.peak_process_mb:.0f} MB (whole worker {rss.peak_total_mb:.0f} MB); "
        + ("stretch met" if ours_rate >= base_rate else "stretch (≥ 100%) not met")
    )
    base.checks = [
        Check("recipients sent", states.get("sent", 0), count),
        Check("recipients failed", states.get("failed", 0), 0),
        Check("baseline messages accepted", base_sent, count),
    ]
    return [base]


def _status_counts(campaign_id):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT status, count(*) FROM campaign_recipients WHERE campaign_id = %s GROUP BY status",
            [campaign_id],
        )
        return dict(cursor.fetchall())
