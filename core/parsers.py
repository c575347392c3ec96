"""The API's one JSON parser (the default of every view): refuses what would otherwise surface as a 500.

- A body over API_MAX_BODY_BYTES is a 413 and is never read past the limit (the request guard in
  core/middleware.py refuses a declared Content-Length earlier still; this catches chunked bodies).
- Python's json module raises RecursionError on deeply nested input (an attacker's `[[[[...]]]]`);
  here that is a clear 400 before any view runs. Rule trees (20 levels of groups) stay well inside.
- (NUL characters are refused per field, by the serializers, so the error names the field.)
"""

import json

from django.conf import settings
from rest_framework import exceptions
from rest_framework.parsers import JSONParser

from .exceptions import PayloadTooLarge

MAX_DEPTH = 64


def _depth_ok(raw):
    """True when no array/object nests deeper than MAX_DEPTH (a linear scan that respects strings)."""
    depth, in_string, escaped = 0, False, False
    for char in raw:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return False
        elif char in "]}":
            depth -= 1
    return True


class SafeJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        if stream is None:
            return {}
        limit = settings.API_MAX_BODY_BYTES
        raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise PayloadTooLarge(f"The request body is larger than the limit of {limit} bytes.")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise exceptions.ParseError(f"JSON parse error - the body is not UTF-8 ({error.reason}).")
        if not _depth_ok(text):
            raise exceptions.ValidationError(
                {"non_field_errors": [f"The JSON nests deeper than {MAX_DEPTH} levels."]}
            )
        try:
            data = json.loads(text)
        except RecursionError:
            raise exceptions.ValidationError({"non_field_errors": ["The JSON nests too deeply."]})
        except ValueError as error:
            raise exceptions.ParseError(f"JSON parse error - {error}")
        return data
