"""The web UI in a real Chromium (Debian's, driven by Playwright): live inboxes, reading, rendering of
every message type, hostile content, and the quota view crossing a daily cap.

With DINGBOX_SCREENSHOTS=<dir> (scripts/screenshots.py sets it) the tests also save what they show.
"""

from __future__ import annotations

import copy
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import DEMO_ORG
from support import MESSAGES, Client, text

pytestmark = pytest.mark.browser

SHOTS = os.environ.get("DINGBOX_SCREENSHOTS")
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        args = ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
        b = pw.chromium.launch(executable_path=executable, args=args)
        yield b
        b.close()


class Page:
    """A browser page on the server, recording what a hostile message could make it do."""

    def __init__(self, browser: Any, base: str, **context: Any) -> None:
        self.base = base
        self.context = browser.new_context(**{"viewport": DESKTOP, **context})
        self.p = self.context.new_page()
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.console: list[str] = []
        self.p.on("request", lambda r: self.requests.append(r.url))
        self.p.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.p.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))

    def open(self, path: str, live: bool = True) -> Any:
        self.p.goto(self.base + "/ui" + path)
        if live:
            self.p.wait_for_selector("body[data-live=ready]", timeout=5000)
        return self.p

    def shot(self, name: str, selector: str | None = None, full_page: bool = True) -> None:
        if not SHOTS:
            return
        path = Path(SHOTS) / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        if selector:
            self.p.locator(selector).screenshot(path=str(path))
        else:
            self.p.screenshot(path=str(path), full_page=full_page)


@pytest.fixture
def pages(browser: Any, client: Client) -> Iterator[Any]:
    opened: list[Page] = []

    def open_page(**context: Any) -> Page:
        page = Page(browser, client.base, **context)
        opened.append(page)
        return page

    yield open_page
    for page in opened:
        page.context.close()


def test_a_message_appears_live_and_reading_it_shows_in_getsendresult(
    client: Client, pages: Any, browser: Any
) -> None:
    token = client.token()
    for _, earlier in SAMPLES[5:8]:
        client.sent(token, msg=earlier, userid_list="alice")
    page = pages()
    p = page.open("/corps/dingdemo/users/alice")
    page.requests.clear()

    sent_at = time.monotonic()
    task_id = client.send(token, msg=text("deploy 42 finished"), userid_list="alice")["task_id"]
    p.wait_for_selector("article.item.unread >> text=deploy 42 finished", timeout=3000)
    took = time.monotonic() - sent_at
    assert took < 1.0, f"the message took {took:.2f}s to appear"
    assert page.requests == []  # nothing but the event stream opened before the send
    first = p.locator("#messages article.item").first
    assert "deploy 42 finished" in first.inner_text()
    assert p.locator(".chat.active .badge").inner_text() == "4"
    page.shot("inbox")

    assert client.result(token, task_id)["unread_user_id_list"] == ["alice"]
    first.locator(".msg").click()
    p.wait_for_selector("#message-detail .state.read", timeout=3000)
    result = client.result(token, task_id)
    assert result["read_user_id_list"] == ["alice"] and result["unread_user_id_list"] == []
    posts = [r for r in page.requests if r.endswith("/read")]
    assert len(posts) == 1
    assert page.console == []


def test_reads_recalls_and_task_progress_appear_live(client: Client, pages: Any) -> None:
    token = client.token()
    keep = client.sent(token, msg=text("keep me"), userid_list="alice,0356123401")
    gone = client.sent(token, msg=text("recall me"), userid_list="alice")
    inbox = pages()
    p = inbox.open("/corps/dingdemo/users/alice")
    task = pages()
    t = task.open(f"/tasks/{keep}")
    assert '"alice"' in t.locator("#getsendresult").inner_text().split("unread_user_id_list")[1]

    keep_id = next(m["id"] for m in client.inbox("alice") if m["task_id"] == keep)
    gone_id = next(m["id"] for m in client.inbox("alice") if m["task_id"] == gone)
    assert client.api("POST", f"/messages/{keep_id}/read").status_code == 200
    p.wait_for_selector(f"#m-{keep_id} .state.read", timeout=1000)
    t.wait_for_selector("#task-recipients .chip.outcome-read", timeout=1000)
    result = t.locator("#getsendresult").inner_text()
    assert (
        result.index('"read_user_id_list"') < result.index('"alice"') < result.index('"unread_user_id_list"')
    )

    assert client.oapi(MESSAGES + "recall", {"agent_id": 1001, "msg_task_id": gone}, token)["errcode"] == 0
    p.wait_for_selector(f"#m-{gone_id} .msg-recalled", timeout=1000)
    assert "recall me" not in p.locator(f"#m-{gone_id}").inner_text()
    inbox.shot("inbox-read-and-recalled")


