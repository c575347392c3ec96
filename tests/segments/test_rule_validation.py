"""Invalid rules: every error names the JSON path of the bad node; limits never become a crash."""

import re

import pytest

from segments.rules import RuleError, compile_rules, field_catalogue, parse_rules


def one(rule):
    return {"combinator": "and", "rules": [rule]}


def nested(depth):
    node = {"field": "city", "operator": "=", "value": "x"}
    for _ in range(depth):
        node = {"combinator": "and", "rules": [node]}
    return node


def errors(rules):
    with pytest.raises(RuleError) as caught:
        compile_rules(rules)
    return caught.value.messages


BAD = [
    (
        one({"field": "shoe_size", "operator": "=", "value": "42"}),
        ["rules[0].field: unknown field 'shoe_size'"],
    ),
    (
        one({"field": "attributes.", "operator": "=", "value": "x"}),
        ["rules[0].field: unknown field 'attributes.'"],
    ),
    (one({"operator": "=", "value": "x"}), ["rules[0].field: is required"]),
    (one({"field": "city", "value": "x"}), ["rules[0].operator: is required"]),
    (
        one({"field": "city", "operator": "like", "value": "x"}),
        ["rules[0].operator: 'like' is not valid for city"],
    ),
    (
        {
            "combinator": "and",
            "rules": [
                {"field": "city", "operator": "=", "value": "x"},
                {"field": "city", "operator": "=", "value": "y"},
                {
                    "combinator": "or",
                    "rules": [{"field": "total_spent", "operator": "beginsWith", "value": "1"}],
                },
            ],
        },
        ["rules[2].rules[0].operator: 'beginsWith' is not valid for total_spent"],
    ),
    (
        one({"field": "created_at", "operator": "=", "value": "2024-01-01"}),
        ["rules[0].operator: '=' is not valid for created_at"],
    ),
    (
        one({"field": "tags", "operator": "=", "value": "vip"}),
        ["rules[0].operator: '=' is not valid for tags"],
    ),
    (
        one({"field": "email_marketing", "operator": "null"}),
        ["rules[0].operator: 'null' is not valid for email_marketing"],
    ),
    (one({"field": "city", "operator": "="}), ["rules[0].value: is required"]),
    (
        one({"field": "total_spent", "operator": ">", "value": "abc"}),
        ["rules[0].value: 'abc' is not a number"],
    ),
    (one({"field": "total_spent", "operator": ">", "value": True}), ["rules[0].value: must be a number"]),
    (
        one({"field": "total_spent", "operator": ">", "value": "1_000"}),
        ["rules[0].value: '1_000' is not a number"],
    ),
    (
        one({"field": "total_spent", "operator": ">", "value": "NaN"}),
        ["rules[0].value: 'NaN' is not a number"],
    ),
    (
        one({"field": "total_spent", "operator": ">", "value": "1e999999"}),
        ["rules[0].value: '1e999999' is out of range"],
    ),
    (
        one({"field": "order_count", "operator": "=", "value": 1.5}),
        ["rules[0].value: '1.5' is not a whole number"],
    ),
    (
        one({"field": "total_spent", "operator": "=", "value": [1]}),
        ["rules[0].value: '=' takes a single value, not a list"],
    ),
    (
        one({"field": "total_spent", "operator": "between", "value": [1, 2, 3]}),
        ["rules[0].value: 'between' takes exactly two items, not 3"],
    ),
    (
        one({"field": "total_spent", "operator": "between", "value": "5"}),
        ["rules[0].value: 'between' takes exactly two items, not 1"],
    ),
    (
        one({"field": "total_spent", "operator": "in", "value": []}),
        ["rules[0].value: needs at least one item"],
    ),
    (one({"field": "city", "operator": "in", "value": " , "}), ["rules[0].value: needs at least one item"]),
    (
        one({"field": "city", "operator": "in", "value": {"a": 1}}),
        ["rules[0].value: must be a list or a comma-separated string"],
    ),
    (one({"field": "city", "operator": "in", "value": ["a", 5, {}]}), ["rules[0].value[2]: must be text"]),
    (
        one({"field": "city", "operator": "=", "value": "   "}),
        ["rules[0].value: must not be empty (use the 'null' operator for missing values)"],
    ),
    (
        one({"field": "city", "operator": "=", "value": "a\x00b"}),
        ["rules[0].value: must not contain NUL characters"],
    ),
    (one({"field": "city", "operator": "=", "value": None}), ["rules[0].value: must be text"]),
    (
        one({"field": "email_marketing", "operator": "=", "value": "yes"}),
        ["rules[0].value: must be true or false"],
    ),
    (
        one({"field": "created_at", "operator": "<", "value": "2024-13-01"}),
        ["rules[0].value: '2024-13-01' is not an ISO 8601 date-time or a date YYYY-MM-DD"],
    ),
    (
        one({"field": "created_at", "operator": "<", "value": "2024-01-01T10:00:00"}),
        ["rules[0].value: '2024-01-01T10:00:00' needs an offset (e.g. 'Z' or '+02:00')"],
    ),
    (
        one({"field": "created_at", "operator": "<", "value": 1700000000}),
        ["rules[0].value: must be an ISO 8601 date-time with an offset, or a date YYYY-MM-DD"],
    ),
    (
        one({"field": "last_order_at", "operator": "inLastDays", "value": -1}),
        ["rules[0].value: must be a whole number of days, 0 or more"],
    ),
    (
        one({"field": "last_order_at", "operator": "inLastDays", "value": "1.5"}),
        ["rules[0].value: must be a whole number of days, 0 or more"],
    ),
    (
        one({"field": "last_order_at", "operator": "inLastDays", "value": 10**9}),
        ["rules[0].value: must be at most 36500 days"],
    ),
    (
        one({"field": "opened_campaign", "operator": "contains", "value": "abc"}),
        ["rules[0].value: must be an id (a positive whole number)"],
    ),
    (
        one({"field": "opened_campaign", "operator": "in", "value": [1, 0]}),
        ["rules[0].value[1]: must be an id (a positive whole number)"],
    ),
    (
        one({"field": "city", "operator": "=", "value": "x", "valueSource": "field"}),
        ["rules[0].valueSource: only 'value' is supported"],
    ),
    ({"rules": [{"field": "city", "operator": "null"}]}, ["combinator: is required ('and' or 'or')"]),
    (
        {"combinator": "xor", "rules": [{"field": "city", "operator": "null"}]},
        ["combinator: 'xor' is not 'and' or 'or'"],
    ),
    (
        {"combinator": "and", "not": "yes", "rules": [{"field": "city", "operator": "null"}]},
        ["not: must be a JSON boolean"],
    ),
    ({"combinator": "and", "rules": []}, ["rules: must not be empty"]),
    ({"combinator": "and", "rules": "city = x"}, ["rules: is required: a list of rules and groups"]),
    (one({"combinator": "or", "rules": []}), ["rules[0].rules: must not be empty"]),
    (
        one({"combinator": "or", "rules": [{"field": "city", "operator": "null", "disabled": True}]}),
        ["rules[0].rules: has no enabled rule"],
    ),
    (
        {
            "combinator": "and",
            "rules": [{"field": "city", "operator": "null"}, "and", {"field": "city", "operator": "null"}],
        },
        ["rules[1]: independent combinators are not supported; use groups"],
    ),
    (one(42), ["rules[0]: must be a rule (an object with field, operator and value) or a group"]),
    ([{"field": "city", "operator": "null"}], ["must be a group: an object with 'combinator' and 'rules'"]),
    (None, ["must be a group: an object with 'combinator' and 'rules'"]),
]


