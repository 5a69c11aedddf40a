"""The error catalogue: every DingTalk error dingbox can answer, one class each.

A handler raises; the protocol adapter renders. Each class carries every wire form it has:

* oapi (HTTP 200): `errcode` / `errmsg`; a `gateway` error is wrapped by DingTalk's topapi gateway as
  errcode 88 with a string `sub_code`, and has its own flat code on legacy paths (`legacy`);
* v1.0: `v1` = (HTTP status, code, message);
* TOP gateway: `top` = (code, msg, sub_code) for gateway-level errors; business errors travel inside
  the method's own response, as on oapi.

    DingboxError
    ├── GatewayError           token and permission errors (88 on topapi, flat on legacy, 27 on TOP)
    ├── RoutingError           unknown API, path or verb
    ├── ParameterError         40035-style input errors, and the specific list / msg / window codes
    ├── BusinessError          rules of the send (agent, template, size) and internal failures
    └── RobotError             the robot one-to-one API's own codes (v1.0 only, spec §5.1–§5.3)
"""

from __future__ import annotations

from typing import ClassVar


class DingboxError(Exception):
    """系统繁忙"""

    errcode: ClassVar[int] = -1
    errmsg: ClassVar[str] = "系统繁忙"
    v1: ClassVar[tuple[int, str, str]] = (500, "system.error", "系统错误")
    top: ClassVar[tuple[int, str, str] | None] = None

    def __init__(self, message: str | None = None, *, v1_message: str | None = None) -> None:
        self.message = message if message is not None else self.errmsg
        self.v1_message = v1_message if v1_message is not None else (message or self.v1[2])
        self.v1_status, self.v1_code = self.v1[0], self.v1[1]
        super().__init__(self.message)


# -- gateway: tokens and permissions -------------------------------------------------------------


class GatewayError(DingboxError):
    """Reported by DingTalk's gateway: wrapped as errcode 88 on topapi paths."""

    sub_msg: ClassVar[str] = ""
    legacy: ClassVar[tuple[int, str]] = (-1, "")


class TokenMissing(GatewayError):
    errcode = 40000
    errmsg = sub_msg = "access_token is blank"
    legacy = (41001, "缺少access_token参数")
    v1 = (400, "AuthenticationFailed.MissingParameter", "缺少参数：x-acs-dingtalk-access-token")
    top = (27, "Invalid session", "invalid-sessionkey")


class TokenInvalid(GatewayError):
    errcode = 40014
    errmsg = sub_msg = "不合法的access_token"
    legacy = (40014, "不合法的access_token")
    v1 = (400, "InvalidAuthentication", "不合法的access_token")
    top = (27, "Invalid session", "invalid-sessionkey")


class TokenExpired(GatewayError):
    errcode = 42001
    errmsg = sub_msg = "access_token超时"
    legacy = (42001, "access_token超时")
    v1 = (400, "InvalidAuthentication", "不合法的access_token")
    top = (27, "Invalid session", "session-expired")


class NoPermission(GatewayError):
    errcode = 60011
    errmsg = sub_msg = "没有调用该接口的权限"
    legacy = (60011, "没有调用该接口的权限")
    v1 = (403, "Forbidden.AccessDenied.AccessTokenPermissionDenied", "没有调用该接口的权限")
    top = (11, "Insufficient isv permissions", "isv.permission-api-package-empty")


# -- credentials (answered flat by the token endpoints, never wrapped) -----------------------------


class AppCredentialsInvalid(DingboxError):
    errcode = 40096
    errmsg = "不合法的appKey或appSecret"
    v1 = (400, "invalidClientIdOrSecret", "无效的clientId或者clientSecret")


class SuiteCredentialsInvalid(DingboxError):
    """Unknown suite key, wrong suite secret or a signature that does not verify."""

    errcode = 40096
    errmsg = "不合法的suiteKey或suiteSecret"
    v1 = (400, "invalidSuiteKey", "suitekey不合法")


class AuthCorpInvalid(DingboxError):
    """The suite is not installed in that corp (no ISV app of the suite there).

    Not 33001 (无效的企业ID): dingtalk-sdk answers 33001 by fetching a new token and retrying without
    limit, so a mistyped corp id would recurse until RecursionError. 40089 is DingTalk's code for an
    invalid corpid in a token request, and the SDK passes it through.
    """

    errcode = 40089
    errmsg = "不合法的corpid或corpsecret"
    v1 = (400, "invalidAuthCorpId", "authCorpId不合法")


