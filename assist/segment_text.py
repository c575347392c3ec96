"""A sentence in English to segment rules, offline: a hand-written recursive-descent parser.

One entry point: ``parse_segment_text(text, today=..., vocabulary=...)`` returns the rules (the
react-querybuilder JSON of PRODUCT.md "Segments", normalised as tests/assist/segment_corpus.py
describes), the words it did not use, and an explanation in English.

How it reads a sentence:
- The tokenizer knows amounts (``20,000 HUF``, ``€50``, ``5k forints``, ``1.5 million``, ``20 000``),
  ISO dates, quoted values and contractions (``haven't``).
- ``or`` binds weaker than ``and`` (and commas, "but", "who", ...), which bind weaker than ``not``;
  parentheses group. ``A or B and C`` is ``A or (B and C)``.
- Each clause is one of a fixed set of phrasings (a field named outright and an operator phrase,
  or a verb phrase: "spent over", "ordered in the last", "tagged", "opened campaign", ...). A
  negation in front of a clause ("not", "never", "without", "no", "didn't") turns its operator into
  the negative twin, or the clause into a negated group where no twin is the exact complement.
- Values after "or"/"and"/"," of the same kind make a list ("in Budapest or Szeged" -> ``in``),
  except for sets where "and" means both ("tagged vip and wholesale").
- A word no phrasing uses is reported in ``unparsed``; the parser never guesses a field for it.

The vocabulary (the tenant's tag names, campaign names and attribute keys) is content of the tenant,
never a customer's data.
"""

import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation

from .countries import country_code

# --- tokens -------------------------------------------------------------------------------------

TOKEN_RE = re.compile(
    r"""
    (?P<quoted>"[^"]*"|“[^”]*”)
    |(?P<date>\d{4}-\d{2}-\d{2})(?![\w-])
    |(?P<money>[€$£]\s?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?[kKmM]?)(?![\w-])
    |(?P<number>(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?[kKmM]?)(?![\w-])
    |(?P<paren>[()])
    |(?P<comma>[,;])
    |(?P<eq>!=|>=|<=|=|>|<)
    |(?P<word>[^\s(),;="“”]+)
    """,
    re.VERBOSE,
)
CURRENCY_WORDS = {
    "huf", "ft", "forint", "forints", "eur", "euro", "euros", "€", "usd", "dollar", "dollars", "$",
    "gbp", "pound", "pounds", "£", "czk", "pln", "ron", "chf",
}  # fmt: skip
MULTIPLIERS = {"thousand": Decimal(1000), "million": Decimal(1_000_000), "billion": Decimal(10**9)}
SUFFIXES = {"k": Decimal(1000), "m": Decimal(1_000_000)}
NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "once": 1, "twice": 2,
}  # fmt: skip


@dataclass
class Token:
    kind: str  # word | number | date | quoted | lparen | rparen | comma | op
    text: str
    value: object = None
    currency: bool = False

    @property
    def low(self):
        return self.text.lower()


def _decimal(text):
    text = text.replace(",", "").replace(" ", "")
    factor = Decimal(1)
    if text and text[-1].lower() in SUFFIXES:
        factor = SUFFIXES[text[-1].lower()]
        text = text[:-1]
    try:
        return Decimal(text) * factor
    except InvalidOperation:
        return None


def tokenize(text):
    text = text.replace("’", "'").replace("‘", "'")
    tokens = []
    for match in TOKEN_RE.finditer(text):
        kind = match.lastgroup
        raw = match.group(kind)
        if kind == "quoted":
            tokens.append(Token("quoted", raw[1:-1].strip(), raw[1:-1].strip()))
        elif kind == "date":
            try:
                tokens.append(Token("date", raw, date.fromisoformat(raw)))
            except ValueError:
                tokens.append(Token("word", raw))
        elif kind == "money":
            tokens.append(Token("number", raw, _decimal(raw[1:].strip()), currency=True))
        elif kind == "number":
            tokens.append(Token("number", raw, _decimal(raw)))
        elif kind == "paren":
            tokens.append(Token("lparen" if raw == "(" else "rparen", raw))
        elif kind == "comma":
            tokens.append(Token("comma", raw))
        elif kind == "eq":
            tokens.append(Token("op", raw))
        else:
            word = raw.rstrip(".!?:")
            if not word:
                continue
            # A currency symbol after an amount ("50 €") or glued to it ("50€").
            if word in ("€", "$", "£") and tokens and tokens[-1].kind == "number":
                tokens[-1].currency = True
                continue
            tokens.append(Token("word", word))
    return _merge_amounts(tokens)


def _merge_amounts(tokens):
    """ "20 000" -> 20000, "1.5 million" -> 1500000, "5k forints" -> 5000 with a currency."""
    merged = []
    for token in tokens:
        previous = merged[-1] if merged else None
        if previous is not None and previous.kind == "number" and previous.value is not None:
            if (
                token.kind == "number"
                and re.fullmatch(r"\d{3}", token.text)
                and re.fullmatch(r"\d{1,3}", previous.text)
            ):
                previous.value = previous.value * 1000 + token.value
                previous.text += " " + token.text
                continue
            if token.kind == "word" and token.low in MULTIPLIERS:
                previous.value *= MULTIPLIERS[token.low]
                previous.text += " " + token.text
                continue
            if token.kind == "word" and token.low in CURRENCY_WORDS:
                previous.currency = True
                previous.text += " " + token.text
                continue
        merged.append(token)
    return merged


# --- the vocabulary of phrasings ------------------------------------------------------------------

