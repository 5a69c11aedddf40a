"""Generated input against every parser of one real server: never a 5xx, never errcode -1, always the
surface's own envelope.

Seeded (hypothesis derandomized, no example database) and bounded: CI runs `FUZZ_EXAMPLES`
examples per test (20 to 60 s in all, as the machine is loaded); `make soak` raises it through
DINGBOX_FUZZ_EXAMPLES. The number of examples run is reported as a warning in pytest's summary,
which also reaches it from xdist workers.

Envelopes (DESIGN §1, §4, §7):
- oapi (topapi, /gettoken, /service/*): HTTP 200, JSON object with an integer `errcode`;
- v1.0: the business object with 200, or 4xx JSON `{code, message, requestid}`;
- TOP gateway: HTTP 200, JSON object holding `error_response` or `<method>_response`;
- /api/v1: below 500; an error is `{"error": {"code", "message"}}`.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support import DEMO_AGENT, DEMO_ISV_AGENT, MESSAGES, Client, ServerProcess

FUZZ_EXAMPLES = int(os.environ.get("DINGBOX_FUZZ_EXAMPLES", "250"))
FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
TIMEOUT = 30  # a hang is a failure too


class FuzzSummary(UserWarning):
    """The examples the fuzz tests ran, shown in pytest's warnings summary."""


RUN = {"examples": 0, "started": time.monotonic()}


@pytest.fixture(scope="module", autouse=True)
def summary() -> Iterator[None]:
    RUN.update(examples=0, started=time.monotonic())
    yield
    elapsed = time.monotonic() - RUN["started"]
    report = f"fuzz: {RUN['examples']} examples in {elapsed:.1f} s ({FUZZ_EXAMPLES} per test)"
    print(report)
    warnings.warn(report, FuzzSummary, stacklevel=1)


@pytest.fixture(scope="module")
def http(server: ServerProcess) -> requests.Session:
    return requests.Session()


@pytest.fixture(scope="module")
def tokens(server: ServerProcess) -> dict[str, str]:
    client = Client(server.url)
    return {"internal": client.token(), "isv": client.isv_token()}


# -- generated values -------------------------------------------------------------------------------

MSGTYPES = ["text", "image", "voice", "file", "link", "oa", "markdown", "action_card"]

# digits around int64 and past int()'s 4300-digit limit
huge_digits = st.builds(
    lambda sign, n: sign + "9" * n,
    st.sampled_from(["", "-", "+", " "]),
    st.sampled_from([19, 20, 4300, 4301, 6000]),
)
numbers = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, -1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, DEMO_AGENT, DEMO_ISV_AGENT]),
)
texts = st.one_of(
    st.text(max_size=40),
    huge_digits,
    st.sampled_from(["", " ", "1.5", "abc", "²", "１２", "true", "null", "{", "[1", '\\"1,2\\"', "密钥"]),
    numbers.map(str),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)


def nested(levels: int) -> Any:
    value: Any = {"x": 1}
    for _ in range(levels - 1):
        value = [value]
    return value


json_values = st.one_of(
    st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
        max_leaves=12,
    ),
    st.one_of(st.sampled_from([63, 64, 65, 254, 255, 300]), st.integers(1, 400)).map(nested),
)


MEDIA = "@lADOADmaWMzazQKA"
VALID_MESSAGES = [
    {"msgtype": "text", "text": {"content": "hi"}},
    {"msgtype": "image", "image": {"media_id": MEDIA}},
    {"msgtype": "voice", "voice": {"media_id": MEDIA, "duration": "10"}},
    {"msgtype": "file", "file": {"media_id": MEDIA}},
    {"msgtype": "link", "link": {"messageUrl": "http://a.cn", "picUrl": MEDIA, "title": "t", "text": "x"}},
    {"msgtype": "oa", "oa": {"head": {"text": "head"}, "body": {"content": "xxx"}}},
    {"msgtype": "markdown", "markdown": {"title": "t", "text": "# x"}},
    {
        "msgtype": "action_card",
        "action_card": {"title": "t", "markdown": "m", "single_title": "s", "single_url": "u"},
    },
]
FIELD_NAMES = ["content", "media_id", "duration", "messageUrl", "picUrl", "title", "text", "markdown"]
FIELD_NAMES += ["message_url", "head", "body", "status_bar", "single_title", "single_url", "extra"]
FIELD_NAMES += ["btn_orientation", "btn_json_list", "form", "rich", "bgcolor", "status_value"]
long_texts = st.builds(
    lambda n, c: c * n, st.integers(300, 2200), st.sampled_from(["a", "中", "😀", '"', "\\"])
)


