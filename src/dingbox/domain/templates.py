"""Message templates (spec §3.2): what a template may hold, the `data` of a send, and substitution.

A template is a work-notification message of one of the kinds DingTalk offers for templates
(markdown, action_card, oa) whose string fields hold `${key}` placeholders. A send fills them from
its `data`, an object of string keys and values. Substitution is one pass over each string: a value
that itself looks like `${other}` is delivered as written, never expanded again. A placeholder whose
key `data` lacks stays visible as `${key}` and is reported, so a forgotten key shows in the inbox
and in the task's warnings instead of silently vanishing.

Pure: the service validates what substitution produced with `domain.messages`, as it would any
message, so the delivered message obeys every field rule and the 2048-byte rule.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

import orjson

from dingbox import errors
from dingbox.params import load_json

TEMPLATE_MSGTYPES = ("markdown", "action_card", "oa")  # spec §3.2: Markdown, ActionCard, Form (OA)
TEMPLATE_STATUSES = ("approved", "pending", "disabled")
PLACEHOLDER = re.compile(r"\$\{([^${}]+)\}")


def msg_problem(msg: Any) -> tuple[str, str] | None:
    """Why `msg` cannot be a template, as (field path below the template, problem); None if it can.

    Only the shape is checked here: field rules (required fields, formats, lengths) apply to the
    message a send delivers, after substitution, since a placeholder may stand for a whole field.
    """
    if not isinstance(msg, dict):
        return "msg", "must be a message object"
    msgtype = msg.get("msgtype")
    if not isinstance(msgtype, str) or msgtype not in TEMPLATE_MSGTYPES:
        return "msg.msgtype", f"must be one of {', '.join(TEMPLATE_MSGTYPES)}"
    if not isinstance(msg.get(msgtype), dict):
        return f"msg.{msgtype}", "must be an object"
    try:
        orjson.dumps(msg)  # stored as JSON, so YAML-only values (sets, bytes, non-text keys) are refused
    except TypeError:
        return "msg", "must hold JSON values only"
    return None


def template_message(msg: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a template that is sent: its msgtype and that type's object (siblings dropped)."""
    msgtype = msg["msgtype"]
    return {"msgtype": msgtype, msgtype: msg[msgtype]}


def coerce_data(value: Any) -> tuple[dict[str, str], list[str]]:
    """A send's `data` as {key: text}, with warnings about lenient parsing.

    `data` is an object (the Java SDK parses the JSON text it is given) or JSON text (the other
    samples). DingTalk's own curl sample sends the text with its quotes escaped, `{\\"名字\\":\\"张三\\"}`:
    that is accepted with a warning, as the same sample's `\\"123,456\\"` lists are. Keys and values
    are strings; a number is taken as its decimal text; anything else is `40035 不合法的参数 data`.
    """
    warnings: list[str] = []
    if value is None or value == "":
        return {}, warnings
    if isinstance(value, str):
        parsed = _json_object(value)
        if parsed is None and '\\"' in value:
            parsed = _json_object(value.replace('\\"', '"'))
            if parsed is not None:
                warnings.append("data had its quotes escaped as \\\", as in DingTalk's own curl sample")
        if parsed is None:
            raise errors.InvalidParameter("data")
        value = parsed
    if not isinstance(value, dict):
        raise errors.InvalidParameter("data")
    data: dict[str, str] = {}
    for key, item in value.items():
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise errors.InvalidParameter(f"data.{key}")
        data[key] = item if isinstance(item, str) else str(item)
    return data, warnings


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        parsed = load_json(text)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


class Filled(NamedTuple):
    msg: dict[str, Any]
    missing: list[str]  # placeholder keys `data` did not give, in order of first appearance


def fill(msg: Mapping[str, Any], data: Mapping[str, str]) -> Filled:
    """A copy of `msg` with every `${key}` in its string values replaced by `data[key]`."""
    missing: dict[str, None] = {}

    def substitute(match: re.Match[str]) -> str:
        key = match.group(1)
        if key in data:
            return data[key]
        missing.setdefault(key)
        return match.group(0)

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return PLACEHOLDER.sub(substitute, value) if "${" in value else value
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    filled = walk(dict(msg))
    return Filled(filled, list(missing))


def missing_warnings(missing: list[str]) -> list[str]:
    return [f"data has no value for ${{{key}}}; it was sent as written" for key in missing]
