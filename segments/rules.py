"""The segment rule language of PRODUCT.md: react-querybuilder JSON, validated and compiled to one Q.

One narrow entry point: `compile_rules(rules) -> Q`, raising `RuleError` whose `messages` name the
JSON path of every bad node (``rules[2].rules[0].operator: 'beginsWith' is not valid for total_spent``).
`parse_rules` does the validation and coercion alone and returns the normalised tree.

Why the SQL looks the way it does:
- Every leaf compiles to a predicate that is never NULL (nullable columns get an explicit
  ``IS NOT NULL`` guard), so ``NOT`` of it is the exact complement in SQL's three-valued logic and
  every negative operator is simply the negation of its positive twin.
- Text compares use ``lower()`` on both sides inside PostgreSQL (never Python's ``str.lower``, whose
  Unicode rules differ in corner cases), matching the ``lower(city)``/``lower(country)`` indexes.
- Set fields (tags, purchased SKUs, opened/clicked campaigns) are ``EXISTS`` subqueries; nothing is
  ever filtered in Python.
"""

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db.models import Exists, F, OuterRef, Q, TextField, Value
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Lower
from django.db.models.lookups import Contains, EndsWith, Exact, In, IsNull, StartsWith
from django.utils import timezone

from customers.models import NON_COUNTING_ORDER_STATUSES, CustomerTag, OrderItem, Tag

MAX_DEPTH = 20
MAX_RULES = 1000
MAX_BYTES = 1024 * 1024
MAX_TEXT_LENGTH = 1000
MAX_LIST_ITEMS = 1000
MAX_DAYS = 36500
MAX_ERRORS = 20
# numeric(14, 2) holds below 10^12; anything this far out is a typo, and PostgreSQL would refuse
# huge exponents with an error instead of an answer.
MAX_NUMBER = Decimal(10) ** 15
MAX_ID = 2**63 - 1

TEXT_OPERATORS = (
    "=",
    "!=",
    "contains",
    "doesNotContain",
    "beginsWith",
    "doesNotBeginWith",
    "endsWith",
    "doesNotEndWith",
    "in",
    "notIn",
    "null",
    "notNull",
)
NUMBER_OPERATORS = ("=", "!=", "<", ">", "<=", ">=", "between", "notBetween", "in", "notIn")
DATE_OPERATORS = (
    "<",
    ">",
    "<=",
    ">=",
    "between",
    "notBetween",
    "inLastDays",
    "notInLastDays",
    "null",
    "notNull",
)
BOOL_OPERATORS = ("=", "!=")
SET_OPERATORS = ("contains", "doesNotContain", "in", "notIn", "null", "notNull")
OPERATORS_BY_TYPE = {
    "text": TEXT_OPERATORS,
    "number": NUMBER_OPERATORS,
    "date": DATE_OPERATORS,
    "bool": BOOL_OPERATORS,
    "set": SET_OPERATORS,
}
# Each negative operator is compiled as NOT of its positive twin: the exact complement.
NEGATIONS = {
    "!=": "=",
    "doesNotContain": "contains",
    "doesNotBeginWith": "beginsWith",
    "doesNotEndWith": "endsWith",
    "notIn": "in",
    "notBetween": "between",
    "notInLastDays": "inLastDays",
    "notNull": "null",
}
# How the builders (the segment builder, the flow builder's conditions) name each operator, per field
# type: words, not symbols. Dates read as time ("before"), sets as having ("has any of").
OPERATOR_LABELS = {
    "=": "equals",
    "!=": "does not equal",
    "<": "less than",
    ">": "greater than",
    "<=": "at most",
    ">=": "at least",
    "contains": "contains",
    "doesNotContain": "does not contain",
    "beginsWith": "begins with",
    "doesNotBeginWith": "does not begin with",
    "endsWith": "ends with",
    "doesNotEndWith": "does not end with",
    "in": "is one of",
    "notIn": "is none of",
    "between": "is between",
    "notBetween": "is not between",
    "inLastDays": "in the last N days",
    "notInLastDays": "not in the last N days",
    "null": "is empty",
    "notNull": "is not empty",
}
_TYPE_LABELS = {
    "date": {"<": "before", ">": "after", "<=": "on or before", ">=": "on or after"},
    "set": {"contains": "has", "doesNotContain": "does not have", "in": "has any of", "notIn": "has none of"},
}


def operator_label(field_type, operator):
    """The words for `operator` on a field of `field_type` (the operator itself when unknown)."""
    return _TYPE_LABELS.get(field_type, {}).get(operator) or OPERATOR_LABELS.get(operator, operator)


