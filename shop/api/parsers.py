"""The API's JSON parser: a body's size and nesting are checked before it is parsed.

DRF's ``JSONParser`` has Django read the whole body (up to ``DATA_UPLOAD_MAX_MEMORY_SIZE``) and
hands it to ``json.load``, which raises ``RecursionError`` on about 1,000 nested levels: a 500
with an HTML page. :class:`BoundedJSONParser` reads the stream itself: a body over
``API_MAX_JSON_BYTES`` answers 413, one nested deeper than ``API_MAX_JSON_DEPTH`` answers 400,
both with the API's error body and before any parsing.
"""

from __future__ import annotations

import codecs
import json

from django.conf import settings
from rest_framework import renderers, status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import BaseParser
from rest_framework.settings import api_settings
from rest_framework.utils import json as drf_json

from search.params import json_nesting
from shop.uploads import human_size


class RequestTooLarge(APIException):
    """413: the request body is over the limit for its kind."""

    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"
    default_detail = "The request body is too large."


class BoundedJSONParser(BaseParser):
    """JSON bodies with a size limit (413) and a nesting limit (400), both checked before parsing.

    Parses like DRF's ``JSONParser`` (the request's charset, ``STRICT_JSON``, the same
    ``parse_error`` message) but is not a subclass of it: DRF reads a ``JSONParser``'s body
    through Django first, which refuses bodies over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` with a 400.
    Settings: ``API_MAX_JSON_BYTES`` (default 1 MiB) and ``API_MAX_JSON_DEPTH`` (default 32).

    Raises:
        RequestTooLarge: the body (declared or read) is over ``API_MAX_JSON_BYTES``.
        ParseError: the body nests deeper than ``API_MAX_JSON_DEPTH``, or is not valid JSON.
    """

    media_type = "application/json"
    renderer_class = renderers.JSONRenderer

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        limit = settings.API_MAX_JSON_BYTES
        request = parser_context.get("request")
        raw_length = str(request.META.get("CONTENT_LENGTH") or "") if request is not None else ""
        declared = int(raw_length) if raw_length.isdigit() else 0
        if declared > limit:
            raise RequestTooLarge(f"The request body is {human_size(declared)}; a JSON body may be at most {human_size(limit)}.")
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise RequestTooLarge(f"The request body is over {human_size(limit)}, the most a JSON body may be.")
        depth = json_nesting(raw)
        if depth > settings.API_MAX_JSON_DEPTH:
            raise ParseError(f"The JSON nests {depth} levels deep; at most {settings.API_MAX_JSON_DEPTH} are accepted.")
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = codecs.decode(raw, encoding)
            return drf_json.loads(text, parse_constant=drf_json.strict_constant if api_settings.STRICT_JSON else None)
        except UnicodeDecodeError:
            raise ParseError("The request body is not UTF-8 text; send JSON encoded as UTF-8.") from None
        except json.JSONDecodeError as exc:
            raise ParseError(f"The request body is not valid JSON (line {exc.lineno}, column {exc.colno}); "
                             "check its quotes, commas and brackets.") from None
        except ValueError:  # NaN or Infinity under STRICT_JSON
            raise ParseError("The request body holds NaN or Infinity, which JSON does not allow; send a number or null.") from None
        except RecursionError:  # unreachable within the depth limit; never a 500 all the same
            raise ParseError("The JSON nests too deeply.") from None
        except LookupError:
            raise ParseError(f"Unknown charset {encoding[:40]!r}; send UTF-8.") from None
