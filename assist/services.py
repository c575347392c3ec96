"""AI assistance for one tenant: each answer from the provider when one is configured and allowed,
validated, else (or when it fails, is slow, or answers something invalid) from the offline side.

What goes to a provider is built here and only here: field names and operators, the tenant's tag
names, campaign names and attribute keys, campaign content and aggregate figures. Addresses and
phone numbers a marketer types into a sentence are replaced by placeholders before it leaves and put
back into the rules after. A failure is logged with the tenant and never reaches the user.
"""

import json
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

import jsonschema
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from campaigns import editing
from campaigns.models import Campaign
from customers.models import Customer, Tag
from segments.rules import (
    DATE_OPERATORS,
    NO_VALUE_OPERATORS,
    NUMBER_OPERATORS,
    SET_OPERATORS,
    TEXT_OPERATORS,
    RuleError,
    field_catalogue,
    parse_rules,
)
from tracking.selectors import campaign_stats

from .intent import plain_text
from .providers import OpenAICompatibleProvider, ProviderError
from .segment_text import explain, parse_segment_text
from .subjects import MAX_COUNT, content_parts, offline_suggestions, subject_problem
from .summary import HISTORY_SIZE, campaign_facts, numbers_match, offline_summary

logger = logging.getLogger(__name__)

MAX_TEXT_LENGTH = 1000
MAX_CONTENT_CHARS = 6000
VOCABULARY_SIZE = 200
# Provider calls run here so that a slow one is abandoned at the deadline whatever the HTTP layer
# does (httpx's timeout is per read, a trickling server could outlast it).
_executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ai-provider")


def provider_for(tenant):
    """The configured provider, or None: offline only, or switched off by the tenant."""
    if settings.AI_PROVIDER != "openai" or not getattr(tenant, "ai_provider_enabled", True):
        return None
    return OpenAICompatibleProvider(
        base_url=settings.AI_BASE_URL,
        api_key=settings.AI_API_KEY,
        model=settings.AI_MODEL,
        timeout=settings.AI_TIMEOUT_SECONDS,
    )


def _from_provider(task, provider, request, validate):
    """The provider's validated answer to `request` (kwargs of complete_json), or None."""
    if provider is None:
        return None
    schema = connection.schema_name
    try:
        future = _executor.submit(provider.complete_json, **request)
        answer = future.result(timeout=settings.AI_TIMEOUT_SECONDS)
        return validate(answer)
    except FutureTimeout:
        future.cancel()
        reason = f"no answer within {settings.AI_TIMEOUT_SECONDS:g} s"
    except (ProviderError, ValueError, KeyError, TypeError, jsonschema.ValidationError, RuleError) as error:
        reason = f"{type(error).__name__}: {str(error)[:300]}"
    logger.warning("AI provider failed for tenant %s (%s): %s; answering offline", schema, task, reason)
    return None


# --- segments from a sentence ------------------------------------------------------------------------

EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
PHONE_RE = re.compile(r"\+\d[\d\s()./-]{5,}\d|\b\d(?:[\s()./-]?\d){8,}\b")


def redact(text):
    """(text with e-mail addresses and phone numbers as EMAIL_1 / PHONE_1, {placeholder: original})."""
    found = {}

    def swap(kind):
        def replace(match):
            key = f"{kind}_{sum(k.startswith(kind) for k in found) + 1}"
            found[key] = match.group(0)
            return key

        return replace

    text = EMAIL_RE.sub(swap("EMAIL"), text)
    text = PHONE_RE.sub(swap("PHONE"), text)
    return text, found


def _restore(node, placeholders):
    if isinstance(node, dict):
        return {key: _restore(value, placeholders) for key, value in node.items()}
    if isinstance(node, list):
        return [_restore(item, placeholders) for item in node]
    if isinstance(node, str):
        for key, original in placeholders.items():
            node = node.replace(key, original)
    return node


