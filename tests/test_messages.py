"""Work-notification message types (spec §4, DESIGN §4): every field of the eight types, over HTTP.

A rejected message is answered synchronously by asyncsend_v2 with HTTP 200 and the decided error; an
accepted one is delivered, and the recipient's inbox shows the canonical (coerced) object. The last
tests check the pure module directly for what no HTTP request can reach (limits above 2048 bytes).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from dingbox import errors
from dingbox.domain import messages
from support import Client

MEDIA = "@lADOADmaWMzazQKA"
DROP = object()  # patch value: remove the key

TEXT = {"msgtype": "text", "text": {"content": "月会通知"}}
IMAGE = {"msgtype": "image", "image": {"media_id": MEDIA}}
VOICE = {"msgtype": "voice", "voice": {"media_id": MEDIA, "duration": "10"}}
FILE = {"msgtype": "file", "file": {"media_id": MEDIA}}
LINK = {
    "msgtype": "link",
    "link": {
        "messageUrl": "http://s.dingtalk.com/market",
        "picUrl": "@lALOACZwe2Rk",
        "title": "测试",
        "text": "测试",
    },
}
OA = {
    "msgtype": "oa",
    "oa": {
        "message_url": "http://dingtalk.com",
        "pc_message_url": "https://dingtalk.com/pc",
        "head": {"bgcolor": "FFBBBBBB", "text": "头部标题"},
        "status_bar": {"status_value": "进行中", "status_bg": "0xFFF65E5E"},
        "body": {
            "title": "正文标题",
            "form": [{"key": "姓名:", "value": "张三"}, {"key": "爱好:", "value": "打球、听音乐"}],
            "rich": {"num": "15.6", "unit": "元"},
            "content": "大段文本",
            "image": MEDIA,
            "file_count": "3",
            "author": "李四 ",
        },
    },
}
MARKDOWN = {"msgtype": "markdown", "markdown": {"title": "首屏会话透出的展示内容", "text": "# 标题\n内容"}}
CARD_SINGLE = {
    "msgtype": "action_card",
    "action_card": {
        "title": "xxx",
        "markdown": "### 测试",
        "single_title": "查看",
        "single_url": "https://x.cn",
    },
}
CARD_BUTTONS = {
    "msgtype": "action_card",
    "action_card": {
        "title": "t",
        "markdown": "md",
        "btn_orientation": "1",
        "btn_json_list": [{"title": "a", "action_url": "u"}, {"title": "b", "action_url": "v"}],
    },
}


def patch(msg: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `msg` with the dotted `path` (list indexes as numbers) set to `value`, or removed."""
    out = copy.deepcopy(msg)
    *parents, last = path.split(".")
    node: Any = out
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is DROP:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return out


def send(client: Client, msg: Any) -> dict[str, Any]:
    return client.send(client.token(), msg, userid_list="alice")


def missing(name: str) -> tuple[int, str]:
    return 40035, f"缺少参数 {name}"


def invalid(name: str) -> tuple[int, str]:
    return 40035, f"不合法的参数 {name}"


