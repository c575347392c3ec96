"""Retrain the campaign intent model from assist/data/intent_corpus.tsv after editing the corpus."""

import json

from django.core.management.base import BaseCommand

from assist.intent import MODEL_PATH
from assist.intent_training import accuracy, load_corpus, split, train, train_shipped


class Command(BaseCommand):
    help = "Train the campaign intent model from the shipped corpus and write assist/data/intent_model.json."

    def handle(self, *args, **options):
        held_in, held_out = split(load_corpus())
        score = accuracy(train(held_in), held_out)
        self.stdout.write(f"held-out accuracy: {score:.1%} ({len(held_out)} examples)")
        model = train_shipped()
        MODEL_PATH.write_text(json.dumps(model.to_json(), separators=(",", ":")) + "\n", encoding="utf-8")
        self.stdout.write(f"wrote {MODEL_PATH.name}: {len(model.weights)} features")
