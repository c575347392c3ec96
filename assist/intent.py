"""Campaign intent, offline: a linear model over word and character n-grams.

Multinomial logistic regression over TF-IDF features (word unigrams and bigrams, and character 3- to
5-grams inside words, which catch "discount"/"discounts"/"discounted" alike), trained from the
labelled corpus the project ships (assist/data/intent_corpus.tsv) by `manage.py train_intent_model`
(assist/intent_training.py). The trained weights are shipped beside the corpus
(assist/data/intent_model.json): a web worker loads them once (a few milliseconds, nothing is
downloaded or trained at run time) and predicts in pure Python. The model holds no tenant's data, so
a module global is safe (TENANCY.md). tests/assist/test_intent.py measures the accuracy on a
held-out split and checks that the shipped model was trained from the shipped corpus.
"""

import hashlib
import json
import math
import re
from collections import Counter
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
CORPUS_PATH = DATA / "intent_corpus.tsv"
MODEL_PATH = DATA / "intent_model.json"
INTENTS = (
    "promotion",
    "product_launch",
    "newsletter",
    "winback",
    "cart_recovery",
    "announcement",
    "event_invite",
    "survey",
    "other",
)
# Below this the answer is "other": the content says nothing the model recognises.
MIN_CONFIDENCE = 0.3
SUBJECT_WEIGHT = 2  # the subject says more about the intent than a sentence of the body
MAX_BODY_CHARS = 20000

TAG_RE = re.compile(r"<[^>]+>")
TEMPLATE_RE = re.compile(r"{{.*?}}|{%.*?%}", re.DOTALL)
ENTITY_RE = re.compile(r"&[a-z]+;|&#\d+;")
WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
STYLE_RE = re.compile(r"<(style|script)\b.*?</\1>", re.DOTALL | re.IGNORECASE)


def plain_text(html):
    """Visible words of an HTML body (tags, styles, template tags dropped)."""
    text = STYLE_RE.sub(" ", html or "")
    text = TEMPLATE_RE.sub(" ", text)
    text = TAG_RE.sub(" ", text)
    return ENTITY_RE.sub(" ", text)


def features(subject, body):
    """Word uni- and bigrams and in-word character 3-5-grams, counted; the subject counts double."""
    counts = Counter()
    for weight, text in ((SUBJECT_WEIGHT, subject or ""), (1, body or "")):
        words = WORD_RE.findall(TEMPLATE_RE.sub(" ", text).lower())
        for word in words:
            counts[f"w:{word}"] += weight
            padded = f" {word} "
            for size in (3, 4, 5):
                for start in range(max(1, len(padded) - size + 1)):
                    counts[f"c:{padded[start : start + size]}"] += weight
        for first, second in zip(words, words[1:], strict=False):
            counts[f"b:{first}_{second}"] += weight
    return counts


def tfidf(counts, idf):
    """Sublinear term frequency times idf, L2-normalised; features unknown to the model drop out."""
    weighted = {
        feature: (1 + math.log(count)) * idf[feature] for feature, count in counts.items() if feature in idf
    }
    norm = math.sqrt(sum(value * value for value in weighted.values())) or 1.0
    return {feature: value / norm for feature, value in weighted.items()}


def corpus_digest(path=CORPUS_PATH):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class IntentModel:
    """Weights per feature (one per intent), the bias and the idf of each feature."""

    def __init__(self, *, weights, bias, idf, corpus_sha256=""):
        self.weights = weights  # feature -> [weight per intent]
        self.bias = bias
        self.idf = idf
        self.corpus_sha256 = corpus_sha256

    def probabilities(self, subject, body):
        logits = list(self.bias)
        for feature, value in tfidf(features(subject, body), self.idf).items():
            row = self.weights.get(feature)
            if row is not None:
                for index, weight in enumerate(row):
                    logits[index] += weight * value
        top = max(logits)
        exps = [math.exp(logit - top) for logit in logits]
        total = sum(exps)
        return {intent: exp / total for intent, exp in zip(INTENTS, exps, strict=True)}

    def predict(self, subject, body):
        """(intent, confidence in [0, 1])."""
        probabilities = self.probabilities(subject, body)
        intent = max(INTENTS, key=lambda name: (probabilities[name], -INTENTS.index(name)))
        confidence = round(probabilities[intent], 3)
        if confidence < MIN_CONFIDENCE:
            return "other", confidence
        return intent, confidence

    def to_json(self):
        return {
            "intents": list(INTENTS),
            "corpus_sha256": self.corpus_sha256,
            "bias": [round(value, 5) for value in self.bias],
            "idf": {feature: round(value, 4) for feature, value in sorted(self.idf.items())},
            "weights": {
                feature: [round(value, 2) for value in row] for feature, row in sorted(self.weights.items())
            },
        }

    @classmethod
    def from_json(cls, data):
        if list(data["intents"]) != list(INTENTS):
            raise ValueError("the intent model was trained for other intents; retrain it")
        return cls(
            weights=data["weights"], bias=data["bias"], idf=data["idf"], corpus_sha256=data["corpus_sha256"]
        )


_model = None


def model():
    """The shipped model, loaded once per process."""
    global _model
    if _model is None:
        _model = IntentModel.from_json(json.loads(MODEL_PATH.read_text(encoding="utf-8")))
    return _model


def classify(*, subject, html="", text=""):
    """The intent of a campaign's content: (intent, confidence)."""
    body = " ".join(part for part in (text or "", plain_text(html)) if part.strip())
    if not (subject or "").strip() and not body.strip():
        return "other", 0.0
    return model().predict(subject or "", body[:MAX_BODY_CHARS])
