"""A/B tests of campaigns (PRODUCT.md "A/B tests"): variants, the test sample, the winner.

A campaign with `variants` (2 to 4) and `ab_test` sends, when it starts, to a reproducible random
`test_percent` of its frozen audience, split evenly over the variants; everyone else is `held`. After
`wait_seconds` the decision tick (or a marketer, by hand) picks the winner, and the held recipients
become pending with the winner's key in one UPDATE: the normal sender then sends them like any
other recipient, so the exactly-once promise is the sender's own (a held row is never claimed; a
released one is claimed once, under a lease).

The winner is the variant with the highest posterior probability of being best on the test's
metric (`probabilities_best`); when that probability stays under `min_confidence` at the end of the
wait, the best point estimate wins and `decided_by` says `timeout`.
"""

import random
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from customers.models import OrderAttribution
from events.services import event_emit

from . import lifecycle
from .models import Campaign, CampaignRecipient
from .rendering import validate_sources

VARIANT_KEYS = ("A", "B", "C", "D")
VARIANT_FIELDS = ("key", "subject", "html_body", "text_body", "from_name")
METRICS = ("open_rate", "click_rate", "revenue")
AB_TEST_DEFAULTS = {"test_percent": 20, "metric": "open_rate", "wait_seconds": 14400, "min_confidence": 0.95}
TEST_PERCENT_RANGE = (1, 90)
WAIT_SECONDS_RANGE = (60, 30 * 86400)
# Monte Carlo draws of the posterior: 20,000 puts the probability's error under 0.004.
DRAWS = 20_000
STATS_DRAWS = 10_000
HISTORY_MAX = 200
SENT_STATES = ("sent", "delivered", "bounced", "complained")


class ABStateError(Exception):
    """The campaign's A/B test does not allow this (the API answers 409)."""


# --- validation -----------------------------------------------------------------------------------


