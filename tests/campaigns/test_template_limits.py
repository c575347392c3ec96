"""Hostile templates: oversize sources are refused when saved, deep loops at parse time, and a render
that would burn a worker stops fast with the reason (a 400 at save or preview, a failed recipient
during a send), while ordinary templates render exactly as before."""

import contextlib
import re
import threading
import time
import tracemalloc
import uuid
from decimal import Decimal
from types import SimpleNamespace

import psutil
import pytest
from django.core import mail
from django.db import connection
from django.test import Client
from django_tenants.utils import schema_context

from campaigns import editing, email_templates, lifecycle, sender
from campaigns.models import Campaign, CampaignRecipient, EmailTemplate
from campaigns.ratelimit import RateLimiter
from campaigns.rendering import RenderLimitExceeded, order_context, render_message
from campaigns.transactional import DEFAULT_TEMPLATES
from customers.models import Customer
from tests import processes
from tests.conftest import (
    require_service,
    throwaway_tenant_create,
    throwaway_tenant_drop,
    verified_sender_domain,
)

from .conftest import make_campaign, make_customers, static_segment

FAST = RateLimiter(rate_per_second=100000)
KB = 1024
VALID = {
    "name": "Newsletter",
    "subject": "Hi {{ customer.first_name|default:'there' }}",
    "html_body": "<p>Hello {{ customer.full_name }}</p><a href='{{ unsubscribe_url }}'>unsubscribe</a>",
    "text_body": "",
    "kind": "marketing",
}
# Two loops over the same value: harmless on a short list, a million passes on a long one.
SQUARE = (
    "<p>Hi {{ customer.first_name }}</p>\n"
    "{% for a in customer.attributes.picks %}{% for b in customer.attributes.picks %}"
    "{{ b }}{% endfor %}{% endfor %}"
)
TOO_MUCH_WORK = (
    "Line 2: the template does too much work (more than 100000 steps: each loop pass, tag, variable "
    "and filter counts one); loop over fewer items or nest fewer loops."
)


pytestmark = pytest.mark.usefixtures("locmem_mail")


@pytest.fixture
def browser(tenant, marketer):
    client = Client(HTTP_HOST=tenant.get_primary_domain().domain)
    client.force_login(marketer)
    return client


def _timed(call):
    """The call's result and the CPU seconds this process spent on it (the in-process client runs the
    view here). CPU time, not wall time: a loaded machine makes a request wait, not work more."""
    started = time.process_time()
    result = call()
    return result, time.process_time() - started


def test_it_refuses_oversize_bodies_naming_the_field_with_nothing_saved(api, tenant):
    before = EmailTemplate.objects.count()

    html = api.post("/api/templates", {**VALID, "html_body": "x" * (512 * KB + 1)}, format="json")
    text = api.post("/api/templates", {**VALID, "text_body": "é" * (128 * KB + 1)}, format="json")

    assert html.status_code == 400
    assert html.json() == {"html_body": ["is too large: 512 KB, at most 512 KB."]}
    assert text.status_code == 400
    assert text.json() == {"text_body": ["is too large: 256 KB, at most 256 KB."]}  # bytes, not characters
    assert EmailTemplate.objects.count() == before


def test_it_accepts_bodies_at_the_limit(api, tenant):
    response = api.post(
        "/api/templates",
        {**VALID, "html_body": "x" * (512 * KB), "text_body": "y" * (256 * KB)},
        format="json",
    )

    assert response.status_code == 201
    assert len(EmailTemplate.objects.get(pk=response.json()["id"]).html_body) == 512 * KB


def test_it_refuses_an_oversize_update_and_keeps_the_template(api, tenant):
    template = EmailTemplate.objects.create(name="T", subject="S", html_body="<p>old</p>")

    response = api.put(
        f"/api/templates/{template.pk}", {**VALID, "html_body": "x" * (600 * KB)}, format="json"
    )

    assert response.status_code == 400
    assert response.json() == {"html_body": ["is too large: 600 KB, at most 512 KB."]}
    template.refresh_from_db()
    assert (template.name, template.html_body) == ("T", "<p>old</p>")


def test_it_refuses_an_oversize_inline_campaign_body_and_subject(api, tenant):
    before = Campaign.objects.count()

    body = api.post("/api/campaigns", {"name": "Big", "html_body": "x" * (513 * KB)}, format="json")
    subject = api.post("/api/campaigns", {"name": "Long", "subject": "s" * 999}, format="json")

    assert body.status_code == 400
    assert body.json() == {"html_body": ["is too large: 513 KB, at most 512 KB."]}
    assert subject.status_code == 400
    assert list(subject.json()) == ["subject"]
    assert Campaign.objects.count() == before


