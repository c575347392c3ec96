"""What `APP_ENV=production` refuses to start with; crm_project/settings.py raises on any of them.

Each problem names the setting, what is wrong with it and what to do, and all of them are reported at
once, so a failed deploy says everything that needs fixing. Development (`make run`, the tests) is
not checked: it runs on http://*.localhost with a well-known key on purpose.
"""

import math
import re
from collections import Counter
from urllib.parse import urlsplit

from django.http.request import validate_host

SECRET_KEY_MIN_LENGTH = 50
SECRET_KEY_MIN_DISTINCT = 10
# A key is text its holder must never have typed: 128 bits, estimated from its character frequencies.
SECRET_KEY_MIN_BITS = 128
SECRET_KEY_HOW = 'python -c "import secrets; print(secrets.token_urlsafe(50))"'
# Words of the placeholders people leave in (our old .env.example value "change-me-to-a-long-random-...",
# "changeme", Django's "django-insecure-...", tutorials' "your-secret-key"), compared with everything but
# letters and digits removed. A random key contains one of them with negligible probability.
PLACEHOLDER_WORDS = (
    "changeme",
    "changethis",
    "replaceme",
    "insecure",
    "placeholder",
    "yoursecret",
    "secretkey",
    "notsecret",
    "example",
    "dummy",
    "password",
    "buildonly",
)
ALLOWED_HOSTS_EXAMPLE = ".crm.example.com"


def secret_key_problem(key):
    """Why `key` must not sign production sessions, tokens and tracking links, or None."""
    if not key:
        return f"SECRET_KEY is not set. Generate one with: {SECRET_KEY_HOW}"
    words = re.sub(r"[^a-z0-9]", "", key.lower())
    placeholder = next((word for word in PLACEHOLDER_WORDS if word in words), None)
    if placeholder:
        return (
            f"SECRET_KEY is a placeholder (it contains '{placeholder}'). Generate one with: {SECRET_KEY_HOW}"
        )
    if len(key) < SECRET_KEY_MIN_LENGTH:
        return (
            f"SECRET_KEY has {len(key)} characters; at least {SECRET_KEY_MIN_LENGTH} are needed. "
            f"Generate one with: {SECRET_KEY_HOW}"
        )
    distinct = len(set(key))
    if distinct < SECRET_KEY_MIN_DISTINCT:
        return (
            f"SECRET_KEY is low in entropy: {distinct} distinct characters (at least "
            f"{SECRET_KEY_MIN_DISTINCT}). Generate one with: {SECRET_KEY_HOW}"
        )
    if key in (key + key)[1:-1]:  # the whole key is one shorter piece repeated
        return (
            f"SECRET_KEY is low in entropy: it repeats a short pattern. Generate one with: {SECRET_KEY_HOW}"
        )
    bits = _estimated_bits(key)
    if bits < SECRET_KEY_MIN_BITS:
        return (
            f"SECRET_KEY is low in entropy: about {bits:.0f} bits (at least {SECRET_KEY_MIN_BITS}). "
            f"Generate one with: {SECRET_KEY_HOW}"
        )
    return None


def _estimated_bits(key):
    """Length times the Shannon entropy of the key's own character frequencies (an upper bound for a
    key a person made up, about right for a random one)."""
    counts = Counter(key)
    per_char = -sum(n / len(key) * math.log2(n / len(key)) for n in counts.values())
    return per_char * len(key)


def allowed_hosts_problems(allowed_hosts, *, app_url, public_domain):
    """What is wrong with ALLOWED_HOSTS and APP_URL for serving the public and the tenants' hosts."""
    problems = []
    if not allowed_hosts:
        problems.append(
            "ALLOWED_HOSTS is not set. List the public host and the tenants' hosts, comma-separated; "
            f"a leading dot covers every sub-domain, e.g. ALLOWED_HOSTS={ALLOWED_HOSTS_EXAMPLE}"
        )
    for entry in allowed_hosts:
        if "*" in entry:
            problems.append(
                f"ALLOWED_HOSTS contains '{entry}': a wildcard lets any Host header in (and Django matches "
                f"'*.' patterns literally). Use a leading dot for sub-domains, e.g. {ALLOWED_HOSTS_EXAMPLE}"
            )
    parts = urlsplit(app_url)
    if parts.scheme != "https":
        problems.append(
            f"APP_URL is {app_url!r}: production serves https only (secure cookies, HSTS, the links "
            "in every email). Set APP_URL=https://<the public host>"
        )
    if allowed_hosts and not any("*" in entry for entry in allowed_hosts):
        for name, host in (("APP_URL's host", parts.hostname), ("PUBLIC_DOMAIN", public_domain)):
            if host and not validate_host(host, allowed_hosts):
                problems.append(
                    f"{name} '{host}' is not in ALLOWED_HOSTS, so the public host would answer 400."
                )
                break
    return problems


def production_problems(*, secret_key, debug, allowed_hosts, app_url, public_domain):
    """Every reason the production settings must not start; empty when they may."""
    problems = []
    if debug:
        problems.append("DEBUG is on: set DEBUG=false (debug pages show settings and code to anyone).")
    problem = secret_key_problem(secret_key)
    if problem:
        problems.append(problem)
    problems += allowed_hosts_problems(allowed_hosts, app_url=app_url, public_domain=public_domain)
    return problems
