"""Is a hit a person or a machine? Decided from the request alone (the time window is checked in SQL).

Machines that load pixels or follow links on their own:
- Apple Mail Privacy Protection prefetches every image through Apple's proxies, with the bare user
  agent "Mozilla/5.0" and from Apple's own address block (17.0.0.0/8).
- Security scanners of mail gateways (Safe Links, Mimecast, Proofpoint, Barracuda, ...) follow links
  and load images before the person sees the message.
- Crawlers, link-preview bots and HTTP libraries announce themselves in the user agent.
Gmail's and Yahoo's image proxies fetch when the person opens the message, so they count as human.
"""

import ipaddress
import re

APPLE_NETWORKS = (ipaddress.ip_network("17.0.0.0/8"),)

# The exact agents Apple's prefetcher sends (nothing after the product token).
APPLE_PREFETCH_AGENTS = {"mozilla/5.0"}

BOT_AGENT_RE = re.compile(
    r"bot\b|bot/|crawl|spider|slurp|scanner|headless|phantomjs|"
    r"curl/|wget/|python-|python/|aiohttp|httpx|go-http-client|java/|okhttp|libwww|apache-httpclient|"
    r"node-fetch|axios/|postmanruntime|"
    r"barracuda|mimecast|proofpoint|urldefense|symantec|messagelabs|trendmicro|trend micro|forcepoint|"
    r"fireeye|sophos|ironport|zscaler|bitdefender|kaspersky|safelinks|safe links|appriver|"
    r"facebookexternalhit|whatsapp|skypeuripreview|microsoft office existence discovery",
    re.IGNORECASE,
)


def is_machine_agent(*, user_agent, ip=None):
    """True when the user agent or the address says a machine made the request."""
    agent = (user_agent or "").strip()
    if not agent:
        return True
    if agent.lower() in APPLE_PREFETCH_AGENTS:
        return True
    if BOT_AGENT_RE.search(agent):
        return True
    if ip:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in network for network in APPLE_NETWORKS)
    return False