REJECTED = [
    # text
    (patch(TEXT, "text.content", {"a": 1}), invalid("msg.text.content")),
    (patch(TEXT, "text.content", ["x"]), invalid("msg.text.content")),
    (patch(TEXT, "text.content", True), invalid("msg.text.content")),
    (patch(TEXT, "text.content", DROP), missing("msg.text.content")),
    (patch(TEXT, "text.content", ""), missing("msg.text.content")),
    (patch(TEXT, "text.content", "   "), missing("msg.text.content")),
    (patch(TEXT, "text.content", None), missing("msg.text.content")),
    # image, file
    (patch(IMAGE, "image.media_id", DROP), missing("msg.image.media_id")),
    (patch(IMAGE, "image.media_id", {"id": MEDIA}), invalid("msg.image.media_id")),
    (patch(FILE, "file.media_id", ""), missing("msg.file.media_id")),
    (patch(FILE, "file.media_id", [MEDIA]), invalid("msg.file.media_id")),
    # voice
    (patch(VOICE, "voice.media_id", DROP), missing("msg.voice.media_id")),
    (patch(VOICE, "voice.duration", DROP), missing("msg.voice.duration")),
    (patch(VOICE, "voice.duration", ""), missing("msg.voice.duration")),
    (patch(VOICE, "voice.duration", ["10"]), invalid("msg.voice.duration")),
    (patch(VOICE, "voice.duration", {"s": 10}), invalid("msg.voice.duration")),
    (patch(VOICE, "voice.duration", True), invalid("msg.voice.duration")),
    (patch(VOICE, "voice.duration", "0"), invalid("msg.voice.duration")),
    (patch(VOICE, "voice.duration", 0), invalid("msg.voice.duration")),
    (patch(VOICE, "voice.duration", "60"), invalid("msg.voice.duration")),
    (patch(VOICE, "voice.duration", 60), invalid("msg.voice.duration")),
    (patch(VOICE, "voice.duration", "-5"), invalid("msg.voice.duration")),
    (patch(VOICE, "voice.duration", 10.5), invalid("msg.voice.duration")),
    (patch(VOICE, "voice.duration", "10s"), invalid("msg.voice.duration")),
    (patch(VOICE, "voice.duration", "１０"), invalid("msg.voice.duration")),  # full-width digits
    (patch(VOICE, "voice.duration", "1" * 5000), invalid("msg.voice.duration")),  # past int()'s 4300 digits
    # link
    (patch(LINK, "link.messageUrl", DROP), missing("msg.link.messageUrl")),
    (patch(LINK, "link.picUrl", ""), missing("msg.link.picUrl")),
    (patch(LINK, "link.title", DROP), missing("msg.link.title")),
    (patch(LINK, "link.text", None), missing("msg.link.text")),
    (patch(LINK, "link.title", {"t": 1}), invalid("msg.link.title")),
    # oa
    (patch(OA, "oa.pc_message_url", {"u": 1}), invalid("msg.oa.pc_message_url")),
    (patch(OA, "oa.head", DROP), missing("msg.oa.head")),
    (patch(OA, "oa.head", ["FFBBBBBB"]), invalid("msg.oa.head")),
    (patch(OA, "oa.head.bgcolor", "0xFFBBBBBB"), invalid("msg.oa.head.bgcolor")),
    (patch(OA, "oa.head.bgcolor", "FFBBBBB"), invalid("msg.oa.head.bgcolor")),
    (patch(OA, "oa.head.bgcolor", "FFBBBBBBB"), invalid("msg.oa.head.bgcolor")),
    (patch(OA, "oa.head.bgcolor", "GGBBBBBB"), invalid("msg.oa.head.bgcolor")),
    (patch(OA, "oa.head.bgcolor", "#FBBBBBB"), invalid("msg.oa.head.bgcolor")),
    (patch(OA, "oa.head.bgcolor", "FFBBBBBB\n"), invalid("msg.oa.head.bgcolor")),
    (patch(OA, "oa.head.text", DROP), missing("msg.oa.head.text")),
    (patch(OA, "oa.status_bar", "进行中"), invalid("msg.oa.status_bar")),
    (patch(OA, "oa.status_bar.status_value", DROP), missing("msg.oa.status_bar.status_value")),
    (patch(OA, "oa.status_bar.status_bg", "FFF65E5E"), invalid("msg.oa.status_bar.status_bg")),
    (patch(OA, "oa.status_bar.status_bg", "0xF65E5E"), invalid("msg.oa.status_bar.status_bg")),
    (patch(OA, "oa.status_bar.status_bg", "0xFFF65E5G"), invalid("msg.oa.status_bar.status_bg")),
    (patch(OA, "oa.status_bar.status_bg", ["0xFFF65E5E"]), invalid("msg.oa.status_bar.status_bg")),
    (patch(OA, "oa.body", DROP), missing("msg.oa.body")),
    (patch(OA, "oa.body", "正文"), invalid("msg.oa.body")),
    (patch(OA, "oa.body.content", {"c": 1}), invalid("msg.oa.body.content")),
    (patch(OA, "oa.body.form", {"key": "k", "value": "v"}), invalid("msg.oa.body.form")),
    (patch(OA, "oa.body.form.0", "姓名:张三"), invalid("msg.oa.body.form[0]")),
    (patch(OA, "oa.body.form.1.value", ["张三"]), invalid("msg.oa.body.form[1].value")),
    (patch(OA, "oa.body.rich", ["15.6", "元"]), invalid("msg.oa.body.rich")),
    (patch(OA, "oa.body.rich.num", {"n": 15.6}), invalid("msg.oa.body.rich.num")),
    (patch(OA, "oa.body.file_count", [3]), invalid("msg.oa.body.file_count")),
    # markdown
    (patch(MARKDOWN, "markdown.title", DROP), missing("msg.markdown.title")),
    (patch(MARKDOWN, "markdown.text", ""), missing("msg.markdown.text")),
    (patch(MARKDOWN, "markdown.text", {"md": "# x"}), invalid("msg.markdown.text")),
    # action_card: common fields
    (patch(CARD_SINGLE, "action_card.title", DROP), missing("msg.action_card.title")),
    (patch(CARD_SINGLE, "action_card.markdown", DROP), missing("msg.action_card.markdown")),
    (patch(CARD_SINGLE, "action_card.title", "标" * 65), invalid("msg.action_card.title")),
    # action_card layouts
    (
        patch(patch(CARD_SINGLE, "action_card.single_title", DROP), "action_card.single_url", DROP),
        missing("msg.action_card.single_url/btn_json_list"),
    ),
    (patch(CARD_SINGLE, "action_card.btn_orientation", "0"), invalid("msg.action_card")),
    (patch(CARD_BUTTONS, "action_card.single_url", "https://x.cn"), invalid("msg.action_card")),
    (patch(CARD_SINGLE, "action_card.single_url", DROP), missing("msg.action_card.single_url")),
    (patch(CARD_SINGLE, "action_card.single_title", ""), missing("msg.action_card.single_title")),
    (patch(CARD_BUTTONS, "action_card.btn_json_list", DROP), missing("msg.action_card.btn_json_list")),
    (patch(CARD_BUTTONS, "action_card.btn_orientation", DROP), missing("msg.action_card.btn_orientation")),
    (patch(CARD_BUTTONS, "action_card.btn_json_list", []), missing("msg.action_card.btn_json_list")),
    (patch(CARD_BUTTONS, "action_card.btn_json_list", "[]"), missing("msg.action_card.btn_json_list")),
    (
        patch(CARD_BUTTONS, "action_card.btn_json_list", {"title": "a"}),
        invalid("msg.action_card.btn_json_list"),
    ),
    (patch(CARD_BUTTONS, "action_card.btn_orientation", "2"), invalid("msg.action_card.btn_orientation")),
    (patch(CARD_BUTTONS, "action_card.btn_orientation", -1), invalid("msg.action_card.btn_orientation")),
    (patch(CARD_BUTTONS, "action_card.btn_orientation", True), invalid("msg.action_card.btn_orientation")),
    (
        patch(CARD_BUTTONS, "action_card.btn_orientation", "vertical"),
        invalid("msg.action_card.btn_orientation"),
    ),
    (
        patch(CARD_BUTTONS, "action_card.btn_json_list.1.action_url", DROP),
        missing("msg.action_card.btn_json_list[1].action_url"),
    ),
    (
        patch(CARD_BUTTONS, "action_card.btn_json_list.0.title", ""),
        missing("msg.action_card.btn_json_list[0].title"),
    ),
    (patch(CARD_BUTTONS, "action_card.btn_json_list.0", "a"), invalid("msg.action_card.btn_json_list[0]")),
    # action_card lengths, one past each documented limit
    (patch(CARD_SINGLE, "action_card.single_title", "查" * 21), invalid("msg.action_card.single_title")),
    (patch(CARD_SINGLE, "action_card.single_url", "u" * 501), invalid("msg.action_card.single_url")),
    (
        patch(CARD_BUTTONS, "action_card.btn_json_list.0.title", "按" * 21),
        invalid("msg.action_card.btn_json_list[0].title"),
    ),
    (
        patch(CARD_BUTTONS, "action_card.btn_json_list.0.action_url", "u" * 701),
        invalid("msg.action_card.btn_json_list[0].action_url"),
    ),
    (
        patch(
            patch(CARD_BUTTONS, "action_card.btn_json_list.0.action_url", "u" * 480),
            "action_card.btn_json_list.1.action_url",
            "v" * 480,
        ),
        invalid("msg.action_card.btn_json_list"),
    ),
]


