"""The campaign summary: facts from the stats API's own numbers, a deterministic text written from them,
and the check that refuses any rewritten text whose numbers are not the facts'.

`campaign_facts(stats, history)` takes the stats exactly as `GET /api/campaigns/{id}/stats` returns
them (tracking.selectors.campaign_stats) and the rates of the tenant's last campaigns; every figure
in the text is one of them, formatted one way: counts with thousands separators ("1,234"), rates as
percentages of the stats' fractions with one decimal ("23.4%"), hours as "14:00 UTC".
"""

import re
import statistics
from decimal import Decimal, InvalidOperation

HISTORY_SIZE = 10
BEST_LINKS = 3
NUMBER_RE = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?")


def percent(rate):
    return f"{100 * rate:.1f}%"


def count(number):
    return f"{number:,}"


def campaign_facts(*, campaign, stats, history):
    """The facts of a summary. `history` is [(open_rate, click_rate)] of up to the tenant's last 10
    other campaigns that were sent, from the same stats."""
    base = "delivered" if stats["delivered"] else "sent"
    facts = {
        "campaign": {"id": campaign.pk, "name": campaign.name, "subject": campaign.subject},
        "status": stats["status"],
        "recipients": stats["recipients"],
        "sent": stats["sent"],
        "delivered": stats["delivered"],
        "rate_base": base,
        "unique_opens": stats["unique_opens"],
        "unique_clicks": stats["unique_clicks"],
        "open_rate": stats["open_rate"],
        "click_rate": stats["click_rate"],
        "click_to_open_rate": stats["click_to_open_rate"],
        "unsubscribes": stats["unsubscribes"],
        "complained": stats["complained"],
        "bounced": stats["bounced"],
        "compared_campaigns": len(history),
        "median_open_rate": statistics.median([o for o, _ in history]) if history else None,
        "median_click_rate": statistics.median([c for _, c in history]) if history else None,
        "best_links": [
            {"url": link["url"], "unique_clicks": link["unique_clicks"]}
            for link in sorted(stats["links"], key=lambda link: (-link["unique_clicks"], link["url"]))
            if link["unique_clicks"] > 0
        ][:BEST_LINKS],
        "best_hour": None,
    }
    busiest = max(stats["timeline"], key=lambda row: (row["opens"], -row["hour"].timestamp()), default=None)
    if busiest is not None and busiest["opens"] > 0:
        facts["best_hour"] = {
            "hour": busiest["hour"].isoformat(),
            "label": busiest["hour"].strftime("%H:00 UTC"),
        }
    # Attribution (PRODUCT.md "Revenue attribution") when the stats carry it.
    if "orders" in stats and "revenue" in stats:
        facts["orders"] = stats["orders"]
        facts["revenue"] = str(stats["revenue"])
    facts["suggestion"] = _suggestion(facts)
    return facts


def _suggestion(facts):
    base = facts[facts["rate_base"]]
    if not facts["sent"]:
        return "Nothing has gone out yet: check the audience and the sending progress."
    if facts["complained"] or (base and facts["unsubscribes"] / base > 0.01):
        return "More people than usual left or complained: send to this segment less often, or narrow it."
    median_open = facts["median_open_rate"]
    if median_open is not None and facts["open_rate"] < 0.8 * median_open:
        return "Opens were below your usual: try a shorter, more specific subject line, and test two on part of the audience."
    if facts["unique_opens"] >= 10 and facts["click_to_open_rate"] < 0.1:
        return "Many opened but few clicked: put the main offer and its link near the top, as a button."
    if facts["best_hour"] is not None:
        return (
            f"Most opens came around {facts['best_hour']['label']}: schedule the next campaign for that hour."
        )
    return "Keep this subject style and audience: the results are in line with your usual."


def offline_summary(facts):
    """A short text for marketers, in the same words every time for the same facts."""
    name = facts["campaign"]["name"]
    so_far = "" if facts["status"] == "sent" else " so far"
    lines = []
    reach = f"“{name}” reached {count(facts['sent'])} of {count(facts['recipients'])} recipients{so_far}"
    if facts["delivered"]:
        reach += f" ({count(facts['delivered'])} confirmed delivered)"
    lines.append(reach + ".")
    rates = (
        f"{percent(facts['open_rate'])} opened and {percent(facts['click_rate'])} clicked "
        f"({count(facts['unique_opens'])} and {count(facts['unique_clicks'])} people, machines left out)"
    )
    if facts["median_open_rate"] is not None:
        rates += (
            f", against a median of {percent(facts['median_open_rate'])} and {percent(facts['median_click_rate'])} "
            f"over your last {count(facts['compared_campaigns'])} campaigns"
        )
    else:
        rates += "; there is no earlier campaign to compare with yet"
    lines.append(rates[0].upper() + rates[1:] + ".")
    if facts["best_links"]:
        shown = "; ".join(f"{link['url']} ({count(link['unique_clicks'])})" for link in facts["best_links"])
        lines.append(f"Most clicked: {shown}.")
    if facts["best_hour"] is not None:
        lines.append(f"Most opens came at {facts['best_hour']['label']}.")
    if "revenue" in facts:
        lines.append(f"Attributed: {count(facts['orders'])} orders, {facts['revenue']} in revenue.")
    lines.append(
        f"{count(facts['unsubscribes'])} unsubscribed, {count(facts['complained'])} complained "
        f"and {count(facts['bounced'])} bounced."
    )
    lines.append(f"Suggestion: {facts['suggestion']}")
    return " ".join(lines)


def numbers_in(text):
    """Every number written in `text` ("1,234", "23.4", "14"), as Decimals."""
    found = set()
    for match in NUMBER_RE.findall(text or ""):
        try:
            found.add(Decimal(match.replace(",", "")).normalize())
        except InvalidOperation:
            continue
    return found


def allowed_numbers(facts):
    """The numbers a summary of these facts may contain: those of the offline text and of the names
    and links it quotes."""
    quoted = " ".join(
        [facts["campaign"]["name"], facts["campaign"]["subject"]]
        + [link["url"] for link in facts["best_links"]]
    )
    return numbers_in(offline_summary(facts)) | numbers_in(quoted)


def numbers_match(text, facts):
    """True when every number in `text` is one of the facts' (a rewrite may drop figures, never change them)."""
    return numbers_in(text) <= allowed_numbers(facts)
