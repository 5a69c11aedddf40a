"""The virtual clock: real time shifted by an offset, optionally frozen, shared through the store.

Every time-based rule reads time from here, never from `time.time()`, so tests can move a task
across the Asia/Shanghai midnight or past a token's 7200 s without waiting.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")  # China has kept UTC+8 without DST since 1991
_SHANGHAI_OFFSET = 8 * 3600


@dataclass(frozen=True)
class ClockState:
    """What the store keeps: the offset added to real time, and the frozen instant if any."""

    offset_seconds: float = 0.0
    frozen_at: float | None = None


class Clock:
    def __init__(self, state: ClockState | None = None) -> None:
        self.state = state or ClockState()

    def now(self) -> float:
        if self.state.frozen_at is not None:
            return self.state.frozen_at
        return time.time() + self.state.offset_seconds

    def set(self, now: float, frozen: bool) -> ClockState:
        self.state = ClockState(offset_seconds=now - time.time(), frozen_at=now if frozen else None)
        return self.state

    def advance(self, seconds: float) -> ClockState:
        state = self.state
        frozen = None if state.frozen_at is None else state.frozen_at + seconds
        self.state = ClockState(offset_seconds=state.offset_seconds + seconds, frozen_at=frozen)
        return self.state

    def describe(self) -> dict[str, object]:
        return {
            "now": iso(self.now()),
            "frozen": self.state.frozen_at is not None,
            "offset_seconds": round(self.now() - time.time(), 3),
        }


def dingtalk_day(ts: float) -> int:
    """The calendar day in Asia/Shanghai, as days since 1970-01-01 there."""
    return int((ts + _SHANGHAI_OFFSET) // 86400)


def calendar_minute(ts: float) -> int:
    return int(ts // 60)


def iso(ts: float) -> str:
    """ISO-8601 in Asia/Shanghai with its offset, milliseconds precision."""
    return datetime.fromtimestamp(ts, SHANGHAI).isoformat(timespec="milliseconds")


# Instants `iso` can write in Asia/Shanghai, with a year to spare for a running clock: the virtual
# clock is never set or advanced outside them.
EARLIEST = datetime(1, 1, 1, tzinfo=UTC).timestamp()
LATEST = datetime(9999, 1, 1, tzinfo=UTC).timestamp()


def in_range(ts: float) -> bool:
    return EARLIEST <= ts <= LATEST


def parse_iso(text: str) -> float:
    """Parse an ISO-8601 instant; one without an offset is ambiguous and refused, and so is one
    outside EARLIEST–LATEST."""
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("timestamp has no UTC offset")
    try:
        ts = parsed.astimezone(UTC).timestamp()
    except OverflowError:
        ts = EARLIEST - 1
    if not in_range(ts):
        raise ValueError("timestamp is outside 0001-01-01 to 9999-01-01 UTC")
    return ts
