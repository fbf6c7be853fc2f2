"""What a client sends, read strictly once at the edge so nothing behind it meets it raw.

One rule covers every function: a JSON body, a query string or a form field may not carry what
Postgres or UTF-8 cannot store (NUL characters, lone surrogates), numbers JSON has no spelling for
(`NaN`, `Infinity`, which Python's parser accepts and then echoes as invalid JSON), or nesting
deeper than any request needs (which would reach Python's recursion limit). Each is a 400 that
names where in the body it was found.
"""

from __future__ import annotations

import json
import re
from typing import Any

from lib import errors

MAX_DEPTH = 64  # far deeper than any request model; a filter tree of $and/$or fits easily
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _refuse_constant(name: str) -> Any:
    raise errors.BadRequest(
        f"malformed JSON in request body: {name} is not a JSON number", code="invalid_json"
    )


def read_json_object(raw: bytes) -> dict[str, Any]:
    """Parse a request body that must be a JSON object, refusing what JSON itself does not allow."""
    try:
        data = json.loads(raw, parse_constant=_refuse_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise errors.BadRequest(f"malformed JSON in request body: {exc}", code="invalid_json") from None
    except RecursionError:
        raise errors.BadRequest(
            f"request body is nested too deeply (the limit is {MAX_DEPTH} levels)", code="invalid_json"
        ) from None
    if not isinstance(data, dict):
        raise errors.BadRequest("request body must be a JSON object", code="invalid_json")
    check_value(data, "body")
    return data


def check_value(value: Any, where: str, depth: int = 0) -> None:
    """Refuse unstorable text anywhere in a parsed value (keys included) and over-deep nesting."""
    if depth > MAX_DEPTH:
        raise errors.BadRequest(
            f"{where}: nested too deeply (the limit is {MAX_DEPTH} levels)", code="invalid_json"
        )
    if isinstance(value, str):
        check_text(value, where)
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text(key, f"{where} key")
            check_value(item, _join(where, key), depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_value(item, f"{where}[{index}]", depth + 1)


def check_text(text: str, where: str) -> None:
    found = _UNSTORABLE.search(text)
    if found is None:
        return
    what = "a NUL character" if found.group() == "\x00" else "a lone UTF-16 surrogate"
    raise errors.BadRequest(
        f"{_printable(where)} contains {what}, which cannot be stored; remove it",
        code="invalid_text", details=[{"field": _printable(where), "message": f"contains {what}"}],
    )


def check_fields(fields: dict[str, str], kind: str) -> None:
    """Query strings and form fields: the same rule as JSON text."""
    for key, value in fields.items():
        check_text(key, f"{kind} parameter name")
        check_text(value, f"{kind} parameter {key!r}")


def _join(where: str, key: str) -> str:
    name = key if _UNSTORABLE.search(key) is None else "?"
    return name if where == "body" else f"{where}.{name}"


def _printable(where: str) -> str:
    # The error message itself must be sendable: never echo the offending characters back.
    return _UNSTORABLE.sub("?", where)