# -- routing ----------------------------------------------------------------------------------------


class RoutingError(DingboxError):
    v1 = (404, "notFound", "Specified api is not found, please check your url and method.")


class UnknownApi(RoutingError):
    """A topapi path DingTalk's gateway does not know: errcode 22 with the derived ApiName."""

    errcode = 22
    errmsg = "Invalid method"

    def __init__(self, api_name: str) -> None:
        self.sub_msg = f"不合法ApiName，ApiName = {api_name}"
        super().__init__(f"Invalid method[submsg={self.sub_msg}]")


class UnknownPath(RoutingError):
    errcode = 404
    errmsg = "请求的URI地址不存在"


class GetRequired(RoutingError):
    errcode = 43001
    errmsg = "需要GET请求"


class PostRequired(RoutingError):
    errcode = 43002
    errmsg = "需要POST请求"


# The TOP gateway's own errors (spec §3.9) exist only as `error_response`: no method answers them.


class TopMissingMethod(RoutingError):
    errcode = 21
    errmsg = "Missing method"
    top = (21, "Missing method", "")


class TopInvalidMethod(RoutingError):
    errcode = 22
    errmsg = "Invalid method"
    top = (22, "Invalid method", "")


class TopHttpActionNotAllowed(RoutingError):
    """TOP takes GET or POST only."""

    errcode = 9
    errmsg = "Http Action Not Allowed"
    top = (9, "Http Action Not Allowed", "")


class TopInvalidArguments(RoutingError):
    """A request the gateway cannot read (too large, not UTF-8, bad JSON): TOP's 41, the reason as sub_msg."""

    errcode = 41
    errmsg = "Invalid arguments"
    top = (41, "Invalid arguments", "isv.invalid-parameter")


class TopServiceUnavailable(RoutingError):
    """Anything unexpected in the TOP gateway itself: an error_response, never an HTTP 500."""

    errcode = 10
    errmsg = "Service Currently Unavailable"
    top = (10, "Service Currently Unavailable", "")


# -- parameters ------------------------------------------------------------------------------------


class ParameterError(DingboxError):
    errcode = 40035
    errmsg = "不合法的参数"
    v1 = (400, "invalidParameter.param.invalid", "参数不合法")


class MissingParameter(ParameterError):
    """缺少参数 <name>; on v1.0 the gateway's `Missing<name>` form."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"缺少参数 {name}", v1_message=f"{name} is mandatory for this action.")
        self.v1_code = f"Missing{name}"


class InvalidParameter(ParameterError):
    def __init__(self, name: str, reason: str | None = None) -> None:
        self.name = name
        message = f"不合法的参数 {name}" + (f": {reason}" if reason else "")
        super().__init__(message, v1_message=f"{name}参数不合法" + (f": {reason}" if reason else ""))


class BodyTooLarge(ParameterError):
    errmsg = "请求体过大"
    v1 = (413, "invalidParameter.param.invalid", "请求体过大")


class UserListTooLong(ParameterError):
    errcode = 40032
    errmsg = "不合法的UserID列表长度"


class DeptListTooLong(ParameterError):
    errcode = 40066
    errmsg = "不合法的部门列表"


class MsgTypeInvalid(ParameterError):
    errcode = 40008
    errmsg = "不合法的消息类型"


class MsgTooLong(ParameterError):
    errcode = 45002
    errmsg = "消息内容超过限制"


class TaskInvalid(InvalidParameter):
    """Unknown task, or a task of another app or corp: the two are indistinguishable on purpose."""

    def __init__(self, name: str = "task_id", reason: str | None = None) -> None:
        super().__init__(name, reason)


# -- business rules --------------------------------------------------------------------------------


class BusinessError(DingboxError):
    pass


class AgentIdInvalid(BusinessError):
    errcode = 400002
    errmsg = "agentId不合法"


class CallTimeout(BusinessError):
    """getsendresult on a task over the profile's recipient limit: DingTalk gives up."""

    errcode = -1
    errmsg = "Call timeout"


class TemplateNotFound(BusinessError):
    errcode = 885001
    errmsg = "消息模板不存在"


class TemplateUnavailable(BusinessError):
    errcode = 885006
    errmsg = "消息模板不可用"