@st.composite
def messages(draw: st.DrawFn) -> Any:
    """A msg: a valid message with one field replaced, or one shaped like a message (a known or
    unknown type, random fields), or anything at all; as an object or as JSON text (compact or
    ASCII-escaped, as dingtalk-sdk sends it)."""
    shape = draw(st.sampled_from(["mutated", "random", "anything"]))
    if shape == "anything":
        return draw(json_values)
    if shape == "mutated":
        msg: Any = json.loads(json.dumps(draw(st.sampled_from(VALID_MESSAGES))))
        body = msg[msg["msgtype"]]
        body[draw(st.sampled_from(FIELD_NAMES))] = draw(st.one_of(json_values, long_texts))
    else:
        msgtype = draw(st.one_of(st.sampled_from(MSGTYPES), texts))
        body = draw(st.dictionaries(st.sampled_from(FIELD_NAMES), json_values, max_size=6))
        msg = {"msgtype": msgtype, str(msgtype): body}
    if draw(st.booleans()):
        msg[draw(st.sampled_from(MSGTYPES))] = draw(json_values)  # a sibling the type does not use
    form = draw(st.sampled_from(["object", "text", "ascii"]))
    if form == "text":
        return json.dumps(msg, ensure_ascii=False)
    if form == "ascii":
        return json.dumps(msg)
    return msg


def integer_ids(known: int) -> st.SearchStrategy[Any]:
    return st.one_of(huge_digits, st.just(known), st.just(str(known)), scalars)


id_lists = st.one_of(
    st.sampled_from(["alice", "alice,0356123401", "2", "1,2,3", "0,-1,99", ""]),
    texts,
    st.lists(st.one_of(texts, numbers), max_size=5),
)


SEND_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "agent_id": integer_ids(DEMO_AGENT),
    "task_id": integer_ids(1),
    "msg_task_id": integer_ids(1),
    "msg": messages(),
    "userid_list": id_lists,
    "dept_id_list": id_lists,
    "to_all_user": scalars,
    "status_value": scalars,
    "status_bg": scalars,
    "extra": json_values,
}


@st.composite
def send_fields(draw: st.DrawFn, agent: int) -> dict[str, Any]:
    """A valid call with one parameter replaced (so the replaced one is what gets read), or a call
    of random parameters."""
    if draw(st.booleans()):
        fields = {"agent_id": agent, "userid_list": "alice", "msg": VALID_MESSAGES[0]}
        fields |= {"task_id": 1, "msg_task_id": 1, "status_value": "done"}
        name = draw(st.sampled_from(sorted(SEND_VALUES)))
        fields[name] = draw(SEND_VALUES[name])
        return fields
    optional = {name: values for name, values in SEND_VALUES.items() if name not in ("agent_id", "msg")}
    return draw(
        st.fixed_dictionaries(
            {"agent_id": integer_ids(agent), "msg": messages()},
            optional=optional,
        )
    )


# -- encodings --------------------------------------------------------------------------------------


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def stringified(value: Any) -> Any:
    """The Java SDK's style: every scalar as its text."""
    if isinstance(value, dict):
        return {k: stringified(v) for k, v in value.items()}
    if isinstance(value, list):
        return [stringified(v) for v in value]
    return value if value is None or isinstance(value, str) else json.dumps(value)


ENCODINGS = ["json", "stringified", "form", "query", "multipart", "form_labelled_json", "raw"]


def post(
    http: requests.Session, url: str, fields: dict[str, Any], encoding: str, **kw: Any
) -> requests.Response:
    params = dict(kw.pop("params", {}))
    if encoding == "json":
        return http.post(url, params=params, json=fields, timeout=TIMEOUT)
    if encoding == "stringified":
        return http.post(url, params=params, json=stringified(fields), timeout=TIMEOUT)
    text_fields = {k: as_text(v) for k, v in fields.items()}
    if encoding == "form":
        return http.post(url, params=params, data=text_fields, timeout=TIMEOUT)
    if encoding == "query":
        return http.post(url, params={**params, **text_fields}, timeout=TIMEOUT)
    if encoding == "multipart":
        files = {k: (None, v) for k, v in text_fields.items()}
        return http.post(url, params=params, files=files, timeout=TIMEOUT)
    if encoding == "form_labelled_json":
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        return http.post(url, params=params, data=json.dumps(fields), headers=headers, timeout=TIMEOUT)
    raw = kw.pop("raw", b"\xff{")
    headers = {"Content-Type": kw.pop("content_type", "application/json")}
    return http.post(url, params=params, data=raw, headers=headers, timeout=TIMEOUT)


def body_of(resp: requests.Response) -> Any:
    assert resp.status_code < 500, (resp.status_code, resp.text[:500])
    assert resp.headers.get("content-type", "").startswith("application/json"), resp.text[:500]
    return resp.json()


