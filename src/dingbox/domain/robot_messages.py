"""Robot one-to-one messages (spec §5.1, §5.6): the 13 msgKeys, their `msgParam` fields and the checks
of a batchSend in the row order of spec §5.1.

Missing fields follow DingTalk's two-level rule: an empty `msgParam` object gets the msgKey's own
code (`miss.param.text`), otherwise the first missing required field gets its code
(`miss.param.contentOfText`). A field that is null, empty or only spaces is missing. Fields are text;
numbers are accepted as sent (clients send durations both ways), objects, lists and booleans are
refused with `invalidParameter.param.invalid`. Fields a msgKey does not know are kept as sent, as
DingTalk ignores them. Button keys are case-sensitive (`actionURL1`, `buttonUrl1`): the spellings
clients get wrong (`actionUrl1`) count as missing, as on DingTalk.

The action cards with buttons share three codes (spec §5.6, inferred mapping): no button field at all
is `miss.param.actionCardTobtns`; a button without its title or its URL is `…TobtnsTotitle` /
`…TobtnsToactionUrl`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dingbox import errors
from dingbox.domain.limits import AppLimits
from dingbox.domain.messages import canonical_json
from dingbox.domain.pipeline import BatchFacts, DecisionRow, Outcome, RecipientRow, decide_batch
from dingbox.params import load_json

USER_IDS_MAX = 20  # spec §5.1, §10 #6: the seed's field and intro say 20 (its error text says 100)
MSG_PARAM_MAX_BYTES = 15000  # spec §5.1: the group send's documented limit, used for one-to-one too


@dataclass(frozen=True)
class Field:
    name: str
    code: str  # miss.param.* when missing
    needs: str  # what the code's message names, e.g. "text->content"
    required: bool = True


@dataclass(frozen=True)
class MsgKey:
    name: str
    empty_code: str
    empty_needs: str
    fields: tuple[Field, ...]


def _card_buttons(title: str, url: str, count: int) -> tuple[Field, ...]:
    found: list[Field] = []
    for n in range(1, count + 1):
        found.append(Field(f"{title}{n}", "miss.param.actionCardTobtnsTotitle", "actionCard->btns->title"))
        found.append(
            Field(f"{url}{n}", "miss.param.actionCardTobtnsToactionUrl", "actionCard->btns->actionURL")
        )
    return tuple(found)


_CARD_HEAD = (
    Field("title", "miss.param.actionCardTotitle", "actionCard->title"),
    Field("text", "miss.param.actionCardTotext", "actionCard->text"),
)
BUTTONS_MISSING = ("miss.param.actionCardTobtns", "actionCard->btns")


def _card(name: str, buttons: tuple[Field, ...]) -> MsgKey:
    return MsgKey(name, "miss.param.actionCard", "actionCard", _CARD_HEAD + buttons)


def _flat(name: str, code: str, needs: str, names: Sequence[str], optional: Sequence[str] = ()) -> MsgKey:
    """A type whose every missing field has the type's one code (audio, file, video)."""
    return MsgKey(
        name,
        code,
        needs,
        tuple(Field(n, code, needs) for n in names) + tuple(Field(n, code, needs, False) for n in optional),
    )


MSG_KEYS: dict[str, MsgKey] = {
    key.name: key
    for key in (
        MsgKey(
            "sampleText",
            "miss.param.text",
            "text",
            (Field("content", "miss.param.contentOfText", "text->content"),),
        ),
        MsgKey(
            "sampleMarkdown",
            "miss.param.markdown",
            "markdown",
            (
                # the seed's text for this code says markdown->text; the code and spec §10 #7 say title
                Field("title", "miss.param.markdownTotitle", "markdown->title"),
                Field("text", "miss.param.markdownTotext", "markdown->text"),
            ),
        ),
        MsgKey(
            "sampleImageMsg",
            "miss.param.photo",
            "photo",
            (Field("photoURL", "miss.param.photoTophotoUrl", "photo->photoURL"),),
        ),
        MsgKey(
            "sampleLink",
            "miss.param.link",
            "link",
            (
                Field("text", "miss.param.textOfLink", "link->text"),
                Field("title", "miss.param.titleOfLink", "link->title"),
                Field("picUrl", "", "link->picUrl", required=False),  # no code exists for it (spec §10 #9)
                Field("messageUrl", "miss.param.messageUrlOfLink", "link->messageUrl"),
            ),
        ),
        _card(
            "sampleActionCard",
            (
                Field("singleTitle", "miss.param.actionCardTosingleTitle", "actionCard->singleTitle"),
                Field("singleURL", "miss.param.actionCardTosingleUrl", "actionCard->singleURL"),
            ),
        ),
        _card("sampleActionCard2", _card_buttons("actionTitle", "actionURL", 2)),
        _card("sampleActionCard3", _card_buttons("actionTitle", "actionURL", 3)),
        _card("sampleActionCard4", _card_buttons("actionTitle", "actionURL", 4)),
        _card("sampleActionCard5", _card_buttons("actionTitle", "actionURL", 5)),
        _card("sampleActionCard6", _card_buttons("buttonTitle", "buttonUrl", 2)),
        _flat("sampleAudio", "miss.param.audio", "audio", ("mediaId", "duration")),
        _flat("sampleFile", "miss.param.file", "file", ("mediaId", "fileName", "fileType")),
        _flat(
            "sampleVideo",
            "miss.param.video",
            "video->videoMediaId",
            ("duration", "videoMediaId", "videoType", "picMediaId"),
            ("height", "width"),
        ),
    )
}


