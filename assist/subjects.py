"""Subject lines from a campaign's content, offline, and the rules every suggestion must pass.

Offline suggestions are built from what the content says: its headings, its offers ("20% off",
"free shipping"), its product names (emphasised text, link texts), shaped like the tenant's subjects
that had the best human open rates (personalised, a question, a number). Every suggestion, offline or
from a provider, passes `subject_problem`: at most 78 characters, no spam-trigger phrasing.
"""

import html as html_lib
import re

from .intent import TEMPLATE_RE

MAX_LENGTH = 78
MAX_COUNT = 10
SPAM_PHRASES = (
    "act now", "100% free", "100% satisfied", "click here", "click below", "you're a winner",
    "you are a winner", "winner", "risk free", "risk-free", "no obligation", "no cost", "earn money",
    "make money", "cash bonus", "extra cash", "urgent", "once in a lifetime", "double your",
    "why pay more", "guaranteed", "100% guaranteed", "limited time only", "this is not spam",
    "dear friend", "congratulations you", "you have been selected", "miracle", "lowest price ever",
    "order now!", "buy now!", "get rich", "no credit check", "free money", "free gift card", "viagra",
    "casino", "weight loss", "lose weight", "amazing deal",
)  # fmt: skip
FAKE_PREFIX_RE = re.compile(r"^\s*(re|fwd?|fw)\s*:", re.IGNORECASE)
SHOUTING_RE = re.compile(r"\b[A-ZÁÉÍÓÖŐÚÜŰ]{4,}\b")
REPEATED_PUNCTUATION_RE = re.compile(r"[!?]{2,}|!.*!")
MONEY_SIGNS_RE = re.compile(r"[$€£]{2,}")
HEADING_RE = re.compile(r"<h([1-3])\b[^>]*>(.*?)</h\1>", re.IGNORECASE | re.DOTALL)
EMPHASIS_RE = re.compile(r"<(strong|b)\b[^>]*>(.*?)</\1>", re.IGNORECASE | re.DOTALL)
LINK_TEXT_RE = re.compile(r"<a\b[^>]*>(.*?)</a>", re.IGNORECASE | re.DOTALL)
TAG_RE = re.compile(r"<[^>]+>")
OFFER_RES = (
    re.compile(r"\bup to \d{1,2}% off\b", re.IGNORECASE),
    re.compile(r"\b\d{1,2}% off\b", re.IGNORECASE),
    re.compile(r"\bsave (?:up to )?\d{1,2}%", re.IGNORECASE),
    re.compile(r"\bfree (?:shipping|delivery|gift wrapping|returns)\b", re.IGNORECASE),
    re.compile(r"\bbuy one,? get one free\b", re.IGNORECASE),
    re.compile(r"\b\d+ for \d+\b", re.IGNORECASE),
    re.compile(r"\b[\d.,]+\s?(?:Ft|HUF|€|EUR|USD|\$)\s+off\b", re.IGNORECASE),
)
GENERIC_LINK_TEXTS = {
    "click here", "here", "unsubscribe", "read more", "learn more", "shop now", "more", "view online",
    "view in browser", "preferences", "manage preferences", "link", "website", "see more",
}  # fmt: skip
PERSONAL = '{{ customer.first_name|default:"friend" }}'


def subject_problem(subject):
    """Why a subject line may not be suggested, or None when it may."""
    text = (subject or "").strip()
    if not text:
        return "empty"
    if len(text) > MAX_LENGTH:
        return f"longer than {MAX_LENGTH} characters"
    lowered = text.lower()
    for phrase in SPAM_PHRASES:
        if phrase in lowered:
            return f"spam-trigger phrase “{phrase}”"
    if FAKE_PREFIX_RE.match(text):
        return "pretends to be a reply or a forward"
    if SHOUTING_RE.search(TEMPLATE_RE.sub("", text)):
        return "a word in capitals"
    if REPEATED_PUNCTUATION_RE.search(text):
        return "more than one exclamation or question mark"
    if MONEY_SIGNS_RE.search(text):
        return "repeated money signs"
    return None