def ab_validate(*, variants, ab_test):
    """Clean `variants` and `ab_test` as a campaign stores them; raises ValidationError naming each
    bad field by its path (`variants[1].key`, `ab_test.metric`). Both empty: no test."""
    errors = {}
    if variants in (None, []) and ab_test in (None, {}):
        return [], None
    if not isinstance(variants, list) or not 2 <= len(variants) <= len(VARIANT_KEYS):
        errors["variants"] = [f"An A/B test has 2 to {len(VARIANT_KEYS)} variants."]
        variants = variants if isinstance(variants, list) else []
    cleaned, seen = [], set()
    for index, variant in enumerate(variants[: len(VARIANT_KEYS)]):
        path = f"variants[{index}]"
        if not isinstance(variant, dict):
            errors[path] = ["A variant is an object with a key and what it changes."]
            continue
        unknown = sorted(set(variant) - set(VARIANT_FIELDS))
        if unknown:
            errors[f"{path}.{unknown[0]}"] = [f"Unknown field; a variant has {', '.join(VARIANT_FIELDS)}."]
        key = variant.get("key")
        if key not in VARIANT_KEYS:
            errors[f"{path}.key"] = [f"One of {', '.join(VARIANT_KEYS)}."]
        elif key in seen:
            errors[f"{path}.key"] = [f"Variant {key} appears twice."]
        seen.add(key)
        entry = {"key": key}
        for field in ("subject", "html_body", "text_body", "from_name"):
            value = variant.get(field)
            if value is None:
                continue
            if not isinstance(value, str) or "\x00" in value:
                errors[f"{path}.{field}"] = ["Must be text."]
                continue
            if field == "from_name" and ("\n" in value or "\r" in value or len(value) > 200):
                errors[f"{path}.{field}"] = ["The sender name is one line of at most 200 characters."]
                continue
            if field == "subject" and len(value) > 998:
                errors[f"{path}.{field}"] = ["At most 998 characters."]
                continue
            if value.strip():
                entry[field] = value
        if len(entry) == 1 and f"{path}.key" not in errors:
            errors.setdefault(path, []).append(
                "A variant changes at least one of subject, content, from name."
            )
        try:
            validate_sources(
                subject=entry.get("subject", ""),
                html_body=entry.get("html_body", ""),
                text_body=entry.get("text_body", ""),
            )
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                errors[f"{path}.{field}"] = messages
        cleaned.append(entry)
    test = ab_test if isinstance(ab_test, dict) else None
    if test is None:
        errors["ab_test"] = [
            "An A/B test needs its settings: test_percent, metric, wait_seconds, min_confidence."
        ]
        test = {}
    unknown = sorted(set(test) - set(AB_TEST_DEFAULTS))
    if unknown:
        errors[f"ab_test.{unknown[0]}"] = [f"Unknown field; the test has {', '.join(AB_TEST_DEFAULTS)}."]
    settings = {**AB_TEST_DEFAULTS, **{k: v for k, v in test.items() if k in AB_TEST_DEFAULTS}}
    low, high = TEST_PERCENT_RANGE
    if not _is_int(settings["test_percent"]) or not low <= settings["test_percent"] <= high:
        errors["ab_test.test_percent"] = [f"A whole number from {low} to {high}."]
    if settings["metric"] not in METRICS:
        errors["ab_test.metric"] = [f"One of {', '.join(METRICS)}."]
    low, high = WAIT_SECONDS_RANGE
    if not _is_int(settings["wait_seconds"]) or not low <= settings["wait_seconds"] <= high:
        errors["ab_test.wait_seconds"] = [f"A whole number of seconds from {low} to {high}."]
    confidence = settings["min_confidence"]
    if isinstance(confidence, bool) or not isinstance(confidence, int | float) or not 0.5 <= confidence < 1:
        errors["ab_test.min_confidence"] = ["A probability from 0.5 up to (not including) 1."]
    if errors:
        raise ValidationError(errors)
    return cleaned, {**settings, "min_confidence": float(confidence)}


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def variant_content(*, campaign, key, content, sender):
    """The content and sender of one variant: what it sets over the campaign's own. A variant with an
    HTML body of its own and no text gets its text part from that HTML (as a campaign without text
    does), not the campaign's text, which says what the campaign's HTML says."""
    variant = next((v for v in campaign.variants if v["key"] == key), None) or {}
    own_html = variant.get("html_body")
    return (
        {
            "subject": variant.get("subject") or content["subject"],
            "html": own_html or content["html"],
            "text": variant.get("text_body") or ("" if own_html else content["text"]),
        },
        {**sender, "from_name": variant.get("from_name") or sender["from_name"]},
    )


# A test copy of every variant at once (`POST /api/campaigns/{id}/test` `{"variant": "all"}`).
ALL_VARIANTS = "all"


def test_send_variants(*, campaign, variant=None):
    """Which variants a test copy goes out as: [None] (the campaign's own content) without `variant`,
    [key] for one of the campaign's variants, every key for "all". Raises ValidationError on
    `variant` for a key the campaign does not have, or any variant of a campaign without a test."""
    if variant in (None, ""):
        return [None]
    keys = [v["key"] for v in campaign.variants or []]
    if not keys:
        raise ValidationError({"variant": ["This campaign has no A/B test."]})
    if variant == ALL_VARIANTS:
        return keys
    if variant not in keys:
        raise ValidationError(
            {"variant": [f'One of this campaign\'s variants ({", ".join(keys)}) or "{ALL_VARIANTS}".']}
        )
    return [variant]


def test_send_contents(*, campaign, variant, content, sender):
    """[(key or None, content, sender)]: what each test copy of `variant` (as test_send_variants)
    carries: the variant's subject, content and from name over the campaign's."""
    return [
        (key, content, sender)
        if key is None
        else (key, *variant_content(campaign=campaign, key=key, content=content, sender=sender))
        for key in test_send_variants(campaign=campaign, variant=variant)
    ]


def campaign_html_sources(*, campaign):
    """Every HTML body the campaign may send (its own and its variants'): its links are all of theirs."""
    return [campaign.html_body, *(v.get("html_body", "") for v in campaign.variants or [])]


# --- the sample -----------------------------------------------------------------------------------


