"""JSON from clients: the standard parser, with nesting too deep for it turned into an ordinary parse error.

`json.loads` recurses once per nesting level and raises RecursionError (not ValueError) for input such as
2,000 opening brackets, which every caller would otherwise let through as a server error.
"""

import json
from collections.abc import Mapping
from typing import IO, Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JsonTooDeep(ValueError):
    """The text nests arrays or objects more deeply than the parser can follow."""


def loads(text: str | bytes) -> Any:
    """`json.loads` for text a client sent; raises ValueError (JsonTooDeep included) for anything unparsable."""
    try:
        return json.loads(text)
    except RecursionError as error:
        raise JsonTooDeep("JSON nested too deeply") from error


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, answering 400 instead of 500 for deeply nested bodies."""

    def parse(
        self, stream: IO[Any], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError as error:
            raise ParseError("JSON parse error - nested too deeply.") from error