LIST_OPERATORS = {"in", "notIn", "between", "notBetween"}
NO_VALUE_OPERATORS = {"null", "notNull"}
ATTRIBUTES_PREFIX = "attributes."


class RuleError(ValueError):
    """Invalid rules; `messages` is a list of ``"<path>: <what is wrong>"`` strings."""

    def __init__(self, messages):
        self.messages = list(messages)
        super().__init__("; ".join(self.messages))


class _Abort(Exception):
    """Stop walking: a limit was hit and going on would only cost time."""


# --- fields -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str  # text | number | date | bool | set
    label: str
    column: str = ""
    nullable: bool = False
    whole: bool = False  # number fields holding integers only
    member_type: str = "text"  # set fields: text | id
    builder: Callable[[list | None], Any] | None = None  # set fields

    @property
    def operators(self):
        return OPERATORS_BY_TYPE[self.type]


def _customer_tags(values):
    members = CustomerTag.objects.filter(customer=OuterRef("pk"))
    if values is not None:
        # Names are resolved to ids before the query is built (one lookup on the unique lower(name)
        # index): with constant ids the planner reads customertag's statistics for them, so a tag
        # held by 40% of a million customers becomes a hash semi-join (0.24 s). Joined on the name
        # instead, it guessed 0.2% and probed the customer pkey 400,000 times (1.7 s).
        members = members.filter(tag_id__in=tag_ids(values))
    return Exists(members)


def tag_ids(names):
    """Ids of the tags named (ignoring case); names without a tag have none."""
    return list(
        Tag.objects.filter(In(Lower("name"), [Lower(Value(name)) for name in names])).values_list(
            "id", flat=True
        )
    )


def _purchased_skus(values):
    items = OrderItem.objects.filter(order__customer=OuterRef("pk")).exclude(
        order__status__in=NON_COUNTING_ORDER_STATUSES
    )
    if values is not None:
        items = items.filter(In(Lower("sku"), [Lower(Value(v)) for v in values]))
    return Exists(items)


FIELDS: dict[str, FieldSpec] = {}


def _register(spec):
    FIELDS[spec.name] = spec


for _name, _label in (
    ("email", "Email"),
    ("first_name", "First name"),
    ("last_name", "Last name"),
    ("phone", "Phone"),
    ("city", "City"),
    ("country", "Country"),
):
    # email is NULL only for erased customers, whom no segment matches; the guard keeps NOT exact.
    _register(FieldSpec(_name, "text", _label, column=_name, nullable=_name == "email"))
_register(FieldSpec("total_spent", "number", "Total spent", column="total_spent"))
_register(FieldSpec("order_count", "number", "Order count", column="order_count", whole=True))
_register(FieldSpec("created_at", "date", "Created at", column="created_at"))
_register(FieldSpec("first_order_at", "date", "First order at", column="first_order_at", nullable=True))
_register(FieldSpec("last_order_at", "date", "Last order at", column="last_order_at", nullable=True))
_register(FieldSpec("email_marketing", "bool", "Email marketing consent", column="email_marketing"))


def register_set_field(name, builder, *, member_type="text", label=None):
    """Add (or replace) a set field: `builder(values)` returns a never-NULL boolean expression,
    normally ``Exists(...)`` correlated on ``OuterRef("pk")`` of the customer, that is true when the
    customer has any member in `values` (a list of coerced members: lower-case compares are the
    builder's job for text), or any member at all when `values` is None."""
    if member_type not in ("text", "id"):
        raise ValueError("member_type is 'text' or 'id'")
    _register(
        FieldSpec(
            name,
            "set",
            label or name.replace("_", " ").capitalize(),
            member_type=member_type,
            builder=builder,
        )
    )


register_set_field("tags", _customer_tags, label="Tags")
register_set_field("purchased_sku", _purchased_skus, label="Purchased SKU")
# opened_campaign and clicked_campaign come from the campaigns app, which registers them at start-up.


def field_spec(name):
    """The spec of a field name (``attributes.<key>`` included), or None."""
    if not isinstance(name, str):
        return None
    if name.startswith(ATTRIBUTES_PREFIX):
        key = name[len(ATTRIBUTES_PREFIX) :]
        if not key or len(key) > 200 or "\x00" in key:
            return None
        return FieldSpec(name, "text", f"Attribute {key}", column=key, nullable=True)
    return FIELDS.get(name)