def ab_sample_assign(*, campaign):
    """Split the frozen audience, in one UPDATE: a random `test_percent` of it (at least one per
    variant) gets the variants in turn, the rest is held for the winner.

    Random but reproducible: recipients are ranked by md5(campaign id, customer id), so the same
    campaign and audience always give the same sample and split; taking them in turn in that order
    splits the sample evenly (sizes differ by at most one). Returns {key: recipients}."""
    keys = [v["key"] for v in campaign.variants]
    table = CampaignRecipient._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH ranked AS (
                SELECT id, row_number() OVER (ORDER BY md5(%(campaign)s::text || ':' || customer_id::text), id) AS rn,
                       count(*) OVER () AS n
                FROM {table} WHERE campaign_id = %(campaign)s
            ), sized AS (
                SELECT id, rn, least(n, greatest(%(k)s, ceil(n * %(percent)s / 100.0)::bigint)) AS size FROM ranked
            )
            UPDATE {table} AS r
            SET ab_sample = s.rn <= s.size,
                variant = CASE WHEN s.rn <= s.size THEN (%(keys)s::text[])[((s.rn - 1) %% %(k)s) + 1] ELSE '' END,
                status = CASE WHEN s.rn <= s.size THEN r.status ELSE 'held' END
            FROM sized AS s
            WHERE r.id = s.id AND r.status = 'pending'
            """,
            {
                "campaign": campaign.pk,
                "k": len(keys),
                "percent": campaign.ab_test["test_percent"],
                "keys": keys,
            },
        )
        cursor.execute(
            f"SELECT variant, count(*) FROM {table} WHERE campaign_id = %s AND ab_sample GROUP BY variant",
            [campaign.pk],
        )
        return dict(cursor.fetchall())


# --- results --------------------------------------------------------------------------------------


def variant_results(*, campaign):
    """Per variant of the test sample: recipients, sent, unique human opens and clicks, attributed
    orders, revenue and converted customers (orders that still count). One query."""
    recipients = CampaignRecipient._meta.db_table
    attributions = OrderAttribution._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT r.variant, count(*), count(*) FILTER (WHERE r.status = ANY(%(sent)s)),
                   count(r.first_opened_at), count(r.first_clicked_at),
                   coalesce(sum(a.orders), 0), coalesce(sum(a.revenue), 0), count(a.customer_id)
            FROM {recipients} r
            LEFT JOIN (
                SELECT customer_id, count(*) AS orders, sum(total) AS revenue
                FROM {attributions}
                WHERE campaign_id = %(campaign)s AND counts
                GROUP BY customer_id
            ) a ON a.customer_id = r.customer_id
            WHERE r.campaign_id = %(campaign)s AND r.ab_sample
            GROUP BY r.variant
            """,
            {"campaign": campaign.pk, "sent": list(SENT_STATES)},
        )
        rows = {row[0]: row[1:] for row in cursor.fetchall()}
    results = []
    for variant in campaign.variants:
        n, sent, opens, clicks, orders, revenue, buyers = rows.get(variant["key"], (0,) * 7)
        results.append(
            {
                "key": variant["key"],
                "recipients": n,
                "sent": sent,
                "unique_opens": opens,
                "unique_clicks": clicks,
                "orders": orders,
                "revenue": revenue,
                "buyers": buyers,
            }
        )
    return results


