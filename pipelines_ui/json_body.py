"""The one way the server reads a JSON request body: no body can crash it (docs/reliability.md S12).

Python's json module recurses once per level of nesting, so about a thousand `[` exhaust the
stack (a RecursionError, a 500). The depth is therefore measured first, without recursion, and
a body nested deeper than MAX_DEPTH, or one that is not JSON, is refused with a message that
says which. DRF uses `JSONBodyParser` (settings.REST_FRAMEWORK); anything else that reads a
JSON body calls `loads`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from pipelines_ui.api_errors import PayloadTooLarge

MAX_DEPTH = 64

# A JSON string (escapes included), so brackets inside strings are not counted.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


class BodyInvalid(ValueError):
    """The body is not JSON, or is nested too deeply; the message says which, for a person."""


def loads(raw: bytes | str) -> Any:
    """The JSON value of a request body, or BodyInvalid."""
    text = _text(raw)
    if nesting_exceeds(text, MAX_DEPTH):
        raise BodyInvalid(f"the body is nested deeper than {MAX_DEPTH} levels; flatten it.")
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except ValueError as exc:  # JSONDecodeError, and the constants refused below
        raise BodyInvalid(f"the body is not valid JSON: {exc}") from None


def nesting_exceeds(text: str, limit: int) -> bool:
    """Whether any array or object in `text` lies more than `limit` levels deep."""
    depth = 0
    for bracket in _NOT_BRACKET.sub("", _STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > limit:
            return True
    return False


def _text(raw: bytes | str) -> str:
    if isinstance(raw, str):
        return raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyInvalid(f"the body is not UTF-8 text (byte {exc.start}).") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


class JSONBodyParser(JSONParser):
    """DRF's JSON parser, reading through `loads`, with Django's body limit applied (DRF
    reads the stream itself and skips that limit, S9)."""

    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        request = (parser_context or {}).get("request")
        if limit is not None and request is not None and _declared_length(request) > limit:
            raise PayloadTooLarge()
        # One byte past the limit is enough to know a body without a length is too large.
        raw = stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(raw) > limit:
            raise PayloadTooLarge()
        try:
            return loads(raw)
        except BodyInvalid as exc:
            raise ParseError(f"JSON parse error - {exc}") from None


def _declared_length(request) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0