FILLERS = {
    "customers", "customer", "people", "person", "persons", "users", "user", "contacts", "contact",
    "subscribers", "shoppers", "buyers", "clients", "members", "everyone", "everybody", "anyone",
    "all", "show", "me", "find", "list", "get", "give", "who", "that", "which", "whose", "with",
    "having", "the", "a", "an", "those", "them", "they", "their", "ones", "only", "please", "also",
    "both", "whom", "and", "but", "&", "while", "as", "well",
}  # fmt: skip
AUXILIARIES = {"have", "has", "had", "did", "do", "does", "are", "is", "was", "were", "be", "been", "ever"}
NEGATIONS = {
    "not", "never", "no", "without", "haven't", "hasn't", "hadn't", "didn't", "don't", "doesn't",
    "isn't", "aren't", "wasn't", "weren't", "cannot", "can't", "won't", "nor",
}  # fmt: skip
STOP_WORDS = FILLERS | AUXILIARIES | NEGATIONS | {
    "or", "in", "from", "outside", "tagged", "spent", "spend", "ordered", "order", "orders", "bought",
    "purchased", "opened", "clicked", "named", "signed", "joined", "registered", "created", "since",
    "before", "after", "between", "last", "first", "total", "more", "less", "over", "under", "than",
    "at", "least", "most", "of", "for", "to", "on", "by", "is", "it", "any", "tag", "tags",
}  # fmt: skip

# Fields named outright, longest phrasings first: (words, field).
FIELD_PHRASES = sorted(
    [
        (("email", "address"), "email"),
        (("e-mail", "address"), "email"),
        (("email",), "email"),
        (("e-mail",), "email"),
        (("first", "name"), "first_name"),
        (("firstname",), "first_name"),
        (("given", "name"), "first_name"),
        (("last", "name"), "last_name"),
        (("lastname",), "last_name"),
        (("surname",), "last_name"),
        (("family", "name"), "last_name"),
        (("phone", "number"), "phone"),
        (("phone",), "phone"),
        (("mobile", "number"), "phone"),
        (("mobile",), "phone"),
        (("telephone",), "phone"),
        (("city",), "city"),
        (("town",), "city"),
        (("country",), "country"),
        (("total", "spent"), "total_spent"),
        (("total", "spend"), "total_spent"),
        (("total", "spending"), "total_spent"),
        (("lifetime", "value"), "total_spent"),
        (("order", "count"), "order_count"),
        (("number", "of", "orders"), "order_count"),
        (("orders", "count"), "order_count"),
        (("created", "at"), "created_at"),
        (("creation", "date"), "created_at"),
        (("signup", "date"), "created_at"),
        (("sign-up", "date"), "created_at"),
        (("registration", "date"), "created_at"),
        (("first", "order", "date"), "first_order_at"),
        (("first", "order"), "first_order_at"),
        (("first", "purchase"), "first_order_at"),
        (("last", "order", "date"), "last_order_at"),
        (("last", "order"), "last_order_at"),
        (("last", "purchase"), "last_order_at"),
        (("latest", "order"), "last_order_at"),
        (("most", "recent", "order"), "last_order_at"),
        (("email", "marketing", "consent"), "email_marketing"),
        (("email", "marketing"), "email_marketing"),
        (("purchased", "sku"), "purchased_sku"),
        (("sku",), "purchased_sku"),
    ],
    key=lambda item: -len(item[0]),
)
FIELD_TYPES = {
    "email": "text", "first_name": "text", "last_name": "text", "phone": "text", "city": "text",
    "country": "text", "total_spent": "number", "order_count": "number", "created_at": "date",
    "first_order_at": "date", "last_order_at": "date", "email_marketing": "bool", "tags": "set",
    "purchased_sku": "set", "opened_campaign": "set", "clicked_campaign": "set",
}  # fmt: skip
NULLABLE = {"email", "first_name", "last_name", "phone", "city", "country", "first_order_at", "last_order_at"}

# Operator phrases after a named field: (words, operator); longest first. "not" inside flips.
TEXT_OPERATOR_PHRASES = sorted(
    [
        (("is", "one", "of"), "in"),
        (("is", "not", "one", "of"), "notIn"),
        (("is", "none", "of"), "notIn"),
        (("is", "not"), "!="),
        (("isn't",), "!="),
        (("is",), "="),
        (("was",), "="),
        (("equals",), "="),
        (("is", "equal", "to"), "="),
        (("=",), "="),
        (("!=",), "!="),
        (("contains",), "contains"),
        (("includes",), "contains"),
        (("does", "not", "contain"), "doesNotContain"),
        (("doesn't", "contain"), "doesNotContain"),
        (("starts", "with"), "beginsWith"),
        (("begins", "with"), "beginsWith"),
        (("does", "not", "start", "with"), "doesNotBeginWith"),
        (("doesn't", "start", "with"), "doesNotBeginWith"),
        (("does", "not", "begin", "with"), "doesNotBeginWith"),
        (("doesn't", "begin", "with"), "doesNotBeginWith"),
        (("ends", "with"), "endsWith"),
        (("does", "not", "end", "with"), "doesNotEndWith"),
        (("doesn't", "end", "with"), "doesNotEndWith"),
        (("is", "empty"), "null"),
        (("is", "missing"), "null"),
        (("is", "blank"), "null"),
        (("is", "not", "set"), "null"),
        (("is", "not", "empty"), "notNull"),
        (("is", "set"), "notNull"),
        (("is", "present"), "notNull"),
        (("exists",), "notNull"),
    ],
    key=lambda item: -len(item[0]),
)

