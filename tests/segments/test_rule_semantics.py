"""Exact memberships over the fixed data set for every field x operator (PRODUCT.md "Segments")."""

import pytest

from segments.selectors import rules_queryset

from .conftest import NOW

ALL = {"anna", "bela", "cecil", "dora", "erik", "fanni", "hanna", "ivan"}  # gabor is erased


def rule(field, operator, value=None):
    node = {"field": field, "operator": operator}
    if value is not None:
        node["value"] = value
    return node


def group(*rules, combinator="and", negate=None):
    node = {"combinator": combinator, "rules": list(rules)}
    if negate is not None:
        node["not"] = negate
    return node


def members(*keys):
    return set(keys)


def but(*keys):
    return ALL - set(keys)


def _with_campaign_ids(node, campaigns):
    """Campaign keys ("c1") in values become the data set's campaign ids."""
    if isinstance(node, dict):
        return {key: _with_campaign_ids(value, campaigns) for key, value in node.items()}
    if isinstance(node, list):
        return [_with_campaign_ids(value, campaigns) for value in node]
    if isinstance(node, str) and any(key in node for key in campaigns):
        # "c1" and "c1, c2" become the ids as text, the way a query builder sends them.
        return ",".join(str(campaigns.get(item.strip(), item)) for item in node.split(","))
    return node