@pytest.mark.parametrize("rules, expected", BAD, ids=[str(index) for index in range(len(BAD))])
def test_it_names_the_path_of_the_bad_node(rules, expected):
    assert errors(rules) == expected


def test_it_reports_every_bad_node_at_once():
    rules = {
        "combinator": "and",
        "rules": [
            {"field": "nope", "operator": "=", "value": "x"},
            {"field": "city", "operator": "=", "value": "ok"},
            {"field": "total_spent", "operator": ">", "value": "x"},
        ],
    }
    assert errors(rules) == ["rules[0].field: unknown field 'nope'", "rules[2].value: 'x' is not a number"]


def test_it_refuses_groups_nested_deeper_than_20_levels_at_the_first_one_too_deep():
    parse_rules(nested(20))  # the root plus 19 nested groups: allowed
    path = ".".join(["rules[0]"] * 20)
    assert errors(nested(21)) == [f"{path}: groups nest deeper than 20 levels"]
    assert errors(nested(50)) == [f"{path}: groups nest deeper than 20 levels"]


def test_it_refuses_a_depth_no_recursion_could_handle_without_a_recursion_error():
    assert errors(nested(100_000))[0].endswith("groups nest deeper than 20 levels")


def test_it_refuses_more_than_1000_rules_naming_the_first_one_over():
    parse_rules({"combinator": "or", "rules": [{"field": "city", "operator": "null"}] * 1000})
    too_many = {"combinator": "or", "rules": [{"field": "city", "operator": "null"}] * 10_000}
    assert errors(too_many) == ["rules[1000]: a segment has at most 1000 rules"]


