"""v1.0 robot one-to-one endpoints (spec §5.1–§5.3): camelCase JSON in, the robot service's types out.

A value of the wrong JSON type is refused here, as DingTalk's typed request reader would refuse it
before any rule runs: `invalidParameter.param.invalid` naming the field (a robotCode that is not text
has its own code, `invalidParameter.robotCode.invalid`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dingbox import errors
from dingbox.protocols.http import query
from dingbox.services.robots import BatchSendRequest

if TYPE_CHECKING:
    from dingbox.protocols.v1.routes import V1Call


def _text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None or isinstance(value, str):
        return value
    raise errors.InvalidParameter(name)


def _texts(body: dict[str, Any], name: str) -> list[str] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise errors.InvalidParameter(name)
    return value


def _robot_code(body: dict[str, Any]) -> str | None:
    value = body.get("robotCode")
    if value is None or isinstance(value, str):
        return value
    raise errors.RobotCodeInvalid()


async def batch_send(call: V1Call) -> dict[str, Any]:
    assert call.principal is not None
    body = call.body
    request = BatchSendRequest(
        robot_code=_robot_code(body),
        user_ids=_texts(body, "userIds"),
        msg_key=_text(body, "msgKey"),
        msg_param=_text(body, "msgParam"),
        received=body,
    )
    result = await call.services.robots.batch_send(call.principal, request)
    return {
        "processQueryKey": result.process_query_key,
        "invalidStaffIdList": result.invalid_user_ids,
        "flowControlledStaffIdList": result.flow_controlled_user_ids,
    }


async def read_status(call: V1Call) -> dict[str, Any]:
    """Query parameters, decoded once: a processQueryKey sent without URL-encoding loses each `+` to a
    space, matches no message and is answered `invalid.processQueryKey`."""
    assert call.principal is not None
    params = query(call.request.scope)
    result = await call.services.robots.read_status(
        call.principal, params.get("robotCode"), params.get("processQueryKey")
    )
    return {
        "sendStatus": "RECALLED" if result.recalled else "SUCCESS",
        "messageReadInfoList": [
            {
                "name": r.name,
                "userId": r.userid,
                "readStatus": "UNREAD" if r.read_at is None else "READ",
                "readTimestamp": 0 if r.read_at is None else int(r.read_at * 1000),
            }
            for r in result.recipients
        ],
    }


async def batch_recall(call: V1Call) -> dict[str, Any]:
    assert call.principal is not None
    result = await call.services.robots.batch_recall(
        call.principal, _robot_code(call.body), _texts(call.body, "processQueryKeys")
    )
    return {"successResult": result.recalled, "failedResult": result.failed}