def field_catalogue():
    """Fields, types and operators for builders (the admin's visual builder reads this)."""
    return {
        "fields": [
            {
                "name": spec.name,
                "label": spec.label,
                "type": spec.type,
                "operators": list(spec.operators),
                **({"member_type": spec.member_type} if spec.type == "set" else {}),
            }
            for spec in FIELDS.values()
        ],
        "attributes_prefix": ATTRIBUTES_PREFIX,
        "text_operators": list(TEXT_OPERATORS),
        "list_operators": sorted(LIST_OPERATORS),
        "no_value_operators": sorted(NO_VALUE_OPERATORS),
        # {type: {operator: words}}: what every builder shows for an operator (attributes are text).
        "operator_labels": {
            kind: {operator: operator_label(kind, operator) for operator in operators}
            for kind, operators in OPERATORS_BY_TYPE.items()
        },
    }


# --- the normalised tree ------------------------------------------------------------------------
@dataclass
class Rule:
    field: FieldSpec
    operator: str
    value: Any = None


@dataclass
class Group:
    combinator: str  # "and" | "or"
    negate: bool = False
    rules: list = field(default_factory=list)


class _Walker:
    def __init__(self):
        self.errors = []
        self.rule_count = 0

    def error(self, path, message):
        self.errors.append(f"{path}: {message}" if path else message)
        if len(self.errors) >= MAX_ERRORS:
            raise _Abort

    def group(self, node, path, depth):
        if depth > MAX_DEPTH:
            self.error(path, f"groups nest deeper than {MAX_DEPTH} levels")
            raise _Abort
        if not isinstance(node, dict):
            self.error(path, "must be a group: an object with 'combinator' and 'rules'")
            return None
        prefix = f"{path}." if path else ""
        combinator = node.get("combinator")
        if combinator is None:
            self.error(f"{prefix}combinator", "is required ('and' or 'or')")
        elif not isinstance(combinator, str) or combinator.strip().lower() not in ("and", "or"):
            self.error(f"{prefix}combinator", f"{_show(combinator)} is not 'and' or 'or'")
            combinator = None
        else:
            combinator = combinator.strip().lower()
        negate = node.get("not", False)
        if not isinstance(negate, bool):
            self.error(f"{prefix}not", "must be a JSON boolean")
        children = node.get("rules")
        if not isinstance(children, list):
            self.error(f"{prefix}rules", "is required: a list of rules and groups")
            return None
        if not children:
            self.error(f"{prefix}rules", "must not be empty")
            return None
        parsed = []
        for index, child in enumerate(children):
            child_path = f"{prefix}rules[{index}]"
            if isinstance(child, str):
                # react-querybuilder's "independent combinators" put strings between rules.
                self.error(child_path, "independent combinators are not supported; use groups")
                continue
            if isinstance(child, dict) and child.get("disabled") is True:
                continue
            if isinstance(child, dict) and ("rules" in child or "combinator" in child):
                result = self.group(child, child_path, depth + 1)
            else:
                result = self.rule(child, child_path)
            if result is not None:
                parsed.append(result)
        if not parsed and not self.errors:
            self.error(f"{prefix}rules", "has no enabled rule")
        if combinator is None or not isinstance(negate, bool):
            return None
        return Group(combinator, negate, parsed)

    def rule(self, node, path):
        self.rule_count += 1
        if self.rule_count > MAX_RULES:
            self.error(path, f"a segment has at most {MAX_RULES} rules")
            raise _Abort
        if not isinstance(node, dict):
            self.error(path, "must be a rule (an object with field, operator and value) or a group")
            return None
        name = node.get("field")
        spec = field_spec(name)
        if name is None:
            self.error(f"{path}.field", "is required")
        elif spec is None:
            self.error(f"{path}.field", f"unknown field {_show(name)}")
        operator = node.get("operator")
        if operator is None:
            self.error(f"{path}.operator", "is required")
            return None
        if not isinstance(operator, str):
            self.error(f"{path}.operator", f"{_show(operator)} is not an operator")
            return None
        if spec is None:
            return None
        if operator not in spec.operators:
            self.error(f"{path}.operator", f"{_show(operator)} is not valid for {spec.name}")
            return None
        source = node.get("valueSource", "value")
        if source != "value":
            self.error(f"{path}.valueSource", "only 'value' is supported")
            return None
        if operator in NO_VALUE_OPERATORS:
            return Rule(spec, operator)
        if "value" not in node:
            self.error(f"{path}.value", "is required")
            return None
        try:
            value = coerce_value(spec, operator, node["value"])
        except _ValueProblem as problem:
            where = f"{path}.value" + (f"[{problem.index}]" if problem.index is not None else "")
            self.error(where, problem.message)
            return None
        return Rule(spec, operator, value)