def probabilities_best(*, results, metric, draws=DRAWS, seed=0):
    """{key: posterior probability that the variant is the best on `metric`}, by Monte Carlo.

    Open and click rates: each variant's rate has a Beta(1, 1) prior and a Binomial likelihood
    (unique human opens or clicks out of the messages sent), so its posterior is
    Beta(1 + successes, 1 + sent - successes); the probability of being best is the share of joint
    posterior draws in which the variant's rate is the highest.

    Revenue per recipient: zero for most recipients and heavily skewed for the rest, so no single
    textbook likelihood fits it, and a normal approximation of the mean is dominated by one big
    order. It is modelled, as in the usual Bayesian treatment of revenue tests, as the product of
    two independent parts: whether a recipient buys (Beta-Binomial as above, over buyers / sent)
    and how much a buyer spends, with an exponential likelihood for a buyer's revenue and its
    conjugate Gamma prior on the rate. The prior, Gamma(shape 3, rate 2 x the pooled mean revenue per
    buyer of the whole test), has the pooled mean as its mean spend, favours no variant, is worth two
    buyers, and (shape > 2) gives the spend of a variant with no buyers yet a finite variance: with
    shape 1 a variant nobody bought from would keep an infinitely heavy tail and could never lose
    with confidence. Posterior: rate ~ Gamma(3 + buyers, 2 x pooled mean + revenue); revenue per
    recipient = P(buy) / rate. Draws of that product give the probability of being best exactly as
    for the rates.

    The seed is fixed: the same results always give the same probabilities (and the same winner).
    """
    rng = random.Random(seed)
    keys = [row["key"] for row in results]
    if not keys:
        return {}
    if metric == "revenue":
        buyers_all = sum(row["buyers"] for row in results)
        revenue_all = float(sum(row["revenue"] for row in results))
        prior_scale = revenue_all / buyers_all if buyers_all else 1.0
        samplers = []
        for row in results:
            a, b = 1 + row["buyers"], 1 + max(row["sent"] - row["buyers"], 0)
            shape, rate_sum = 3 + row["buyers"], 2 * prior_scale + float(row["revenue"])

            def draw(a=a, b=b, shape=shape, rate_sum=rate_sum):
                # Gamma(shape, rate=rate_sum) for the exponential's rate; mean spend = 1 / rate.
                return rng.betavariate(a, b) / rng.gammavariate(shape, 1.0 / rate_sum)

            samplers.append(draw)
    else:
        field = "unique_opens" if metric == "open_rate" else "unique_clicks"
        samplers = []
        for row in results:
            successes = min(row[field], row["sent"])
            a, b = 1 + successes, 1 + row["sent"] - successes

            def draw(a=a, b=b):
                return rng.betavariate(a, b)

            samplers.append(draw)
    wins = [0] * len(keys)
    for _ in range(draws):
        values = [draw() for draw in samplers]
        wins[values.index(max(values))] += 1
    return {key: wins[i] / draws for i, key in enumerate(keys)}


def point_estimates(*, results, metric):
    """{key: the observed metric} (rate over sent, or revenue per sent recipient)."""
    estimates = {}
    for row in results:
        if metric == "revenue":
            value = float(row["revenue"]) / row["sent"] if row["sent"] else 0.0
        else:
            value = (
                (row["unique_opens"] if metric == "open_rate" else row["unique_clicks"]) / row["sent"]
                if row["sent"]
                else 0.0
            )
        estimates[row["key"]] = value
    return estimates


def ab_summary(*, campaign):
    """What the stats API says of the test: variants with their figures and probability of being
    best, the winner, when and how it was decided."""
    if not campaign.variants:
        return {"variants": [], "winner": None, "decided_at": None, "decided_by": None, "history": []}
    results = variant_results(campaign=campaign)
    # Fewer draws than the decision: the stats page reads this often (error under 0.005).
    probabilities = probabilities_best(results=results, metric=campaign.ab_test["metric"], draws=STATS_DRAWS)
    return {
        "variants": [
            {
                "key": row["key"],
                "recipients": row["recipients"],
                "sent": row["sent"],
                "unique_opens": row["unique_opens"],
                "unique_clicks": row["unique_clicks"],
                "orders": row["orders"],
                "revenue": row["revenue"],
                "probability_best": probabilities[row["key"]],
            }
            for row in results
        ],
        "winner": campaign.ab_winner or None,
        "decided_at": campaign.ab_decided_at,
        "decided_by": campaign.ab_decided_by or None,
        "history": campaign.ab_history,
    }


# --- the decision ---------------------------------------------------------------------------------


def ab_due(*, campaign, now):
    return campaign.started_at + timedelta(seconds=campaign.ab_test["wait_seconds"]) <= now


