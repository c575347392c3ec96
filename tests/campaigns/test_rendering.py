"""The sandboxed renderer: documented values render, everything else renders nothing or is refused."""

from datetime import date, datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.template import defaultfilters

from campaigns.rendering import (
    DENIED_FILTERS,
    FORECASTS,
    NO_GROWTH,
    _sandbox_library,
    compile_message,
    customer_context,
    order_context,
    plain,
    render_message,
    template_errors,
    validate_sources,
)
from customers.models import Customer, Order, OrderItem


def _context(**customer):
    values = {"first_name": "Ann", "last_name": "Lee", "email": "ann@example.com", "city": "Győr"}
    values.update(customer)
    return {
        "customer": customer_context(Customer(**values)),
        "unsubscribe_url": "https://a.example/u/tok",
        "preferences_url": "https://a.example/p/tok",
        "campaign": {"name": "Spring sale"},
    }


def test_it_substitutes_the_documented_customer_values():
    rendered = render_message(
        subject="Hi {{ customer.first_name }} from {{ customer.city }}",
        html="<p>{{ customer.full_name }} {{ customer.email }} {{ customer.country }} "
        "{{ customer.attributes.size }} {{ campaign.name }}</p>"
        '<a href="{{ unsubscribe_url }}">u</a><a href="{{ preferences_url }}">p</a>',
        text="Dear {{ customer.last_name }}",
        context=_context(country="HU", attributes={"size": "XL"}),
    )
    assert rendered.subject == "Hi Ann from Győr"
    assert rendered.html == (
        "<p>Ann Lee ann@example.com HU XL Spring sale</p>"
        '<a href="https://a.example/u/tok">u</a><a href="https://a.example/p/tok">p</a>'
    )
    assert rendered.text == "Dear Lee"


def test_it_renders_missing_values_empty_and_applies_default():
    rendered = render_message(
        subject="Hi {{ customer.first_name|default:'there' }}{{ customer.nickname }}",
        html="[{{ customer.attributes.missing }}][{{ nothing.at.all }}]",
        context=_context(first_name=""),
    )
    assert rendered.subject == "Hi there"
    assert rendered.html == "[][]"


def test_it_escapes_values_in_html_but_not_in_subject_or_text():
    rendered = render_message(
        subject="{{ customer.first_name }}",
        html="<b>{{ customer.first_name }}</b>",
        text="{{ customer.first_name }}",
        context=_context(first_name="<Tom & Jerry>"),
    )
    assert rendered.subject == "<Tom & Jerry>"
    assert rendered.html == "<b>&lt;Tom &amp; Jerry&gt;</b>"
    assert rendered.text == "<Tom & Jerry>"


def test_it_generates_the_text_part_from_the_html_when_text_is_empty():
    rendered = render_message(
        subject="s",
        html='<h1>Hello {{ customer.first_name }}</h1><p>See <a href="https://shop.example/x">our shop</a></p>',
        text="",
        context=_context(),
    )
    assert "Hello Ann" in rendered.text
    assert "https://shop.example/x" in rendered.text
    assert "<h1>" not in rendered.text


def test_it_supports_if_and_for_over_plain_data():
    rendered = render_message(
        subject="s",
        html="{% if customer.attributes.vip %}VIP{% else %}regular{% endif %}"
        "{% for tag in customer.attributes.tags %}[{{ tag|upper }}]{% endfor %}",
        context=_context(attributes={"vip": True, "tags": ["a", "b"]}),
    )
    assert rendered.html == "VIP[A][B]"


