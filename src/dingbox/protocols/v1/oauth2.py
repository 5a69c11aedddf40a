"""v1.0 token endpoints (spec §1.2, §1.4): internal-app, suite and corp (ISV) access tokens."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dingbox.protocols.v1.routes import V1Call


async def access_token(call: V1Call) -> dict[str, Any]:
    """appSecret is optional in the SDK's model: without it the credentials are simply wrong."""
    issued = await call.services.tokens.for_app(call.text("appKey"), call.text("appSecret", required=False))
    return {"accessToken": issued.token, "expireIn": issued.expires_in}


async def suite_access_token(call: V1Call) -> dict[str, Any]:
    key, secret = call.text("suiteKey"), call.text("suiteSecret")
    call.text("suiteTicket")  # required by the SDK's model; test apps may pass any ticket (spec §1.4)
    issued = await call.services.tokens.for_suite(key, secret)
    return {"accessToken": issued.token, "expireIn": issued.expires_in}


async def corp_access_token(call: V1Call) -> dict[str, Any]:
    key, secret, corp_id = call.text("suiteKey"), call.text("suiteSecret"), call.text("authCorpId")
    call.text("suiteTicket")  # required by the SDK's model; test apps may pass any ticket (spec §1.4)
    issued = await call.services.tokens.for_suite_in_corp(key, secret, corp_id or "")
    return {"accessToken": issued.token, "expireIn": issued.expires_in}
