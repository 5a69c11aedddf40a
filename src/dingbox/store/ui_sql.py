"""Store reads behind the web UI: conversations, unread counts, search, recent tasks, org and quotas."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from dingbox.params import MAX_INT64
from dingbox.store.base import Row, Tx, chunks, placeholders
from dingbox.store.result_sql import MESSAGE_COLUMNS, MessageRow
from dingbox.store.task_sql import delivery_range

_FROM = " FROM deliveries d JOIN tasks t ON t.seq = d.task_seq"
_UNREAD = "d.read_at IS NULL AND d.recalled = 0"
# Work notifications and template messages of an app share its conversation, as in DingTalk's client.
_APP_SOURCES = ("work_notification", "template")


@dataclass(frozen=True)
class Chat:
    """One conversation of an inbox: an app's work notifications, or a robot's one-to-one chat."""

    kind: str  # app | robot
    key: str  # agent_id or robot_code

    @classmethod
    def parse(cls, text: str) -> Chat | None:
        kind, _, key = text.partition(":")
        if (
            kind == "app"
            and key.isascii()
            and key.isdigit()
            and int(key) <= MAX_INT64
            or kind == "robot"
            and key
        ):
            return cls(kind, key)
        return None

    def where(self) -> tuple[str, tuple[Any, ...]]:
        if self.kind == "app":
            return "t.source IN (?, ?) AND t.agent_id = ?", (*_APP_SOURCES, int(self.key))
        return "t.source = 'robot' AND t.robot_code = ?", (self.key,)

    def __str__(self) -> str:
        return f"{self.kind}:{self.key}"


@dataclass(frozen=True)
class ChatSummary:
    chat: Chat
    total: int
    unread: int
    newest: float


def conversations(tx: Tx, corp_id: str, userid: str) -> list[ChatSummary]:
    """The user's conversations with their message and unread counts, most recent first."""
    rows = tx.all(
        f"SELECT t.source, t.agent_id, t.robot_code, COUNT(*), SUM(CASE WHEN {_UNREAD} THEN 1 ELSE 0 END),"
        f" MAX(d.created_at){_FROM} WHERE d.corp_id = ? AND d.userid = ? AND d.outcome = 0"
        " GROUP BY t.source, t.agent_id, t.robot_code",
        (corp_id, userid),
    )
    merged: dict[Chat, list[float]] = {}
    for source, agent_id, robot_code, total, unread, newest in rows:
        chat = Chat("robot", robot_code) if source == "robot" else Chat("app", str(agent_id))
        acc = merged.setdefault(chat, [0, 0, 0.0])
        acc[0] += total
        acc[1] += unread or 0
        acc[2] = max(acc[2], newest)
    found = [ChatSummary(chat, int(t), int(u), n) for chat, (t, u, n) in merged.items()]
    return sorted(found, key=lambda s: -s.newest)


def chat_page(
    tx: Tx, corp_id: str, userid: str, chat: Chat | None, *, limit: int, before: MessageRow | None
) -> list[MessageRow]:
    """Newest first, in the inbox API's order; one row beyond `limit` tells that more exist."""
    where = ["d.corp_id = ?", "d.userid = ?", "d.outcome = 0"]
    params: list[Any] = [corp_id, userid]
    if chat is not None:
        condition, values = chat.where()
        where.append(condition)
        params += values
    if before is not None:
        where.append("(d.created_at < ? OR (d.created_at = ? AND (t.seq < ? OR (t.seq = ? AND d.id < ?))))")
        params += [before.created_at, before.created_at, before.seq, before.seq, before.id]
    return tx.records(
        MessageRow,
        f"SELECT {MESSAGE_COLUMNS}{_FROM} WHERE {' AND '.join(where)}"
        " ORDER BY d.created_at DESC, t.seq DESC, d.id DESC LIMIT ?",
        (*params, limit + 1),
    )


def messages_after(tx: Tx, corp_id: str, userid: str, after_id: int, limit: int) -> list[MessageRow]:
    """The user's messages that come after message `after_id` in inbox order (created_at, then id):
    those delivered since a page showing it was drawn, oldest first. A delivery id follows its task's
    acceptance, not its delivery, so the order is the inbox's own, read off its index."""
    anchor = tx.one("SELECT created_at FROM deliveries WHERE id = ?", (after_id,))
    created_at = anchor[0] if anchor else -math.inf  # no anchor: the page showed no message
    return tx.records(
        MessageRow,
        f"SELECT {MESSAGE_COLUMNS}{_FROM} WHERE d.corp_id = ? AND d.userid = ? AND d.outcome = 0"
        " AND (d.created_at, d.id) > (?, ?) ORDER BY d.created_at, d.id LIMIT ?",
        (corp_id, userid, created_at, after_id, limit),
    )


def messages_by_ids(tx: Tx, ids: list[int]) -> list[MessageRow]:
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    return tx.records(
        MessageRow, f"SELECT {MESSAGE_COLUMNS}{_FROM} WHERE d.id IN ({marks}) AND d.outcome = 0", ids
    )


def task_message_ids(tx: Tx, task_seq: int, corp_id: str, userid: str) -> list[int]:
    low, high = delivery_range(task_seq)
    return [
        r[0]
        for r in tx.all(
            "SELECT id FROM deliveries WHERE id >= ? AND id < ? AND corp_id = ? AND userid = ?"
            " AND outcome = 0",
            (low, high, corp_id, userid),
        )
    ]


