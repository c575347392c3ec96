"""What the offline sentence-to-rules parser must understand: English phrasing of every field and
operator of the segment language (PRODUCT.md "Segments"), with the rules it must produce exactly.

Written before the parser, as its specification. Conventions of the expected output:
- the root is always a group ``{"combinator", "not", "rules"}``; a nested group of the same
  combinator is flattened into its parent, a group of one rule is that rule;
- numbers are decimal strings without separators ("50000"), days of `inLastDays` whole numbers,
  dates ``YYYY-MM-DD`` (00:00 UTC of that day), campaign ids integers, consent a JSON boolean;
- "in the last N months/weeks/years" counts 30/7/365 days; "since <month>" is the first of that
  month, this year unless the month is still to come; "in <year>" is from its 1 January up to (not
  including) the next one;
- a negated clause uses the operator's negative twin where one is the exact complement, else a
  negated group; "X more than N days ago" on a field that may be empty also requires the value.

Every phrase is parsed with TODAY and VOCABULARY below (the tenant's tags, campaign names and
attribute keys: the parser is told them, it never sees a customer).
"""

from datetime import date

TODAY = date(2026, 12, 10)
VOCABULARY = {
    "tags": ["vip", "wholesale", "newsletter", "b2b"],
    "campaigns": {"Spring sale": 12, "Black Friday": 31},
    "attributes": ["loyalty_tier", "favourite_tea"],
}


def R(field, operator, value=None):
    rule = {"field": field, "operator": operator}
    if operator not in ("null", "notNull"):
        rule["value"] = value
    return rule


def AND(*rules, negate=False):
    return {"combinator": "and", "not": negate, "rules": list(rules)}


def OR(*rules, negate=False):
    return {"combinator": "or", "not": negate, "rules": list(rules)}


