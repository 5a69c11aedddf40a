"""The rule pipeline of a send (DESIGN §3): per recipient, in order, the first rule that applies decides.

Pure: the dispatcher gathers the facts for a batch in one transaction, `decide_batch` turns them into
outcomes, and the same transaction writes them. Budgets move as the batch is decided, so the 500th
message of a day and the 5000th recipient of a minute fall exactly where they should.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

from dingbox.domain.limits import AppLimits


class Outcome(IntEnum):
    DELIVERED = 0
    FORBIDDEN = 1
    INVALID = 2
    FAILED = 3


OUTCOME_NAMES = tuple(outcome.name.lower() for outcome in Outcome)  # by value: "delivered", …


# Reasons (the closed enum of the task detail) with their flow-control codes (internal, ISV).
FORBIDDEN_CODES: Mapping[str, tuple[str, str]] = {
    "duplicate_content": ("143106", "143206"),
    "daily_cap": ("143105", "143205"),
    "minute_cap": ("143103", "143203"),
}


class Recipient(NamedTuple):
    userid: str
    active: bool | None  # None: no such user in the corp


class Decision(NamedTuple):
    userid: str
    outcome: Outcome
    reason: str | None = None
    code: str | None = None


# A fan-out decides one recipient per employee: the hot path builds plain tuples, which compare equal
# to the named ones above and cost a fifth of them to make.
RecipientRow = tuple[str, bool | None]
DecisionRow = tuple[str, Outcome, str | None, str | None]


@dataclass
class BatchFacts:
    """What the store knows when a batch is decided; deciding moves the budgets.

    With `track`, each delivery is also entered in `dedup_owner` and `daily_count`, so the same facts
    can serve the next task of a group decided in one transaction (see `Ledger`).
    """

    visible: frozenset[str] | None  # None: the app sees the whole corp
    dedup_owner: dict[str, int]  # userid -> task seq already holding today's same content
    daily_count: dict[str, int]  # userid -> messages delivered today by this app
    minute_count: int  # recipients delivered by this app in the task's minute
    delivered_in_task: int  # recipients this task delivered in earlier batches
    track: bool = False


_DELIVERED = Outcome.DELIVERED


def decide_batch(
    task_seq: int,
    recipients: Sequence[RecipientRow],
    facts: BatchFacts,
    limits: AppLimits,
    *,
    is_isv: bool,
    dedup: bool = True,
) -> list[DecisionRow | None]:
    """One decision per recipient; None for a recipient this task already delivered (a replay)."""
    side = 1 if is_isv else 0
    minute = facts.minute_count
    in_task = facts.delivered_in_task
    track = facts.track
    visible, owners, daily = facts.visible, facts.dedup_owner if dedup else {}, facts.daily_count
    daily_cap, minute_cap, call_cap = limits.daily_per_user, limits.per_minute, limits.per_call
    decisions: list[DecisionRow | None] = []
    append = decisions.append
    for userid, active in recipients:
        if active is None:
            append((userid, Outcome.INVALID, "invalid_user", None))
        elif visible is not None and userid not in visible:
            append((userid, Outcome.INVALID, "not_visible", None))
        elif not active:
            append((userid, Outcome.FAILED, "inactive_user", None))
        elif (owner := owners.get(userid)) == task_seq:
            append(None)
        elif owner is not None:
            append(_forbidden(userid, "duplicate_content", side))
        elif daily_cap is not None and daily.get(userid, 0) >= daily_cap:
            append(_forbidden(userid, "daily_cap", side))
        elif minute_cap is not None and minute >= minute_cap:
            append(_forbidden(userid, "minute_cap", side))
        elif call_cap is not None and in_task >= call_cap:
            append((userid, Outcome.FORBIDDEN, "recipient_limit", None))
        else:
            minute += 1
            in_task += 1
            append((userid, _DELIVERED, None, None))
            if track:
                daily[userid] = daily.get(userid, 0) + 1
                if dedup:
                    owners[userid] = task_seq
    facts.minute_count, facts.delivered_in_task = minute, in_task
    return decisions


class Ledger:
    """Facts shared by a group of tasks decided in one transaction, in acceptance order.

    Each task's deliveries move the daily counts, same-content owners and minute counts the next task
    of the group sees, exactly as if it had been decided in a transaction of its own.
    """

    def __init__(self) -> None:
        self.daily: dict[tuple[int | None, int], dict[str, int]] = {}
        self.owners: dict[tuple[int | None, int, bytes], dict[str, int]] = {}
        self.minutes: dict[tuple[int | None, int], int] = {}

    def facts(
        self,
        agent_id: int | None,
        day: int,
        minute: int,
        content_hash: bytes | None,
        visible: frozenset[str] | None,
    ) -> BatchFacts:
        owners = self.owners.setdefault((agent_id, day, content_hash), {}) if content_hash else {}
        return BatchFacts(
            visible=visible,
            dedup_owner=owners,
            daily_count=self.daily.setdefault((agent_id, day), {}),
            minute_count=self.minutes.get((agent_id, minute), 0),
            delivered_in_task=0,
            track=True,
        )

    def settle(self, agent_id: int | None, minute: int, facts: BatchFacts) -> None:
        self.minutes[(agent_id, minute)] = facts.minute_count


def _forbidden(userid: str, reason: str, side: int) -> DecisionRow:
    return (userid, Outcome.FORBIDDEN, reason, FORBIDDEN_CODES[reason][side])


def threshold(reason: str, limits: AppLimits) -> int:
    """The `count` DingTalk reports beside a flow-control code: the limit that was reached."""
    if reason == "daily_cap":
        return limits.daily_per_user or 0
    if reason == "minute_cap":
        return limits.per_minute or 0
    return 1
