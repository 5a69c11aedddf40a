"""DingTalk call parameters and their coercion (spec §2.1, DESIGN §3 "Parsing").

Whatever the encoding (native JSON, stringified JSON, form, query), every field is read through
these coercions, so every encoding lands on the same values. Every surface reads integers with
`parse_int64` and JSON with `load_json`, which bound what they convert: decimal text is
length-checked before `int()` (Python refuses more than 4300 digits), and JSON nests at most
`JSON_MAX_DEPTH` levels (orjson cannot write back what nests deeper than 254).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from dingbox import errors
from dingbox.domain.identifiers import any_names_nothing

MAX_INT64 = 2**63 - 1
MIN_INT64 = -(2**63)
_INT64_DIGITS = len(str(MAX_INT64))
_DECIMAL = re.compile(r"[+-]?[0-9]+")
# Deep enough for any DingTalk message or org document (they nest under 10 levels); shallow enough
# that whatever is built from accepted input (a stored request, a canonical message holding parsed
# JSON text) stays far inside orjson's limit of 254 when it is written back.
JSON_MAX_DEPTH = 64
# Wrappers DingTalk's own samples put around comma lists: the sendbytemplate curl sends the literal
# text \"123,456\" and its PHP sample "123,456"; real clients send neither.
_LIST_QUOTES = ('\\"', '"')


@dataclass
class Params:
    """The merged parameters of one call, and warnings about lenient parsing to keep on the task."""

    values: dict[str, Any]
    token: str | None
    warnings: list[str] = field(default_factory=list)

    def raw(self, name: str) -> Any:
        return self.values.get(name)

    def has(self, name: str) -> bool:
        value = self.values.get(name)
        return value is not None and value != ""

    def integer(self, name: str, *, required: bool = True) -> int | None:
        value = self.values.get(name)
        if value is None or value == "":
            if required:
                raise errors.MissingParameter(name)
            return None
        return coerce_int(value, name)

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self.values.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise errors.InvalidParameter(name)

    def text(self, name: str, *, required: bool = True) -> str | None:
        value = self.values.get(name)
        if value is None or value == "":
            if required:
                raise errors.MissingParameter(name)
            return None
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise errors.InvalidParameter(name)
        return str(value)

    def id_list(self, name: str) -> list[str]:
        """A comma-separated list: trimmed, empty parts dropped, duplicates removed (first kept).

        A JSON array is accepted too, with a warning, since DingTalk documents a comma string.
        """
        value = self.values.get(name)
        if value is None:
            return []
        if type(value) is str and value.isalnum():  # the common single id: nothing to split or trim
            return [value]
        if isinstance(value, list):
            self.warnings.append(f"{name} was a JSON array; DingTalk documents a comma-separated string")
            # an item holding commas names several ids, as it would in the documented string
            parts = [part for item in value for part in _scalar_text(item, name).split(",")]
        elif isinstance(value, str | int) and not isinstance(value, bool):
            text = str(value).strip()
            for quote in _LIST_QUOTES:
                if len(text) >= 2 * len(quote) and text.startswith(quote) and text.endswith(quote):
                    text = text[len(quote) : -len(quote)]
                    self.warnings.append(
                        f"{name} was wrapped in {quote} quotes, as in DingTalk's own samples"
                    )
                    break
            parts = text.split(",")
        else:
            raise errors.InvalidParameter(name)
        seen: dict[str, None] = {}
        for part in parts:
            item = part.strip()
            if item:
                seen.setdefault(item, None)
        if any_names_nothing(seen):  # no id holds a NUL: refused as a typed id list refuses a bad id
            raise errors.InvalidParameter(name)
        return list(seen)

    def int_list(self, name: str) -> list[str]:
        """An `id_list` of int64 ids, as DingTalk's typed List<Long> reads it: each id in its plain
        decimal form ("007" is "7"); any part that is not an int64 is `40035 不合法的参数 <name>`."""
        numbers: dict[str, None] = {}
        for part in self.id_list(name):
            number = parse_int64(part)
            if number is None:
                raise errors.InvalidParameter(name)
            numbers.setdefault(str(number), None)
        return list(numbers)

    def json_object(self, name: str, *, required: bool = True) -> dict[str, Any] | None:
        """An object given as an object or as JSON text."""
        value = self.values.get(name)
        if value is None or value == "":
            if required:
                raise errors.MissingParameter(name)
            return None
        if isinstance(value, dict):
            return value
        if isinstance(value, str):
            try:
                parsed = load_json(value)
            except ValueError:
                raise errors.InvalidParameter(name) from None
            if not isinstance(parsed, dict):
                raise errors.InvalidParameter(name)
            return parsed
        raise errors.InvalidParameter(name)


class JSONTooDeep(ValueError):
    """JSON that nests deeper than `JSON_MAX_DEPTH`."""


def load_json(raw: bytes | str) -> Any:
    """orjson.loads, refusing documents that nest deeper than `JSON_MAX_DEPTH` (both are ValueError)."""
    value = orjson.loads(raw)
    # a document with fewer brackets than the bound cannot nest past it: most are never walked
    if isinstance(value, dict | list) and _brackets(raw) > JSON_MAX_DEPTH:
        pending: list[tuple[Any, int]] = [(value, 1)]
        while pending:
            node, depth = pending.pop()
            if depth > JSON_MAX_DEPTH:
                raise JSONTooDeep(f"JSON nests deeper than {JSON_MAX_DEPTH} levels")
            for child in node.values() if isinstance(node, dict) else node:
                if isinstance(child, dict | list):
                    pending.append((child, depth + 1))
    return value


def _brackets(raw: bytes | str) -> int:
    if isinstance(raw, bytes):
        return raw.count(b"{") + raw.count(b"[")
    return raw.count("{") + raw.count("[")


def parse_int64(text: str) -> int | None:
    """Decimal text as Java's Long.parseLong reads it (ASCII digits, optional sign, surrounding
    spaces allowed), or None when it is not one or lies outside int64. The digits are counted
    before they are converted, so no length of input reaches `int()` unbounded."""
    text = text.strip()
    if not _DECIMAL.fullmatch(text):
        return None
    digits = text.lstrip("+-").lstrip("0")
    if len(digits) > _INT64_DIGITS:
        return None
    number = int(("-" if text[0] == "-" else "") + (digits or "0"))
    return number if MIN_INT64 <= number <= MAX_INT64 else None


def coerce_int(value: Any, name: str) -> int:
    """A JSON integer or its decimal text within int64; `40035 不合法的参数 <name>` otherwise."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value if MIN_INT64 <= value <= MAX_INT64 else None
    elif isinstance(value, str):
        number = parse_int64(value)
    if number is None:
        raise errors.InvalidParameter(name)
    return number


def _scalar_text(item: Any, name: str) -> str:
    if isinstance(item, bool) or not isinstance(item, str | int):
        raise errors.InvalidParameter(name)
    return str(item)