def msg_key(value: str | None) -> MsgKey:
    if value is None or not value.strip():
        raise errors.MsgKeyEmpty()
    key = MSG_KEYS.get(value)
    if key is None:
        raise errors.MsgKeyInvalid()
    return key


def parse_msg_param(key: MsgKey, text: str | None) -> dict[str, Any]:
    """The msgParam object, checked against its msgKey.

    The size limit counts the bytes of its canonical JSON (sorted keys, compact, UTF-8 unescaped),
    so Chinese text escaped by Python's default `json.dumps` (`\\u4f60`, six bytes a character)
    counts as the three bytes it is, as DESIGN §3 measures work notifications.
    """
    if text is None or not text.strip():
        raise errors.InvalidParameter("msgParam", "为空")
    try:
        params = load_json(text)
    except ValueError:  # not JSON, or nested past the bound every surface keeps
        raise errors.MsgParamInvalid() from None
    if not isinstance(params, dict):
        raise errors.MsgParamInvalid()
    if len(canonical_json(params)) > MSG_PARAM_MAX_BYTES:
        raise errors.MsgParamTooLong()
    _check_fields(key, params)
    return params


def _check_fields(key: MsgKey, params: dict[str, Any]) -> None:
    if not params:
        raise errors.MsgParamFieldMissing(key.empty_code, key.empty_needs)
    buttons = [f for f in key.fields if f.code.startswith("miss.param.actionCardTobtns")]
    for f in key.fields:
        if buttons and f is buttons[0] and not any(_present(params.get(b.name)) for b in buttons):
            raise errors.MsgParamFieldMissing(*BUTTONS_MISSING)
        value = params.get(f.name)
        if not _present(value):
            if f.required:
                raise errors.MsgParamFieldMissing(f.code, f.needs)
            continue
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise errors.InvalidParameter(f"msgParam.{f.name}", "须为字符串")


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def user_ids(values: Sequence[str]) -> list[str]:
    """The recipients: trimmed, empty entries dropped, each once in the order given.

    The limit counts the entries as sent, as DingTalk's own check would, so a list DingTalk refuses
    is refused here even when it repeats a user.
    """
    found = list(dict.fromkeys(v.strip() for v in values if v.strip()))
    if not found:
        raise errors.UserIdsEmpty()
    if len(values) > USER_IDS_MAX:
        raise errors.UserIdsOverMax(USER_IDS_MAX)
    return found


def decide_recipients(
    recipients: Sequence[RecipientRow], visible: frozenset[str] | None, reached: int, minute_limit: int | None
) -> list[DecisionRow]:
    """The work-notification pipeline's recipient rules (unknown, not visible, inactive) and its minute
    cap, here per robot; no same-content rule and no daily cap apply to robots (DESIGN §3). A
    flow-controlled recipient carries no code: robots report them in their own list."""
    facts = BatchFacts(
        visible=visible, dedup_owner={}, daily_count={}, minute_count=reached, delivered_in_task=0
    )
    limits = AppLimits(
        userid_list=None, dept_id_list=None, per_call=None, daily_per_user=None, per_minute=minute_limit
    )
    return [
        (userid, outcome, reason, None)
        for userid, outcome, reason, _code in filter(
            None, decide_batch(0, recipients, facts, limits, is_isv=False, dedup=False)
        )
    ]


def not_reached(decisions: Sequence[DecisionRow]) -> tuple[list[str], list[str]]:
    """(invalidStaffIdList, flowControlledStaffIdList). Inactive users are in the first: DingTalk
    documents no list for them, and the invalid list is the one every client already reads."""
    invalid = [d[0] for d in decisions if d[1] in (Outcome.INVALID, Outcome.FAILED)]
    flow_controlled = [d[0] for d in decisions if d[1] == Outcome.FORBIDDEN]
    return invalid, flow_controlled