def test_it_refuses_a_string_of_1_mb_naming_its_path():
    rules = one(
        {"combinator": "or", "rules": [{"field": "city", "operator": "contains", "value": "x" * 1024 * 1024}]}
    )
    assert errors(rules) == ["rules[0].rules[0].value: is longer than 1000 characters"]


def test_it_refuses_rules_larger_than_1_mb_in_total():
    item = "y" * 999
    rules = {"combinator": "or", "rules": [{"field": "city", "operator": "in", "value": [item] * 1000}] * 2}
    assert errors(rules) == [
        f"the rules are {len(__import__('json').dumps(rules))} bytes; at most 1048576 (1 MB)"
    ]


def test_it_stops_after_20_errors():
    rules = {"combinator": "or", "rules": [{"field": f"f{index}", "operator": "="} for index in range(100)]}
    assert len(errors(rules)) == 20


def test_it_skips_disabled_rules_like_react_querybuilder():
    rules = {
        "combinator": "and",
        "rules": [
            {"field": "city", "operator": "=", "value": "x", "disabled": True},
            {"field": "country", "operator": "=", "value": "hu", "id": "r-1"},
        ],
        "id": "g-1",
    }
    tree = parse_rules(rules)
    assert [rule.field.name for rule in tree.rules] == ["country"]


def test_it_describes_every_field_and_its_operators_for_builders():
    fields = {field["name"]: field for field in field_catalogue()["fields"]}
    assert sorted(fields) == sorted(
        [
            "email",
            "first_name",
            "last_name",
            "phone",
            "city",
            "country",
            "total_spent",
            "order_count",
            "created_at",
            "first_order_at",
            "last_order_at",
            "email_marketing",
            "tags",
            "purchased_sku",
            "opened_campaign",
            "clicked_campaign",
        ]
    )
    assert fields["total_spent"]["operators"] == [
        "=",
        "!=",
        "<",
        ">",
        "<=",
        ">=",
        "between",
        "notBetween",
        "in",
        "notIn",
    ]
    assert fields["tags"]["operators"] == ["contains", "doesNotContain", "in", "notIn", "null", "notNull"]
    assert fields["opened_campaign"]["member_type"] == "id"


def test_it_names_every_operator_in_words_for_builders():
    catalogue = field_catalogue()
    labels = catalogue["operator_labels"]

    for field in catalogue["fields"]:
        for operator in field["operators"]:
            assert re.fullmatch(r"[a-zA-Z ]+", labels[field["type"]][operator]), (field["name"], operator)
    assert labels["number"] == {
        "=": "equals",
        "!=": "does not equal",
        "<": "less than",
        ">": "greater than",
        "<=": "at most",
        ">=": "at least",
        "between": "is between",
        "notBetween": "is not between",
        "in": "is one of",
        "notIn": "is none of",
    }
    assert (labels["date"][">="], labels["date"]["<"], labels["date"]["inLastDays"]) == (
        "on or after",
        "before",
        "in the last N days",
    )
    assert (labels["set"]["in"], labels["set"]["null"]) == ("has any of", "is empty")
    assert sorted(labels["text"]) == sorted(catalogue["text_operators"])  # attributes are text