@pytest.mark.parametrize(
    ("msg", "expected"), REJECTED, ids=[f"{i}-{e[1]}" for i, (_, e) in enumerate(REJECTED)]
)
def test_field_errors(client: Client, msg: dict[str, Any], expected: tuple[int, str]) -> None:
    """Each bad field gets 40035 缺少参数/不合法的参数 msg.<type>.<field> (DESIGN §4, spec §4.9)."""
    body = send(client, msg)
    assert (body["errcode"], body["errmsg"]) == expected
    assert set(body) == {"errcode", "errmsg", "request_id"}


def canonical(msg: dict[str, Any], **coerced: Any) -> dict[str, Any]:
    """The type object of `msg` as dingbox stores it: given values replaced by their coerced form."""
    content = copy.deepcopy(msg[msg["msgtype"]])
    for path, value in coerced.items():
        content = patch({"c": content}, "c." + path.replace("__", "."), value)["c"]
    return content


ACCEPTED = [
    (TEXT, canonical(TEXT)),
    (IMAGE, canonical(IMAGE)),
    (VOICE, canonical(VOICE)),
    (FILE, canonical(FILE)),
    (LINK, canonical(LINK)),
    (OA, canonical(OA)),
    (MARKDOWN, canonical(MARKDOWN)),
    (CARD_SINGLE, canonical(CARD_SINGLE)),
    (CARD_BUTTONS, canonical(CARD_BUTTONS)),
    # voice duration bounds, as text or as a JSON integer; stored as text
    (patch(VOICE, "voice.duration", "1"), canonical(VOICE, duration="1")),
    (patch(VOICE, "voice.duration", 59), canonical(VOICE, duration="59")),
    (patch(VOICE, "voice.duration", " 059 "), canonical(VOICE, duration="59")),
    # numbers given for text fields are stored as their decimal text
    (patch(TEXT, "text.content", 12345), canonical(TEXT, content="12345")),
    (patch(OA, "oa.body.rich.num", 15.6), canonical(OA, body__rich__num="15.6")),
    (patch(OA, "oa.body.file_count", 3), canonical(OA, body__file_count="3")),
    # OA: the minimum, and the optional parts left empty (dropped from the stored object)
    (
        {
            "msgtype": "oa",
            "oa": {
                "message_url": "u",
                "head": {"bgcolor": "ffbbbbbb", "text": "十个字的头部标题文本"},
                "body": {},
            },
        },
        {"message_url": "u", "head": {"bgcolor": "ffbbbbbb", "text": "十个字的头部标题文本"}, "body": {}},
    ),
    (
        patch(patch(OA, "oa.pc_message_url", ""), "oa.status_bar", None),
        canonical(OA, pc_message_url=DROP, status_bar=DROP),
    ),
    (patch(OA, "oa.status_bar.status_bg", DROP), canonical(OA, status_bar__status_bg=DROP)),
    (patch(OA, "oa.status_bar.status_bg", "0X00f65e5e"), canonical(OA, status_bar__status_bg="0X00f65e5e")),
    # nested objects sent as JSON text are stored as objects
    (patch(OA, "oa.head", '{"bgcolor": "FFBBBBBB", "text": "头部标题"}'), canonical(OA)),
    # action_card at each documented limit; btn_orientation as a number; the list as JSON text
    (
        patch(patch(CARD_SINGLE, "action_card.title", "标" * 64), "action_card.single_title", "查" * 20),
        canonical(CARD_SINGLE, title="标" * 64, single_title="查" * 20),
    ),
    (patch(CARD_SINGLE, "action_card.single_url", "u" * 500), canonical(CARD_SINGLE, single_url="u" * 500)),
    (
        patch(
            patch(CARD_BUTTONS, "action_card.btn_json_list.0.title", "按" * 20),
            "action_card.btn_json_list.1.action_url",
            "v" * 700,
        ),
        canonical(CARD_BUTTONS, btn_json_list__0__title="按" * 20, btn_json_list__1__action_url="v" * 700),
    ),
    (patch(CARD_BUTTONS, "action_card.btn_orientation", 0), canonical(CARD_BUTTONS, btn_orientation="0")),
    (
        patch(
            CARD_BUTTONS,
            "action_card.btn_json_list",
            '[{"title":"a","action_url":"u"},{"title":"b","action_url":"v"}]',
        ),
        canonical(CARD_BUTTONS),
    ),
    # longer than DingTalk suggests (建议) is still accepted
    (patch(TEXT, "text.content", "字" * 600), canonical(TEXT, content="字" * 600)),
    (patch(LINK, "link.title", "题" * 101), canonical(LINK, title="题" * 101)),
]