def _clean(fragment):
    text = TEMPLATE_RE.sub(" ", TAG_RE.sub(" ", fragment or ""))
    text = html_lib.unescape(text)
    return re.sub(r"\s+", " ", text).strip(" .:;,-–—")


def content_parts(*, html, text=""):
    """Headings, offers and product names found in the content."""
    headings = [_clean(h) for _, h in HEADING_RE.findall(html or "")]
    emphasised = [_clean(e) for _, e in EMPHASIS_RE.findall(html or "")]
    links = [_clean(a) for a in LINK_TEXT_RE.findall(html or "")]
    words = " ".join([_clean(html or ""), text or ""])
    offers = []
    for pattern in OFFER_RES:
        for found in pattern.findall(words):
            offer = found.strip()
            if offer.lower() not in {o.lower() for o in offers}:
                offers.append(offer)
    products = [
        item
        for item in emphasised + links
        if item
        and item.lower() not in GENERIC_LINK_TEXTS
        and 2 <= len(item) <= 40
        and not item.startswith("http")
    ]
    sentences = [
        s.strip() for s in re.split(r"(?<=[.!?])\s+", _clean(text or "") or _clean(html or "")) if s.strip()
    ]
    return {
        "headings": [h for h in headings if h],
        "offers": offers,
        "products": _unique(products),
        "first_sentence": sentences[0] if sentences else "",
    }


def _unique(items):
    seen, kept = set(), []
    for item in items:
        if item.lower() not in seen:
            seen.add(item.lower())
            kept.append(item)
    return kept


def _style(best_subjects):
    """What the tenant's best-opened subjects have in common: personalised, a question, a number."""
    if not best_subjects:
        return set()
    style = set()
    if any("customer.first_name" in subject for subject in best_subjects):
        style.add("personal")
    if sum(subject.strip().endswith("?") for subject in best_subjects) * 2 >= len(best_subjects):
        style.add("question")
    if sum(bool(re.search(r"\d", subject)) for subject in best_subjects) * 2 >= len(best_subjects):
        style.add("number")
    return style


def offline_suggestions(*, html, text="", best_subjects=(), count=5):
    """Up to `count` subject lines from the content, in the style of the tenant's best subjects."""
    parts = content_parts(html=html, text=text)
    style = _style(list(best_subjects))
    heading = parts["headings"][0] if parts["headings"] else ""
    second = parts["headings"][1] if len(parts["headings"]) > 1 else ""
    offer = parts["offers"][0] if parts["offers"] else ""
    product = parts["products"][0] if parts["products"] else ""
    candidates = []
    if heading and offer and offer.lower() not in heading.lower():
        candidates.append(f"{heading}: {offer}")
    if heading:
        candidates.append(heading)
    if offer and product:
        candidates.append(f"{_capital(offer)} on {product}")
    if product:
        candidates.append(f"Have you seen {product}?" if "question" in style else f"New for you: {product}")
    if offer:
        candidates.append(f"{_capital(offer)}, this week only" if "number" in style else f"Inside: {offer}")
    if second:
        candidates.append(second)
    if parts["first_sentence"]:
        candidates.append(parts["first_sentence"])
    if "question" in style and heading and not heading.endswith("?"):
        candidates.append(f"Ready for this? {heading}")
    if "personal" in style:
        personal = [f"{PERSONAL}, {_lower_first(c)}" for c in candidates[:2] if c]
        candidates = personal + candidates
    suggestions = []
    for candidate in candidates:
        candidate = re.sub(r"\s+", " ", candidate).strip()
        if candidate and subject_problem(candidate) is None:
            if candidate.lower() not in {s.lower() for s in suggestions}:
                suggestions.append(candidate)
    return suggestions[:count]


def _capital(text):
    return text[:1].upper() + text[1:]


def _lower_first(text):
    if len(text) > 1 and text[1].islower():
        return text[:1].lower() + text[1:]
    return text