# Number comparisons: (words, operator) before the number, and after it.
NUMBER_PREFIXES = sorted(
    [
        (("more", "than"), ">"),
        (("over",), ">"),
        (("above",), ">"),
        (("greater", "than"), ">"),
        (("higher", "than"), ">"),
        (("in", "excess", "of"), ">"),
        ((">",), ">"),
        (("at", "least"), ">="),
        (("minimum",), ">="),
        (("min",), ">="),
        (("no", "less", "than"), ">="),
        (("not", "less", "than"), ">="),
        ((">=",), ">="),
        (("less", "than"), "<"),
        (("fewer", "than"), "<"),
        (("under",), "<"),
        (("below",), "<"),
        (("lower", "than"), "<"),
        (("<",), "<"),
        (("at", "most"), "<="),
        (("up", "to"), "<="),
        (("maximum",), "<="),
        (("max",), "<="),
        (("no", "more", "than"), "<="),
        (("not", "more", "than"), "<="),
        (("<=",), "<="),
        (("exactly",), "="),
        (("=",), "="),
        (("equal", "to"), "="),
        (("not",), "!="),
        (("!=",), "!="),
    ],
    key=lambda item: -len(item[0]),
)
NUMBER_SUFFIXES = sorted(
    [
        (("or", "more"), ">="),
        (("and", "more"), ">="),
        (("or", "above"), ">="),
        (("and", "above"), ">="),
        (("and", "up"), ">="),
        (("or", "over"), ">="),
        (("+",), ">="),
        (("or", "less"), "<="),
        (("or", "fewer"), "<="),
        (("and", "below"), "<="),
        (("or", "below"), "<="),
        (("and", "less"), "<="),
    ],
    key=lambda item: -len(item[0]),
)
DAYS_PER_UNIT = {
    "day": 1, "days": 1, "week": 7, "weeks": 7, "fortnight": 14, "fortnights": 14, "month": 30,
    "months": 30, "year": 365, "years": 365,
}  # fmt: skip
MONTHS = {
    "january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "mar": 3, "april": 4, "apr": 4,
    "may": 5, "june": 6, "jun": 6, "july": 7, "jul": 7, "august": 8, "aug": 8, "september": 9,
    "sep": 9, "sept": 9, "october": 10, "oct": 10, "november": 11, "nov": 11, "december": 12, "dec": 12,
}  # fmt: skip
EMAIL_PROVIDERS = {
    "gmail": "@gmail.com", "googlemail": "@googlemail.com", "yahoo": "@yahoo.com",
    "hotmail": "@hotmail.com", "outlook": "@outlook.com", "icloud": "@icloud.com",
    "freemail": "@freemail.hu", "citromail": "@citromail.hu", "gmx": "@gmx.net", "aol": "@aol.com",
}  # fmt: skip
NEGATIVE_TWINS = {
    "=": "!=", "contains": "doesNotContain", "beginsWith": "doesNotBeginWith",
    "endsWith": "doesNotEndWith", "in": "notIn", "between": "notBetween", "inLastDays": "notInLastDays",
    "null": "notNull",
}  # fmt: skip
NEGATIVE_TWINS.update({negative: positive for positive, negative in list(NEGATIVE_TWINS.items())})
ATTRIBUTE_KEY_RE = re.compile(r"^[\w-]{1,100}$")
ATTRIBUTE_FIELD_RE = re.compile(r"^attributes\.[\w-]{1,100}$")
FLIPPED_COMPARISONS = {">": "<=", "<=": ">", "<": ">=", ">=": "<"}
ORDER_VERBS = {"ordered", "order", "orders", "purchased", "bought", "shopped", "buy", "purchase"}
SKU_VERBS = {"bought", "purchased", "buy", "purchase", "buys", "purchases"}
SIGNUP_VERBS = (
    ("signed", "up"),
    ("sign", "up"),
    ("signed", "in"),
    ("joined",),
    ("join",),
    ("registered",),
    ("register",),
    ("created",),
    ("became", "a", "customer"),
    ("became", "customers"),
)


# --- the tree ---------------------------------------------------------------------------------------


@dataclass
class Group:
    combinator: str
    rules: list = field(default_factory=list)
    negate: bool = False


def rule(field_name, operator, value=None):
    node = {"field": field_name, "operator": operator}
    if operator not in ("null", "notNull"):
        node["value"] = value
    return node


def _field_type(name):
    return "text" if name.startswith("attributes.") else FIELD_TYPES[name]


def negate(node):
    """The exact complement of a node, as simply as the language allows."""
    if isinstance(node, Group):
        if len(node.rules) == 1 and not node.negate:
            return negate(node.rules[0])
        return Group(node.combinator, node.rules, not node.negate)
    name, operator = node["field"], node["operator"]
    kind = _field_type(name)
    if kind == "bool":
        return rule(name, operator, not node["value"])
    if operator in FLIPPED_COMPARISONS:
        if kind == "number":
            # Counts and amounts are never below 0: "not more than 0" is "exactly 0".
            if operator == ">" and Decimal(node["value"]) == 0:
                return rule(name, "=", node["value"])
            return rule(name, FLIPPED_COMPARISONS[operator], node["value"])
        if name not in NULLABLE:
            return rule(name, FLIPPED_COMPARISONS[operator], node["value"])
        return Group("and", [node], True)
    if operator in NEGATIVE_TWINS:
        negative = dict(node)
        negative["operator"] = NEGATIVE_TWINS[operator]
        if negative["operator"] in ("null", "notNull"):
            negative.pop("value", None)
        return negative
    return Group("and", [node], True)


def canonical(node):
    """Flatten groups into parents of the same combinator, unwrap groups of one rule."""
    if not isinstance(node, Group):
        return node
    children = []
    for child in node.rules:
        child = canonical(child)
        if isinstance(child, dict) and "combinator" in child:
            if child["combinator"] == node.combinator and not child["not"]:
                children.extend(child["rules"])
                continue
        children.append(child)
    if len(children) == 1 and not node.negate:
        return children[0]
    return {"combinator": node.combinator, "not": node.negate, "rules": children}


def _number_value(value):
    text = format(value.normalize(), "f")
    return text if "." not in text else text.rstrip("0").rstrip(".")