# Every work-notification type, with what the browser must show for it.
SAMPLES: list[tuple[str, dict[str, Any]]] = [
    ("text", text("月会通知：周五下午三点，三楼会议室。\nMonthly meeting: Friday 3 pm.")),
    ("image", {"msgtype": "image", "image": {"media_id": "@lADOADmaWMzazQKA"}}),
    ("voice", {"msgtype": "voice", "voice": {"media_id": "@lADOADmaWMzazQKB", "duration": "10"}}),
    ("file", {"msgtype": "file", "file": {"media_id": "@lADOADmaWMzazQKC"}}),
    (
        "link",
        {
            "msgtype": "link",
            "link": {
                "messageUrl": "https://example.com/release",
                "picUrl": "@lALOACZwe2Rk",
                "title": "Release 2.4 is out",
                "text": "Faster sends, a new inbox and quotas you can see before you hit them.",
            },
        },
    ),
    (
        "oa",
        {
            "msgtype": "oa",
            "oa": {
                "message_url": "https://example.com/oa/1",
                "head": {"bgcolor": "FFF65E5E", "text": "ignored"},
                "status_bar": {"status_value": "待审批", "status_bg": "0xFFFF9200"},
                "body": {
                    "title": "报销申请",
                    "form": [{"key": "申请人:", "value": "张三"}, {"key": "事由:", "value": "客户拜访"}],
                    "rich": {"num": "1,280.00", "unit": "元"},
                    "content": "三月客户拜访交通与住宿费用。",
                    "file_count": "2",
                    "author": "财务部",
                },
            },
        },
    ),
    (
        "markdown",
        {
            "msgtype": "markdown",
            "markdown": {
                "title": "杭州天气",
                "text": "#### 杭州天气\n> 9度，**西北风**1级，*空气良*\n> ###### 10点20分发布 [天气](https://www.dingtalk.com)\n"
                '- 上午 <font color=#FF0000>有雨</font>\n- 下午 <font color="00B365">转晴</font>\n\n'
                "1. 带伞\n2. 早点出门\n\n![雷达图](https://example.com/radar.png)",
            },
        },
    ),
    (
        "action_card-single",
        {
            "msgtype": "action_card",
            "action_card": {
                "title": "构建失败",
                "markdown": "### main 构建失败\n提交 **a1b2c3** 的单元测试未通过",
                "single_title": "查看详情",
                "single_url": "https://ci.example.com/1",
            },
        },
    ),
    (
        "action_card-vertical",
        {
            "msgtype": "action_card",
            "action_card": {
                "title": "请选择",
                "markdown": "### 值班安排\n下周谁值班？",
                "btn_orientation": "0",
                "btn_json_list": [
                    {"title": "我来", "action_url": "https://example.com/a"},
                    {"title": "换人", "action_url": "https://example.com/b"},
                ],
            },
        },
    ),
    (
        "action_card-horizontal",
        {
            "msgtype": "action_card",
            "action_card": {
                "title": "审批",
                "markdown": "### 请假申请\n李四 3 月 5 日请假一天",
                "btn_orientation": "1",
                "btn_json_list": [
                    {"title": "同意", "action_url": "https://example.com/yes"},
                    {"title": "拒绝", "action_url": "https://example.com/no"},
                ],
            },
        },
    ),
]


