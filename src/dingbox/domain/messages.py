"""Work-notification messages (spec §4): the eight types, validated field by field, and their identity.

`validate_message` returns the canonical message — `{"msgtype": t, t: {...}}` — built as a new object
(the request as received is never altered): sibling objects of other types are dropped, as DingTalk
ignores them; numbers given for text fields become their decimal text; empty optional fields are
dropped; keys DingTalk does not document are kept as sent. Nested objects and lists may also arrive
as JSON text (stringifying clients) and are parsed.

Errors follow DESIGN §4: a missing field, or one that is null, empty or only spaces, is
`40035 缺少参数 msg.<type>.<field>`; a wrong JSON type, a bad format or an over-long value is
`40035 不合法的参数 msg.<type>.<field>`; an unknown msgtype is `40008 不合法的消息类型`. List items
are named by index: `msg.action_card.btn_json_list[0].action_url`.

Required fields are those spec §4 marks required, including the ones it marks "yes (unverified)"
(link `picUrl`/`title`/`text`, oa `head.text`): an app that passes dingbox must pass DingTalk. The
exceptions are DESIGN §4's: an OA message without `message_url` or `head.bgcolor` (DingTalk's own
sample sets neither) is accepted with a warning (`oa_warnings`), and so is a `head.text` over 10
characters (work notifications show the app's name there instead). Formats: oa `head.bgcolor`, when
given, is exactly 8 hex digits AARRGGBB without `0x`;
`status_bar.status_bg` is `0x` followed by 8 hex digits; voice `duration` is a whole number of
seconds 1..59, as a JSON integer or decimal text (stored as text, "10"). action_card takes exactly
one layout: `single_title` + `single_url`, or `btn_orientation` ("0"/"1", text or integer) +
a non-empty `btn_json_list` of `{title, action_url}`.

Lengths count characters (Unicode code points). `MAX_CHARS` holds the documented hard limits,
enforced; `ADVISORY_CHARS` the lengths DingTalk only suggests (建议), accepted and reported by
`advisory_warnings`. Fields in neither table have no limit of their own: the 2048-byte rule
(`accept_message`, on the canonical JSON however `msg` arrived) bounds them, which also makes every
limit at or above 2048 characters unreachable through asyncsend_v2.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Any

import orjson

from dingbox import errors
from dingbox.params import load_json, parse_int64

MSG_MAX_BYTES = 2048
MSGTYPES = ("text", "image", "voice", "file", "link", "oa", "markdown", "action_card")

# Hard limits in characters, keyed by field path (list items as `[]`).
MAX_CHARS: dict[str, int] = {
    "markdown.text": 5000,  # spec §10 #37, §12.6: at most 5000 (current doc)
    "action_card.title": 64,  # spec §4.8
    "action_card.single_title": 20,  # spec §4.8
    "action_card.single_url": 500,  # spec §4.8
    "action_card.btn_json_list": 1000,  # spec §12.6; counted on the list's canonical JSON text
    "action_card.btn_json_list[].title": 20,  # spec §4.8
    "action_card.btn_json_list[].action_url": 700,  # spec §10 #38, §12.6
}

# Suggested lengths (spec §4.1, §4.5, §4.6, §4.7, §12.6): longer values are accepted with a warning.
ADVISORY_CHARS: dict[str, int] = {
    "text.content": 500,
    "link.title": 100,
    "link.text": 500,
    "oa.head.text": 10,  # spec §4.6 [JAVA-SDK Head] 长度限制为最多10个字符; shown as the app's name anyway
    "oa.body.title": 50,
    "markdown.text": 500,
    "action_card.markdown": 1000,
}

_ADVISORY_BY_TYPE: dict[str, list[tuple[str, int, list[str]]]] = {}
for _path, _limit in ADVISORY_CHARS.items():
    _ADVISORY_BY_TYPE.setdefault(_path.split(".")[0], []).append((_path, _limit, _path.split(".")))
# per type: a canonical message no longer than its type's shortest advisory length cannot exceed any
_SHORTEST_ADVISORY = {t: min(limit for _, limit, _ in fields) for t, fields in _ADVISORY_BY_TYPE.items()}

VOICE_SECONDS = range(1, 60)  # spec §4.3: a positive integer below 60
BTN_ORIENTATIONS = ("0", "1")  # spec §4.8, §10 #11: "0" vertical, "1" horizontal

_OA_BGCOLOR = re.compile(r"[0-9A-Fa-f]{8}")
_STATUS_BG = re.compile(r"0[xX][0-9A-Fa-f]{8}")
_DIGITS = re.compile(r"[0-9]+")
_INDEX = re.compile(r"\[\d+\]")

Obj = dict[str, Any]


def canonical_json(msg: Any) -> bytes:
    """Sorted keys, compact separators, UTF-8 text unescaped (DESIGN §3 "Content identity")."""
    return orjson.dumps(msg, option=orjson.OPT_SORT_KEYS)


def content_hash(canonical: bytes) -> bytes:
    return hashlib.sha256(canonical).digest()[:16]


def accept_message(msg: Any) -> tuple[Obj, bytes]:
    """Validate a message under the 2048-byte rule (DESIGN §3); give it canonical and as canonical JSON.

    The bytes counted are the canonical JSON's, whatever form `msg` came in: as an object, as JSON
    text, or as the ASCII-escaped text of Python's `json.dumps` (`dingtalk-sdk`), whose `\\u` escapes
    take six bytes for a character the canonical form writes in three.
    """
    canonical = validate_message(msg)
    body = canonical_json(canonical)
    if len(body) > MSG_MAX_BYTES:
        raise errors.MsgTooLong()
    return canonical, body


def validate_message(msg: Any) -> Obj:
    if not isinstance(msg, dict):
        raise errors.InvalidParameter("msg")
    msgtype = msg.get("msgtype")
    if msgtype is None or msgtype == "":
        raise errors.MissingParameter("msg.msgtype")
    if not isinstance(msgtype, str) or msgtype not in MSGTYPES:
        raise errors.MsgTypeInvalid()
    path = f"msg.{msgtype}"
    body = _object(msg.get(msgtype), path)
    assert body is not None
    return {"msgtype": msgtype, msgtype: _VALIDATORS[msgtype](body, path)}


def advisory_warnings(canonical: Obj, canonical_bytes: int | None = None) -> list[str]:
    """What a canonical message does that DingTalk advises against: fields longer than it suggests
    (`ADVISORY_CHARS`), and the OA fields its pages mark required but its own sample leaves out.

    Given the size of the canonical JSON, a message too short to hold a long field is not walked.
    """
    warnings = oa_warnings(canonical["oa"]) if canonical["msgtype"] == "oa" else []
    if canonical_bytes is not None and canonical_bytes <= _SHORTEST_ADVISORY.get(canonical["msgtype"], 0):
        return warnings
    for field_path, limit, keys in _ADVISORY_BY_TYPE.get(canonical["msgtype"], ()):
        value: Any = canonical
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, str) and len(value) > limit:
            warnings.append(
                f"msg.{field_path} is longer than {limit} characters, the length DingTalk suggests"
            )
    return warnings


def oa_warnings(oa: Obj) -> list[str]:
    """OA fields DingTalk's pages mark required that its own sample leaves out (DESIGN §4)."""
    missing = []
    if "message_url" not in oa:
        missing.append("msg.oa.message_url")
    if "bgcolor" not in oa["head"]:
        missing.append("msg.oa.head.bgcolor")
    return [f"{where} is missing; DingTalk's pages mark it required" for where in missing]