@pytest.mark.parametrize(
    ("msg", "stored"), ACCEPTED, ids=[f"{i}-{m['msgtype']}" for i, (m, _) in enumerate(ACCEPTED)]
)
def test_valid_messages_are_delivered_as_canonical(
    client: Client, msg: dict[str, Any], stored: dict[str, Any]
) -> None:
    """A valid message of each type is accepted and delivered with its fields coerced (spec §4)."""
    body = send(client, msg)
    assert body["errcode"] == 0, body
    task = client.task(body["task_id"], wait=5)
    assert task["counts"] == {"delivered": 1}
    [message] = client.inbox("alice")
    assert message["msgtype"] == msg["msgtype"]
    assert message["content"] == stored


# DingTalk's own OA sample (spec seeds, asyncsend_v2 Java sample): head.text and body.content only
SEED_OA = {"msgtype": "oa", "oa": {"head": {"text": "head"}, "body": {"content": "xxx"}}}
OA_WARNINGS = [
    "msg.oa.message_url is missing; DingTalk's pages mark it required",
    "msg.oa.head.bgcolor is missing; DingTalk's pages mark it required",
]


LONG_HEAD = "十一个字的头部标题文本"


@pytest.mark.parametrize(
    ("msg", "stored", "warnings"),
    [
        (SEED_OA, SEED_OA["oa"], OA_WARNINGS),
        (patch(OA, "oa.message_url", DROP), canonical(OA, message_url=DROP), OA_WARNINGS[:1]),
        (patch(OA, "oa.head.bgcolor", ""), canonical(OA, head__bgcolor=DROP), OA_WARNINGS[1:]),
        (
            patch(OA, "oa.head.text", LONG_HEAD),
            canonical(OA, head__text=LONG_HEAD),
            ["msg.oa.head.text is longer than 10 characters, the length DingTalk suggests"],
        ),
    ],
    ids=["seed_sample", "no_message_url", "no_bgcolor", "long_head_text"],
)
def test_oa_leniencies_are_accepted_with_a_warning(
    client: Client, msg: dict[str, Any], stored: dict[str, Any], warnings: list[str]
) -> None:
    """DESIGN §4: no message_url, no head.bgcolor, head.text over 10 characters (the client shows the
    app's name there) are accepted, with a warning on the task; DingTalk's own OA sample sets neither."""
    body = send(client, msg)
    assert body["errcode"] == 0, body
    task = client.task(body["task_id"], wait=5)
    assert (task["counts"], task["warnings"]) == ({"delivered": 1}, warnings)
    [message] = client.inbox("alice")
    assert message["content"] == stored