def parse_rules(rules):
    """Validate and coerce a rule tree; returns a `Group` or raises `RuleError`."""
    walker = _Walker()
    try:
        tree = walker.group(rules, "", 1)
    except _Abort:
        tree = None
    except RecursionError:  # unreachable with MAX_DEPTH, kept as the last line of defence
        walker.errors.append("rules nest too deeply")
        tree = None
    if not walker.errors:
        size = len(json.dumps(rules, ensure_ascii=False).encode())
        if size > MAX_BYTES:
            walker.errors.append(f"the rules are {size} bytes; at most {MAX_BYTES} (1 MB)")
    if walker.errors:
        raise RuleError(walker.errors)
    return tree


# --- values -------------------------------------------------------------------------------------
class _ValueProblem(Exception):
    def __init__(self, message, index=None):
        self.message = message
        self.index = index


NUMBER_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _show(value):
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    if len(text) > 40:
        text = text[:40] + "…"
    return f"'{text}'"


def _as_list(raw):
    if isinstance(raw, str):
        if len(raw) > MAX_TEXT_LENGTH * MAX_LIST_ITEMS:
            raise _ValueProblem("is too long")
        return [item.strip() for item in raw.split(",") if item.strip()]
    if isinstance(raw, list):
        return raw
    raise _ValueProblem("must be a list or a comma-separated string")


def coerce_value(spec, operator, raw):
    """The rule's value coerced by the field's type; raises _ValueProblem."""
    kind = spec.type
    if kind == "set":
        kind = "id" if spec.member_type == "id" else "text"
    if operator in ("inLastDays", "notInLastDays"):
        return _coerce_days(raw)
    if operator in LIST_OPERATORS:
        items = _as_list(raw)
        if not items:
            raise _ValueProblem("needs at least one item")
        if len(items) > MAX_LIST_ITEMS:
            raise _ValueProblem(f"has more than {MAX_LIST_ITEMS} items")
        values = []
        for index, item in enumerate(items):
            try:
                values.append(_coerce_scalar(kind, spec, item))
            except _ValueProblem as problem:
                problem.index = index if isinstance(raw, list) else None
                raise
        if operator in ("between", "notBetween"):
            if len(values) != 2:
                raise _ValueProblem(f"'between' takes exactly two items, not {len(values)}")
            # Like react-querybuilder's own formatter: a reversed range means the same range.
            values.sort()
        return values
    if isinstance(raw, list):
        raise _ValueProblem(f"'{operator}' takes a single value, not a list")
    return _coerce_scalar(kind, spec, raw)


def _coerce_scalar(kind, spec, raw):
    if kind == "text":
        return _coerce_text(raw)
    if kind == "number":
        return _coerce_number(raw, whole=spec.whole)
    if kind == "date":
        return _coerce_date(raw)
    if kind == "bool":
        return _coerce_bool(raw)
    if kind == "id":
        return _coerce_id(raw)
    raise AssertionError(kind)


def _coerce_text(raw):
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise _ValueProblem("must be text")
    text = raw if isinstance(raw, str) else str(raw)
    if len(text) > MAX_TEXT_LENGTH:
        raise _ValueProblem(f"is longer than {MAX_TEXT_LENGTH} characters")
    if "\x00" in text:
        raise _ValueProblem("must not contain NUL characters")
    text = text.strip()
    if not text:
        raise _ValueProblem("must not be empty (use the 'null' operator for missing values)")
    return text


def _coerce_number(raw, *, whole):
    if isinstance(raw, bool):
        raise _ValueProblem("must be a number")
    if isinstance(raw, int | float):
        raw = repr(raw)
    if not isinstance(raw, str) or len(raw) > 100 or not NUMBER_RE.match(raw.strip()):
        raise _ValueProblem(f"{_show(raw)} is not a number")
    try:
        number = Decimal(raw.strip())
    except InvalidOperation:
        raise _ValueProblem(f"{_show(raw)} is not a number")
    if not number.is_finite() or abs(number) >= MAX_NUMBER:
        raise _ValueProblem(f"{_show(raw)} is out of range")
    if number != 0 and number.as_tuple().exponent < -10:
        raise _ValueProblem(f"{_show(raw)} has more than 10 decimal places")
    if whole:
        if number != number.to_integral_value():
            raise _ValueProblem(f"{_show(raw)} is not a whole number")
        return int(number)
    return number


