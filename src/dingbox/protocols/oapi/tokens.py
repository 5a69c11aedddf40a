"""oapi token endpoints (spec §1.1, §1.4): `/gettoken` and the ISV `/service/*` pair."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dingbox import errors

if TYPE_CHECKING:
    from dingbox.protocols.oapi.routes import OapiCall


async def gettoken(call: OapiCall) -> dict[str, Any]:
    """Only the query counts: DingTalk ignores a form body on this GET (spec §10 #16).

    The legacy `corpid`/`corpsecret` pair is read as an app key and secret (SecretClient's spelling).
    """
    query = call.request.query_params
    key = query.get("appkey") or query.get("corpid")
    secret = query.get("appsecret") or query.get("corpsecret")
    if not key:
        raise errors.MissingParameter("corpid or appkey")
    if not secret:
        raise errors.MissingParameter("corpsecret or appsecret")
    issued = await call.services.tokens.for_app(key, secret)
    return {"access_token": issued.token, "expires_in": issued.expires_in}


async def get_suite_token(call: OapiCall) -> dict[str, Any]:
    params = call.params
    issued = await call.services.tokens.for_suite(params.text("suite_key"), params.text("suite_secret"))
    return {"suite_access_token": issued.token, "expires_in": issued.expires_in}


async def get_corp_token(call: OapiCall) -> dict[str, Any]:
    """Signature form (query accessKey, timestamp, suiteTicket, signature) or legacy suite-token form."""
    params = call.params
    tokens = call.services.tokens
    corp_id = params.text("auth_corpid") or ""
    suite_token = call.request.query_params.get("suite_access_token")
    if params.has("accessKey"):
        issued = await tokens.for_signed_suite(
            params.text("accessKey"),
            params.text("timestamp"),
            params.text("suiteTicket", required=False),
            params.text("signature"),
            corp_id,
        )
    elif suite_token:
        issued = await tokens.for_suite_token(suite_token, corp_id)
    else:
        raise errors.MissingParameter("accessKey")
    return {"access_token": issued.token, "expires_in": issued.expires_in}
