"""The one check every 2xx answer passes before a provider reads it: the documented shape.

A provider that answers 200 with HTML, a list, a URL that is a number, bad base64 or more images
than were asked for must fail that asset with the reason recorded — not crash the build (a
traceback, and a pending call that makes the next build pay again). Each answer kind has a JSON
Schema here (the documented fields a provider reads, types only; extra fields are allowed, the
APIs add them); :func:`checked` validates before any field is read, :func:`decode_base64` and
:func:`checked_outputs` cover what a schema cannot say.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from imgbuild.errors import format_path
from imgbuild.providers.base import Output, ProviderError

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

__all__ = [
    "ARK_IMAGES",
    "FAL_RESULT",
    "FAL_STATUS",
    "FAL_SUBMITTED",
    "FAL_UPLOAD",
    "REPLICATE_FILE",
    "REPLICATE_PREDICTION",
    "BadAnswer",
    "checked",
    "checked_outputs",
    "decode_base64",
]


class BadAnswer(ProviderError):
    """A 2xx answer not in the documented shape: this asset fails once, with the reason; retrying
    the same saved answer cannot help."""


_TEXT = {"type": "string", "minLength": 1, "maxLength": 16384}
_URL = {"type": "string", "pattern": "^https?://[^\\s]+$", "maxLength": 16384}
_ERROR = {"type": "object", "properties": {"code": {"type": ["string", "integer", "null"]}}}

ARK_IMAGES: dict[str, Any] = {
    "type": "object",
    "properties": {
        "data": {
            "type": ["array", "null"],
            "maxItems": 64,
            "items": {
                "type": "object",
                "anyOf": [{"required": ["url"]}, {"required": ["b64_json"]}, {"required": ["error"]}],
                "properties": {"url": _URL, "b64_json": {"type": "string"}, "error": _ERROR},
            },
        },
        "error": {"anyOf": [_ERROR, {"type": "null"}]},
        "usage": {"type": ["object", "null"]},
    },
}
REPLICATE_PREDICTION: dict[str, Any] = {
    "type": "object",
    "required": ["id", "status"],
    "properties": {
        "id": _TEXT,
        "status": {"type": "string"},
        "urls": {"type": ["object", "null"], "additionalProperties": {"type": "string"}},
        "output": {"anyOf": [_URL, {"type": "null"}, {"type": "array", "maxItems": 64, "items": _URL}]},
        "metrics": {"type": ["object", "null"]},
    },
}
REPLICATE_FILE: dict[str, Any] = {
    "type": "object",
    "required": ["urls"],
    "properties": {
        "urls": {"type": "object", "required": ["get"], "properties": {"get": _TEXT}},
        "expires_at": {"type": ["string", "null"], "format": "date-time"},
    },
}
FAL_SUBMITTED: dict[str, Any] = {
    "type": "object",
    "required": ["request_id", "status_url", "response_url"],
    "properties": {"request_id": _TEXT, "status_url": _TEXT, "response_url": _TEXT, "cancel_url": _TEXT},
}
FAL_STATUS: dict[str, Any] = {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}}
FAL_RESULT: dict[str, Any] = {
    "type": "object",
    "required": ["images"],
    "properties": {
        "images": {
            "type": "array",
            "maxItems": 64,
            "items": {"type": "object", "required": ["url"], "properties": {"url": _TEXT}},
        },
    },
}
FAL_UPLOAD: dict[str, Any] = {
    "type": "object",
    "required": ["upload_url", "file_url"],
    "properties": {"upload_url": _TEXT, "file_url": _TEXT},
}

_validators: dict[int, Draft202012Validator] = {}


def checked(raw: Any, schema: dict[str, Any], what: str) -> dict[str, Any]:
    """`raw` when it has the shape of `schema`; else BadAnswer naming the first wrong field."""
    validator = _validators.get(id(schema))
    if validator is None:
        from jsonschema import Draft202012Validator  # here: a no-op build makes no call

        validator = _validators[id(schema)] = Draft202012Validator(schema)
    error = next(iter(sorted(validator.iter_errors(raw), key=lambda e: list(e.absolute_path))), None)
    if error is not None:
        where = format_path(error.absolute_path) or "the answer"
        raise BadAnswer(f"{what} is not in the documented shape: {where}: {_explain(error)}")
    assert isinstance(raw, dict)
    return raw


def decode_base64(text: str, what: str) -> bytes:
    """Strict base64 (no stray characters); BadAnswer otherwise."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadAnswer(f"{what} is not valid base64 ({exc})") from exc


def checked_outputs(outputs: Sequence[Output], asked: int, what: str) -> tuple[Output, ...]:
    """The outputs of one call, refused when there are more images than were asked for."""
    if len(outputs) > asked:
        raise BadAnswer(f"{what} holds {len(outputs)} images; {asked} were asked for")
    return tuple(outputs)


def _explain(error: Any) -> str:
    """What is wrong, without quoting a huge value whole."""
    instance, value = error.instance, error.validator_value
    if error.validator in ("maxItems", "minItems") and isinstance(instance, list):
        return f"{len(instance)} items, {'over' if error.validator == 'maxItems' else 'under'} the {value} allowed"
    if error.validator in ("maxLength", "minLength") and isinstance(instance, str):
        return f"a text of {len(instance)} characters, {'over' if error.validator == 'maxLength' else 'under'} {value}"
    if error.validator == "type":
        return f"{_short(repr(instance))} is not of type {value!r}"
    return _short(str(error.message))


def _short(message: str, limit: int = 200) -> str:
    return message if len(message) <= limit else message[:limit] + "…"