def test_valid_message_stored_request_is_as_received(client: Client) -> None:
    """Coercion never alters the request as received, which the task keeps verbatim (DESIGN §7)."""
    msg = patch(patch(CARD_BUTTONS, "action_card.btn_orientation", 1), "action_card.btn_json_list.0.title", 7)
    body = send(client, msg)
    assert body["errcode"] == 0, body
    task = client.task(body["task_id"], wait=5)
    assert task["request"] == {"agent_id": 1001, "userid_list": "alice", "msg": msg}
    [message] = client.inbox("alice")
    assert message["content"]["btn_orientation"] == "1"
    assert message["content"]["btn_json_list"][0] == {"title": "7", "action_url": "u"}


# -- the pure module: what HTTP cannot reach --------------------------------------------------------


def test_markdown_text_limit_is_5000_characters() -> None:
    """markdown.text holds at most 5000 characters (spec §10 #37); unreachable under the 2048-byte rule."""
    ok = patch(MARKDOWN, "markdown.text", "x" * 5000)
    assert messages.validate_message(ok)["markdown"]["text"] == "x" * 5000
    with pytest.raises(errors.InvalidParameter) as caught:
        messages.validate_message(patch(MARKDOWN, "markdown.text", "x" * 5001))
    assert (caught.value.errcode, caught.value.message) == invalid("msg.markdown.text")


def test_limits_table_matches_the_spec() -> None:
    """The enforced and advisory lengths are those of spec §4, §10 #37–#38 and §12.6."""
    assert messages.MAX_CHARS == {
        "markdown.text": 5000,
        "action_card.title": 64,
        "action_card.single_title": 20,
        "action_card.single_url": 500,
        "action_card.btn_json_list": 1000,
        "action_card.btn_json_list[].title": 20,
        "action_card.btn_json_list[].action_url": 700,
    }
    assert messages.ADVISORY_CHARS == {
        "text.content": 500,
        "link.title": 100,
        "link.text": 500,
        "oa.head.text": 10,
        "oa.body.title": 50,
        "markdown.text": 500,
        "action_card.markdown": 1000,
    }
    assert messages.MSG_MAX_BYTES == 2048


def test_advisory_warnings_name_fields_longer_than_suggested() -> None:
    """Lengths DingTalk only suggests (建议) give a warning, not an error (spec §10 #37)."""
    long_text = messages.validate_message(patch(MARKDOWN, "markdown.text", "x" * 501))
    assert messages.advisory_warnings(long_text) == [
        "msg.markdown.text is longer than 500 characters, the length DingTalk suggests"
    ]
    assert (
        messages.advisory_warnings(messages.validate_message(patch(MARKDOWN, "markdown.text", "x" * 500)))
        == []
    )
    assert messages.advisory_warnings(messages.validate_message(OA)) == []


def test_validation_is_idempotent_and_pure() -> None:
    """The canonical message validates to itself and the input is never modified (DESIGN §3 identity)."""
    for msg, _ in ACCEPTED:
        before = copy.deepcopy(msg)
        once = messages.validate_message(msg)
        assert msg == before
        assert messages.validate_message(once) == once