@pytest.mark.parametrize(
    "source",
    [
        "{{ customer.delete }}",
        "{{ customer.save }}",
        "{{ customer.keys }}{{ customer.items }}{{ customer.values }}",
        "{{ customer.attributes.clear }}{{ customer.attributes.pop }}",
        "{{ customer.pk }}{{ customer.id }}{{ customer.orders }}{{ customer.objects }}",
        "{{ settings.SECRET_KEY }}{{ request.user }}{{ view }}{{ csrf_token }}",
        "{{ customer }}{{ customer.attributes }}",
    ],
)
def test_it_reaches_nothing_beyond_the_documented_values(source):
    context = _context(attributes={"note": "x"})
    rendered = render_message(subject=source, html=source, text=source, context=context)
    assert rendered == type(rendered)(subject="", html="", text="")
    assert context["customer"]["attributes"] == {"note": "x"}


@pytest.mark.django_db
def test_it_never_reaches_the_orm_or_other_customers(tenant):
    Customer.objects.create(email="other@example.com", first_name="Secret")
    me = Customer.objects.create(email="me@example.com", first_name="Me")
    source = (
        "{{ customer.first_name }}{{ customer.objects.all }}{{ customer.orders.all }}"
        "{% for c in customer.objects.all %}{{ c.email }}{% endfor %}"
    )
    rendered = render_message(subject="s", html=source, context={"customer": customer_context(me)})
    assert rendered.html == "Me"
    assert Customer.objects.count() == 2


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{% load static %}", "Line 1: Invalid block tag on line 1: 'load'."),
        ('{% include "admin/base.html" %}', "Line 1: Invalid block tag on line 1: 'include'."),
        ('{% extends "admin/base.html" %}', "Line 1: Invalid block tag on line 1: 'extends'."),
        ("a\nb\n{% debug %}", "Line 3: Invalid block tag on line 3: 'debug'."),
        ("{% csrf_token %}", "Line 1: Invalid block tag on line 1: 'csrf_token'."),
        ("{% url 'admin:index' %}", "Line 1: Invalid block tag on line 1: 'url'."),
        ("x\n{{ customer.__class__ }}", "Line 2: Variables and attributes may not begin with underscores"),
        ("{{ customer|pprint }}", "Line 1: Invalid filter: 'pprint'"),
        ("one\n{% if customer.first_name %}\nno end", "Line 2: Unclosed tag on line 2: 'if'."),
    ],
)
def test_it_refuses_unsafe_or_broken_templates_naming_the_line(source, expected):
    errors = template_errors(source)
    assert len(errors) == 1
    assert errors[0].startswith(expected)


def test_it_accepts_valid_templates():
    assert template_errors("Hi {{ customer.first_name|default:'there' }} {% if x %}y{% endif %}") == []


def test_it_names_the_field_of_each_broken_source():
    with pytest.raises(ValidationError) as exc:
        validate_sources(subject="ok {{ a }}", html_body="{% if %}", text_body="{% for %}")
    assert set(exc.value.message_dict) == {"html_body", "text_body"}
    assert exc.value.message_dict["html_body"][0].startswith("Line 1:")


def test_it_compiles_once_and_renders_many_recipients():
    compiled = compile_message(subject="Hi {{ customer.first_name }}", html="<p>{{ customer.email }}</p>")
    first = compiled.render(_context(first_name="A", email="a@example.com"))
    second = compiled.render(_context(first_name="B", email="b@example.com"))
    assert (first.subject, second.subject) == ("Hi A", "Hi B")
    assert first.text.strip() == "a@example.com"
    assert second.text.strip() == "b@example.com"


def test_it_keeps_the_subject_on_one_line():
    rendered = render_message(subject="Hi\n{{ customer.first_name }}\r\n!", html="", context=_context())
    assert rendered.subject == "Hi Ann !"


@pytest.mark.django_db
def test_it_builds_the_order_context_for_transactional_templates(tenant):
    customer = Customer.objects.create(email="buyer@example.com", first_name="Bo")
    order = Order.objects.create(
        external_id="o-1", customer=customer, number="1001", total=Decimal("1234.50"), currency="HUF"
    )
    OrderItem.objects.create(order=order, sku="SKU-1", name="Mug", quantity=2, unit_price=Decimal("617.25"))
    rendered = render_message(
        subject="Order {{ order.number }}",
        html="{{ order.total }} {{ order.currency }} {{ order.status }}"
        "{% for item in order.items %}|{{ item.quantity }}x {{ item.name }} {{ item.unit_price }}{% endfor %}",
        context={"customer": customer_context(customer), "order": order_context(order)},
    )
    assert rendered.subject == "Order 1001"
    assert rendered.html == "1234.50 HUF pending|2x Mug 617.25"