def oapi_envelope(resp: requests.Response) -> dict[str, Any]:
    body = body_of(resp)
    assert resp.status_code == 200 and isinstance(body, dict), body
    assert isinstance(body.get("errcode"), int) and isinstance(body.get("errmsg"), str), body
    assert body["errcode"] != -1, body
    return body


def v1_envelope(resp: requests.Response) -> None:
    body = body_of(resp)
    assert isinstance(body, dict), body
    if resp.status_code != 200:
        assert 400 <= resp.status_code < 500 and {"code", "message", "requestid"} <= set(body), body


def top_envelope(resp: requests.Response) -> None:
    body = body_of(resp)
    assert resp.status_code == 200 and isinstance(body, dict) and len(body) == 1, body
    [(key, answer)] = body.items()
    assert key == "error_response" or key.endswith("_response"), body
    if key == "error_response":
        assert isinstance(answer["code"], int) and answer["code"] != 10, body
    elif "result" in answer:
        assert answer["result"]["ding_open_errcode"] != -1, body
    else:
        assert answer["errcode"] != -1, body


def api_envelope(resp: requests.Response) -> None:
    assert resp.status_code < 500, (resp.status_code, resp.text[:500])
    if resp.status_code >= 400:
        body = body_of(resp)
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body


def counted() -> None:
    RUN["examples"] += 1


# -- the DingTalk surfaces --------------------------------------------------------------------------

MESSAGE_APIS = ["asyncsend_v2", "getsendprogress", "getsendresult", "recall", "status_bar/update"]


@FUZZ
@given(
    api=st.sampled_from(MESSAGE_APIS),
    who=st.sampled_from(["internal", "isv"]),
    data=st.data(),
    encoding=st.sampled_from(ENCODINGS),
    raw=st.binary(max_size=200),
    content_type=st.sampled_from(
        ["application/json", "application/x-www-form-urlencoded", "multipart/form-data", ""]
    ),
)
def test_fuzz_oapi_messages(
    server: ServerProcess,
    http: requests.Session,
    tokens: dict[str, str],
    api: str,
    who: str,
    data: st.DataObject,
    encoding: str,
    raw: bytes,
    content_type: str,
) -> None:
    counted()
    fields = data.draw(send_fields(DEMO_AGENT if who == "internal" else DEMO_ISV_AGENT))
    resp = post(
        http,
        server.url + MESSAGES + api,
        fields,
        encoding,
        params={"access_token": tokens[who]},
        raw=raw,
        content_type=content_type,
    )
    oapi_envelope(resp)


@FUZZ
@given(
    path=st.sampled_from(["/gettoken", "/service/get_suite_token", "/service/get_corp_token"]),
    query=st.dictionaries(
        st.sampled_from(
            [
                "appkey",
                "appsecret",
                "corpid",
                "corpsecret",
                "accessKey",
                "timestamp",
                "suiteTicket",
                "signature",
            ]
            + ["suite_access_token", "access_token"]
        ),
        st.one_of(st.sampled_from(["demo-key", "demo-secret", "suite-demo", "suite-demo-secret"]), texts),
        max_size=5,
    ),
    body=st.dictionaries(
        st.sampled_from(["suite_key", "suite_secret", "suite_ticket", "auth_corpid", "permanent_code"]),
        st.one_of(st.sampled_from(["suite-demo", "suite-demo-secret", "dingdemo"]), scalars, json_values),
        max_size=4,
    ),
    encoding=st.sampled_from(ENCODINGS),
)
def test_fuzz_token_endpoints(
    server: ServerProcess,
    http: requests.Session,
    path: str,
    query: dict[str, str],
    body: dict[str, Any],
    encoding: str,
) -> None:
    counted()
    if path == "/gettoken":
        resp = http.get(server.url + path, params=query, timeout=TIMEOUT)
    else:
        resp = post(http, server.url + path, body, encoding, params=query)
    oapi_envelope(resp)


@FUZZ
@given(
    path=st.sampled_from(["accessToken", "suiteAccessToken", "corpAccessToken"]),
    body=st.one_of(
        st.fixed_dictionaries(
            {},
            optional={
                "appKey": st.one_of(st.just("demo-key"), scalars),
                "appSecret": st.one_of(st.just("demo-secret"), scalars),
                "suiteKey": st.one_of(st.just("suite-demo"), scalars),
                "suiteSecret": st.one_of(st.just("suite-demo-secret"), scalars),
                "suiteTicket": scalars,
                "authCorpId": st.one_of(st.just("dingdemo"), scalars),
                "extra": json_values,
            },
        ),
        json_values,
    ),
    raw=st.one_of(st.none(), st.binary(max_size=100)),
)
def test_fuzz_v1_oauth2(
    server: ServerProcess, http: requests.Session, path: str, body: Any, raw: bytes | None
) -> None:
    counted()
    url = f"{server.url}/v1.0/oauth2/{path}"
    if raw is None:
        resp = http.post(url, json=body, timeout=TIMEOUT)
    else:
        resp = http.post(url, data=raw, headers={"Content-Type": "application/json"}, timeout=TIMEOUT)
    v1_envelope(resp)


