"""Campaign intent (assist/intent.py): accuracy on a held-out split of the shipped corpus, the shipped
model trained from the shipped corpus, and answers for content it has never seen."""

import pytest

from assist import intent
from assist.intent_training import accuracy, load_corpus, split, train


def test_it_classifies_at_least_90_percent_of_a_held_out_split_correctly():
    examples = load_corpus()
    held_in, held_out = split(examples, held_out=0.25, seed=17)
    assert {e.intent for e in held_out} == set(intent.INTENTS)
    assert not {(e.subject, e.body) for e in held_in} & {(e.subject, e.body) for e in held_out}

    score = accuracy(train(held_in), held_out)

    print(
        f"\nintent accuracy on the held-out split: {score:.1%} ({len(held_out)} of {len(examples)} examples)"
    )
    assert score >= 0.90


def test_it_ships_a_model_trained_from_the_shipped_corpus():
    assert intent.model().corpus_sha256 == intent.corpus_digest(), (
        "the corpus changed: run `python manage.py train_intent_model`"
    )


@pytest.mark.parametrize(
    ("subject", "html", "expected"),
    [
        ("Mega sale: 30% off all shoes", "<h1>Sale</h1><p>Use code SHOES30 at checkout.</p>", "promotion"),
        ("You left something behind", "<p>Your cart is saved. Complete your checkout.</p>", "cart_recovery"),
        ("Join our tea tasting on Friday", "<p>Book your seat, places are limited.</p>", "event_invite"),
        ("How did we do?", "<p>Rate your last order in our two-minute survey.</p>", "survey"),
        (
            "We miss you, {{ customer.first_name }}",
            "<p>It has been a while. Come back for 20% off.</p>",
            "winback",
        ),
    ],
)
def test_it_recognises_the_intent_of_unseen_campaigns(subject, html, expected):
    found, confidence = intent.classify(subject=subject, html=html)

    assert found == expected
    assert 0.0 < confidence <= 1.0


def test_it_calls_empty_content_other_with_no_confidence():
    assert intent.classify(subject="", html="", text="") == ("other", 0.0)
