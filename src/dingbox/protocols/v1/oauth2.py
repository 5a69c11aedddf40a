"""v1.0 token endpoints (spec §1.2, §1.4): internal-app, suite and corp (ISV) access tokens."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dingbox.protocols.v1.routes import V1Call


async def access_token(call: V1Call) -> dict[str, Any]:
    issued = await call.services.tokens.for_app(call.text("appKey"), call.text("appSecret", required=False))
    return {"accessToken": issued.token, "expireIn": issued.expires_in}


async def suite_access_token(call: V1Call) -> dict[str, Any]:
    issued = await call.services.tokens.for_suite(call.text("suiteKey"), call.text("suiteSecret"))
    return {"accessToken": issued.token, "expireIn": issued.expires_in}


async def corp_access_token(call: V1Call) -> dict[str, Any]:
    call.text("suiteTicket", required=False)  # test apps may pass any ticket (spec §1.4)
    issued = await call.services.tokens.for_suite_in_corp(
        call.text("suiteKey"), call.text("suiteSecret"), call.text("authCorpId") or ""
    )
    return {"accessToken": issued.token, "expireIn": issued.expires_in}