def segment_vocabulary():
    """The tenant's tag names, campaign names and attribute keys (content, never a customer's data)."""
    campaigns = {}
    for name, pk in Campaign.objects.order_by("-created_at", "-id").values_list("name", "id")[
        :VOCABULARY_SIZE
    ]:
        campaigns.setdefault(name, pk)
    with connection.cursor() as cursor:
        # Keys from the newest customers only: the whole table would be a full scan at a million rows.
        cursor.execute(
            f"""
            SELECT DISTINCT key FROM (
                SELECT attributes FROM {Customer._meta.db_table}
                WHERE attributes <> '{{}}'::jsonb AND jsonb_typeof(attributes) = 'object'
                ORDER BY id DESC LIMIT 1000
            ) recent, jsonb_object_keys(recent.attributes) AS key
            ORDER BY key LIMIT %s
            """,
            [VOCABULARY_SIZE],
        )
        attributes = [row[0] for row in cursor.fetchall()]
    return {
        "tags": list(Tag.objects.order_by("name").values_list("name", flat=True)[:VOCABULARY_SIZE]),
        "campaigns": campaigns,
        "attributes": attributes,
    }


ALL_OPERATORS = sorted(set(TEXT_OPERATORS + NUMBER_OPERATORS + DATE_OPERATORS + SET_OPERATORS))
RULE_VALUE = {
    "anyOf": [
        {"type": "string"},
        {"type": "number"},
        {"type": "boolean"},
        {"type": "null"},
        {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "number"}]}},
    ]
}
SEGMENT_SCHEMA = {
    "type": "object",
    "properties": {
        "rules": {"$ref": "#/$defs/group"},
        "explanation": {"type": "string"},
        "unparsed": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["rules", "explanation", "unparsed"],
    "additionalProperties": False,
    "$defs": {
        "group": {
            "type": "object",
            "properties": {
                "combinator": {"enum": ["and", "or"]},
                "not": {"type": "boolean"},
                "rules": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"anyOf": [{"$ref": "#/$defs/group"}, {"$ref": "#/$defs/rule"}]},
                },
            },
            "required": ["combinator", "not", "rules"],
            "additionalProperties": False,
        },
        "rule": {
            "type": "object",
            "properties": {
                "field": {"type": "string"},
                "operator": {"enum": ALL_OPERATORS},
                "value": RULE_VALUE,
            },
            "required": ["field", "operator", "value"],
            "additionalProperties": False,
        },
    },
}


def _segment_prompt(today, vocabulary):
    fields = "\n".join(
        f"- {field['name']} ({field['type']}): {', '.join(field['operators'])}"
        for field in field_catalogue()["fields"]
    )
    return f"""You turn a marketer's sentence into customer segment rules (react-querybuilder JSON).
Fields and the operators each allows:
{fields}
- attributes.<key> (text): {", ".join(TEXT_OPERATORS)}
Values: numbers as decimal strings without separators ("50000"); dates as YYYY-MM-DD; inLastDays and
notInLastDays take whole days (a month is 30, a year 365); in, notIn, between and notBetween take a
list (between exactly two); null and notNull take the value null; email_marketing takes true or false
(marketing consent); tags and purchased_sku take names; opened_campaign and clicked_campaign take
campaign ids; country takes ISO 3166-1 alpha-2 codes. Groups: {{"combinator": "and"|"or", "not":
false, "rules": [...]}}; "and" binds tighter than "or". Today is {today.isoformat()}.
The tenant's tags: {json.dumps(vocabulary["tags"][:VOCABULARY_SIZE])}
The tenant's campaigns (name: id): {json.dumps(vocabulary["campaigns"])}
Attribute keys: {json.dumps(vocabulary["attributes"])}
Put words of the sentence you could not use in "unparsed"; never invent a condition for them.
"explanation" says in one English sentence which customers the rules select."""