def test_it_refuses_an_oversize_body_in_the_admin_form(browser, tenant):
    response = browser.post(
        "/admin/campaigns/emailtemplate/add/",
        {
            "name": "Huge",
            "kind": "marketing",
            "key": "",
            "subject": "S",
            "html_body": "x" * (700 * KB),
            "text_body": "",
        },
    )

    assert response.status_code == 200
    assert "is too large: 700 KB, at most 512 KB." in response.content.decode()
    assert not EmailTemplate.objects.filter(name="Huge").exists()


def test_it_refuses_loops_nested_deeper_than_three_naming_the_line(api, tenant):
    before = EmailTemplate.objects.count()
    source = (
        "<p>x</p>\n{% for a in customer.attributes.a %}{% for b in a %}{% for c in b %}\n"
        "{% for d in c %}{{ d }}{% endfor %}{% endfor %}{% endfor %}{% endfor %}"
    )

    response = api.post("/api/templates", {**VALID, "html_body": source}, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "html_body": ["Line 3: {% for %} loops are nested more than 3 deep; nest fewer loops."]
    }
    assert EmailTemplate.objects.count() == before


def test_it_refuses_a_loop_bomb_made_of_literals_at_save_and_quickly(api, tenant):
    before = EmailTemplate.objects.count()
    letters = "x" * 5000
    source = (
        f"<p>x</p>\n{{% for a in '{letters}' %}}{{% for b in '{letters}' %}}.{{% endfor %}}{{% endfor %}}"
    )

    response, seconds = _timed(
        lambda: api.post("/api/templates", {**VALID, "html_body": source}, format="json")
    )

    assert response.status_code == 400
    assert response.json() == {"html_body": [TOO_MUCH_WORK]}
    assert seconds < 2
    assert EmailTemplate.objects.count() == before


@pytest.mark.parametrize(
    "source, error",
    [
        (
            "{{ customer.first_name|ljust:'999999999' }}",
            "Line 1: the filter 'ljust' was given a width or precision above 2097152.",
        ),
        (
            "{{ 1|stringformat:'900000000d' }}",
            "Line 1: the filter 'stringformat' was given a width or precision above 2097152.",
        ),
        (
            "{% with a='0123456789abcdef' %}"
            + "{% with a=a|add:a %}" * 40
            + "{{ a }}"
            + "{% endwith %}" * 41,
            "Line 1: the filter 'add' would make a value of up to 4194304 characters "
            "(at most 2097152 are allowed).",
        ),
    ],
)
def test_it_refuses_filters_that_would_build_huge_values(api, tenant, source, error):
    before = EmailTemplate.objects.count()

    response, seconds = _timed(
        lambda: api.post("/api/templates", {**VALID, "html_body": source}, format="json")
    )

    assert response.status_code == 400
    assert response.json() == {"html_body": [error]}
    assert seconds < 2
    assert EmailTemplate.objects.count() == before


def test_it_stops_a_data_driven_loop_bomb_at_preview_with_a_400_and_quickly(api, tenant):
    template = EmailTemplate.objects.create(name="Picks", subject="Hi", html_body=SQUARE)
    small = Customer.objects.create(email="small@example.com", first_name="Sam", attributes={"picks": [1, 2]})
    big = Customer.objects.create(
        email="big@example.com", first_name="Bo", attributes={"picks": list(range(3000))}
    )

    ok = api.post(f"/api/templates/{template.pk}/preview", {"customer": small.pk}, format="json")
    refused, seconds = _timed(
        lambda: api.post(f"/api/templates/{template.pk}/preview", {"customer": big.pk}, format="json")
    )

    assert ok.status_code == 200
    assert ok.json()["html"] == "<p>Hi Sam</p>\n1212"
    assert refused.status_code == 400
    assert refused.json() == {"html_body": [TOO_MUCH_WORK]}
    # Unbounded, the 9,000,000 iterations take minutes; stopped at the step budget, well under a second
    # on a quiet machine (a busy one slows even CPU time down).
    assert seconds < 5


