"""What an identifier can hold: never a NUL character.

A userid, token, corp_id, robot code, template id or processQueryKey is an identifier, and no
identifier DingTalk issues or an org can define holds a NUL (U+0000). PostgreSQL's text columns
cannot even carry one, while SQLite's can, so an identifier holding a NUL is decided here, before
any store sees it: it names nothing, and each surface gives its own answer for an unknown id. Free
text (message content, names shown to people) keeps its NULs: it is stored as escaped JSON.
"""

from __future__ import annotations

from collections.abc import Iterable

NUL = "\x00"


def names_nothing(value: str | None) -> bool:
    """Whether `value` cannot be an identifier because it holds a NUL."""
    return value is not None and NUL in value


def any_names_nothing(values: Iterable[str | None]) -> bool:
    return any(names_nothing(value) for value in values)