def users(tx: Tx, corp_id: str, limit: int) -> list[Row]:
    """(userid, name, active, unread, total) of the corp's first `limit` users by name.

    Counts only those users' inboxes, each a range of the inbox index: counting every delivery of a
    100,000-user corp to show 500 of them would cost the page a scan of the whole table."""
    people = tx.all(
        "SELECT userid, name, active FROM users WHERE corp_id = ? ORDER BY name, userid LIMIT ?",
        (corp_id, limit),
    )
    counts: dict[str, tuple[int, int]] = {}
    for chunk in chunks([userid for userid, _, _ in people]):
        counts.update(
            (userid, (unread or 0, total))
            for userid, unread, total in tx.all(
                f"SELECT d.userid, SUM(CASE WHEN {_UNREAD} THEN 1 ELSE 0 END), COUNT(*) FROM deliveries d"
                f" WHERE d.corp_id = ? AND d.userid IN ({placeholders(len(chunk))}) AND d.outcome = 0"
                " GROUP BY d.userid",
                (corp_id, *chunk),
            )
        )
    return [(userid, name, bool(active), *counts.get(userid, (0, 0))) for userid, name, active in people]


def user(tx: Tx, corp_id: str, userid: str) -> Row | None:
    """(name, active) of a user, or None when the corp has no such user."""
    return tx.one("SELECT name, active FROM users WHERE corp_id = ? AND userid = ?", (corp_id, userid))


def departments(tx: Tx, corp_id: str) -> tuple[list[Row], list[Row]]:
    """(dept_id, parent_id, name) by id, and (dept_id, userid, name, active) memberships by name."""
    depts = tx.all(
        "SELECT dept_id, parent_id, name FROM departments WHERE corp_id = ? ORDER BY dept_id", (corp_id,)
    )
    members = tx.all(
        "SELECT m.dept_id, u.userid, u.name, u.active FROM user_depts m"
        " JOIN users u ON u.corp_id = m.corp_id AND u.userid = m.userid"
        " WHERE m.corp_id = ? ORDER BY u.name, u.userid",
        (corp_id,),
    )
    return depts, members


def search(
    tx: Tx,
    *,
    corp_id: str | None,
    text: str | None,
    agent_id: int | None,
    robot_code: str | None,
    msgtype: str | None,
    day_range: tuple[float, float] | None,
    userid: str | None,
    limit: int,
) -> list[MessageRow]:
    """Messages matching every given criterion, newest first. Text matches the message as sent."""
    where = ["d.outcome = 0"]
    params: list[Any] = []
    if corp_id:
        where.append("d.corp_id = ?")
        params.append(corp_id)
    if text:
        escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        # ASCII letters match in any case, on every store: SQLite's LIKE ignores their case, PostgreSQL's
        # does not, so both sides are lowered
        where.append("lower(t.msg) LIKE lower(?) ESCAPE '\\'")
        params.append(f"%{escaped}%")
    if agent_id is not None:
        where.append("t.agent_id = ?")
        params.append(agent_id)
    if robot_code:
        where.append("t.robot_code = ?")
        params.append(robot_code)
    if msgtype:
        where.append("t.msgtype = ?")
        params.append(msgtype)
    if day_range is not None:
        where.append("d.created_at >= ? AND d.created_at < ?")
        params += list(day_range)
    if userid:
        where.append("d.userid = ?")
        params.append(userid)
    return tx.records(
        MessageRow,
        f"SELECT {MESSAGE_COLUMNS}{_FROM} WHERE {' AND '.join(where)}"
        " ORDER BY d.created_at DESC, t.seq DESC, d.id DESC LIMIT ?",
        (*params, limit),
    )


# -- quotas: the same facts the dispatcher reads (dispatch_sql.daily_facts) ------------------------


@dataclass(frozen=True)
class AppDay:
    """What an app delivered on one DingTalk day: per user (what the daily cap counts), and per
    content the userids holding it (sending it again to one of them today is forbidden)."""

    daily: dict[str, int]
    holders: dict[bytes, list[str]]


def app_day(tx: Tx, agent_id: int, day: int) -> AppDay:
    """One pass over the app's entries in the `deliveries_dedup` index: no per-content or per-user query."""
    daily: dict[str, int] = {}
    holders: dict[bytes, list[str]] = {}
    for userid, content_hash in tx.all(
        "SELECT userid, content_hash FROM deliveries WHERE agent_id = ? AND day = ? AND outcome = 0"
        " AND content_hash IS NOT NULL ORDER BY userid",
        (agent_id, day),
    ):
        daily[userid] = daily.get(userid, 0) + 1
        holders.setdefault(content_hash, []).append(userid)
    return AppDay(daily, holders)


def minute_count(tx: Tx, agent_id: int, minute: int) -> int:
    row = tx.one("SELECT n FROM minute_counts WHERE agent_id = ? AND minute = ?", (agent_id, minute))
    return int(row[0]) if row else 0


def spent_contents(tx: Tx, agent_id: int, day: int, limit: int) -> list[tuple[bytes, Row]]:
    """The newest `limit` contents the app delivered on this day, as (content hash, (task_id, msgtype,
    msg) of the first task that delivered it)."""
    return [
        (content_hash, (task_id, msgtype, msg))
        for content_hash, task_id, msgtype, msg in tx.all(
            "SELECT c.content_hash, t.task_id, t.msgtype, t.msg FROM content_days c"
            " JOIN tasks t ON t.seq = c.task_seq WHERE c.agent_id = ? AND c.day = ?"
            " ORDER BY c.task_seq DESC LIMIT ?",
            (agent_id, day, limit),
        )
    ]