# -- field readers: each reads `obj[key]` and stores the coerced value back into `obj` (a copy) ---


def _given(obj: Obj, key: str) -> bool:
    value = obj.get(key)
    return value is not None and value != "" and value != []


def _object(value: Any, where: str, *, required: bool = True) -> Obj | None:
    """A copy of an object given as an object or as JSON text."""
    if value is None or value == "":
        if required:
            raise errors.MissingParameter(where)
        return None
    if isinstance(value, str) and value.lstrip().startswith("{"):
        value = _json_text(value, where)
    if not isinstance(value, dict):
        raise errors.InvalidParameter(where)
    return dict(value)


def _list(value: Any, where: str, *, required: bool = True) -> list[Any] | None:
    """A list given as a list or as JSON text; an empty list counts as missing."""
    if isinstance(value, str) and value.lstrip().startswith("["):
        value = _json_text(value, where)
    if value is None or value == "" or value == []:
        if required:
            raise errors.MissingParameter(where)
        return None
    if not isinstance(value, list):
        raise errors.InvalidParameter(where)
    return value


def _json_text(text: str, where: str) -> Any:
    try:
        return load_json(text)
    except ValueError:
        raise errors.InvalidParameter(where) from None


def _child(obj: Obj, key: str, path: str, *, required: bool = True) -> Obj | None:
    child = _object(obj.get(key), f"{path}.{key}", required=required)
    if child is None:
        obj.pop(key, None)
    else:
        obj[key] = child
    return child


def _text(obj: Obj, key: str, path: str, *, required: bool = True) -> str | None:
    """A string (a number is taken as its decimal text), checked against `MAX_CHARS`."""
    value = obj.get(key)
    where = f"{path}.{key}"
    if value is None or value == "":
        if required:
            raise errors.MissingParameter(where)
        obj.pop(key, None)
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise errors.InvalidParameter(where)
    text = value if isinstance(value, str) else str(value)
    if required and not text.strip():
        raise errors.MissingParameter(where)
    limit = MAX_CHARS.get(_INDEX.sub("[]", where.removeprefix("msg.")))
    if limit is not None and len(text) > limit:
        raise errors.InvalidParameter(where)
    obj[key] = text
    return text