CASES = [
    # --- text: case-insensitive in the Unicode sense, trimmed, NULL/'' missing --------------------
    (rule("city", "=", "budapest"), members("anna", "fanni")),
    (rule("city", "=", " GYŐR "), members("bela", "cecil")),
    (rule("city", "!=", "Budapest"), but("anna", "fanni")),
    (rule("city", "contains", "ŐR"), members("bela", "cecil")),
    (rule("city", "doesNotContain", "őr"), but("bela", "cecil")),
    (rule("city", "beginsWith", "bud"), members("anna", "fanni")),
    (rule("city", "doesNotBeginWith", "bud"), but("anna", "fanni")),
    (rule("city", "endsWith", "GED"), members("erik")),
    (rule("city", "doesNotEndWith", "ged"), but("erik")),
    (rule("city", "in", ["Budapest", "PÉCS"]), members("anna", "fanni", "ivan")),
    (rule("city", "in", "Szeged, győr ,"), members("erik", "bela", "cecil")),
    (rule("city", "notIn", "Budapest,Szeged"), but("anna", "fanni", "erik")),
    (rule("city", "null"), members("dora")),
    (rule("city", "notNull"), but("dora")),
    (rule("first_name", "=", "béla"), members("bela")),
    (rule("first_name", "=", "IVÁN"), members("ivan")),
    (rule("first_name", "null"), members("dora")),
    (rule("last_name", "contains", "'"), members("ivan")),
    (rule("last_name", "endsWith", "Ó"), members("erik")),
    (rule("email", "=", "ANNA@example.com"), members("anna")),
    (rule("email", "endsWith", "@example.com"), members("anna", "bela", "dora", "hanna", "ivan")),
    (rule("email", "doesNotEndWith", "@example.com"), members("cecil", "erik", "fanni")),
    (rule("email", "in", ["Cecil@Example.net", "nobody@example.com"]), members("cecil")),
    (rule("email", "null"), set()),
    (rule("email", "notNull"), ALL),
    (rule("phone", "null"), members("bela", "dora", "ivan")),
    (rule("phone", "beginsWith", "+36 1"), members("anna", "fanni")),
    (rule("phone", "doesNotBeginWith", "+36 1"), but("anna", "fanni")),
    (rule("country", "=", "hu"), members("anna", "bela", "cecil", "erik", "hanna")),
    (rule("country", "in", "at,de"), members("fanni", "ivan")),
    (rule("country", "null"), members("dora")),
    # --- attributes.<key>: text of the JSON value; missing key, JSON null and '' are all missing ---
    (rule("attributes.plan", "=", "GOLD"), members("anna", "fanni")),
    (rule("attributes.plan", "!=", "gold"), but("anna", "fanni")),
    (rule("attributes.plan", "null"), members("cecil", "dora", "erik", "hanna")),
    (rule("attributes.plan", "notNull"), members("anna", "bela", "fanni", "ivan")),
    (rule("attributes.plan", "notIn", ["gold", "silver"]), but("anna", "fanni", "bela")),
    (rule("attributes.note", "contains", "%"), members("fanni", "hanna")),
    (rule("attributes.note", "contains", "%_"), members("fanni")),
    (rule("attributes.note", "contains", "_"), members("fanni")),
    (rule("attributes.note", "doesNotContain", "_"), but("fanni")),
    (rule("attributes.note", "beginsWith", "50%"), members("fanni", "hanna")),
    (rule("attributes.score", "=", "5"), members("anna")),
    (rule("attributes.score", "in", "5, 7"), members("anna", "erik")),
    (rule("attributes.no such key", "null"), ALL),
    (rule("attributes.no such key", "notNull"), set()),
    (rule('attributes.it\'s "x"); drop table x; --', "null"), ALL),
    # --- numbers: decimal strings or JSON numbers; between inclusive, either order ----------------
    (rule("total_spent", ">", 1000), members("anna", "fanni", "hanna")),
    (rule("total_spent", ">=", "1000"), members("anna", "cecil", "fanni", "hanna")),
    (rule("total_spent", "<", "1000"), members("bela", "dora", "erik", "ivan")),
    (rule("total_spent", "<=", "1000.00"), members("bela", "cecil", "dora", "erik", "ivan")),
    (rule("total_spent", "=", 1000.0), members("cecil")),
    (rule("total_spent", "=", " 1000 "), members("cecil")),
    (rule("total_spent", "!=", "1000"), but("cecil")),
    (rule("total_spent", "between", ["999.99", "1000.01"]), members("erik", "cecil", "hanna")),
    (rule("total_spent", "between", "1000.01, 999.99"), members("erik", "cecil", "hanna")),
    (rule("total_spent", "notBetween", [999.99, 1000.01]), but("erik", "cecil", "hanna")),
    (rule("total_spent", "in", "0, 50"), members("dora", "ivan")),
    (rule("total_spent", "notIn", [0, 50]), but("dora", "ivan")),
    (rule("order_count", "=", 1), members("bela", "erik", "hanna", "ivan")),
    (rule("order_count", ">", "2"), members("anna", "fanni")),
    (rule("order_count", "between", "0,1"), members("dora", "bela", "erik", "hanna", "ivan")),
    (rule("order_count", "in", [2, "3"]), members("cecil", "anna")),
    # --- date-times: ISO 8601 with offset or a bare date (00:00 UTC); NULL is missing -------------
    (rule("created_at", ">=", "2024-01-01"), but("fanni")),
    (rule("created_at", "<", "2024-01-01"), members("fanni")),
    (rule("created_at", ">", "2024-01-01T00:00:00Z"), but("cecil", "fanni")),
    (rule("created_at", "<=", "2024-01-01T01:00:00+01:00"), members("cecil", "fanni")),
    (rule("created_at", "between", ["2024-01-01", "2024-01-31"]), members("cecil", "erik")),
    (rule("created_at", "notBetween", "2024-01-31, 2024-01-01"), but("cecil", "erik")),
    (rule("created_at", "inLastDays", 1), members("dora", "ivan")),
    (rule("created_at", "inLastDays", "0"), set()),
    (rule("last_order_at", "inLastDays", 30), members("anna", "cecil", "fanni", "ivan")),
    (rule("last_order_at", "notInLastDays", "30"), members("bela", "dora", "erik", "hanna")),
    (rule("last_order_at", "null"), members("dora")),
    (rule("last_order_at", "notNull"), but("dora")),
    (rule("first_order_at", "<", "2025-06-01"), members("anna", "fanni")),
    (rule("first_order_at", ">=", "2025-06-01"), members("bela", "cecil", "erik", "hanna", "ivan")),
    (rule("first_order_at", "notBetween", ["2000-01-01", "2100-01-01"]), members("dora")),
    # --- bool ----------------------------------------------------------------------------------
    (rule("email_marketing", "=", True), members("anna", "cecil", "erik", "fanni", "ivan")),
    (rule("email_marketing", "=", "FALSE"), members("bela", "dora", "hanna")),
    (rule("email_marketing", "!=", "true"), members("bela", "dora", "hanna")),
    # --- sets: tags, purchased SKUs (counting orders only), opened/clicked campaigns --------------
    (rule("tags", "contains", "vip"), members("anna", "cecil", "fanni")),
    (rule("tags", "doesNotContain", "VIP"), but("anna", "cecil", "fanni")),
    (rule("tags", "in", "gold, Newsletter"), members("anna", "bela", "erik", "fanni", "ivan")),
    (rule("tags", "notIn", ["gold", "newsletter"]), members("cecil", "dora", "hanna")),
    (rule("tags", "null"), members("dora", "hanna")),
    (rule("tags", "notNull"), but("dora", "hanna")),
    (rule("purchased_sku", "contains", "sku-1"), members("anna", "ivan")),
    (rule("purchased_sku", "contains", "SKU-2"), members("bela")),
    (rule("purchased_sku", "in", "sku-3,SKU-4"), members("cecil", "fanni")),
    (rule("purchased_sku", "null"), members("dora", "erik", "hanna")),
    (rule("purchased_sku", "notNull"), but("dora", "erik", "hanna")),
    (rule("purchased_sku", "doesNotContain", "SKU-5"), ALL),
    (rule("opened_campaign", "contains", "c1"), members("anna", "bela")),
    (rule("opened_campaign", "in", ["c1", "c2"]), members("anna", "bela", "erik", "hanna")),
    (rule("opened_campaign", "null"), members("cecil", "dora", "fanni", "ivan")),
    (rule("opened_campaign", "notIn", ["c2"]), but("erik", "hanna")),
    (rule("clicked_campaign", "contains", "c2"), members("erik")),
    (rule("clicked_campaign", "doesNotContain", "c1"), but("anna")),
    (rule("clicked_campaign", "notNull"), members("anna", "erik")),
    (rule("clicked_campaign", "null"), but("anna", "erik")),
    # --- groups: and/or (any case), not, nesting ---------------------------------------------------
    (
        group(
            rule("total_spent", ">", "1000"),
            rule("city", "in", ["Budapest", "Szeged"]),
            group(rule("tags", "contains", "vip"), rule("last_order_at", "inLastDays", 30), combinator="or"),
        ),
        members("anna", "fanni"),
    ),
    (group(rule("city", "=", "budapest"), combinator="AND", negate=True), but("anna", "fanni")),
    (
        group(rule("city", "=", "budapest"), rule("city", "=", "győr"), combinator="Or"),
        members("anna", "fanni", "bela", "cecil"),
    ),
    (
        group(
            group(rule("tags", "contains", "vip"), negate=True),
            group(rule("city", "null"), rule("country", "=", "de"), combinator="or"),
        ),
        members("dora", "ivan"),
    ),
    (
        group(
            group(group(rule("total_spent", ">", 0), negate=True), negate=True),
            rule("email_marketing", "=", False),
            combinator="and",
            negate=True,
        ),
        but("bela", "hanna"),
    ),
    (
        group(rule("city", "=", "nowhere"), rule("city", "null"), combinator="or", negate=False),
        members("dora"),
    ),
]