def test_it_caps_the_rendered_size_of_a_message(settings):
    settings.TEMPLATE_RENDER_MAX_CHARS = 1000
    context = {"customer": {"attributes": {"items": ["x" * 100] * 20}}}

    with pytest.raises(RenderLimitExceeded) as refused:
        render_message(
            subject="s",
            html="{% for item in customer.attributes.items %}<p>{{ item }}</p>{% endfor %}",
            context=context,
        )

    assert str(refused.value) == (
        "html_body: Line 1: the rendered text would be longer than 1000 characters."
    )


def test_it_renders_ordinary_templates_exactly_as_before():
    html = (
        "<p>Hi {{ customer.first_name|default:'there' }},</p>"
        "{% for item in order.items %}<li>{{ forloop.counter }}. {{ item.name }} x{{ item.quantity }}"
        "{% if not forloop.last %},{% endif %}</li>{% empty %}<li>none</li>{% endfor %}"
        "<p>{{ order.total }} {{ order.currency }}</p>"
    )

    class Item:
        def __init__(self, sku, name, quantity, unit_price):
            self.sku, self.name, self.quantity, self.unit_price = sku, name, quantity, unit_price

    class Order:
        number, total, currency, status, placed_at = "A-1", Decimal("30.00"), "EUR", "paid", None

    items = [Item("T", "Tea", 2, 5), Item("M", "Mug <big>", 1, 20)]
    rendered = render_message(
        subject="Order {{ order.number }}",
        html=html,
        context={"customer": {"first_name": ""}, "order": order_context(Order(), items=items)},
    )

    assert rendered.subject == "Order A-1"
    assert rendered.html == (
        "<p>Hi there,</p><li>1. Tea x2,</li><li>2. Mug &lt;big&gt; x1</li><p>30.00 EUR</p>"
    )


def test_it_keeps_the_shipped_transactional_defaults_valid(api, tenant):
    for key, template in DEFAULT_TEMPLATES.items():
        response = api.post(
            "/api/templates",
            {
                "name": f"Copy of {key}",
                "kind": "marketing",
                "subject": template["subject"],
                "html_body": template.get("html_body", ""),
                "text_body": template.get("text_body", ""),
            },
            format="json",
        )
        assert response.status_code == 201, (key, response.content)


def test_it_fails_only_the_recipient_whose_data_blows_the_budget_during_a_send(tenant):
    customers = make_customers(2, attributes={"picks": [1, 2]})
    bomb = make_customers(1, prefix="bomb", attributes={"picks": list(range(3000))})[0]
    campaign = make_campaign(static_segment(customers + [bomb]), html_body=SQUARE)
    lifecycle.campaign_send_now(campaign=campaign)

    outcome, seconds = _timed(lambda: sender.campaign_batches_send(campaign_id=campaign.pk, limiter=FAST))

    assert seconds < 10
    assert (outcome.sent, outcome.failed, outcome.finished) == (2, 1, True)
    rows = {r.email: (r.status, r.error) for r in CampaignRecipient.objects.filter(campaign=campaign)}
    assert rows == {
        "c0@example.com": ("sent", ""),
        "c1@example.com": ("sent", ""),
        "bomb0@example.com": ("failed", f"could not render: RenderLimitExceeded: html_body: {TOO_MUCH_WORK}"),
    }
    assert sorted(m.to[0] for m in mail.outbox) == ["c0@example.com", "c1@example.com"]
    assert Campaign.objects.get(pk=campaign.pk).status == "sent"


# --- amplifiers: sizes refused before anything is built ---------------------------------------------

MB = 1024 * 1024


