"""Generations of the state each process keeps a copy of in memory: the org's directory (`org`), the
virtual clock (`clock`) and what a reset clears, the token cache (`reset`).

Every change of such state bumps its generation first thing in the transaction that makes the change:
the bump takes the generation row's lock, so changes of one state from several processes follow each
other (an advance of the clock reads the clock another process just set, an org load validates
against the org another just loaded). The event that announces a change carries the generation; a
process that shares the store also compares the stored generations with those of its copies now
and then, so a change whose notification was lost is still taken up (docs/architecture.md).
"""

from __future__ import annotations

from dingbox.clock import Clock, ClockState
from dingbox.domain.directory import Directory
from dingbox.store import org_sql, task_sql, token_sql
from dingbox.store.base import Tx, placeholders

STATES = ("org", "clock", "reset")
_KEYS = {f"generation:{state}": state for state in STATES}


def bump(tx: Tx, state: str) -> int:
    """The state's next generation, written (and its row locked) in this transaction."""
    row = tx.one(
        "INSERT INTO meta (key, value) VALUES (?, '1') ON CONFLICT (key) DO UPDATE"
        " SET value = CAST(CAST(meta.value AS BIGINT) + 1 AS TEXT) RETURNING value",
        (f"generation:{state}",),
    )
    assert row is not None
    return int(row[0])


def generations(tx: Tx) -> dict[str, int]:
    """Every state's stored generation (0: never changed)."""
    found = dict.fromkeys(STATES, 0)
    keys = tuple(_KEYS)
    for key, value in tx.all(f"SELECT key, value FROM meta WHERE key IN ({placeholders(len(keys))})", keys):
        found[_KEYS[key]] = int(value)
    return found


def directory(tx: Tx) -> tuple[Directory, int]:
    """The org's directory and the generation it is, from one snapshot."""
    return org_sql.load_directory(tx), generations(tx)["org"]


def clock(tx: Tx) -> tuple[ClockState, int]:
    return token_sql.load_clock(tx), generations(tx)["clock"]


def set_clock(tx: Tx, state: ClockState) -> int:
    generation = bump(tx, "clock")
    token_sql.save_clock(tx, state)
    return generation


def advance_clock(tx: Tx, seconds: float) -> tuple[ClockState, int]:
    """Move the stored clock on, from the stored state (not a process's copy, which another process
    may have changed an instant ago)."""
    generation = bump(tx, "clock")
    state = Clock(token_sql.load_clock(tx)).advance(seconds)
    token_sql.save_clock(tx, state)
    return state, generation


def reset_traffic(tx: Tx) -> dict[str, int]:
    """Delete the traffic (task_sql.reset_traffic), which also returns the clock to real time and
    drops every token: the new generations of `clock` and `reset`."""
    changed = {"clock": bump(tx, "clock"), "reset": bump(tx, "reset")}
    task_sql.reset_traffic(tx)
    return changed
