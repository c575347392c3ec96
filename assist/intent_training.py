"""Training the intent model (assist/intent.py) from the shipped corpus: `manage.py train_intent_model`
and the accuracy test. Not imported at run time (numpy is needed here only).

Softmax regression with L2, full-batch Adam over sparse TF-IDF rows (features seen in at least
MIN_DF examples); deterministic: the same corpus gives the same weights.
"""

import math
import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .intent import CORPUS_PATH, INTENTS, IntentModel, corpus_digest, features

MIN_DF = 2
ITERATIONS = 200
LEARNING_RATE = 0.2
L2 = 1e-4
# Weights this small change no prediction; leaving them out keeps the shipped file small.
PRUNE_BELOW = 5e-3


@dataclass(frozen=True)
class Example:
    intent: str
    subject: str
    body: str


def load_corpus(path=CORPUS_PATH):
    examples = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        intent, subject, body = line.split("\t")
        if intent not in INTENTS:
            raise ValueError(f"line {number}: unknown intent {intent!r}")
        examples.append(Example(intent, subject, body))
    return examples


def split(examples, *, held_out=0.25, seed=17):
    """Stratified: `held_out` of each intent's examples for testing, the rest for training."""
    by_intent = defaultdict(list)
    for example in examples:
        by_intent[example.intent].append(example)
    rng = random.Random(seed)
    train, test = [], []
    for intent in sorted(by_intent):
        group = list(by_intent[intent])
        rng.shuffle(group)
        cut = round(len(group) * held_out)
        test.extend(group[:cut])
        train.extend(group[cut:])
    return train, test


def train(examples, *, corpus_sha256=""):
    rows = [features(example.subject, example.body) for example in examples]
    count = len(rows)
    df = Counter()
    for row in rows:
        df.update(row.keys())
    vocabulary = sorted(feature for feature, seen in df.items() if seen >= MIN_DF)
    index = {feature: position for position, feature in enumerate(vocabulary)}
    idf = {feature: math.log((1 + count) / (1 + df[feature])) + 1 for feature in vocabulary}
    columns, values, pointers = [], [], [0]
    for row in rows:
        weighted = [
            (index[feature], (1 + math.log(value)) * idf[feature])
            for feature, value in row.items()
            if feature in index
        ]
        norm = math.sqrt(sum(weight * weight for _, weight in weighted)) or 1.0
        columns.extend(column for column, _ in weighted)
        values.extend(weight / norm for _, weight in weighted)
        pointers.append(len(columns))
    columns = np.array(columns, dtype=np.int64)
    values = np.array(values)
    owners = np.repeat(np.arange(count), np.diff(np.array(pointers)))
    targets = np.eye(len(INTENTS))[[INTENTS.index(example.intent) for example in examples]]
    weights = np.zeros((len(vocabulary), len(INTENTS)))
    bias = np.zeros(len(INTENTS))
    first, second = np.zeros_like(weights), np.zeros_like(weights)
    for step in range(1, ITERATIONS + 1):
        logits = (
            np.stack(
                [
                    np.bincount(owners, weights=weights[columns, k] * values, minlength=count)
                    for k in range(len(INTENTS))
                ],
                axis=1,
            )
            + bias
        )
        logits -= logits.max(axis=1, keepdims=True)
        probabilities = np.exp(logits)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        error = (probabilities - targets) / count
        gradient = (
            np.stack(
                [
                    np.bincount(columns, weights=values * error[owners, k], minlength=len(vocabulary))
                    for k in range(len(INTENTS))
                ],
                axis=1,
            )
            + L2 * weights
        )
        first = 0.9 * first + 0.1 * gradient
        second = 0.999 * second + 0.001 * gradient * gradient
        weights -= LEARNING_RATE * (first / (1 - 0.9**step)) / (np.sqrt(second / (1 - 0.999**step)) + 1e-8)
        bias -= LEARNING_RATE * error.sum(axis=0)
    kept = {
        feature: [float(value) for value in weights[position]]
        for feature, position in index.items()
        if np.abs(weights[position]).max() >= PRUNE_BELOW
    }
    return IntentModel(
        weights=kept,
        bias=[float(value) for value in bias],
        idf={feature: idf[feature] for feature in kept},
        corpus_sha256=corpus_sha256,
    )


def train_shipped():
    """The model of the whole shipped corpus."""
    return train(load_corpus(), corpus_sha256=corpus_digest())


def accuracy(model, examples):
    hits = sum(model.predict(example.subject, example.body)[0] == example.intent for example in examples)
    return hits / len(examples)
