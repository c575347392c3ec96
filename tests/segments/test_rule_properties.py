"""Property-based: random rule trees agree with a plain-Python evaluation over the fixed data set,
and every rule, group and negative operator is the exact complement of its positive twin."""

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segments.selectors import rules_queryset

from .conftest import NEGATIVE, NOW, evaluate
from .test_rule_semantics import ALL, _with_campaign_ids

TEXT_FIELDS = [
    "email",
    "first_name",
    "last_name",
    "phone",
    "city",
    "country",
    "attributes.plan",
    "attributes.note",
    "attributes.score",
    "attributes.absent",
]
TEXT_VALUES = [
    "budapest",
    "BUDAPEST",
    "Győr",
    "GYŐR",
    "őr",
    "bud",
    "ged",
    "pest",
    "a",
    "é",
    "%",
    "_",
    "50%",
    "50%_",
    "o'brien",
    "example.com",
    "@example.com",
    "anna@example.com",
    "+36",
    "hu",
    "HU",
    "at",
    "gold",
    "Gold",
    "silver",
    "5",
    "7",
    " szeged ",
    "x",
]
TEXT_OPERATORS = [
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
]
NUMBER_VALUES = {
    "total_spent": [
        "0",
        "50",
        "200",
        "999.99",
        "1000",
        "1000.00",
        "1000.01",
        "1500",
        "2500.5",
        1000,
        999.99,
        0,
    ],
    "order_count": [0, 1, 2, 3, 5, "1", "4"],
}
NUMBER_OPERATORS = ["=", "!=", "<", ">", "<=", ">=", "between", "notBetween", "in", "notIn"]
DATE_FIELDS = ["created_at", "first_order_at", "last_order_at"]
DATE_VALUES = [
    "2024-01-01",
    "2024-01-31",
    "2023-12-31T23:59:59Z",
    "2024-01-01T01:00:00+01:00",
    "2025-06-01",
    "2026-03-07",
    (NOW - timedelta(days=30)).isoformat(),
    (NOW - timedelta(days=30, seconds=1)).isoformat(),
    (NOW - timedelta(days=1)).isoformat(),
]
DAYS = [0, 1, 5, 10, 30, "30", 100, 365, 1000]
DATE_OPERATORS = [
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
]
SET_VALUES = {
    "tags": ["vip", "VIP", "gold", "Newsletter", "none"],
    "purchased_sku": ["sku-1", "SKU-2", "sku-3", "Sku-4", "SKU-5", "x"],
    "opened_campaign": ["c1", "c2", 999999999],
    "clicked_campaign": ["c1", "c2", 999999999],
}
SET_OPERATORS = ["contains", "doesNotContain", "in", "notIn", "null", "notNull"]


def _value_for(operator, pool):
    if operator in ("null", "notNull"):
        return st.just(None)
    if operator in ("between", "notBetween"):
        pair = st.lists(st.sampled_from(pool), min_size=2, max_size=2)
        return st.one_of(pair, pair.map(lambda items: ", ".join(str(item) for item in items)))
    if operator in ("in", "notIn"):
        items = st.lists(st.sampled_from(pool), min_size=1, max_size=3)
        return st.one_of(items, items.map(lambda values: ",".join(str(value) for value in values)))
    return st.sampled_from(pool)


@st.composite
def rules(draw):
    kind = draw(st.sampled_from(["text", "number", "date", "bool", "set"]))
    if kind == "text":
        field, operator = draw(st.sampled_from(TEXT_FIELDS)), draw(st.sampled_from(TEXT_OPERATORS))
        pool = TEXT_VALUES
    elif kind == "number":
        field, operator = draw(st.sampled_from(list(NUMBER_VALUES))), draw(st.sampled_from(NUMBER_OPERATORS))
        pool = NUMBER_VALUES[field]
    elif kind == "date":
        field, operator = draw(st.sampled_from(DATE_FIELDS)), draw(st.sampled_from(DATE_OPERATORS))
        pool = DAYS if operator in ("inLastDays", "notInLastDays") else DATE_VALUES
    elif kind == "bool":
        field, operator, pool = (
            "email_marketing",
            draw(st.sampled_from(["=", "!="])),
            [True, False, "true", "FALSE"],
        )
    else:
        field, operator = draw(st.sampled_from(list(SET_VALUES))), draw(st.sampled_from(SET_OPERATORS))
        pool = SET_VALUES[field]
    node = {"field": field, "operator": operator}
    value = draw(_value_for(operator, pool))
    if value is not None:
        node["value"] = value
    return node


def _group(children, combinator, negate):
    node = {"combinator": combinator, "rules": children}
    if negate is not None:
        node["not"] = negate
    return node


trees = st.recursive(
    rules(),
    lambda children: st.builds(
        _group,
        st.lists(children, min_size=1, max_size=4),
        st.sampled_from(["and", "or", "AND", "Or"]),
        st.sampled_from([None, False, True]),
    ),
    max_leaves=10,
).map(lambda node: node if "rules" in node else _group([node], "and", None))

PROPERTY_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def _sql(dataset, tree):
    return dataset.keys(rules_queryset(rules=tree, now=NOW))


@PROPERTY_SETTINGS
@given(tree=trees)
def test_it_agrees_with_a_plain_python_evaluation_of_the_same_rules(dataset, tree):
    tree = _with_campaign_ids(tree, dataset.campaigns)
    expected = {key for key in ALL if evaluate(tree, key, dataset.campaigns)}
    assert _sql(dataset, tree) == expected


@PROPERTY_SETTINGS
@given(tree=trees)
def test_it_partitions_the_customers_between_a_tree_and_its_negation(dataset, tree):
    tree = _with_campaign_ids(tree, dataset.campaigns)
    matched = _sql(dataset, tree)
    negated = _sql(dataset, {"combinator": "and", "not": True, "rules": [tree]})
    assert matched & negated == set()
    assert matched | negated == ALL


POSITIVE = {positive: negative for negative, positive in NEGATIVE.items()}


@PROPERTY_SETTINGS
@given(node=rules().filter(lambda node: node["operator"] in NEGATIVE or node["operator"] in POSITIVE))
def test_it_partitions_the_customers_between_every_operator_and_its_negative_twin(dataset, node):
    node = _with_campaign_ids(node, dataset.campaigns)
    twin = dict(node, operator=NEGATIVE.get(node["operator"]) or POSITIVE[node["operator"]])
    matched = _sql(dataset, {"combinator": "and", "rules": [node]})
    complement = _sql(dataset, {"combinator": "and", "rules": [twin]})
    assert matched & complement == set()
    assert matched | complement == ALL