@pytest.mark.store_independent  # what the browser renders
def test_every_message_type_renders_as_dingtalk_does(client: Client, pages: Any) -> None:
    token = client.token()
    ids = {}
    for name, msg in SAMPLES:
        task_id = client.sent(token, msg=msg, userid_list="alice")
        ids[name] = next(m["id"] for m in client.inbox("alice") if m["task_id"] == task_id)
    page = pages()
    p = page.open("/corps/dingdemo/users/alice")
    for name, _ in SAMPLES:
        assert p.locator(f"#m-{ids[name]} .msg").is_visible(), name
        page.shot(f"message-{name}", f"#m-{ids[name]}")

    def style(selector: str, prop: str) -> str:
        return str(p.eval_on_selector(selector, f"e => getComputedStyle(e).{prop}"))

    md = f"#m-{ids['markdown']}"
    assert style(f"{md} h4", "fontWeight") in ("700", "bold")
    assert style(f"{md} blockquote", "borderLeftStyle") == "solid"
    assert style(f"{md} .font", "color") == "rgb(255, 0, 0)"
    assert p.locator(f"{md} ul li").count() == 2 and p.locator(f"{md} ol li").count() == 2
    assert p.locator(f"{md} a.remote-image").inner_text() == "[雷达图 from example.com]"
    oa = f"#m-{ids['oa']}"
    assert style(f"{oa} .oa-head", "backgroundColor") == "rgb(246, 94, 94)"
    assert p.locator(f"{oa} .oa-head").inner_text() == "Ops"  # the app's name, as DingTalk's client shows
    assert p.locator(f"{oa} .oa-status").inner_text() == "待审批"
    assert p.locator(f"{oa} .oa-row").count() == 2
    horizontal = f"#m-{ids['action_card-horizontal']} .card-buttons"
    vertical = f"#m-{ids['action_card-vertical']} .card-buttons"
    assert style(horizontal, "flexDirection") == "row" and style(vertical, "flexDirection") == "column"
    assert (
        p.locator(f"#m-{ids['action_card-single']} .card-button").get_attribute("href")
        == "https://ci.example.com/1"
    )
    assert not [u for u in page.requests if not u.startswith(client.base)]  # the radar image did not load
    assert page.console == []

    p.set_viewport_size({"width": DESKTOP["width"], "height": 3400})  # the list scrolls inside the page
    page.shot("inbox-all-types", full_page=False)
    p.set_viewport_size(DESKTOP)
    dark = pages(color_scheme="dark")
    dark.open("/corps/dingdemo/users/alice")
    dark.shot("inbox-dark", full_page=False)
    phone = pages(viewport=PHONE, is_mobile=True)
    phone.open("/corps/dingdemo/users/alice")
    assert phone.p.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    phone.shot("inbox-phone", full_page=False)


HOSTILE_JS = "document.title='pwned';alert(1)"
HOSTILE_SAMPLES: list[dict[str, Any]] = [
    {
        "msgtype": "markdown",
        "markdown": {
            "title": "<img src=x onerror=alert(1)>",
            "text": f'<script>{HOSTILE_JS}</script><img src=x onerror="{HOSTILE_JS}">'
            f'[click](javascript:{HOSTILE_JS}) <a href="javascript:{HOSTILE_JS}">a</a>'
            f'<font color="red" onmouseover="{HOSTILE_JS}">hover</font>'
            '<iframe src="https://evil.example/"></iframe>![t](https://evil.example/track.png)'
            "<style>body{background:url(https://evil.example/bg.png)}</style>",
        },
    },
    {
        "msgtype": "link",
        "link": {
            "messageUrl": f"javascript:{HOSTILE_JS}",
            "picUrl": "https://evil.example/pic.png",
            "title": f"<script>{HOSTILE_JS}</script>",
            "text": "<img src=x onerror=alert(1)>",
        },
    },
    {
        "msgtype": "action_card",
        "action_card": {
            "title": "x",
            "markdown": "<svg onload=alert(1)>",
            "btn_orientation": "1",
            "btn_json_list": [
                {"title": "<b onclick=alert(1)>", "action_url": f"javascript:{HOSTILE_JS}"},
                {"title": "ok", "action_url": f" JaVaScRiPt:{HOSTILE_JS}"},
            ],
        },
    },
    {
        "msgtype": "oa",
        "oa": {
            "message_url": f"javascript:{HOSTILE_JS}",
            "head": {"bgcolor": "FF1677FF", "text": "<b>x</b>"},
            "status_bar": {"status_value": "<script>alert(1)</script>", "status_bg": "0xFFFF0000"},
            "body": {
                "title": "<img src=x onerror=alert(1)>",
                "form": [{"key": "<svg onload=alert(1)>", "value": f"javascript:{HOSTILE_JS}"}],
                "image": "https://evil.example/oa.png",
                "content": "<script>alert(1)</script>",
                "author": "<iframe src=https://evil.example>",
            },
        },
    },
]


