"""`?search=` with words whose trigrams most customers share: the index is asked for the word's rarest
piece, the whole word is still required, and the answer is exactly the plain search's."""

import pytest
from django.core.cache import cache
from django.db import connection

from customers import selectors
from customers.models import Customer

from .conftest import make_customer

FREQUENT = frozenset("cus ust sto tom ome mer er7 exa xam amp mpl ple com gma mai ail".split())


@pytest.mark.parametrize(
    ("word", "piece"),
    [
        ("customer7777", "r7777"),  # the digits after the shared prefix
        ("customer", "customer"),  # nothing rare to ask for: the word itself
        ("john.smith@gmail.com", "smith"),  # the longest rare run of letters and digits
        ("kovács", "kovács"),  # no frequent trigram: unchanged
        ("anna", "anna"),
        ("exampl3x", "pl3x"),
        ("gmail", "gmail"),
    ],
)
def test_it_asks_the_index_for_the_rarest_piece_of_a_word(word, piece):
    assert selectors.rare_piece(word, FREQUENT) == piece
    assert piece in word


def test_it_keeps_every_word_when_nothing_is_frequent():
    assert selectors.rare_piece("customer7777", frozenset()) == "customer7777"


@pytest.fixture
def crowd(tenant):
    emails = [
        "customer7777@example.com",
        "customer17777@example.com",
        "customer7770@example.com",  # has the piece "r777" but not the word
        "r7777@example.com",  # has the piece "r7777" but not the word "customer7777"
        "customer77770@example.com",
        "john.smith@gmail.com",
        "jane.smith@gmail.org",
        "smith@gmail.com",
    ]
    return {email: make_customer(email=email).pk for email in emails}


def _ids(api, term):
    return sorted(row["id"] for row in api.get("/api/customers", {"search": term}).json()["results"])


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("customer7777", ["customer7777@example.com", "customer77770@example.com"]),
        ("r7777", ["customer7777@example.com", "r7777@example.com", "customer77770@example.com"]),
        ("smith@gmail.com", ["john.smith@gmail.com", "smith@gmail.com"]),
        ("JOHN.SMITH@GMAIL.COM", ["john.smith@gmail.com"]),
        ("customer7777 example", ["customer7777@example.com", "customer77770@example.com"]),
    ],
)  # fmt: skip
def test_it_finds_exactly_what_the_plain_search_finds(api, crowd, monkeypatch, term, expected):
    plain = _ids(api, term)
    monkeypatch.setattr(selectors, "frequent_search_trigrams", lambda: FREQUENT)
    narrowed = _ids(api, term)
    assert narrowed == plain == sorted(crowd[email] for email in expected)


def test_it_samples_the_trigrams_most_customers_share(tenant, monkeypatch):
    for n in range(60):
        make_customer(email=f"customer{n}@example.com", first_name="Zoe" if n == 7 else "")
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Customer._meta.db_table}")
    monkeypatch.setattr(selectors, "TRIGRAM_SAMPLE_ABOVE", 10)
    cache.delete("customers:frequent-trigrams")
    frequent = selectors.frequent_search_trigrams()
    assert {"cus", "ust", "sto", "tom", "ome", "mer", "exa", "com"} <= frequent
    assert "zoe" not in frequent  # one customer in 60
    assert selectors.frequent_search_trigrams() == frequent  # from the cache now
    cache.delete("customers:frequent-trigrams")


def test_it_samples_nothing_for_a_small_customer_base(tenant):
    cache.delete("customers:frequent-trigrams")
    make_customer(email="customer1@example.com")
    assert selectors.frequent_search_trigrams() == frozenset()
    cache.delete("customers:frequent-trigrams")
