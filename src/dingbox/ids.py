"""Identifiers shaped like DingTalk's, so client code that parses them meets the real shapes."""

from __future__ import annotations

import base64
import random
import secrets
import string
import time
import uuid

_LOWER_ALNUM = string.ascii_lowercase + string.digits
_TASK_ID_EPOCH_MS = 1_577_836_800_000  # 2020-01-01 UTC
_TASK_ID_RANDOM_BITS = 12
_fast = random.Random()
_PAIRS = [a + b for a in _LOWER_ALNUM for b in _LOWER_ALNUM]


def task_ids(n: int) -> list[int]:
    """`n` distinct task ids: the milliseconds since 2020 above 12 random bits, so between 2^38 and
    2^53 (large enough to break 32-bit parsing, JSON-safe) until 2089, and rising with time.

    Rising, as DingTalk's own task ids do, because the store indexes them: random ids put every new
    task on a random page of that index, and each commit wrote one page per task (a third of the
    pages an accepted and dispatched one-recipient task wrote). A clash with a stored id is possible
    and the store draws again (`task_sql.insert_tasks`).
    """
    if n > 1 << (_TASK_ID_RANDOM_BITS - 1):  # a chunk of inserts is 40: room to draw distinct ones
        raise ValueError(f"{n} task ids at once")
    base = (int(time.time() * 1000) - _TASK_ID_EPOCH_MS) << _TASK_ID_RANDOM_BITS
    drawn: set[int] = set()
    while len(drawn) < n:
        drawn.add(base | _fast.getrandbits(_TASK_ID_RANDOM_BITS))
    return sorted(drawn)  # rising within the chunk too, as the index wants them


def task_id() -> int:
    """One task id (`task_ids`)."""
    return task_ids(1)[0]


def request_id() -> str:
    """oapi `request_id`: 13 lowercase letters and digits.

    Made on every response and no secret: six random pairs from a table and one more character,
    drawn from a fast generator rather than the system's.
    """
    bits = _fast.getrandbits(72)
    pairs = [_PAIRS[(bits >> shift) % 1296] for shift in (0, 11, 22, 33, 44, 55)]
    return "".join(pairs) + _LOWER_ALNUM[(bits >> 66) % 36]


def v1_request_id() -> str:
    """v1.0 `requestid`: an uppercase UUID."""
    return str(uuid.UUID(int=_fast.getrandbits(128), version=4)).upper()


def access_token() -> str:
    return secrets.token_hex(16)


def process_query_key() -> str:
    """Base64 text of 31 bytes, so it ends in `==`, with at least one `+`: a
    query that carries it without URL-encoding turns the `+` into a space and finds nothing."""
    text = base64.b64encode(secrets.token_bytes(31)).decode()
    return text if "+" in text else "+" + text[1:]


def media_id() -> str:
    return "@" + base64.urlsafe_b64encode(secrets.token_bytes(18)).decode().rstrip("=")