@pytest.mark.store_independent  # what the browser renders
def test_hostile_content_is_inert_in_the_browser(client: Client, pages: Any) -> None:
    token = client.token()
    for msg in HOSTILE_SAMPLES:
        client.sent(token, msg=msg, userid_list="alice")
    page = pages()
    p = page.open("/corps/dingdemo/users/alice")
    for element in p.locator("#messages .msg *").all():
        if element.is_visible():
            element.hover()
    for button in p.locator(".card-button, a.msg, a.oa-body").all():
        button.click(modifiers=["Control"])  # would run a javascript: URL; opens nothing dangerous
    first = client.inbox("alice")[0]["id"]
    page.open(f"/messages/{first}")
    assert page.dialogs == []
    assert p.title() != "pwned"
    external = [u for u in page.requests if not u.startswith(client.base)]
    assert external == []
    # the page's own policy: even HTML added by a script runs no inline handler
    p.evaluate("document.body.insertAdjacentHTML('beforeend', '<img src=x onerror=\"window.pwned=1\">')")
    p.wait_for_timeout(200)
    assert p.evaluate("window.pwned") is None
    assert any("Content Security Policy" in line for line in page.console)
    page.shot("hostile")


def test_the_quota_view_crosses_a_daily_cap_live(client: Client, pages: Any) -> None:
    doc = copy.deepcopy(DEMO_ORG)
    doc["corps"][0]["apps"][0]["limits"] = {"daily_per_user": 2}
    assert client.load_org(doc).status_code == 200
    token = client.token()
    page = pages()
    p = page.open("/corps/dingdemo/quota?agent_id=1001")
    alice = "#quota-body tr[data-userid=alice]"
    assert p.locator(f"{alice} [data-today]").inner_text() == "0"

    client.sent(token, msg=text("first"), userid_list="alice,0356123401")
    p.wait_for_selector(f"{alice} [data-today]:text-is('1')", timeout=2000)
    assert "allowed (1 left)" in p.locator(f"{alice} [data-verdict]").inner_text()
    client.sent(token, msg=text("second"), userid_list="alice")
    p.wait_for_selector(f"{alice}.full", timeout=2000)
    assert p.locator(f"{alice} [data-verdict]").inner_text() == "forbidden: 143105 daily cap"
    assert p.locator("#quota-body .spent").count() == 2
    page.shot("quota")

    task_id = client.sent(token, msg=text("third"), userid_list="alice,0356123401,carol,nobody")
    result = client.result(token, task_id)
    assert result["forbidden_list"] == [{"code": "143105", "count": 2, "userid": "alice"}]
    assert result["unread_user_id_list"] == ["0356123401"]
    task = pages()
    t = task.open(f"/tasks/{task_id}")
    why = t.locator("#task-recipients tr[data-userid=alice] .why").inner_text()
    assert why == "The app's daily cap per user was reached: count 2 (rule 6, code 143105)."
    task.shot("task")
    phone = pages(viewport=PHONE, is_mobile=True)
    for path in (f"/tasks/{task_id}", "/corps/dingdemo/quota?agent_id=1001", "/", "/corps/dingdemo/org"):
        phone.open(path, live=path != "/corps/dingdemo/org")
        assert phone.p.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], path
    phone.open("/corps/dingdemo/quota?agent_id=1001")
    phone.shot("quota-phone", full_page=False)


@pytest.mark.store_independent  # what the browser renders
def test_home_and_org_pages(client: Client, pages: Any) -> None:
    token = client.token()
    client.sent(token, msg=text("hello"), userid_list="alice,carol,nobody")
    page = pages()
    p = page.open("/")
    client.sent(token, msg=text("hello again"), userid_list="alice")
    p.wait_for_selector("#recent-tasks tbody tr:nth-child(2)", timeout=2000)
    page.shot("home")
    page.open("/corps/dingdemo/org", live=False)
    assert p.locator("li.inactive a", has_text="Carol").is_visible()
    page.shot("org")
