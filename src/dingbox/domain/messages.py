"""Work-notification messages (spec §4): the eight types, validated field by field, and their identity.

`validate_message` returns the canonical message — `{"msgtype": t, t: {...}}` with coerced values;
sibling objects of other types are ignored, as DingTalk does. Errors follow DESIGN §4: a missing or
empty required field is `40035 缺少参数 msg.<type>.<field>`, a wrong type or value
`40035 不合法的参数 msg.<type>.<field>`, an unknown type `40008`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Any

import orjson

from dingbox import errors

MSG_MAX_BYTES = 2048
MSGTYPES = ("text", "image", "voice", "file", "link", "oa", "markdown", "action_card")
_OA_BGCOLOR = re.compile(r"^[0-9A-Fa-f]{8}$")
_STATUS_BG = re.compile(r"^0x[0-9A-Fa-f]{8}$")

Obj = dict[str, Any]


def canonical_json(msg: Obj) -> bytes:
    """Sorted keys, compact separators, UTF-8 text unescaped (DESIGN §3 "Content identity")."""
    return orjson.dumps(msg, option=orjson.OPT_SORT_KEYS)


def content_hash(canonical: bytes) -> bytes:
    return hashlib.sha256(canonical).digest()[:16]


def check_size(msg: Obj, raw_text: bytes | None) -> None:
    """The 2048-byte rule: the text as received when `msg` came as text, else the canonical JSON."""
    size = len(raw_text) if raw_text is not None else len(canonical_json(msg))
    if size > MSG_MAX_BYTES:
        raise errors.MsgTooLong()


def validate_message(msg: Any) -> Obj:
    if not isinstance(msg, dict):
        raise errors.InvalidParameter("msg")
    msgtype = msg.get("msgtype")
    if msgtype is None or msgtype == "":
        raise errors.MissingParameter("msg.msgtype")
    if not isinstance(msgtype, str) or msgtype not in MSGTYPES:
        raise errors.MsgTypeInvalid()
    body = msg.get(msgtype)
    path = f"msg.{msgtype}"
    if body is None:
        raise errors.MissingParameter(path)
    body = _parse_object(body, path)
    return {"msgtype": msgtype, msgtype: _VALIDATORS[msgtype](body, path)}


# -- field readers -------------------------------------------------------------------------------


def _parse_object(value: Any, path: str) -> Obj:
    """An object, or JSON text of one (stringified clients send nested objects as text)."""
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise errors.InvalidParameter(path) from None
    if not isinstance(value, dict):
        raise errors.InvalidParameter(path)
    return dict(value)


def _text(obj: Obj, key: str, path: str, *, required: bool = True, max_chars: int | None = None) -> None:
    """Require (or allow) a string at obj[key]; numbers are taken as their decimal text."""
    value = obj.get(key)
    where = f"{path}.{key}"
    if value is None or value == "":
        if required:
            raise errors.MissingParameter(where)
        return
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise errors.InvalidParameter(where)
    if not isinstance(value, str):
        obj[key] = value = str(value)
    if required and not value.strip():
        raise errors.MissingParameter(where)
    if max_chars is not None and len(value) > max_chars:
        raise errors.InvalidParameter(where, f"longer than {max_chars} characters")


def _media(obj: Obj, key: str, path: str) -> None:
    _text(obj, key, path)


# -- the eight types -----------------------------------------------------------------------------


def _text_msg(body: Obj, path: str) -> Obj:
    _text(body, "content", path)
    return body


def _image(body: Obj, path: str) -> Obj:
    _media(body, "media_id", path)
    return body


def _file(body: Obj, path: str) -> Obj:
    _media(body, "media_id", path)
    return body


def _voice(body: Obj, path: str) -> Obj:
    _media(body, "media_id", path)
    _text(body, "duration", path)
    duration = str(body["duration"]).strip()
    if not duration.isdigit() or not 0 < int(duration) < 60:
        raise errors.InvalidParameter(f"{path}.duration", "a whole number of seconds from 1 to 59")
    body["duration"] = duration
    return body


def _link(body: Obj, path: str) -> Obj:
    _text(body, "messageUrl", path, max_chars=2000)
    _text(body, "picUrl", path, max_chars=2000)
    _text(body, "title", path, max_chars=100)
    _text(body, "text", path, max_chars=500)
    return body


def _markdown(body: Obj, path: str) -> Obj:
    _text(body, "title", path, max_chars=100)
    _text(body, "text", path, max_chars=5000)
    return body


def _oa(body: Obj, path: str) -> Obj:
    _text(body, "message_url", path, max_chars=2000)
    _text(body, "pc_message_url", path, required=False, max_chars=2000)
    if body.get("head") is None:
        raise errors.MissingParameter(f"{path}.head")
    head = body["head"] = _parse_object(body["head"], f"{path}.head")
    _text(head, "bgcolor", f"{path}.head")
    if not _OA_BGCOLOR.match(head["bgcolor"]):
        raise errors.InvalidParameter(f"{path}.head.bgcolor", "8 hex digits AARRGGBB without 0x")
    _text(head, "text", f"{path}.head", required=False, max_chars=10)
    if body.get("status_bar") is not None:
        bar = body["status_bar"] = _parse_object(body["status_bar"], f"{path}.status_bar")
        _status_bar(bar, f"{path}.status_bar")
    if body.get("body") is None:
        raise errors.MissingParameter(f"{path}.body")
    content = body["body"] = _parse_object(body["body"], f"{path}.body")
    where = f"{path}.body"
    for key in ("title", "content", "image", "file_count", "author"):
        _text(content, key, where, required=False)
    if content.get("form") is not None:
        form = content["form"]
        if not isinstance(form, list):
            raise errors.InvalidParameter(f"{where}.form")
        for i, row in enumerate(form):
            if not isinstance(row, dict):
                raise errors.InvalidParameter(f"{where}.form[{i}]")
            _text(row, "key", f"{where}.form[{i}]", required=False)
            _text(row, "value", f"{where}.form[{i}]", required=False)
    if content.get("rich") is not None:
        rich = content["rich"] = _parse_object(content["rich"], f"{where}.rich")
        _text(rich, "num", f"{where}.rich", required=False)
        _text(rich, "unit", f"{where}.rich", required=False)
    return body


def _status_bar(bar: Obj, path: str) -> None:
    _text(bar, "status_value", path)
    _text(bar, "status_bg", path, required=False)
    if bar.get("status_bg") and not _STATUS_BG.match(bar["status_bg"]):
        raise errors.InvalidParameter(f"{path}.status_bg", "0xAARRGGBB")


def _action_card(body: Obj, path: str) -> Obj:
    _text(body, "title", path, max_chars=64)
    _text(body, "markdown", path, max_chars=5000)
    single = any(body.get(k) not in (None, "") for k in ("single_title", "single_url"))
    buttons = any(body.get(k) not in (None, "") for k in ("btn_orientation", "btn_json_list"))
    if single and buttons:
        raise errors.InvalidParameter(path, "single_title/single_url and btn_orientation/btn_json_list exclude each other")
    if not buttons:
        _text(body, "single_title", path, max_chars=20)
        _text(body, "single_url", path, max_chars=500)
        return body
    orientation = body.get("btn_orientation")
    if orientation is None or orientation == "":
        raise errors.MissingParameter(f"{path}.btn_orientation")
    if isinstance(orientation, bool) or str(orientation) not in ("0", "1"):
        raise errors.InvalidParameter(f"{path}.btn_orientation", '"0" vertical or "1" horizontal')
    body["btn_orientation"] = str(orientation)
    buttons_list = body.get("btn_json_list")
    if buttons_list is None or buttons_list == "" or buttons_list == []:
        raise errors.MissingParameter(f"{path}.btn_json_list")
    if isinstance(buttons_list, str):
        try:
            buttons_list = orjson.loads(buttons_list)
        except orjson.JSONDecodeError:
            raise errors.InvalidParameter(f"{path}.btn_json_list") from None
    if not isinstance(buttons_list, list) or not buttons_list:
        raise errors.InvalidParameter(f"{path}.btn_json_list")
    for i, button in enumerate(buttons_list):
        where = f"{path}.btn_json_list[{i}]"
        if not isinstance(button, dict):
            raise errors.InvalidParameter(where)
        _text(button, "title", where, max_chars=20)
        _text(button, "action_url", where, max_chars=700)
    body["btn_json_list"] = buttons_list
    return body


_VALIDATORS: dict[str, Callable[[Obj, str], Obj]] = {
    "text": _text_msg,
    "image": _image,
    "voice": _voice,
    "file": _file,
    "link": _link,
    "oa": _oa,
    "markdown": _markdown,
    "action_card": _action_card,
}