def segment_from_text(*, text, tenant, today=None):
    """{"rules", "explanation", "unparsed", "source"} for a sentence; ValidationError when the text
    is empty or (offline) holds no condition."""
    text = (text or "").strip()
    if not text:
        raise ValidationError(
            {"text": ["Describe the customers, e.g. “customers in Budapest who spent over 50000”."]}
        )
    if len(text) > MAX_TEXT_LENGTH or "\x00" in text:
        raise ValidationError({"text": [f"At most {MAX_TEXT_LENGTH} characters, no NUL characters."]})
    today = today or timezone.now().date()
    vocabulary = segment_vocabulary()
    provider = provider_for(tenant)
    if provider is not None:
        redacted, placeholders = redact(text)

        def validate(answer):
            jsonschema.validate(answer, SEGMENT_SCHEMA)
            rules = _without_null_values(_restore(answer["rules"], placeholders))
            parse_rules(rules)
            return {
                "rules": rules,
                "explanation": answer["explanation"].strip()[:1000] or explain(rules),
                "unparsed": [str(word)[:100] for word in answer["unparsed"]][:50],
            }

        answer = _from_provider(
            "segment",
            provider,
            {
                "system": _segment_prompt(today, vocabulary),
                "user": redacted,
                "schema": SEGMENT_SCHEMA,
                "name": "segment_rules",
            },
            validate,
        )
        if answer is not None:
            return {**answer, "source": "provider"}
    parsed = parse_segment_text(text, today=today, vocabulary=vocabulary)
    if parsed.rules is None:
        words = ", ".join(parsed.unparsed[:20]) or text[:100]
        raise ValidationError({"text": [f"No condition found in the text (not understood: {words})."]})
    try:
        parse_rules(parsed.rules)
    except RuleError as error:  # a value out of the language's range ("in the last 10000000 days")
        raise ValidationError(
            {"text": [f"The conditions found are out of range: {'; '.join(error.messages)}"]}
        )
    return {
        "rules": parsed.rules,
        "explanation": parsed.explanation,
        "unparsed": parsed.unparsed,
        "source": "offline",
    }


def _without_null_values(node):
    if "combinator" in node:
        return {**node, "rules": [_without_null_values(child) for child in node["rules"]]}
    if node.get("operator") in NO_VALUE_OPERATORS:
        return {key: value for key, value in node.items() if key != "value"}
    return node


# --- campaign summaries --------------------------------------------------------------------------------

SUMMARY_SCHEMA = {
    "type": "object",
    "properties": {"summary": {"type": "string"}},
    "required": ["summary"],
    "additionalProperties": False,
}
SUMMARY_PROMPT = """You write the short summary of an email campaign's results for a marketer: 3 to 6
plain sentences, friendly and concrete, ending with the suggestion. Use only the figures given, each
written exactly as in the draft ("1,234", "23.4%", "14:00 UTC"); never compute, round or invent a
number. Answer with {"summary": "..."}."""


def _history(campaign):
    """(open_rate, click_rate) of the tenant's last 10 other sent campaigns, from their stats."""
    others = (
        Campaign.objects.filter(status="sent", sent_at__isnull=False)
        .exclude(pk=campaign.pk)
        .order_by("-sent_at", "-id")[:HISTORY_SIZE]
    )
    history = []
    for other in others:
        stats = campaign_stats(campaign=other)
        if stats["sent"]:
            history.append((stats["open_rate"], stats["click_rate"]))
    return history


def campaign_summary_facts(*, campaign):
    return campaign_facts(
        campaign=campaign, stats=campaign_stats(campaign=campaign), history=_history(campaign)
    )


