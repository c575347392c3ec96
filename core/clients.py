"""Who is asking: the one function that decides a request's client address.

The client is the TCP peer (REMOTE_ADDR), unless the operator names the proxies in front of the
service in TRUSTED_PROXIES:

- a count, e.g. `1` (one load balancer): the peer and the right-most `count - 1` entries of
  X-Forwarded-For are our proxies, the entry left of them is the client;
- a comma-separated list of networks, e.g. `10.0.0.0/8, 192.168.1.5`: X-Forwarded-For is read only
  when the peer is one of them, from the right, and the first address that is not one of them is the
  client.

Anything left of that entry was written by the client itself and is never believed: a forged
X-Forwarded-For buys nothing. Throttles, the admin login guard and the tracking links' budgets all ask
here (DRF's own throttles follow through NUM_PROXIES, see settings).
"""

import functools
import ipaddress
import logging

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)
_warned_untrusted_forwarding = False


@functools.lru_cache(maxsize=8)
def trusted_proxies(value):
    """TRUSTED_PROXIES parsed: (count, networks), one of them empty; ImproperlyConfigured when invalid."""
    value = (value or "").strip()
    if not value:
        return 0, ()
    if value.isdigit():
        return int(value), ()
    try:
        networks = tuple(
            ipaddress.ip_network(item.strip(), strict=False) for item in value.split(",") if item.strip()
        )
    except ValueError as error:
        raise ImproperlyConfigured(
            f"TRUSTED_PROXIES must be a number of proxies or comma-separated networks: {error}"
        ) from None
    return 0, networks


def parse_address(text):
    """An IP address from a header or REMOTE_ADDR (ports and IPv6 brackets removed), or None."""
    text = (text or "").strip().strip('"')
    if text.startswith("["):  # [2001:db8::1]:443
        text = text[1 : text.find("]")] if "]" in text else text[1:]
    elif text.count(":") == 1:  # 192.0.2.1:443
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _client(peer, forwarded_header):
    count, networks = trusted_proxies(settings.TRUSTED_PROXIES)
    if not (count or networks) or peer is None:
        return peer
    if networks and not any(peer in network for network in networks):
        return peer  # not through our proxy: whatever it says about forwarding is the client's claim
    forwarded = [item for item in forwarded_header.split(",") if item.strip()] if forwarded_header else []
    chain = forwarded + [peer]
    if count:
        # The peer is proxy 1, the right-most count-1 entries were added by proxies 2..count.
        if len(chain) <= count:
            entry = chain[0]  # fewer hops than configured: the furthest one our proxies saw
        else:
            entry = chain[-(count + 1)]
        return entry if entry is peer else parse_address(entry)
    for entry in reversed(forwarded):
        address = parse_address(entry)
        if address is None:
            return None  # an entry our proxies cannot have written: nothing left of it can be believed
        if not any(address in network for network in networks):
            return address
    return parse_address(forwarded[0]) if forwarded else peer


def client_address(request):
    """The client's IP address as a string (normalised), or None when it cannot be known."""
    peer = parse_address(request.META.get("REMOTE_ADDR", ""))
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if forwarded and not settings.TRUSTED_PROXIES:
        _warn_untrusted_forwarding()
    address = _client(peer, forwarded)
    return str(address) if address is not None else None


def client_key(request):
    """What limits per client count by: the address, with IPv6 clients grouped by their /64 (one
    subscriber gets a whole /64, so counting single IPv6 addresses would count nothing)."""
    address = client_address(request)
    if address is None:
        return "unknown"
    parsed = ipaddress.ip_address(address)
    if parsed.version == 6:
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return address


def _warn_untrusted_forwarding():
    global _warned_untrusted_forwarding
    if not _warned_untrusted_forwarding:
        _warned_untrusted_forwarding = True
        logger.warning(
            "requests carry X-Forwarded-For but TRUSTED_PROXIES is not set: the header is ignored and "
            "every client behind a proxy shares the proxy's address in the login limits; name the "
            "proxies in TRUSTED_PROXIES"
        )