# --- the parser --------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text, *, today, vocabulary):
        self.tokens = tokenize(text)
        self.pos = 0
        self.today = today
        vocabulary = vocabulary or {}
        self.tags = {str(tag).lower(): str(tag) for tag in vocabulary.get("tags") or []}
        self.campaigns = sorted(
            (
                (tuple(str(name).lower().split()), int(pk))
                for name, pk in (vocabulary.get("campaigns") or {}).items()
            ),
            key=lambda item: -len(item[0]),
        )
        self.attributes = {str(key).lower(): str(key) for key in vocabulary.get("attributes") or []}
        self.unparsed = []
        self.last_campaigns = None

    # -- token helpers
    def peek(self, offset=0):
        index = self.pos + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def low(self, offset=0):
        token = self.peek(offset)
        return token.low if token is not None and token.kind in ("word", "op") else None

    def at_words(self, words, offset=0):
        return all(self.low(offset + index) == word for index, word in enumerate(words))

    def take_words(self, words):
        if self.at_words(words):
            self.pos += len(words)
            return True
        return False

    def take_any(self, *choices):
        for words in choices:
            words = (words,) if isinstance(words, str) else words
            if self.take_words(words):
                return True
        return False

    def take_phrase(self, phrases):
        for words, result in phrases:
            if self.take_words(words):
                return result
        return None

    def attempt(self, method, *args):
        """Run a clause matcher; on failure rewind to where it started."""
        start = self.pos
        result = method(*args)
        if result is None:
            self.pos = start
        return result

    # -- expressions
    def parse(self):
        node = self.expression()
        while self.peek() is not None:  # a stray ")" or "or" at the end
            self.unparsed.append(self.peek().text) if self.peek().kind == "word" else None
            self.pos += 1
            more = self.expression()
            if more is not None:
                node = more if node is None else Group("and", [node, more])
        return node

    def expression(self):
        terms = []
        term = self.conjunction()
        if term is not None:
            terms.append(term)
        while self.low() == "or" or (self.low() == "either"):
            start = self.pos
            self.pos += 1
            term = self.conjunction()
            if term is None:
                self.pos = start
                break
            terms.append(term)
        if not terms:
            return None
        return terms[0] if len(terms) == 1 else Group("or", terms)

    def conjunction(self):
        items = []
        while self.peek() is not None:
            token = self.peek()
            if token.kind == "rparen" or token.low == "or":
                break
            if token.kind == "comma" or (token.kind == "word" and token.low in FILLERS):
                self.pos += 1
                continue
            node = self.factor()
            if node is None:
                if token.kind in ("word", "quoted", "number", "date"):
                    self.unparsed.append(token.text)
                self.pos += 1
                continue
            items.append(node)
        if not items:
            return None
        return items[0] if len(items) == 1 else Group("and", items)

    def factor(self):
        start = self.pos
        negated = False
        while self.peek() is not None:
            low = self.low()
            if low in NEGATIONS:
                # "no more than" / "not less than" are comparisons, left to the clause.
                if self.at_words(("no", "more")) or self.at_words(("not", "more")):
                    break
                if self.at_words(("no", "less")) or self.at_words(("not", "less")):
                    break
                negated = not negated
                self.pos += 1
            elif low in AUXILIARIES or low in ("with", "the", "a", "an"):
                self.pos += 1
            else:
                break
        token = self.peek()
        if token is not None and token.kind == "lparen":
            self.pos += 1
            inner = self.expression()
            if self.peek() is not None and self.peek().kind == "rparen":
                self.pos += 1
            if inner is None:
                self.pos = start
                return None
            return negate(inner) if negated else inner
        node = self.clause()
        if node is None:
            self.pos = start
            return None
        return negate(node) if negated else node

    def clause(self):
        for matcher in (
            self.field_clause,
            self.attribute_clause,
            self.spend_clause,
            self.order_count_clause,
            self.signup_clause,
            self.sku_clause,
            self.order_date_clause,
            self.campaign_clause,
            self.consent_clause,
            self.tag_clause,
            self.location_clause,
            self.name_clause,
            self.email_provider_clause,
        ):
            node = self.attempt(matcher)
            if node is not None:
                return node
        return None

    # -- values
    def value_token(self, *, allow_stop=False):
        token = self.peek()
        if token is None:
            return None
        if token.kind == "quoted" and token.value:
            self.pos += 1
            return token.value
        if token.kind in ("number", "date"):
            self.pos += 1
            return token.text
        if token.kind == "word" and (allow_stop or token.low not in STOP_WORDS):
            self.pos += 1
            return token.text
        return None

    def capitalised_words(self):
        """A proper name, possibly of several words ("New York")."""
        token = self.peek()
        if token is None:
            return None
        if token.kind == "quoted":
            self.pos += 1
            return token.value
        if token.kind != "word" or token.low in STOP_WORDS or not token.text[:1].isupper():
            return None
        words = [token.text]
        self.pos += 1
        while (
            self.peek() is not None
            and self.peek().kind == "word"
            and self.peek().text[:1].isupper()
            and self.peek().low not in STOP_WORDS
        ):
            words.append(self.peek().text)
            self.pos += 1
        return " ".join(words)

    def value_list(self, read_one, *, and_means_list=True):
        """`read_one()` repeated over "or" / "," / "and" (when it lists); [] when none."""
        first = read_one()
        if first is None:
            return []
        values = [first]
        while True:
            start = self.pos
            low = self.low()
            token = self.peek()
            if token is not None and token.kind == "comma":
                self.pos += 1
                self.take_words(("or",)) or self.take_words(("and",))
            elif low == "or" or (low == "and" and and_means_list):
                self.pos += 1
            else:
                break
            value = read_one()
            if value is None:
                self.pos = start
                break
            values.append(value)
        return values

    def number(self):
        token = self.peek()
        if token is not None and token.kind == "number" and token.value is not None:
            self.pos += 1
            return token.value
        if token is not None and token.kind == "word" and token.low in NUMBER_WORDS:
            self.pos += 1
            return Decimal(NUMBER_WORDS[token.low])
        return None

    def skip_currency(self):
        while self.low() in CURRENCY_WORDS:
            self.pos += 1

    def number_condition(self, unit_words=(), *, allow_list=True):
        """A comparison of a number: "more than 3", "between 2 and 4", "5 or more", "1 or 2",
        optionally followed by one of `unit_words` ("orders", "times"); returns (operator, value)."""
        operator = self.take_phrase(NUMBER_PREFIXES)
        if self.take_any("between", "from"):
            low = self.number()
            self.skip_currency()
            if low is None or not self.take_any("and", "to"):
                return None
            high = self.number()
            self.skip_currency()
            if high is None or not self._unit(unit_words):
                return None
            pair = sorted([low, high])
            return ("notBetween" if operator == "!=" else "between", [_number_value(v) for v in pair])
        value = self.number()
        if value is None:
            return None
        self.skip_currency()
        if operator is None:
            operator = self.take_phrase(NUMBER_SUFFIXES)
            if operator is None and allow_list and self.low() == "or" and self.peek(1) is not None:
                start = self.pos
                self.pos += 1
                other = self.number()
                if other is not None:
                    self.skip_currency()
                    if not self._unit(unit_words):
                        return None
                    return ("in", [_number_value(value), _number_value(other)])
                self.pos = start
            operator = operator or "="
        if not self._unit(unit_words):
            return None
        if operator not in ("=", "!=", "<", ">", "<=", ">="):
            return None
        return (operator, _number_value(value))

    def _unit(self, unit_words):
        return not unit_words or self.take_any(*unit_words)

    # -- dates
    def date_point(self):
        """(first day, granularity) of "2024-05-01", "March 2025", "January", "2025"."""
        token = self.peek()
        if token is None:
            return None
        if token.kind == "date":
            self.pos += 1
            return token.value, "day"
        if token.kind == "word" and token.low in MONTHS:
            month = MONTHS[token.low]
            year_token = self.peek(1)
            if year_token is not None and year_token.kind == "number" and _is_year(year_token.value):
                self.pos += 2
                return date(int(year_token.value), month, 1), "month"
            if token.low == "may" and not self._dated_context():
                return None
            self.pos += 1
            year = self.today.year if month <= self.today.month else self.today.year - 1
            return date(year, month, 1), "month"
        if token.kind == "number" and _is_year(token.value) and not token.currency:
            self.pos += 1
            return date(int(token.value), 1, 1), "year"
        return None

    def _dated_context(self):
        previous = self.tokens[self.pos - 1].low if self.pos else ""
        return previous in ("since", "after", "before", "in", "of")

    def period(self):
        """'3 months' / 'a year' / 'week' -> days."""
        start = self.pos
        count = self.number()
        if count is None:
            count = Decimal(1)
            self.take_any("a", "an", "one")
        unit = self.low()
        if unit in DAYS_PER_UNIT and count == count.to_integral_value() and count >= 0:
            self.pos += 1
            return int(count) * DAYS_PER_UNIT[unit]
        self.pos = start
        return None

    def date_condition(self, name):
        """A condition on a date field; returns a node or None."""
        if self.take_any(
            ("in", "the", "last"),
            ("in", "the", "past"),
            ("within", "the", "last"),
            ("within", "the", "past"),
            ("during", "the", "last"),
            ("during", "the", "past"),
            ("over", "the", "last"),
            ("over", "the", "past"),
            ("in", "last"),
            ("within",),
        ):
            days = self.period()
            return None if days is None else rule(name, "inLastDays", days)
        if self.take_any(("more", "than"), ("over",), ("at", "least")):
            days = self.period()
            if days is None or not self.take_words(("ago",)):
                return None
            older = rule(name, "notInLastDays", days)
            return Group("and", [rule(name, "notNull"), older]) if name in NULLABLE else older
        if self.take_any(("on", "or", "before")):
            point = self.date_point()
            return None if point is None else rule(name, "<=", point[0].isoformat())
        if self.take_any(("on", "or", "after")):
            point = self.date_point()
            return None if point is None else rule(name, ">=", point[0].isoformat())
        if self.take_any("since", "from"):
            point = self.date_point()
            return None if point is None else rule(name, ">=", point[0].isoformat())
        if self.take_any("after"):
            point = self.date_point()
            if point is None:
                return None
            day, grain = point
            if grain == "day":
                return rule(name, ">", day.isoformat())
            return rule(name, ">=", _next_period(day, grain).isoformat())
        if self.take_any("before"):
            point = self.date_point()
            return None if point is None else rule(name, "<", point[0].isoformat())
        if self.take_any("between"):
            first = self.date_point()
            if first is None or not self.take_any("and"):
                return None
            second = self.date_point()
            if second is None:
                return None
            end = second[0] if second[1] == "day" else _next_period(*second)
            return rule(name, "between", [first[0].isoformat(), end.isoformat()])
        if self.take_any(("this", "year")):
            return rule(name, ">=", date(self.today.year, 1, 1).isoformat())
        if self.take_any(("this", "month")):
            return rule(name, ">=", date(self.today.year, self.today.month, 1).isoformat())
        if self.take_any("in", "for", "during"):
            days = self.period()
            if days is not None:
                return rule(name, "inLastDays", days)
            point = self.date_point()
            if point is None or point[1] == "day":
                return None
            day, grain = point
            return Group(
                "and",
                [rule(name, ">=", day.isoformat()), rule(name, "<", _next_period(day, grain).isoformat())],
            )
        return None

    # -- clauses
    def field_name(self):
        if self.take_words(("attribute",)) or self.take_words(("attributes",)):
            token = self.peek()
            if token is None or token.kind not in ("word", "quoted"):
                return None
            key = token.value if token.kind == "quoted" else token.text
            if not ATTRIBUTE_KEY_RE.match(key):
                return None
            self.pos += 1
            return f"attributes.{key}"
        token = self.peek()
        if token is not None and token.kind == "word" and ATTRIBUTE_FIELD_RE.match(token.text):
            self.pos += 1
            return token.text
        return self.take_phrase(FIELD_PHRASES)

    def field_clause(self):
        name = self.field_name()
        if name is None:
            return None
        return self.field_condition(name)

    def attribute_clause(self):
        """A known attribute key, also written with spaces ("loyalty tier" for loyalty_tier)."""
        for length in (3, 2, 1):
            words = [self.low(i) for i in range(length)]
            if None in words:
                continue
            key = self.attributes.get("_".join(words)) or self.attributes.get("-".join(words))
            if key is not None:
                self.pos += length
                if self.take_any("of"):
                    value = self.value_token()
                    return None if value is None else rule(f"attributes.{key}", "=", value)
                return self.field_condition(f"attributes.{key}")
        return None

    def field_condition(self, name):
        kind = _field_type(name)
        while self.low() in ("was", "were", "are", "has", "have") and kind in ("date", "number"):
            self.pos += 1
        if kind == "date":
            node = self.attempt(self.date_condition, name)
            if node is not None:
                return node
            self.take_any("is", "was")
            node = self.attempt(self.date_condition, name)
            return node if node is not None else self._presence(name)
        if kind == "number":
            self.take_any("is", "was", "of")
            condition = self.attempt(self.number_condition)
            return None if condition is None else rule(name, *condition)
        if kind == "bool":
            self.take_any("is", "was")
            if self.take_any("true", "yes", "on", "given"):
                return rule(name, "=", True)
            if self.take_any("false", "no", "off", ("not", "given")):
                return rule(name, "=", False)
            return rule(name, "=", True)
        if kind == "set":
            if name == "purchased_sku":
                self.take_any("is", "includes", "contains")
                values = self.value_list(self.sku_value)
                return self._set_rule(name, values) if values else self._presence(name)
            return None
        operator = self.take_phrase(TEXT_OPERATOR_PHRASES)
        if operator is None:
            return self._presence(name)
        if operator in ("null", "notNull"):
            return rule(name, operator)
        read = self._text_reader(name)
        values = self.value_list(read)
        if not values:
            return None
        if name == "country":
            codes = [country_code(value) for value in values]
            if None in codes:
                return None
            values = codes
        if len(values) > 1 and operator in ("=", "in"):
            return rule(name, "in", values)
        if len(values) > 1 and operator in ("!=", "notIn"):
            return rule(name, "notIn", values)
        if operator in ("in", "notIn"):
            return rule(name, operator, values)
        if len(values) > 1:
            return None
        return rule(name, operator, values[0])

    def _text_reader(self, name):
        if name in ("first_name", "last_name", "city"):
            return lambda: self.capitalised_words() or self.value_token()
        return lambda: self.value_token(allow_stop=False)

    def _presence(self, name):
        return rule(name, "notNull")

    def spend_clause(self):
        if not self.take_any("spent", "spend", "spending", "spends"):
            return None
        self.take_any(("a", "total", "of"), ("in", "total"))
        if self.take_any("nothing", ("no", "money")):
            node = rule("total_spent", "=", "0")
        else:
            condition = self.number_condition()
            if condition is None:
                return None
            node = rule("total_spent", *condition)
        self.take_any(("in", "total"), "overall", "altogether", ("so", "far"), "total")
        return node

    def order_count_clause(self):
        start = self.pos
        verb = self.take_any("placed", "made", "ordered", "purchased", "bought", "shopped")
        orders = ("orders", "order", "purchases", "purchase")
        times = ("times", "time")
        condition = self.attempt(self.number_condition, orders if not verb else orders + times)
        if condition is None:
            self.pos = start
            if verb:
                # "ordered at least 5 times", "ordered once"
                self.take_any("placed", "made", "ordered", "purchased", "bought", "shopped")
                if self.take_any("once"):
                    return rule("order_count", "=", "1")
                if self.take_any("twice"):
                    return rule("order_count", "=", "2")
            return None
        return rule("order_count", *condition)

    def order_date_clause(self):
        if not self.take_any(
            ("made", "a", "purchase"), ("placed", "an", "order"), ("placed", "orders"), ("made", "an", "order"),
            ("placed", "an", "order"),
        ):  # fmt: skip
            if self.low() not in ORDER_VERBS:
                return None
            self.pos += 1
        node = self.attempt(self.date_condition, "last_order_at")
        if node is not None:
            return node
        # "ordered" alone: has ordered at all.
        if self.low() in ("anything", "something"):
            return None
        return rule("order_count", ">", "0")

    def signup_clause(self):
        for words in SIGNUP_VERBS:
            if self.take_words(words):
                break
        else:
            return None
        self.take_any("on", "at") if self.at_words(("at",)) else None
        return self.date_condition("created_at")

    def sku_value(self):
        token = self.peek()
        if token is None:
            return None
        if token.kind == "quoted" and token.value:
            self.pos += 1
            return token.value
        if token.kind == "word" and token.low not in STOP_WORDS and _looks_like_sku(token.text):
            self.pos += 1
            return token.text
        return None

    def sku_clause(self):
        if not self.take_any(*SKU_VERBS):
            return None
        if self.take_any("anything", "something", ("any", "product"), ("a", "product")):
            return rule("purchased_sku", "notNull")
        self.take_any(("sku",), ("skus",), ("product",), ("products",), ("item",), ("the", "product"))
        values = self.value_list(self.sku_value, and_means_list=False)
        if not values:
            return None
        return self._set_rule("purchased_sku", values)

    def _set_rule(self, name, values):
        if len(values) == 1:
            return rule(name, "contains", values[0])
        return rule(name, "in", values)

    def campaign_ref(self):
        """A campaign: 'campaign 12', 'the Spring sale campaign', 'it'; returns an id or None."""
        start = self.pos
        if self.take_any("it", "that", "this"):
            if self.last_campaigns and len(self.last_campaigns) == 1:
                return self.last_campaigns[0]
            self.pos = start
            return None
        self.take_any("the")
        self.take_any("campaign", "campaigns", "email", "newsletter", "mail")
        self.take_any("#", "no.", "number")
        token = self.peek()
        if token is not None and token.kind == "number" and token.value == token.value.to_integral_value():
            if not token.currency and token.value > 0:
                self.pos += 1
                return int(token.value)
        if token is not None and token.kind == "word" and re.fullmatch(r"#\d+", token.text):
            self.pos += 1
            return int(token.text[1:])
        for words, pk in self.campaigns:
            if self.at_words(words):
                self.pos += len(words)
                self.take_any("campaign", "email", "newsletter", "mail")
                return pk
        self.pos = start
        return None

    def campaign_clause(self):
        if self.take_any("opened", "open", "opens", "read"):
            name = "opened_campaign"
        elif self.take_any("clicked", "click", "clicks", ("clicked", "on"), ("clicked", "in")):
            name = "clicked_campaign"
            self.take_any("on", "in")
        else:
            return None
        if self.take_any(
            ("any", "campaign"),
            ("any", "campaigns"),
            ("any", "email"),
            ("any", "emails"),
            ("an", "email"),
            ("anything",),
            ("a", "campaign"),
        ):
            return rule(name, "notNull")
        values = self.value_list(self.campaign_ref, and_means_list=False)
        if not values:
            return None
        self.last_campaigns = values
        return self._set_rule(name, values)

    def consent_clause(self):
        positive = (
            ("can", "receive", "marketing", "emails"),
            ("can", "receive", "marketing", "email"),
            ("can", "receive", "marketing"),
            ("can", "be", "emailed"),
            ("accept", "marketing"),
            ("accepts", "marketing"),
            ("marketing", "consent"),
            ("consent", "to", "marketing"),
            ("opted", "in"),
            ("opted-in",),
            ("opt-in",),
            ("subscribed",),
            ("consented",),
            ("consent",),
            ("marketable",),
        )
        negative = (("opted", "out"), ("opted-out",), ("opt-out",), ("unsubscribed",))
        if self.take_any(*negative):
            self.take_any(
                ("of", "marketing", "emails"),
                ("of", "marketing", "email"),
                ("of", "marketing"),
                ("of", "emails"),
                ("of", "email"),
            )
            return rule("email_marketing", "=", False)
        if self.take_any(*positive):
            self.take_any(("to", "marketing"), ("to", "emails"), ("for", "marketing"))
            return rule("email_marketing", "=", True)
        return None

    def tag_value(self):
        token = self.peek()
        if token is None:
            return None
        if token.kind == "quoted" and token.value:
            self.pos += 1
            return token.value
        if token.kind == "word" and token.low in self.tags:
            self.pos += 1
            return self.tags[token.low]
        if token.kind == "word" and not self.tags and token.low not in STOP_WORDS:
            self.pos += 1
            return token.text
        return None

    def tag_clause(self):
        if self.take_any(("any", "tag"), ("any", "tags"), ("tags",)):
            return rule("tags", "notNull")
        if self.take_any("tagged", ("tagged", "as"), ("tag",), ("labelled",), ("labeled",)):
            self.take_any("as", "with")
            token = self.peek()
            first = None
            if token is not None and token.kind in ("word", "quoted") and token.low not in STOP_WORDS:
                first = token.value if token.kind == "quoted" else self.tags.get(token.low, token.text)
                self.pos += 1
            if first is None:
                return None
            values = [first]
            while True:
                start = self.pos
                joiner = self.low()
                if joiner not in ("or", "and") and not (self.peek() and self.peek().kind == "comma"):
                    break
                self.pos += 1
                value = self.tag_value()
                if value is None:
                    self.pos = start
                    break
                values.append((joiner, value))
            return self._tag_rules(values)
        token = self.peek()
        if token is not None and token.kind == "word" and token.low in self.tags:
            self.pos += 1
            self.take_any("tag", "tags", "tagged")
            return rule("tags", "contains", self.tags[token.low])
        if token is not None and token.kind == "word" and token.low not in STOP_WORDS:
            if self.low(1) == "tag":
                self.pos += 2
                return rule("tags", "contains", token.text)
        return None

    def _tag_rules(self, values):
        first, rest = values[0], values[1:]
        if not rest:
            return rule("tags", "contains", first)
        if all(joiner == "and" for joiner, _ in rest):
            return Group(
                "and", [rule("tags", "contains", first)] + [rule("tags", "contains", v) for _, v in rest]
            )
        return rule("tags", "in", [first] + [value for _, value in rest])

    def place(self):
        """A country (name or code) or a city; returns ("country", code) / ("city", name)."""
        token = self.peek()
        if token is None:
            return None
        for length in (3, 2, 1):
            words = [self.peek(i) for i in range(length)]
            if any(word is None or word.kind != "word" for word in words):
                continue
            code = country_code(" ".join(word.text for word in words), names_only=length > 1)
            if code is not None and (length > 1 or token.text[:1].isupper() or len(token.text) > 3):
                self.pos += length
                return ("country", code)
        city = self.capitalised_words()
        if city is not None:
            return ("city", city)
        if token.kind == "word" and token.low not in STOP_WORDS and token.low.isalpha():
            self.pos += 1
            return ("city", token.text)
        return None

    def location_clause(self):
        negated = False
        if self.take_any("outside", ("outside", "of")):
            negated = True
        elif not self.take_any(
            ("living", "in"), ("based", "in"), ("located", "in"), ("who", "live", "in"), ("live", "in"),
            ("lives", "in"), ("in",), ("from",),
        ):  # fmt: skip
            return None
        places = self.value_list(self.place)
        if not places:
            return None
        kinds = {kind for kind, _ in places}
        if len(kinds) > 1:
            return None
        name = kinds.pop()
        values = [value for _, value in places]
        node = rule(name, "=", values[0]) if len(values) == 1 else rule(name, "in", values)
        return negate(node) if negated else node

    def name_clause(self):
        if not self.take_any("named", "called", ("first", "named")):
            return None
        names = self.value_list(self.capitalised_words)
        if not names:
            return None
        if len(names) == 1 and " " in names[0]:
            first, last = names[0].split(" ", 1)
            return Group("and", [rule("first_name", "=", first), rule("last_name", "=", last)])
        return rule("first_name", "=", names[0]) if len(names) == 1 else rule("first_name", "in", names)

    def email_provider_clause(self):
        token = self.peek()
        if token is None or token.kind != "word":
            return None
        if token.low in EMAIL_PROVIDERS:
            self.pos += 1
            if not self.take_any(
                "address", "addresses", "email", "emails", "account", "accounts", "user", "users"
            ):
                return None
            return rule("email", "endsWith", EMAIL_PROVIDERS[token.low])
        return None


