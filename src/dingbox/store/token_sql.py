"""Store operations on access tokens (both API families share them) and the stored clock."""

from __future__ import annotations

import orjson

from dingbox.clock import ClockState
from dingbox.store.base import Row, Tx


def issue_token(
    tx: Tx, kind: str, principal: str, corp_id: str, now: float, ttl: float, fresh: str
) -> tuple[str, float]:
    """The principal's live token with its validity renewed, or `fresh` when none is live."""
    row = tx.one(
        "SELECT token FROM tokens WHERE kind = ? AND principal = ? AND corp_id = ? AND expires_at > ?"
        " ORDER BY expires_at DESC LIMIT 1",
        (kind, principal, corp_id, now),
    )
    expires_at = now + ttl
    if row is not None:
        tx.execute("UPDATE tokens SET expires_at = ? WHERE token = ?", (expires_at, row[0]))
        return str(row[0]), expires_at
    tx.execute(
        "INSERT INTO tokens (token, kind, principal, corp_id, issued_at, expires_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (fresh, kind, principal, corp_id, now, expires_at),
    )
    return fresh, expires_at


def find_token(tx: Tx, token: str) -> Row | None:
    """(kind, principal, corp_id, expires_at) of a token, expired or not."""
    return tx.one("SELECT kind, principal, corp_id, expires_at FROM tokens WHERE token = ?", (token,))


def load_clock(tx: Tx) -> ClockState:
    row = tx.one("SELECT value FROM meta WHERE key = 'clock'")
    if row is None:
        return ClockState()
    raw = orjson.loads(row[0])
    return ClockState(offset_seconds=raw["offset_seconds"], frozen_at=raw["frozen_at"])


def save_clock(tx: Tx, state: ClockState) -> None:
    value = orjson.dumps({"offset_seconds": state.offset_seconds, "frozen_at": state.frozen_at}).decode()
    tx.execute("DELETE FROM meta WHERE key = 'clock'")
    tx.execute("INSERT INTO meta (key, value) VALUES ('clock', ?)", (value,))


def probe(tx: Tx, now: float) -> None:
    """A write that reaches the disk: tells whether a failing store writes again."""
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('health_probe', ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (repr(now),),
    )
