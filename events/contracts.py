"""The committed JSON Schemas (events/schemas/*.json): one per published event type, one for inbound
webshop messages. Consumers can take the files as they are; tests check real payloads against them."""

import json
from functools import cache
from pathlib import Path

from jsonschema import Draft202012Validator, FormatChecker

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
WEBSHOP_ENVELOPE = "webshop.envelope"


@cache
def _validator(name):
    # Schemas are code, not tenant data: a process-wide cache is safe here.
    schema = json.loads((SCHEMA_DIR / f"{name}.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


def event_schema(type):
    """The JSON Schema of one published event type (raises KeyError for an unknown type)."""
    if not (SCHEMA_DIR / f"{type}.json").is_file() or type == WEBSHOP_ENVELOPE:
        raise KeyError(type)
    return _validator(type).schema


def _errors(name, document):
    return [
        f"{'.'.join(str(part) for part in error.absolute_path) or '(root)'}: {error.message}"
        for error in sorted(_validator(name).iter_errors(document), key=lambda e: list(e.absolute_path))
    ]


def event_errors(envelope):
    """What is wrong with a published event (its whole envelope), as 'path: message' strings."""
    type = envelope.get("type") if isinstance(envelope, dict) else None
    try:
        event_schema(type)
    except (KeyError, TypeError):
        return [f"type: unknown event type {type!r}"]
    return _errors(type, envelope)


def webshop_envelope_errors(message):
    """What is wrong with an inbound webshop message's envelope (its `data` is checked by the API's serializers)."""
    return _errors(WEBSHOP_ENVELOPE, message)