class SystemException(BusinessError):
    """sendbytemplate's answer to anything unexpected: its page lists `500 系统异常` (spec §3.2)."""

    errcode = 500
    errmsg = "系统异常"


class SystemBusy(BusinessError):
    """Anything unexpected: DingTalk's -1, never a traceback."""

    errcode = -1
    errmsg = "系统繁忙"


class Unavailable(Exception):
    """Raised by a store that cannot serve right now (disk full, I/O error, server gone); every wire
    family answers it with `StoreUnavailable`. The store's own errors derive from it."""


class StoreUnavailable(BusinessError):
    """The store cannot write (disk full, I/O error): DingTalk's system error, HTTP 503 on v1.0."""

    errcode = -1
    errmsg = "系统繁忙"
    v1 = (503, "system.error", "系统繁忙，请稍后重试")


# -- robot one-to-one (v1.0 only: these endpoints have no oapi or TOP form) ---------------------------


class RobotError(DingboxError):
    """The codes of DingTalk's robot error table (spec §5.1) and its read-status query (§5.2)."""


class RobotBodyInvalid(RobotError):
    v1 = (400, "invalidParameter.msgBody.invalid", "消息体必须是JSON格式")


class RobotCodeEmpty(RobotError):
    v1 = (400, "invalidParameter.robotCode.empty", "机器人robotCode无效")


class RobotCodeMissing(RobotError):
    """readStatus names its missing query parameters with `.missing` (spec §5.2)."""

    v1 = (400, "invalidParameter.robotCode.missing", "缺少参数robotCode")


class RobotCodeInvalid(RobotError):
    """A robotCode that is not text."""

    v1 = (400, "invalidParameter.robotCode.invalid", "无效的robotCode")


class RobotNotFound(RobotError):
    """Unknown robot, or one of another app or corp: indistinguishable on purpose. DingTalk's spelling."""

    v1 = (
        400,
        "invalidParameter.robotCode.notExsit",
        "机器人不存在，请检查企业内是否安装了robotCode对应的机器人",
    )


class UserIdsEmpty(RobotError):
    v1 = (400, "invalidParameter.userIds.empty", "用户userId列表为空")


class UserIdsOverMax(RobotError):
    v1 = (400, "invalidParameter.userIds.overMax", "用户userId列表超过最大限制")

    def __init__(self, limit: int) -> None:
        super().__init__(
            v1_message=f"用户userId列表超过最大限制{limit}，请将userId拆分成多个长度不超过{limit}的数组，分批次调用此接口"
        )


class MsgKeyEmpty(RobotError):
    v1 = (400, "invalidParameter.msgKey.empty", "msgKey为空")


class MsgKeyInvalid(RobotError):
    v1 = (400, "invalidParameter.msgKey.invalid", "msgKey无效，请传入正确的msgKey")


class MsgParamInvalid(RobotError):
    v1 = (400, "invalidParameter.msgParam.invalid", "msgParam格式非法，必须是json格式")


class MsgParamTooLong(RobotError):
    v1 = (400, "invalidParameter.msgParam.tooLong", "消息内容太长，请缩减内容长度")


class MsgParamFieldMissing(RobotError):
    """`miss.param.<code>`: the msgKey's own code for an empty msgParam, else the missing field's."""

    v1 = (400, "miss.param", "消息内容不合法")

    def __init__(self, code: str, needs: str) -> None:
        super().__init__(v1_message=f"消息内容不合法，需要{needs}属性")
        self.v1_code = code


class ProcessQueryKeyMissing(RobotError):
    v1 = (400, "invalidParameter.processQueryKey.missing", "缺少参数processQueryKey")


class ProcessQueryKeyInvalid(RobotError):
    """No message of this robot has that key (a key sent without URL-encoding lands here)."""

    v1 = (400, "invalid.processQueryKey", "无效的processQueryKey")


class ProcessQueryKeyExpired(RobotError):
    v1 = (400, "processQueryKey.expireTime", "只能查询24小时内发送的消息")


def catalogue() -> list[type[DingboxError]]:
    """Every concrete error class, for the coverage test and docs/api-coverage.md."""
    found: list[type[DingboxError]] = []
    pending: list[type[DingboxError]] = [DingboxError]
    while pending:
        cls = pending.pop()
        for sub in cls.__subclasses__():
            pending.append(sub)
            if sub not in (GatewayError, BusinessError, RobotError):  # never raised themselves
                found.append(sub)
    return sorted(found, key=lambda c: c.__name__)