def _is_year(value):
    return value is not None and value == value.to_integral_value() and 1900 <= value <= 2100


def _next_period(day, grain):
    if grain == "year":
        return date(day.year + 1, 1, 1)
    if grain == "month":
        return date(day.year + (day.month == 12), day.month % 12 + 1, 1)
    return day


def _looks_like_sku(text):
    return bool(re.search(r"\d", text) or "-" in text or "_" in text or (text.isupper() and len(text) > 1))


# --- explanation --------------------------------------------------------------------------------------

FIELD_WORDS = {
    "email": "email", "first_name": "first name", "last_name": "last name", "phone": "phone",
    "city": "city", "country": "country", "total_spent": "total spent", "order_count": "number of orders",
    "created_at": "signed up", "first_order_at": "first order", "last_order_at": "last order",
    "email_marketing": "marketing consent", "tags": "tags", "purchased_sku": "bought SKUs",
    "opened_campaign": "opened campaigns", "clicked_campaign": "clicked campaigns",
}  # fmt: skip
OPERATOR_WORDS = {
    "=": "is", "!=": "is not", "<": "is less than", ">": "is more than", "<=": "is at most",
    ">=": "is at least", "contains": "contains", "doesNotContain": "does not contain",
    "beginsWith": "begins with", "doesNotBeginWith": "does not begin with", "endsWith": "ends with",
    "doesNotEndWith": "does not end with", "in": "is one of", "notIn": "is none of",
    "between": "is between", "notBetween": "is not between", "inLastDays": "is within the last",
    "notInLastDays": "is not within the last", "null": "is empty", "notNull": "is set",
}  # fmt: skip
DATE_OPERATOR_WORDS = {"<": "is before", ">": "is after", "<=": "is on or before", ">=": "is on or after"}
SET_OPERATOR_WORDS = {
    "contains": "include", "doesNotContain": "do not include", "in": "include any of",
    "notIn": "include none of", "null": "are none", "notNull": "are some",
}  # fmt: skip