CORPUS = [
    # --- cities, countries ------------------------------------------------------------------------
    ("customers in Budapest", AND(R("city", "=", "Budapest"))),
    (
        "customers in Budapest who spent over 50000 and ordered in the last 90 days",
        AND(
            R("city", "=", "Budapest"),
            R("total_spent", ">", "50000"),
            R("last_order_at", "inLastDays", 90),
        ),
    ),
    ("people in Budapest or Szeged", AND(R("city", "in", ["Budapest", "Szeged"]))),
    ("customers not in Budapest", AND(R("city", "!=", "Budapest"))),
    ("customers outside Budapest", AND(R("city", "!=", "Budapest"))),
    ("customers in Győr", AND(R("city", "=", "Győr"))),
    ("customers in New York", AND(R("city", "=", "New York"))),
    ("customers whose city starts with Sz", AND(R("city", "beginsWith", "Sz"))),
    ("customers with no city", AND(R("city", "null"))),
    ("customers with a city", AND(R("city", "notNull"))),
    ("customers in Hungary", AND(R("country", "=", "HU"))),
    ("customers from Germany or Austria", AND(R("country", "in", ["DE", "AT"]))),
    ("customers outside Hungary", AND(R("country", "!=", "HU"))),
    ("customers not from Hungary or Austria", AND(R("country", "notIn", ["HU", "AT"]))),
    ("customers whose country is HU", AND(R("country", "=", "HU"))),
    # --- tags -------------------------------------------------------------------------------------
    ("tagged vip", AND(R("tags", "contains", "vip"))),
    ("vip customers", AND(R("tags", "contains", "vip"))),
    ("customers tagged vip or wholesale", AND(R("tags", "in", ["vip", "wholesale"]))),
    (
        "customers tagged vip and wholesale",
        AND(R("tags", "contains", "vip"), R("tags", "contains", "wholesale")),
    ),
    ("customers not tagged vip", AND(R("tags", "doesNotContain", "vip"))),
    ("customers without the newsletter tag", AND(R("tags", "doesNotContain", "newsletter"))),
    ("customers with no tags", AND(R("tags", "null"))),
    ("customers with any tag", AND(R("tags", "notNull"))),
    ("customers with the tag b2b", AND(R("tags", "contains", "b2b"))),
    # --- total spent (amounts, currencies) ----------------------------------------------------------
    ("customers who spent more than 100000", AND(R("total_spent", ">", "100000"))),
    ("customers who spent at least 20,000 HUF", AND(R("total_spent", ">=", "20000"))),
    ("spent less than €50", AND(R("total_spent", "<", "50"))),
    ("customers who spent under 5k forints", AND(R("total_spent", "<", "5000"))),
    ("total spent between 10000 and 50000", AND(R("total_spent", "between", ["10000", "50000"]))),
    ("customers who spent between $100 and $500", AND(R("total_spent", "between", ["100", "500"]))),
    ("customers who spent nothing", AND(R("total_spent", "=", "0"))),
    ("customers who spent 1.5 million forints or more", AND(R("total_spent", ">=", "1500000"))),
    ("customers who spent no more than 2000 euros", AND(R("total_spent", "<=", "2000"))),
    ("customers who spent over 50000 Ft", AND(R("total_spent", ">", "50000"))),
    ("customers who spent more than 20 000 HUF", AND(R("total_spent", ">", "20000"))),
    (
        "customers who did not spend between 100 and 1000",
        AND(R("total_spent", "notBetween", ["100", "1000"])),
    ),
    ("customers who spent exactly 99.90 EUR", AND(R("total_spent", "=", "99.9"))),
    # --- order count --------------------------------------------------------------------------------
    ("customers with more than 3 orders", AND(R("order_count", ">", "3"))),
    ("customers who ordered at least 5 times", AND(R("order_count", ">=", "5"))),
    ("customers with exactly one order", AND(R("order_count", "=", "1"))),
    ("customers who never ordered", AND(R("order_count", "=", "0"))),
    ("customers with fewer than 2 orders", AND(R("order_count", "<", "2"))),
    ("customers who placed between 2 and 4 orders", AND(R("order_count", "between", ["2", "4"]))),
    ("customers with 1 or 2 orders", AND(R("order_count", "in", ["1", "2"]))),
    ("customers whose order count is not 3", AND(R("order_count", "!=", "3"))),
    # --- order dates --------------------------------------------------------------------------------
    ("customers who ordered in the last 30 days", AND(R("last_order_at", "inLastDays", 30))),
    ("customers who ordered in the last 3 months", AND(R("last_order_at", "inLastDays", 90))),
    ("customers with an order in the last week", AND(R("last_order_at", "inLastDays", 7))),
    (
        "customers who haven't ordered in the last 6 months",
        AND(R("last_order_at", "notInLastDays", 180)),
    ),
    ("customers who have not ordered for 60 days", AND(R("last_order_at", "notInLastDays", 60))),
    ("customers with no orders in the last year", AND(R("last_order_at", "notInLastDays", 365))),
    (
        "customers whose last order was more than 90 days ago",
        AND(R("last_order_at", "notNull"), R("last_order_at", "notInLastDays", 90)),
    ),
    ("customers who ordered since January", AND(R("last_order_at", ">=", "2026-01-01"))),
    ("customers with a last order after 2025-05-01", AND(R("last_order_at", ">", "2025-05-01"))),
    ("customers with no last order date", AND(R("last_order_at", "null"))),
    ("customers whose first order was in the last year", AND(R("first_order_at", "inLastDays", 365))),
    ("customers whose first order was before June 2024", AND(R("first_order_at", "<", "2024-06-01"))),
    # --- sign-up dates ------------------------------------------------------------------------------
    ("customers who signed up in the last 2 weeks", AND(R("created_at", "inLastDays", 14))),
    ("customers created before 2024-01-01", AND(R("created_at", "<", "2024-01-01"))),
    ("customers who joined after March 2025", AND(R("created_at", ">=", "2025-04-01"))),
    (
        "customers who joined in 2025",
        AND(R("created_at", ">=", "2025-01-01"), R("created_at", "<", "2026-01-01")),
    ),
    ("customers who registered this year", AND(R("created_at", ">=", "2026-01-01"))),
    ("customers who signed up more than a year ago", AND(R("created_at", "notInLastDays", 365))),
    (
        "customers created between 2024-01-01 and 2024-06-30",
        AND(R("created_at", "between", ["2024-01-01", "2024-06-30"])),
    ),
    ("customers created on or before 2024-12-31", AND(R("created_at", "<=", "2024-12-31"))),
    ("customers created on or after 2025-01-01", AND(R("created_at", ">=", "2025-01-01"))),
    # --- consent ------------------------------------------------------------------------------------
    ("customers who can receive marketing email", AND(R("email_marketing", "=", True))),
    ("customers with marketing consent", AND(R("email_marketing", "=", True))),
    ("customers who opted out of marketing", AND(R("email_marketing", "=", False))),
    ("customers without marketing consent", AND(R("email_marketing", "=", False))),
    (
        "subscribed customers in Szeged",
        AND(R("email_marketing", "=", True), R("city", "=", "Szeged")),
    ),
    # --- email, phone, names --------------------------------------------------------------------------
    ("customers with a gmail address", AND(R("email", "endsWith", "@gmail.com"))),
    ("customers whose email ends with @example.com", AND(R("email", "endsWith", "@example.com"))),
    ("customers whose email does not end with .hu", AND(R("email", "doesNotEndWith", ".hu"))),
    ("customers whose email contains shop", AND(R("email", "contains", "shop"))),
    ("customers without an email address", AND(R("email", "null"))),
    ("customers without a phone number", AND(R("phone", "null"))),
    ("customers with a phone number", AND(R("phone", "notNull"))),
    ("customers whose phone starts with +36", AND(R("phone", "beginsWith", "+36"))),
    ("customers whose phone doesn't start with +36", AND(R("phone", "doesNotBeginWith", "+36"))),
    ("customers named Anna", AND(R("first_name", "=", "Anna"))),
    ("customers named Anna or Réka", AND(R("first_name", "in", ["Anna", "Réka"]))),
    ("customers whose last name is Nagy", AND(R("last_name", "=", "Nagy"))),
    ("customers whose last name starts with K", AND(R("last_name", "beginsWith", "K"))),
    ("customers whose first name is not Péter", AND(R("first_name", "!=", "Péter"))),
    # --- purchases ----------------------------------------------------------------------------------
    ("customers who bought TEA-001", AND(R("purchased_sku", "contains", "TEA-001"))),
    (
        "customers who purchased SKU TEA-001 or TEA-002",
        AND(R("purchased_sku", "in", ["TEA-001", "TEA-002"])),
    ),
    ("customers who never bought TEA-001", AND(R("purchased_sku", "doesNotContain", "TEA-001"))),
    ("customers who never purchased anything", AND(R("purchased_sku", "null"))),
    # --- campaigns opened and clicked -----------------------------------------------------------------
    ("customers who opened campaign 12", AND(R("opened_campaign", "contains", 12))),
    ("customers who opened the Spring sale campaign", AND(R("opened_campaign", "contains", 12))),
    ("customers who clicked campaign 31", AND(R("clicked_campaign", "contains", 31))),
    ("customers who did not open campaign 12", AND(R("opened_campaign", "doesNotContain", 12))),
    (
        "customers who opened campaign 12 but did not click it",
        AND(R("opened_campaign", "contains", 12), R("clicked_campaign", "doesNotContain", 12)),
    ),
    ("customers who never opened any campaign", AND(R("opened_campaign", "null"))),
    ("customers who clicked campaign 12 or 31", AND(R("clicked_campaign", "in", [12, 31]))),
    # --- attributes -----------------------------------------------------------------------------------
    ("customers whose loyalty_tier is gold", AND(R("attributes.loyalty_tier", "=", "gold"))),
    (
        "customers with attribute favourite_tea = oolong",
        AND(R("attributes.favourite_tea", "=", "oolong")),
    ),
    ("customers without a loyalty_tier", AND(R("attributes.loyalty_tier", "null"))),
    # --- and / or / not, precedence ---------------------------------------------------------------------
    (
        "customers in Budapest or tagged vip",
        OR(R("city", "=", "Budapest"), R("tags", "contains", "vip")),
    ),
    (
        "customers in Budapest and tagged vip or in Szeged",
        OR(AND(R("city", "=", "Budapest"), R("tags", "contains", "vip")), R("city", "=", "Szeged")),
    ),
    (
        "customers tagged vip or in Szeged and spent over 1000",
        OR(R("tags", "contains", "vip"), AND(R("city", "=", "Szeged"), R("total_spent", ">", "1000"))),
    ),
    (
        "customers in Budapest who are not tagged vip and spent over 20000",
        AND(
            R("city", "=", "Budapest"),
            R("tags", "doesNotContain", "vip"),
            R("total_spent", ">", "20000"),
        ),
    ),
    (
        "not (in Budapest or tagged vip)",
        OR(R("city", "=", "Budapest"), R("tags", "contains", "vip"), negate=True),
    ),
    (
        "customers in Budapest, tagged wholesale, with more than 2 orders",
        AND(R("city", "=", "Budapest"), R("tags", "contains", "wholesale"), R("order_count", ">", "2")),
    ),
    (
        "customers who spent over 50000 or ordered more than 10 times",
        OR(R("total_spent", ">", "50000"), R("order_count", ">", "10")),
    ),
    (
        "vip customers in Hungary who opened the Black Friday campaign",
        AND(R("tags", "contains", "vip"), R("country", "=", "HU"), R("opened_campaign", "contains", 31)),
    ),
    (
        "customers in Debrecen with marketing consent who haven't ordered in 90 days",
        AND(
            R("city", "=", "Debrecen"),
            R("email_marketing", "=", True),
            R("last_order_at", "notInLastDays", 90),
        ),
    ),
    (
        "customers from Austria who spent over 100 euros in total",
        AND(R("country", "=", "AT"), R("total_spent", ">", "100")),
    ),
    (
        "customers who did not order in the last 30 days and are not in Budapest",
        AND(R("last_order_at", "notInLastDays", 30), R("city", "!=", "Budapest")),
    ),
]

# Words the parser cannot place are reported, never guessed.
UNPARSED = [
    ("customers in Budapest who love jazz", AND(R("city", "=", "Budapest")), ["love", "jazz"]),
    ("gold customers tagged vip", AND(R("tags", "contains", "vip")), ["gold"]),
]
