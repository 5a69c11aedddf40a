"""DingTalk call parameters and their coercion (spec §2.1, DESIGN §3 "Parsing").

Whatever the encoding (native JSON, stringified JSON, form, query), every field is read through
these coercions, so every encoding lands on the same values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from dingbox import errors

MAX_INT64 = 2**63 - 1
_DECIMAL = re.compile(r"[+-]?[0-9]+")
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
        return list(seen)

    def json_object(self, name: str, *, required: bool = True) -> tuple[dict[str, Any] | None, bytes | None]:
        """An object given as an object or as JSON text; also the text itself, when it came as text."""
        value = self.values.get(name)
        if value is None or value == "":
            if required:
                raise errors.MissingParameter(name)
            return None, None
        if isinstance(value, dict):
            return value, None
        if isinstance(value, str):
            raw = value.encode()
            try:
                parsed = orjson.loads(raw)
            except orjson.JSONDecodeError:
                raise errors.InvalidParameter(name) from None
            if not isinstance(parsed, dict):
                raise errors.InvalidParameter(name)
            return parsed, raw
        raise errors.InvalidParameter(name)


def coerce_int(value: Any, name: str) -> int:
    """A JSON integer or its decimal text (ASCII digits, optional sign, as Java's Long.parseLong)."""
    if isinstance(value, bool):
        raise errors.InvalidParameter(name)
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _DECIMAL.fullmatch(value.strip()):
        number = int(value.strip())
    else:
        raise errors.InvalidParameter(name)
    if not -MAX_INT64 <= number <= MAX_INT64:
        raise errors.InvalidParameter(name)
    return number


def _scalar_text(item: Any, name: str) -> str:
    if isinstance(item, bool) or not isinstance(item, str | int):
        raise errors.InvalidParameter(name)
    return str(item)
