"""Helpers for campaign tests: customers, segments, templates and campaigns in a few lines."""

import pytest

from campaigns import editing
from campaigns.models import CampaignRecipient
from customers.models import Customer
from segments.models import Segment, SegmentMember
from tests.conftest import verified_sender_domain


def make_customers(n, *, prefix="c", consent=True, **fields):
    customers = Customer.objects.bulk_create(
        [
            Customer(
                email=f"{prefix}{i}@example.com",
                first_name=f"First{i}",
                last_name=f"Last{i}",
                email_marketing=consent,
                **fields,
            )
            for i in range(n)
        ]
    )
    return customers


def static_segment(customers, name="Audience"):
    segment = Segment.objects.create(name=name, kind="static")
    SegmentMember.objects.bulk_create([SegmentMember(segment=segment, customer=c) for c in customers])
    return segment


HTML = (
    "<html><body><p>Hello {{ customer.first_name }} {{ customer.last_name }}</p>"
    '<p><a href="https://shop.example/sale?x=1&amp;y=2">Sale</a> <a href="mailto:help@shop.example">help</a> '
    '<a href="#top">top</a> <a href="{{ unsubscribe_url }}">Unsubscribe</a></p></body></html>'
)


def make_campaign(segment, **fields):
    """A draft from news@shop.example, a verified sender domain of the tenant (made here if missing)."""
    verified_sender_domain("shop.example")
    values = {
        "name": "Spring",
        "subject": "Hi {{ customer.first_name }}",
        "html_body": HTML,
        "segment": segment,
        "from_email": "news@shop.example",
        "from_name": "Shop",
    }
    values.update(fields)
    return editing.campaign_create(**values)


def claim_order(campaign):
    """The recipients' addresses in the order the sender claims them (by recipient id). The freeze
    inserts the audience in whatever order the planner reads it, not necessarily the customers'."""
    return list(
        CampaignRecipient.objects.filter(campaign=campaign).order_by("id").values_list("email", flat=True)
    )


@pytest.fixture
def run_on_commit(django_capture_on_commit_callbacks):
    """Run the after-commit callbacks (the sender tasks are not sent to a broker in unit tests)."""
    return django_capture_on_commit_callbacks