def campaign_ab_decide(*, campaign, key=None, now=None):
    """Decide the winner and release the held recipients to it, in one transaction.

    `key`: a marketer's choice (`decided_by` manual), allowed until the test is decided. Without it,
    only once the wait is over: the most probably best variant when its probability reaches
    `min_confidence` (`confidence`), else the best point estimate (`timeout`; ties go to the earlier
    key). Returns the campaign, or None when it is not due yet. Raises ABStateError when the campaign
    has no test, it is decided already, or the campaign is not sending (or paused)."""
    now = now or timezone.now()
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if not campaign.variants:
            raise ABStateError("This campaign has no A/B test.")
        if campaign.ab_winner:
            raise ABStateError(f"The test is decided already: variant {campaign.ab_winner} won.")
        if campaign.status not in ("sending", "paused"):
            raise ABStateError(f"A campaign that is {campaign.status} has no test running.")
        keys = [v["key"] for v in campaign.variants]
        results = variant_results(campaign=campaign)
        probabilities = probabilities_best(results=results, metric=campaign.ab_test["metric"])
        if key is not None:
            if key not in keys:
                raise ValidationError({"key": [f"One of this campaign's variants: {', '.join(keys)}."]})
            winner, decided_by = key, "manual"
        else:
            if not ab_due(campaign=campaign, now=now):
                return None
            best = max(keys, key=lambda k: (probabilities[k], -keys.index(k)))
            if probabilities[best] >= campaign.ab_test["min_confidence"]:
                winner, decided_by = best, "confidence"
            else:
                estimates = point_estimates(results=results, metric=campaign.ab_test["metric"])
                winner, decided_by = max(keys, key=lambda k: (estimates[k], -keys.index(k))), "timeout"
        released = CampaignRecipient.objects.filter(campaign_id=campaign.pk, status="held").update(
            status="pending", variant=winner, lease_until=None
        )
        campaign.ab_winner, campaign.ab_decided_by, campaign.ab_decided_at = winner, decided_by, now
        campaign.ab_history = [*campaign.ab_history, {"at": now.isoformat(), "p": probabilities}][
            -HISTORY_MAX:
        ]
        campaign.save(
            update_fields=["ab_winner", "ab_decided_by", "ab_decided_at", "ab_history", "updated_at"]
        )
        event_emit(
            type="campaign.ab_winner",
            data={
                "id": campaign.pk,
                "name": campaign.name,
                "winner": winner,
                "decided_by": decided_by,
                "metric": campaign.ab_test["metric"],
                "probabilities": probabilities,
                "released": released,
            },
        )
        if released and campaign.status == "sending":
            lifecycle.senders_enqueue(campaign_id=campaign.pk)
    return campaign


def ab_history_note(*, campaign, now=None, every_seconds=None):
    """Append each variant's probability of being best now to the campaign's history (the chart),
    at most once per `every_seconds` (a twentieth of the wait, at least a minute)."""
    now = now or timezone.now()
    every = every_seconds if every_seconds is not None else max(60, campaign.ab_test["wait_seconds"] // 20)
    last = campaign.ab_history[-1]["at"] if campaign.ab_history else None
    if last and (now - datetime.fromisoformat(last)).total_seconds() < every:
        return False
    results = variant_results(campaign=campaign)
    probabilities = probabilities_best(results=results, metric=campaign.ab_test["metric"])
    history = [*campaign.ab_history, {"at": now.isoformat(), "p": probabilities}][-HISTORY_MAX:]
    Campaign.objects.filter(pk=campaign.pk, ab_winner="").update(ab_history=history)
    return True


# A running test is looked at every AB_TICK (its probabilities noted for the chart) until decided.
AB_TICK = timedelta(seconds=30)


def _running():
    return Campaign.objects.filter(
        ab_test__isnull=False, ab_winner="", status__in=("sending", "paused"), started_at__isnull=False
    )


def ab_tests_next_due():
    """When the tenant's A/B tests next need a look (tenancy/work.py): a tick from now while one runs."""
    return timezone.now() + AB_TICK if _running().exists() else None


def ab_tests_decide(*, now=None):
    """The decision tick of this tenant: note the probabilities of each running test, and decide
    those whose wait is over. Returns the ids decided."""
    now = now or timezone.now()
    decided = []
    for campaign in _running():
        if ab_due(campaign=campaign, now=now):
            try:
                if campaign_ab_decide(campaign=campaign, now=now) is not None:
                    decided.append(campaign.pk)
            except ABStateError:  # decided by hand or cancelled a moment ago
                continue
        else:
            ab_history_note(campaign=campaign, now=now)
    return decided
