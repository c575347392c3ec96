"""The offline sentence-to-rules parser against its corpus (tests/assist/segment_corpus.py): at least
95% of the phrases give exactly the expected rules, and every answer passes the segment validator."""

import json

from assist.segment_text import parse_segment_text
from segments.rules import parse_rules
from tests.assist.segment_corpus import CORPUS, TODAY, UNPARSED, VOCABULARY


def _parse(text):
    return parse_segment_text(text, today=TODAY, vocabulary=VOCABULARY)


def test_it_has_a_corpus_of_at_least_80_phrases_that_all_validate():
    assert len(CORPUS) >= 80
    assert len({text for text, _ in CORPUS}) == len(CORPUS)
    for _text, expected in CORPUS:
        parse_rules(expected)


def test_it_gives_the_expected_rules_for_at_least_95_percent_of_the_corpus():
    misses = []
    for text, expected in CORPUS:
        got = _parse(text).rules
        if got != expected:
            misses.append(f"{text!r}\n    expected {json.dumps(expected)}\n    got      {json.dumps(got)}")
    exact = (len(CORPUS) - len(misses)) / len(CORPUS)
    print(f"\nsentence-to-rules: {len(CORPUS) - len(misses)}/{len(CORPUS)} exact ({exact:.1%})")
    for miss in misses:
        print("  miss:", miss)
    assert exact >= 0.95


def test_it_answers_rules_that_pass_the_segment_validator_for_every_phrase():
    for text, _expected in CORPUS + [(text, rules) for text, rules, _ in UNPARSED]:
        answer = _parse(text)
        if answer.rules is not None:
            parse_rules(answer.rules)


def test_it_reports_the_words_it_did_not_use_instead_of_guessing():
    for text, expected, unparsed in UNPARSED:
        answer = _parse(text)
        assert answer.rules == expected, text
        assert answer.unparsed == unparsed, text
