"""Who the client is (core.clients): the TCP peer, unless TRUSTED_PROXIES names the proxies in front."""

import pytest
from django.core.checks import run_checks
from django.test import RequestFactory
from rest_framework.request import Request
from rest_framework.throttling import AnonRateThrottle

from core.clients import client_address, client_key
from crm_project import settings as project_settings


def request(peer, forwarded=None):
    meta = {"REMOTE_ADDR": peer}
    if forwarded is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **meta)


@pytest.mark.parametrize(
    ("trusted", "peer", "forwarded", "client"),
    [
        # No proxies named: the peer, whatever the header says.
        ("", "203.0.113.9", "198.51.100.1", "203.0.113.9"),
        ("", "203.0.113.9", None, "203.0.113.9"),
        # One proxy: the entry it appended; anything the client wrote in front is ignored.
        ("1", "10.0.0.2", "198.51.100.1", "198.51.100.1"),
        ("1", "10.0.0.2", "6.6.6.6, 198.51.100.1", "198.51.100.1"),
        ("1", "10.0.0.2", "6.6.6.6,198.51.100.1", "198.51.100.1"),
        ("1", "10.0.0.2", None, "10.0.0.2"),
        # Two proxies: the second from the right.
        ("2", "10.0.0.2", "6.6.6.6, 198.51.100.1, 10.0.0.3", "198.51.100.1"),
        ("2", "10.0.0.2", "198.51.100.1", "198.51.100.1"),  # fewer hops than configured: the furthest
        # Networks: the right-most address that is not ours, and only when the peer is ours.
        ("10.0.0.0/8, 192.168.1.5", "10.0.0.2", "6.6.6.6, 198.51.100.1, 192.168.1.5", "198.51.100.1"),
        ("10.0.0.0/8", "10.0.0.2", "198.51.100.1, 10.1.1.1", "198.51.100.1"),
        ("10.0.0.0/8", "203.0.113.9", "198.51.100.1", "203.0.113.9"),  # not through our proxy
        ("10.0.0.0/8", "10.0.0.2", "10.0.0.7", "10.0.0.7"),  # only our own hops: the furthest
        ("10.0.0.0/8", "10.0.0.2", "garbage, 10.0.0.7", None),  # nothing left of it can be believed
        ("10.0.0.0/8", "10.0.0.2", "198.51.100.1:4711", "198.51.100.1"),  # a port
        # IPv6, with brackets and ports, and IPv4-mapped addresses.
        ("1", "::1", "[2001:db8::7]:443", "2001:db8::7"),
        ("fd00::/8", "fd00::1", "2001:DB8::7", "2001:db8::7"),
        ("", "::ffff:198.51.100.1", None, "198.51.100.1"),
        # A garbage appended by a proxy we trust gives no address rather than a wrong one.
        ("1", "10.0.0.2", "unknown", None),
    ],
)
def test_it_finds_the_client(settings, trusted, peer, forwarded, client):
    settings.TRUSTED_PROXIES = trusted
    assert client_address(request(peer, forwarded)) == client


def test_it_counts_an_ipv6_client_by_its_64_and_an_unknown_one_together(settings):
    settings.TRUSTED_PROXIES = ""
    assert client_key(request("2001:db8:1:2:aaaa::1")) == client_key(request("2001:db8:1:2:bbbb::2"))
    assert client_key(request("2001:db8:1:2:aaaa::1")) == "2001:db8:1:2::/64"
    assert client_key(request("2001:db8:1:3::1")) != client_key(request("2001:db8:1:2::1"))
    assert client_key(request("198.51.100.1")) == "198.51.100.1"
    assert client_key(request("")) == "unknown"


@pytest.mark.parametrize(("trusted", "ident"), [("", "203.0.113.9"), ("1", "198.51.100.1")])
def test_it_keeps_drfs_own_throttles_from_believing_a_forged_header(settings, trusted, ident):
    # DRF's get_ident() reads NUM_PROXIES, which the settings derive from TRUSTED_PROXIES.
    rest = dict(settings.REST_FRAMEWORK)
    rest["NUM_PROXIES"] = int(trusted) if trusted else 0
    settings.REST_FRAMEWORK = rest
    assert project_settings.REST_FRAMEWORK["NUM_PROXIES"] == 0  # the default: no proxy trusted
    throttle = AnonRateThrottle()
    assert throttle.get_ident(Request(request("203.0.113.9", "6.6.6.6, 198.51.100.1"))) == ident


def test_it_refuses_to_start_with_trusted_proxies_it_cannot_read(settings):
    settings.TRUSTED_PROXIES = "10.0.0.0/8, not-a-network"
    errors = [error for error in run_checks() if error.id == "core.E001"]
    assert len(errors) == 1 and "not-a-network" in errors[0].msg