# --- sizes known before a filter builds anything (campaigns.rendering.FORECASTS) -------------------

TRICKY_VALUES = [
    "",
    "abc",
    "a<b>&\"'c",
    "line one\nline two\r\n\n\nnext paragraph\r",
    "tab\there\t\tand\tthere",
    "ΐßİﬃ㎯ and ǅ",
    "www.😀😀 a@b.co http://x.example/<>\"'& www.ü.co",
    "😀" * 7,
    "\\'\"<>&=-;`\u2028\x01",
    "Ünïcödé ",
    ("a", "<b>", ("c", ("d", "é<")), "e"),
    (1, 2, 3),
    (),
    12345,
    -7,
    3.25,
    "1234.5678",
    True,
    None,
    date(2026, 1, 2),
    datetime(2026, 12, 31, 23, 59, 58),
]
TRICKY_ARGS = [None, "", "7", "30", ", ", "<&>", "r c F", "rcrc\\r", "2g", "-3", "10s", ".5f", "www.ü.co"]


def _built_size(name, result):
    if name in ("escapeseq", "safeseq"):  # a list of texts: what it holds
        return "characters", sum(len(str(item)) for item in result)
    if isinstance(result, list | tuple):
        return "items", len(result)
    return "characters", len(str(result))


def _calls(name, func):
    for value in map(plain, TRICKY_VALUES):
        for arg in TRICKY_ARGS if name not in {"make_list"} else [None]:
            for autoescape in (True, False):
                kwargs = {"autoescape": autoescape} if getattr(func, "needs_autoescape", False) else {}
                args = () if arg is None else (arg,)
                try:
                    result = func(value, *args, **kwargs)
                except Exception:  # a call Django itself refuses builds nothing
                    continue
                yield value, arg, autoescape, result


@pytest.mark.parametrize("name", sorted(FORECASTS))
def test_it_forecasts_at_least_what_each_filter_really_builds(name):
    func = defaultfilters.register.filters[name]
    forecast = FORECASTS[name]
    checked = 0
    for value, arg, autoescape, result in _calls(name, func):
        if result is value:  # refused quietly (join of a nested list): nothing built
            continue
        expected = forecast(value, arg, autoescape)
        unit, size = _built_size(name, result)
        if expected is None:  # numbers added, or a mix that renders empty
            assert size <= len(str(value)) + len(str(arg)) + 1, (name, value, arg, result)
            continue
        assert expected[0] == unit, (name, value, arg)
        assert size <= expected[1], (name, value, arg, autoescape, size, expected)
        checked += 1
    assert checked > 0


def test_it_forecasts_joins_and_escapes_exactly():
    text = "a<b>&\"'c 😀"
    items = ("x<", "y&z", "'")

    assert FORECASTS["join"](items, "<>", True) == ("characters", len(defaultfilters.join(items, "<>")))
    assert FORECASTS["join"](text, "--", False) == ("characters", len("--".join(text)))
    assert FORECASTS["escape"](text, None, True) == ("characters", len(defaultfilters.escape_filter(text)))
    assert FORECASTS["make_list"](text, None, True) == ("items", len(text))


def test_it_examined_every_filter_it_allows():
    library_filters = set(_sandbox_library().filters)

    assert set(FORECASTS) & NO_GROWTH == set()
    assert set(defaultfilters.register.filters) - DENIED_FILTERS == set(FORECASTS) | NO_GROWTH
    assert library_filters == set(FORECASTS) | NO_GROWTH
