"""DNS look-ups through the one resolver the settings name (DNS_NAMESERVERS, DNS_TIMEOUT_SECONDS).

Every look-up ends in a `TxtLookup` that says what the DNS answered: records found, the name does not
exist, the name has no such records, or the resolver could not get an answer (with why). A DNS problem
is a result to show, never an exception for the caller to forget.
"""

from dataclasses import dataclass, field

import dns.exception
import dns.nameserver
import dns.resolver
from django.conf import settings

FOUND = "found"
NXDOMAIN = "nxdomain"  # the name does not exist
NO_ANSWER = "no_answer"  # the name exists, without records of this type
ERROR = "error"  # no answer at all: timeout, SERVFAIL, no nameserver reachable


@dataclass(frozen=True)
class TxtLookup:
    name: str
    outcome: str
    records: list = field(default_factory=list)  # each TXT record's strings joined, as text
    error: str = ""


def _nameserver(entry):
    """'127.0.0.1', '127.0.0.1:5354', '[::1]:5354' or '::1' -> a dnspython nameserver."""
    entry = entry.strip()
    if entry.startswith("["):
        host, _, port = entry[1:].partition("]")
        port = port.lstrip(":")
    elif entry.count(":") == 1:
        host, _, port = entry.partition(":")
    else:
        host, port = entry, ""
    return dns.nameserver.Do53Nameserver(host, int(port) if port else 53)


def resolver():
    """A fresh resolver (no cache: a check must see what is published now) with the settings'
    nameservers, or the system's (/etc/resolv.conf) when none are named."""
    if settings.DNS_NAMESERVERS:
        result = dns.resolver.Resolver(configure=False)
        result.nameservers = [_nameserver(entry) for entry in settings.DNS_NAMESERVERS]
    else:
        result = dns.resolver.Resolver()
    result.timeout = settings.DNS_TIMEOUT_SECONDS
    result.lifetime = settings.DNS_TIMEOUT_SECONDS
    result.cache = None
    return result


def txt_lookup(name):
    """The TXT records of `name` (an ASCII/IDNA host name), as a TxtLookup."""
    try:
        answer = resolver().resolve(name, "TXT", search=False, raise_on_no_answer=False)
    except dns.resolver.NXDOMAIN:
        return TxtLookup(name, NXDOMAIN)
    except dns.resolver.LifetimeTimeout:
        return TxtLookup(
            name, ERROR, error=f"The DNS did not answer within {settings.DNS_TIMEOUT_SECONDS:g} s."
        )
    except dns.resolver.NoNameservers as exc:
        return TxtLookup(name, ERROR, error=f"No nameserver gave an answer ({_short(exc)}).")
    except (dns.exception.DNSException, OSError, ValueError) as exc:
        return TxtLookup(name, ERROR, error=f"DNS look-up failed: {_short(exc)}")
    if answer.rrset is None:
        return TxtLookup(name, NO_ANSWER)
    records = [b"".join(rdata.strings).decode("utf-8", "replace") for rdata in answer.rrset]
    return TxtLookup(name, FOUND, records=sorted(records))


def _short(exc):
    return (str(exc) or type(exc).__name__)[:300]