def campaign_summary_write(*, campaign, tenant):
    """Write and store the campaign's summary; returns {"summary", "source", "facts"}."""
    facts = campaign_summary_facts(campaign=campaign)
    draft = offline_summary(facts)
    summary, source = draft, "offline"

    def validate(answer):
        jsonschema.validate(answer, SUMMARY_SCHEMA)
        text = answer["summary"].strip()
        if not text or len(text) > 2000:
            raise ValueError("the summary is empty or too long")
        if not numbers_match(text, facts):
            raise ValueError("the summary's numbers differ from the facts")
        return text

    rewritten = _from_provider(
        "summary",
        provider_for(tenant),
        {
            "system": SUMMARY_PROMPT,
            "user": json.dumps({"facts": facts, "draft": draft}, default=str),
            "schema": SUMMARY_SCHEMA,
            "name": "campaign_summary",
        },
        validate,
    )
    if rewritten is not None:
        summary, source = rewritten, "provider"
    editing.campaign_summary_save(campaign_id=campaign.pk, summary=summary, source=source)
    return {"summary": summary, "source": source, "facts": facts}


# --- subject lines --------------------------------------------------------------------------------------

SUBJECTS_SCHEMA = {
    "type": "object",
    "properties": {"subjects": {"type": "array", "items": {"type": "string"}}},
    "required": ["subjects"],
    "additionalProperties": False,
}
SUBJECTS_PROMPT = """You suggest email subject lines for a webshop's campaign, drawn from its content.
Each at most 78 characters, no spam-trigger phrasing (no "act now", "click here", "100% free",
"urgent", "winner", no words in capitals, at most one exclamation mark). You may personalise with the
variable {{ customer.first_name|default:"friend" }}. Learn from the tenant's best-opened subjects.
Answer with {"subjects": ["...", ...]}."""


def best_past_subjects(limit=3):
    """[(subject, human open rate)] of the tenant's sent campaigns that opened best (20+ sent)."""
    rated = []
    recent = Campaign.objects.filter(status="sent").order_by("-sent_at", "-id")[:50]
    for campaign in recent:
        stats = campaign_stats(campaign=campaign)
        if stats["sent"] >= 20:
            rated.append((campaign.subject, stats["open_rate"]))
    rated.sort(key=lambda item: -item[1])
    return rated[:limit]


def subject_suggestions(*, tenant, html="", text="", count=5):
    """{"subjects": [...], "source", "rejected": [{"subject", "reason"}]} for campaign content."""
    count = max(1, min(MAX_COUNT, int(count)))
    if not (html or "").strip() and not (text or "").strip():
        raise ValidationError({"html_body": ["Give the campaign's content (or a campaign with content)."]})
    best = best_past_subjects()
    rejected = []

    def validate(answer):
        jsonschema.validate(answer, SUBJECTS_SCHEMA)
        kept = []
        for subject in answer["subjects"]:
            subject = " ".join(str(subject).split())
            problem = subject_problem(subject)
            if problem is not None:
                rejected.append({"subject": subject[:200], "reason": problem})
            elif subject.lower() not in {s.lower() for s in kept}:
                kept.append(subject)
        if not kept:
            raise ValueError("no suggestion passed the length and spam rules")
        return kept[:count]

    parts = content_parts(html=html, text=text)
    content = " ".join(part for part in (plain_text(html), text or "") if part.strip())
    suggestions = _from_provider(
        "subjects",
        provider_for(tenant),
        {
            "system": SUBJECTS_PROMPT,
            "user": json.dumps(
                {
                    "count": count,
                    "content": " ".join(content.split())[:MAX_CONTENT_CHARS],
                    "headings": parts["headings"][:5],
                    "offers": parts["offers"][:5],
                    "products": parts["products"][:10],
                    "best_past_subjects": [
                        {"subject": subject, "human_open_rate": round(rate, 3)} for subject, rate in best
                    ],
                }
            ),
            "schema": SUBJECTS_SCHEMA,
            "name": "subject_lines",
        },
        validate,
    )
    if suggestions is not None:
        return {"subjects": suggestions, "source": "provider", "rejected": rejected}
    offline = offline_suggestions(html=html, text=text, best_subjects=[s for s, _ in best], count=count)
    return {"subjects": offline, "source": "offline", "rejected": []}