@contextlib.contextmanager
def memory_watch(pid=None):
    """How far memory rose during the block: the resident set of the process (psutil, sampled in a
    thread every 2 ms) and, for this process, the peak of Python's allocations (tracemalloc: exact,
    even for one allocation inside a C call that holds the GIL)."""
    process = psutil.Process(pid)
    start = process.memory_info().rss
    watch = SimpleNamespace(rss_growth=0, python_peak=0, peak=start)
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            try:
                watch.peak = max(watch.peak, process.memory_info().rss)
            except psutil.Error:
                return
            stop.wait(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    own = pid is None
    if own:
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
    try:
        yield watch
    finally:
        if own:
            watch.python_peak = tracemalloc.get_traced_memory()[1] - base
            tracemalloc.stop()
        stop.set()
        sampler.join()
        watch.rss_growth = max(watch.peak, process.memory_info().rss) - start


def doubled(seed, body, times=17):
    """`s` doubled `times` times from `seed` by `add` in a `{% with %}` chain, then `body`: 16
    characters doubled 17 times are 2,097,152, the most one value may hold."""
    return f"{{% with s={seed} %}}" + "{% with s=s|add:s %}" * times + body + "{% endwith %}" * (times + 1)


# The payload: a 2 MB `s` joined between 4,000 characters would need 8 GB.
JOIN_BOMB = doubled("'0123456789abcdef'", "{{ s|slice:':4000'|make_list|join:s }}")
JOIN_REFUSED = (
    "Line 1: the filter 'join' would make a value of up to 8386514848 characters "
    "(at most 2097152 are allowed)."
)
# The same from the customer's data: harmless on the sample values of the trial render (no
# attributes), 8 GB for a customer whose attribute `seed` has 16 characters.
DATA_BOMB = "<p>Hi {{ customer.first_name }}</p>" + doubled(
    "customer.attributes.seed", "{{ s|slice:':4000'|make_list|join:s }}"
)


@pytest.fixture
def warm(api):
    """One ordinary request first, so that what the process loads once is not counted."""
    assert api.post("/api/templates", {**VALID, "name": "Warm-up"}, format="json").status_code == 201


def test_it_refuses_the_join_bomb_at_save_before_building_it(api, tenant, warm):
    before = EmailTemplate.objects.count()

    with memory_watch() as memory:
        response, seconds = _timed(
            lambda: api.post("/api/templates", {**VALID, "html_body": JOIN_BOMB}, format="json")
        )

    assert response.status_code == 400
    assert response.json() == {"html_body": [JOIN_REFUSED]}
    assert seconds < 2
    assert memory.python_peak < 50 * MB
    assert memory.rss_growth < 50 * MB
    assert EmailTemplate.objects.count() == before


SEED = "'0123456789abcdef'"
# Sixteen double quotes that are not marked safe (a template's own literals are; a literal with a
# customer's value added is not).
QUOTES = "'" + '"' * 16 + "'|add:customer.first_name|slice:':16'"
NUMBER = r"\d+"
BUILD = r"Line 1: the filter '{}' would make a {} of up to \d+ {} \(at most {} are allowed\)\."
TEXT_TOO_LONG = r"Line 1: the rendered text would be longer than 2097152 characters\."


def _too_big(name):
    return BUILD.format(name, "value", "characters", 2097152)


def _too_long_a_list(name):
    return BUILD.format(name, "list", "items", 100000)


@pytest.mark.parametrize(
    "source, error",
    [
        pytest.param(
            doubled(
                SEED, "{% for a in s|make_list %}{% for b in s|make_list %}{{ s }}{% endfor %}{% endfor %}"
            ),
            _too_long_a_list("make_list"),
            id="nested loops over make_list",
        ),
        pytest.param(
            doubled(
                SEED,
                "{% with l=s|slice:':99999'|make_list %}{% for a in l %}{% for b in l %}{{ b }}"
                "{% endfor %}{% endfor %}{% endwith %}",
            ),
            re.escape(TOO_MUCH_WORK.replace("Line 2", "Line 1")),
            id="a loop with more passes than steps left",
        ),
        pytest.param(
            doubled(SEED, "{% for a in 'abc' %}{% cycle s s s %}{% endfor %}"),
            TEXT_TOO_LONG,
            id="cycle",
        ),
        pytest.param(
            "{% with a='0123456789abcdef' %}{% with b=a|add:a %}{% with c=b|add:b %}"
            + "{% with c=c|add:c %}" * 18
            + "{{ c }}"
            + "{% endwith %}" * 21,
            _too_big("add"),
            id="with chain",
        ),
        pytest.param(
            "{{ customer.first_name|rjust:'999999999' }}",
            r"Line 1: the filter 'rjust' was given a width or precision above 2097152\.",
            id="rjust width",
        ),
        pytest.param(
            doubled(SEED, "{% for i in 'abcdefgh' %}{{ s|add:s }}{% endfor %}"),
            _too_big("add"),
            id="string multiplication by add in a loop",
        ),
        pytest.param(
            doubled(SEED, "{% with l=s|slice:':70000'|make_list %}{{ l|add:l }}{% endwith %}"),
            _too_long_a_list("add"),
            id="list doubling by add",
        ),
        pytest.param(
            doubled(QUOTES, "{{ s|force_escape|force_escape }}"),
            _too_big("force_escape"),
            id="escaping six times over",
        ),
        pytest.param(doubled(QUOTES, "{{ s }}"), TEXT_TOO_LONG, id="a variable escaped on output"),
        pytest.param(
            doubled("'rrrrrrrrrrrrrrrr'", "{{ order.placed_at|date:s }}", times=12),
            _too_big("date"),
            id="date format",
        ),
        pytest.param("{% now '" + "r" * 60000 + "' %}", TEXT_TOO_LONG, id="now format"),
        pytest.param(
            doubled("'abcdefgh'|make_list|join:' '|wordwrap:1", "{{ s|linenumbers }}"),
            _too_big("linenumbers"),
            id="linenumbers",
        ),
        pytest.param(
            doubled("'www.😀😀😀😀😀😀 '", "{{ s|urlize }}", times=15), _too_big("urlize"), id="urlize"
        ),
        pytest.param(doubled(SEED, "{{ s|json_script:'x' }}"), _too_big("json_script"), id="json_script"),
    ],
)
def test_it_refuses_each_amplifier_before_building_it(api, tenant, warm, source, error):
    before = EmailTemplate.objects.count()

    with memory_watch() as memory:
        response, seconds = _timed(
            lambda: api.post("/api/templates", {**VALID, "html_body": source}, format="json")
        )

    assert response.status_code == 400
    assert list(response.json()) == ["html_body"]
    assert re.fullmatch(error, response.json()["html_body"][0]), response.json()
    assert EmailTemplate.objects.count() == before
    assert seconds < 2
    assert memory.python_peak < 50 * MB
    assert memory.rss_growth < 50 * MB


@pytest.mark.parametrize(
    "source, rendered_at_most",
    [
        ("{% widthratio 999999999999 1 999999999999 %}", 40),
        ("{% widthratio customer.first_name 1 999999999999 %}", 20),
        ("{{ '1e308'|filesizeformat }} {{ 999999999999999999999999999|filesizeformat }}", 40),
        ("{{ '9e999999999'|floatformat:'999' }}", 40),
        ("{{ 1|stringformat:'2000000d'|length }}", 40),
    ],
)
def test_it_lets_harmless_big_numbers_render_small(api, tenant, source, rendered_at_most):
    created = api.post("/api/templates", {**VALID, "html_body": source}, format="json")
    preview = api.post(f"/api/templates/{created.json()['id']}/preview", {}, format="json")

    assert created.status_code == 201
    assert preview.status_code == 200
    assert len(preview.json()["html"]) <= rendered_at_most


def test_it_previews_a_template_that_fails_on_its_values_as_a_400_naming_the_line(api, tenant):
    created = api.post(
        "/api/templates", {**VALID, "html_body": "<p>x</p>\n{% widthratio 1 1 '1e308' %}"}, format="json"
    )

    preview = api.post(f"/api/templates/{created.json()['id']}/preview", {}, format="json")

    assert created.status_code == 201  # it parses; what fails on sample values may work on real ones
    assert preview.status_code == 400
    assert preview.json() == {
        "html_body": ["Line 2: TemplateSyntaxError: widthratio final argument must be a number"]
    }


def test_it_refuses_the_bomb_in_the_admin_previews(tenant, browser, warm):
    bomber = Customer.objects.create(email="bomb@example.com", attributes={"seed": "0123456789abcdef"})
    template = email_templates.template_create(name="Data bomb", subject="Hi", html_body=DATA_BOMB)

    with memory_watch() as memory:
        live = browser.post(
            "/admin/campaigns/campaign/live-preview/",
            {"name": "x", "subject": "Hi", "html_body": JOIN_BOMB, "customer": ""},
        )
        page = browser.get(
            f"/admin/campaigns/emailtemplate/{template.pk}/preview/", {"customer": bomber.email}
        )

    assert live.status_code == 200
    assert live.json()["errors"] == {"html_body": [JOIN_REFUSED]}
    assert page.status_code == 200
    assert JOIN_REFUSED.replace("'", "&#x27;") in page.content.decode()
    assert memory.python_peak < 50 * MB
    assert memory.rss_growth < 50 * MB


def test_it_fails_only_the_bomb_recipient_at_send_without_building_it(tenant):
    customers = make_customers(2, attributes={"seed": ""})
    bomber = make_customers(1, prefix="bomb", attributes={"seed": "0123456789abcdef"})[0]
    campaign = make_campaign(static_segment(customers + [bomber]), html_body=DATA_BOMB)
    lifecycle.campaign_send_now(campaign=campaign)

    with memory_watch() as memory:
        outcome = sender.campaign_batches_send(campaign_id=campaign.pk, limiter=FAST)

    assert (outcome.sent, outcome.failed, outcome.finished) == (2, 1, True)
    rows = {r.email: (r.status, r.error) for r in CampaignRecipient.objects.filter(campaign=campaign)}
    assert rows["bomb0@example.com"] == (
        "failed",
        f"could not render: RenderLimitExceeded: html_body: {JOIN_REFUSED.replace('Line 1', 'Line 1', 1)}",
    )
    assert rows["c0@example.com"] == rows["c1@example.com"] == ("sent", "")
    assert memory.python_peak < 50 * MB
    assert memory.rss_growth < 50 * MB


# --- the same in a real worker: the recipient fails, the worker's memory stays flat ----------------


@pytest.fixture(scope="module")
def live_tenant(django_db_setup, django_db_blocker):
    """A committed tenant of its own (the worker is another process), dropped afterwards."""
    require_service("redis")
    with django_db_blocker.unblock():
        created = throwaway_tenant_create("bomb", send_rate_per_second=10000)
    yield created.tenant
    with django_db_blocker.unblock():
        throwaway_tenant_drop(created.tenant)


def _live_campaign(live_tenant, blocker, *, name, html, customers):
    with blocker.unblock(), schema_context(live_tenant.schema_name):
        rows = Customer.objects.bulk_create(
            [
                Customer(email=email, first_name="Live", email_marketing=True, attributes=attributes)
                for email, attributes in customers
            ]
        )
        verified_sender_domain("shop.example")
        campaign = editing.campaign_create(
            name=name,
            subject="Hi",
            html_body=html,
            segment=static_segment(rows, name=name),
            from_email="news@shop.example",
        )
        lifecycle.campaign_send_now(campaign=campaign)
    connection.set_schema_to_public()
    return campaign.pk


def _live_recipients(live_tenant, blocker, campaign_id):
    with blocker.unblock(), schema_context(live_tenant.schema_name):
        status = Campaign.objects.get(pk=campaign_id).status
        rows = {
            r.email: (r.status, r.error) for r in CampaignRecipient.objects.filter(campaign_id=campaign_id)
        }
    connection.set_schema_to_public()
    return status, rows


def _wait_done(live_tenant, blocker, campaign_id, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, rows = _live_recipients(live_tenant, blocker, campaign_id)
        if status == "sent":
            return rows
        time.sleep(0.1)
    raise AssertionError(f"campaign {campaign_id} not done: {status} {rows}")


def test_it_fails_the_bomb_recipient_in_a_real_worker_whose_memory_stays_flat(live_tenant, django_db_blocker):
    processes.purge_queue(processes.CeleryWorkers().queue)
    tag = uuid.uuid4().hex[:6]
    with (
        processes.smtp_sink() as sink,
        processes.celery_worker(
            pool="solo",
            concurrency=1,
            env={"EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(sink.port), "MAIL_MAILER": "smtp"},
        ) as worker,
    ):
        # An ordinary campaign first: what the worker loads once is not counted.
        warm = _live_campaign(
            live_tenant,
            django_db_blocker,
            name=f"Warm {tag}",
            html="<p>Hi {{ customer.first_name }}</p>",
            customers=[(f"warm-{tag}@example.com", {})],
        )
        _wait_done(live_tenant, django_db_blocker, warm)
        bomb = _live_campaign(
            live_tenant,
            django_db_blocker,
            name=f"Bomb {tag}",
            html=DATA_BOMB,
            customers=[
                (f"ok-{tag}@example.com", {"seed": ""}),
                (f"bomb-{tag}@example.com", {"seed": "0123456789abcdef"}),
            ],
        )
        with memory_watch(worker.pid) as memory:
            rows = _wait_done(live_tenant, django_db_blocker, bomb)

    assert rows[f"ok-{tag}@example.com"] == ("sent", "")
    assert rows[f"bomb-{tag}@example.com"] == (
        "failed",
        f"could not render: RenderLimitExceeded: html_body: {JOIN_REFUSED}",
    )
    assert sorted(sink.by_address()) == [f"ok-{tag}@example.com", f"warm-{tag}@example.com"]
    assert memory.rss_growth < 50 * MB