TOP_METHODS = [
    "dingtalk.oapi.message.corpconversation.asyncsend_v2",
    "dingtalk.oapi.message.corpconversation.recall",
    "dingtalk.corp.message.corpconversation.getsendprogress",
    "dingtalk.corp.message.corpconversation.getsendresult",
]


@FUZZ
@given(
    method=st.one_of(st.sampled_from(TOP_METHODS), texts),
    with_session=st.booleans(),
    data=st.data(),
    encoding=st.sampled_from(ENCODINGS),
    raw=st.binary(max_size=200),
)
def test_fuzz_top_gateway(
    server: ServerProcess,
    http: requests.Session,
    tokens: dict[str, str],
    method: str,
    with_session: bool,
    data: st.DataObject,
    encoding: str,
    raw: bytes,
) -> None:
    counted()
    fields = data.draw(send_fields(DEMO_AGENT))
    envelope = {"method": method, "format": "json", "v": "2.0"}
    if with_session:
        envelope["session"] = tokens["internal"]
    resp = post(http, server.url + "/router/rest", fields, encoding, params=envelope, raw=raw)
    top_envelope(resp)


# -- dingbox's own API ------------------------------------------------------------------------------

path_ids = st.one_of(st.integers(-5, 2**64).map(str), texts.filter(lambda t: "/" not in t and t.strip()))
query_values = st.one_of(st.integers(-(2**64), 2**64).map(str), texts)


@st.composite
def api_calls(draw: st.DrawFn) -> tuple[str, str, dict[str, str], Any]:
    """(method, path, query, JSON body or raw bytes) for a route of /api/v1."""
    q = st.dictionaries(
        st.sampled_from(["limit", "before", "cursor", "source", "unread", "timeout"]), query_values
    )
    route = draw(
        st.sampled_from(["inbox", "message", "read", "task", "org", "clock", "advance", "drain", "misc"])
    )
    if route == "inbox":
        corp = draw(st.sampled_from(["dingdemo", "nowhere"]))
        user = draw(st.sampled_from(["alice", "0356123401", "ghost"]))
        return "GET", f"/corps/{corp}/users/{user}/messages", draw(q), None
    if route in ("message", "read"):
        suffix = "/read" if route == "read" else ""
        return ("POST" if suffix else "GET"), f"/messages/{draw(path_ids)}{suffix}", {}, None
    if route == "task":
        return (
            "GET",
            f"/tasks/{draw(path_ids)}",
            draw(q) | {"wait": draw(st.sampled_from(["0", "0.05", "x"]))},
            None,
        )
    if route == "org":
        return "PUT", "/org", {}, draw(st.one_of(json_values, st.binary(max_size=100)))
    if route == "clock":
        return (
            "PUT",
            "/clock",
            {},
            draw(st.one_of(st.fixed_dictionaries({"now": texts, "frozen": scalars}), json_values)),
        )
    if route == "advance":
        return (
            "POST",
            "/clock/advance",
            {},
            draw(st.one_of(st.fixed_dictionaries({"seconds": numbers}), json_values)),
        )
    if route == "drain":
        return (
            "POST",
            "/dispatch/drain",
            {"timeout": draw(st.sampled_from(["0", "0.1", "-1", "x", "1e999"]))},
            None,
        )
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE"]))
    return (
        method,
        # /reset drops the tokens of the tests above: this test runs last in the module
        draw(st.sampled_from(["/health", "/corps", "/clock", "/nothing", "/tasks", "/messages", "/reset"])),
        {},
        None,
    )


@FUZZ
@given(call=api_calls())
def test_fuzz_api_v1(
    server: ServerProcess, http: requests.Session, call: tuple[str, str, dict[str, str], Any]
) -> None:
    counted()
    method, path, query, body = call
    url = f"{server.url}/api/v1{path}"
    if isinstance(body, bytes):
        resp = http.request(method, url, params=query, data=body, timeout=TIMEOUT)
    elif body is None:
        resp = http.request(method, url, params=query, timeout=TIMEOUT)
    else:
        resp = http.request(method, url, params=query, json=body, timeout=TIMEOUT)
    api_envelope(resp)
    if path.startswith("/clock"):  # keep the rest of the run on real time
        http.put(f"{server.url}/api/v1/clock", json={"now": datetime.now(UTC).isoformat(), "frozen": False})