# -- the eight types -----------------------------------------------------------------------------


def _text_msg(body: Obj, path: str) -> Obj:
    _text(body, "content", path)
    return body


def _media(body: Obj, path: str) -> Obj:
    _text(body, "media_id", path)
    return body


def _voice(body: Obj, path: str) -> Obj:
    _text(body, "media_id", path)
    duration = body.get("duration")
    where = f"{path}.duration"
    if duration is None or (isinstance(duration, str) and not duration.strip()):
        raise errors.MissingParameter(where)
    seconds: int | None = None
    if isinstance(duration, str) and _DIGITS.fullmatch(duration.strip()):
        seconds = parse_int64(duration)
    elif isinstance(duration, int) and not isinstance(duration, bool):
        seconds = duration
    if seconds is None or seconds not in VOICE_SECONDS:
        raise errors.InvalidParameter(where)
    body["duration"] = str(seconds)
    return body


def _link(body: Obj, path: str) -> Obj:
    for key in ("messageUrl", "picUrl", "title", "text"):
        _text(body, key, path)
    return body


def _markdown(body: Obj, path: str) -> Obj:
    _text(body, "title", path)
    _text(body, "text", path)
    return body


def _oa(body: Obj, path: str) -> Obj:
    _text(body, "message_url", path, required=False)
    _text(body, "pc_message_url", path, required=False)
    head = _child(body, "head", path)
    assert head is not None
    bgcolor = _text(head, "bgcolor", f"{path}.head", required=False)
    if bgcolor is not None and not _OA_BGCOLOR.fullmatch(bgcolor):
        raise errors.InvalidParameter(f"{path}.head.bgcolor")
    _text(head, "text", f"{path}.head")
    bar = _child(body, "status_bar", path, required=False)
    if bar is not None:
        _status_bar(bar, f"{path}.status_bar")
    content = _child(body, "body", path)
    assert content is not None
    where = f"{path}.body"
    for key in ("title", "content", "image", "file_count", "author"):
        _text(content, key, where, required=False)
    form = _list(content.get("form"), f"{where}.form", required=False)
    if form is None:
        content.pop("form", None)
    else:
        content["form"] = [_form_row(row, f"{where}.form[{i}]") for i, row in enumerate(form)]
    rich = _child(content, "rich", where, required=False)
    if rich is not None:
        _text(rich, "num", f"{where}.rich", required=False)
        _text(rich, "unit", f"{where}.rich", required=False)
    return body


def _form_row(value: Any, where: str) -> Obj:
    row = _object(value, where)
    assert row is not None
    _text(row, "key", where, required=False)
    _text(row, "value", where, required=False)
    return row


def _status_bar(bar: Obj, path: str) -> None:
    """An OA status bar, in a message or in status_bar/update (spec §3.6): coerced in place."""
    _text(bar, "status_value", path)
    status_bg = _text(bar, "status_bg", path, required=False)
    if status_bg is not None and not _STATUS_BG.fullmatch(status_bg):
        raise errors.InvalidParameter(f"{path}.status_bg")


def _action_card(body: Obj, path: str) -> Obj:
    _text(body, "title", path)
    _text(body, "markdown", path)
    single = _given(body, "single_title") or _given(body, "single_url")
    buttons = _given(body, "btn_orientation") or _given(body, "btn_json_list")
    if single and buttons:
        raise errors.InvalidParameter(path)
    if not single and not buttons:
        raise errors.MissingParameter(f"{path}.single_url/btn_json_list")
    if single:
        _text(body, "single_title", path)
        _text(body, "single_url", path)
        return body
    orientation = body.get("btn_orientation")
    where = f"{path}.btn_orientation"
    if orientation is None or orientation == "":
        raise errors.MissingParameter(where)
    if isinstance(orientation, bool) or not isinstance(orientation, str | int):
        raise errors.InvalidParameter(where)
    if str(orientation).strip() not in BTN_ORIENTATIONS:
        raise errors.InvalidParameter(where)
    body["btn_orientation"] = str(orientation).strip()
    where = f"{path}.btn_json_list"
    items = _list(body.get("btn_json_list"), where)
    assert items is not None
    buttons_list = [_button(item, f"{where}[{i}]") for i, item in enumerate(items)]
    if len(canonical_json(buttons_list).decode()) > MAX_CHARS["action_card.btn_json_list"]:
        raise errors.InvalidParameter(where)
    body["btn_json_list"] = buttons_list
    return body


def _button(value: Any, where: str) -> Obj:
    button = _object(value, where)
    assert button is not None
    _text(button, "title", where)
    _text(button, "action_url", where)
    return button


_VALIDATORS: dict[str, Callable[[Obj, str], Obj]] = {
    "text": _text_msg,
    "image": _media,
    "voice": _voice,
    "file": _media,
    "link": _link,
    "oa": _oa,
    "markdown": _markdown,
    "action_card": _action_card,
}