@pytest.mark.parametrize("rules, expected", CASES, ids=[str(index) for index in range(len(CASES))])
def test_it_matches_exactly_the_expected_customers(dataset, rules, expected):
    tree = rules if "rules" in rules else group(rules)
    matched = dataset.keys(rules_queryset(rules=_with_campaign_ids(tree, dataset.campaigns), now=NOW))
    assert matched == expected


def test_it_never_matches_an_erased_customer_even_where_every_column_would(dataset):
    tree = group(
        rule("city", "=", "Budapest"), rule("tags", "contains", "vip"), rule("total_spent", ">=", 5000)
    )
    assert dataset.keys(rules_queryset(rules=tree, now=NOW)) == set()
    everyone = group(rule("city", "null"), rule("city", "notNull"), combinator="or")
    assert dataset.keys(rules_queryset(rules=everyone, now=NOW)) == ALL


def test_it_counts_in_one_query_without_loading_customers(dataset, django_assert_num_queries):
    """One query over the customers; tag names are looked up first (ids let the planner use the
    tag's statistics), one small query on the tag table."""
    tree = group(
        rule("total_spent", ">", 10),
        rule("tags", "in", ["vip", "gold"]),
        rule("purchased_sku", "notNull"),
        rule("opened_campaign", "null"),
    )
    with django_assert_num_queries(2) as captured:
        assert rules_queryset(rules=tree, now=NOW).count() == 2  # cecil, fanni
    tag_lookup, count = (query["sql"] for query in captured.captured_queries)
    assert "customers_customer" not in tag_lookup and "customers_tag" in tag_lookup
    assert count.startswith("SELECT COUNT(*)") and 'customers_tag"' not in count


def test_it_matches_nobody_for_a_tag_that_does_not_exist_and_everybody_for_its_negation(dataset):
    assert (
        dataset.keys(rules_queryset(rules=group(rule("tags", "contains", "no-such-tag")), now=NOW)) == set()
    )
    assert dataset.keys(rules_queryset(rules=group(rule("tags", "in", ["no-such", "vip"])), now=NOW)) == (
        dataset.keys(rules_queryset(rules=group(rule("tags", "contains", "VIP")), now=NOW))
    )
    assert (
        dataset.keys(rules_queryset(rules=group(rule("tags", "doesNotContain", "no-such-tag")), now=NOW))
        == ALL
    )
    assert dataset.keys(rules_queryset(rules=group(rule("tags", "notIn", ["x", "y"])), now=NOW)) == ALL


def test_it_uses_the_current_time_for_in_last_days_by_default(dataset):
    # The data set's dates are relative to a fixed NOW in 2026-06; "within the last 100 years" is all.
    tree = group(rule("created_at", "inLastDays", 36500))
    assert dataset.keys(rules_queryset(rules=tree)) == ALL