def _coerce_date(raw):
    if not isinstance(raw, str) or len(raw) > 64:
        raise _ValueProblem("must be an ISO 8601 date-time with an offset, or a date YYYY-MM-DD")
    text = raw.strip()
    try:
        if DATE_RE.match(text):
            return datetime.combine(date.fromisoformat(text), time(0), tzinfo=UTC)
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise _ValueProblem(f"{_show(raw)} is not an ISO 8601 date-time or a date YYYY-MM-DD")
    if parsed.tzinfo is None:
        raise _ValueProblem(f"{_show(raw)} needs an offset (e.g. 'Z' or '+02:00')")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise _ValueProblem(f"{_show(raw)} is out of range")


def _coerce_days(raw):
    if isinstance(raw, bool):
        raise _ValueProblem("must be a whole number of days")
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    if isinstance(raw, str) and re.fullmatch(r"\s*\d{1,9}\s*", raw):
        raw = int(raw)
    if not isinstance(raw, int) or raw < 0:
        raise _ValueProblem("must be a whole number of days, 0 or more")
    if raw > MAX_DAYS:
        raise _ValueProblem(f"must be at most {MAX_DAYS} days")
    return raw


def _coerce_bool(raw):
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
        return raw.strip().lower() == "true"
    raise _ValueProblem("must be true or false")


def _coerce_id(raw):
    if isinstance(raw, bool):
        raise _ValueProblem("must be an id (a positive whole number)")
    if isinstance(raw, str) and re.fullmatch(r"\s*\d{1,19}\s*", raw):
        raw = int(raw)
    if not isinstance(raw, int) or raw < 1 or raw > MAX_ID:
        raise _ValueProblem("must be an id (a positive whole number)")
    return raw


# --- compiling ----------------------------------------------------------------------------------
def compile_rules(rules, *, now=None):
    """The rule tree as one `Q` over customers (erased customers are the caller's filter).

    `now` anchors `inLastDays`; it defaults to the current time.
    """
    return compile_tree(parse_rules(rules), now=now or timezone.now())


def compile_tree(tree, *, now):
    if isinstance(tree, Rule):
        return _compile_rule(tree, now)
    parts = [compile_tree(child, now=now) for child in tree.rules]
    combined = parts[0]
    for part in parts[1:]:
        combined = (combined & part) if tree.combinator == "and" else (combined | part)
    return ~combined if tree.negate else combined


def _compile_rule(rule, now):
    positive = NEGATIONS.get(rule.operator)
    if positive is not None:
        return ~_compile_positive(rule.field, positive, rule.value, now)
    return _compile_positive(rule.field, rule.operator, rule.value, now)


def _compile_positive(spec, operator, value, now):
    if spec.type == "text":
        return _text(spec, operator, value)
    if spec.type == "set":
        if operator == "null":
            return ~Q(spec.builder(None))
        if operator == "contains":
            return Q(spec.builder([value]))
        if operator == "in":
            return Q(spec.builder(list(value)))
        raise AssertionError(operator)
    column = spec.column
    if spec.type == "bool":
        return Q(**{column: value})
    if operator == "null":
        return Q(**{f"{column}__isnull": True})
    lookups = {"=": "exact", "<": "lt", ">": "gt", "<=": "lte", ">=": "gte", "between": "range", "in": "in"}
    if operator == "inLastDays":
        predicate = Q(**{f"{column}__gte": now - timedelta(days=value)})
    else:
        predicate = Q(**{f"{column}__{lookups[operator]}": value})
    if spec.nullable:
        # NULL compares to unknown; the guard makes it false, so NOT is the exact complement.
        predicate = Q(**{f"{column}__isnull": False}) & predicate
    return predicate


def _text_lhs(spec):
    if spec.name.startswith(ATTRIBUTES_PREFIX):
        return KeyTextTransform(spec.column, "attributes")
    return F(spec.column)


def _text(spec, operator, value):
    raw = _text_lhs(spec)
    if operator == "null":
        missing = Q(Exact(raw, Value("", output_field=TextField())))
        return (Q(IsNull(raw, True)) | missing) if spec.nullable else missing
    lhs = Lower(raw)
    if operator == "=":
        predicate = Q(Exact(lhs, Lower(Value(value))))
    elif operator == "in":
        predicate = Q(In(lhs, [Lower(Value(item)) for item in value]))
    else:
        lookup = {"contains": Contains, "beginsWith": StartsWith, "endsWith": EndsWith}[operator]
        # Django escapes %, _ and \ of an expression right-hand side inside the SQL (REPLACE).
        predicate = Q(lookup(lhs, Lower(Value(value))))
    if spec.nullable:
        predicate = Q(IsNull(raw, False)) & predicate
    return predicate