def explain(rules):
    """The rules in plain English, e.g. "city is Budapest and total spent is more than 50000"."""
    if rules is None:
        return "No condition found."
    return "Customers where " + _explain(rules, top=True) + "."


def _explain(node, top=False):
    if "combinator" in node:
        parts = [_explain(child) for child in node["rules"]]
        text = f" {node['combinator']} ".join(parts)
        if node.get("not"):
            return f"not ({text})"
        return text if top or len(parts) == 1 else f"({text})"
    name, operator = node["field"], node["operator"]
    label = FIELD_WORDS.get(name) or f"attribute {name.split('.', 1)[-1]}"
    kind = _field_type(name) if name in FIELD_TYPES or name.startswith("attributes.") else "text"
    if kind == "set":
        words = SET_OPERATOR_WORDS.get(operator, operator)
    elif kind == "date":
        words = DATE_OPERATOR_WORDS.get(operator) or OPERATOR_WORDS.get(operator, operator)
    else:
        words = OPERATOR_WORDS.get(operator, operator)
    if "value" not in node:
        return f"{label} {words}"
    value = node["value"]
    if operator in ("inLastDays", "notInLastDays"):
        shown = f"{value} days"
    elif operator in ("between", "notBetween"):
        shown = f"{value[0]} and {value[1]}"
    elif isinstance(value, list):
        shown = ", ".join(str(item) for item in value)
    elif isinstance(value, bool):
        shown = "given" if value else "not given"
    else:
        shown = str(value)
    return f"{label} {words} {shown}"


# --- the entry point ---------------------------------------------------------------------------------


@dataclass
class SegmentTextAnswer:
    rules: dict | None
    unparsed: list
    explanation: str


def parse_segment_text(text, *, today, vocabulary=None):
    """Rules for an English sentence (None when it holds no condition), the words not used, and an
    explanation. `today` anchors "since January" and "this year"; `vocabulary` names the tenant's
    tags, campaigns and attribute keys."""
    parser = _Parser(text or "", today=today, vocabulary=vocabulary)
    tree = parser.parse()
    if tree is None:
        rules = None
    else:
        rules = canonical(tree if isinstance(tree, Group) else Group("and", [tree]))
        if "combinator" not in rules:
            rules = {"combinator": "and", "not": False, "rules": [rules]}
    return SegmentTextAnswer(rules=rules, unparsed=parser.unparsed, explanation=explain(rules))
