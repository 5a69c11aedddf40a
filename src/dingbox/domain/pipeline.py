"""The rule pipeline of a send (DESIGN §3): per recipient, in order, the first rule that applies decides.

Pure: the dispatcher gathers the facts for a batch in one transaction, `decide_batch` turns them into
outcomes, and the same transaction writes them. Budgets move as the batch is decided, so the 500th
message of a day and the 5000th recipient of a minute fall exactly where they should.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum

from dingbox.domain.limits import AppLimits


class Outcome(IntEnum):
    DELIVERED = 0
    FORBIDDEN = 1
    INVALID = 2
    FAILED = 3


# Reasons (the closed enum of the task detail) with their flow-control codes (internal, ISV).
FORBIDDEN_CODES: Mapping[str, tuple[str, str]] = {
    "duplicate_content": ("143106", "143206"),
    "daily_cap": ("143105", "143205"),
    "minute_cap": ("143103", "143203"),
}


@dataclass(frozen=True)
class Recipient:
    userid: str
    active: bool | None  # None: no such user in the corp


@dataclass(frozen=True)
class Decision:
    userid: str
    outcome: Outcome
    reason: str | None = None
    code: str | None = None


@dataclass
class BatchFacts:
    """What the store knows when a batch is decided."""

    visible: frozenset[str] | None  # None: the app sees the whole corp
    dedup_owner: Mapping[str, int]  # userid -> task seq already holding today's same content
    daily_count: Mapping[str, int]  # userid -> messages delivered today by this app
    minute_count: int  # recipients delivered by this app in the task's minute
    delivered_in_task: int  # recipients this task delivered in earlier batches


def decide_batch(
    task_seq: int,
    recipients: Sequence[Recipient],
    facts: BatchFacts,
    limits: AppLimits,
    *,
    is_isv: bool,
    dedup: bool = True,
) -> list[Decision | None]:
    """One decision per recipient; None for a recipient this task already delivered (a replay)."""
    side = 1 if is_isv else 0
    minute = facts.minute_count
    in_task = facts.delivered_in_task
    decisions: list[Decision | None] = []
    for r in recipients:
        if r.active is None:
            decisions.append(Decision(r.userid, Outcome.INVALID, "invalid_user"))
            continue
        if facts.visible is not None and r.userid not in facts.visible:
            decisions.append(Decision(r.userid, Outcome.INVALID, "not_visible"))
            continue
        if not r.active:
            decisions.append(Decision(r.userid, Outcome.FAILED, "inactive_user"))
            continue
        owner = facts.dedup_owner.get(r.userid) if dedup else None
        if owner == task_seq:
            decisions.append(None)
            continue
        if owner is not None:
            decisions.append(_forbidden(r.userid, "duplicate_content", side))
            continue
        if limits.daily_per_user is not None and facts.daily_count.get(r.userid, 0) >= limits.daily_per_user:
            decisions.append(_forbidden(r.userid, "daily_cap", side))
            continue
        if limits.per_minute is not None and minute >= limits.per_minute:
            decisions.append(_forbidden(r.userid, "minute_cap", side))
            continue
        if limits.per_call is not None and in_task >= limits.per_call:
            decisions.append(Decision(r.userid, Outcome.FORBIDDEN, "recipient_limit"))
            continue
        minute += 1
        in_task += 1
        decisions.append(Decision(r.userid, Outcome.DELIVERED))
    return decisions


def _forbidden(userid: str, reason: str, side: int) -> Decision:
    return Decision(userid, Outcome.FORBIDDEN, reason, FORBIDDEN_CODES[reason][side])


def threshold(reason: str, limits: AppLimits) -> int:
    """The `count` DingTalk reports beside a flow-control code: the limit that was reached."""
    if reason == "daily_cap":
        return limits.daily_per_user or 0
    if reason == "minute_cap":
        return limits.per_minute or 0
    return 1
