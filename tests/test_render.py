"""The renderer without a browser: DingTalk's markdown subset construct by construct (golden HTML),
every message kind, and hostile content made inert."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from dingbox.web.render import css_color, markdown_html, message_html, plain_summary, safe_url

A = 'target="_blank" rel="noopener noreferrer"'

# (construct, DingTalk markdown, the HTML dingbox draws): spec §12.2-§12.5
GOLDEN = [
    ("heading levels", "# H1\n## H2\n###### H6", "<h1>H1</h1>\n<h2>H2</h2>\n<h6>H6</h6>"),
    ("bold", "**bold**", "<p><strong>bold</strong></p>"),
    ("italic with * and _", "*a* _b_", "<p><em>a</em> <em>b</em></p>"),
    (
        "link",
        "[DingTalk](https://www.dingtalk.com)",
        f'<p><a href="https://www.dingtalk.com" {A}>DingTalk</a></p>',
    ),
    (
        "image (remote images off: a link, nothing loads)",
        "![chart](https://example.com/c.png)",
        f'<p><a class="remote-image" href="https://example.com/c.png" {A} title="https://example.com/c.png">'
        "[chart from example.com]</a></p>",
    ),
    (
        "image by media id",
        "![](@lADOADmaWMzazQKA)",
        '<p><span class="media-ref" title="@lADOADmaWMzazQKA">[image: @lADOADmaWMzazQKA]</span></p>',
    ),
    ("unordered list with -", "- one\n- two", "<ul>\n<li>one</li>\n<li>two</li>\n</ul>"),
    ("unordered list with *", "* one\n* two", "<ul>\n<li>one</li>\n<li>two</li>\n</ul>"),
    ("ordered list", "1. one\n2. two", "<ol>\n<li>one</li>\n<li>two</li>\n</ol>"),
    ("quote", "> quoted", "<blockquote>\n<p>quoted</p>\n</blockquote>"),
    (
        "quote holding a heading and a link (the weather sample)",
        "> 9度\n> ###### 10点20分发布 [天气](https://www.dingtalk.com)",
        "<blockquote>\n<p>9度</p>\n"
        f'<h6>10点20分发布 <a href="https://www.dingtalk.com" {A}>天气</a></h6>\n</blockquote>',
    ),
    ("a lone newline is a hard break", "one\ntwo", "<p>one<br>\ntwo</p>"),
    ("a blank line is a paragraph break", "one\n\ntwo", "<p>one</p>\n<p>two</p>"),
    ("the documented `  \\n  ` break, no code block", "   one  \n   two", "<p>one<br>\ntwo</p>"),
    ("heading after a plain newline", "text\n### head", "<p>text</p>\n<h3>head</h3>"),
    ("&nbsp without semicolon", "a&nbspb&#160c", "<p>a&nbsp;b&nbsp;c</p>"),
    (
        "font colour, hex and name, size",
        '<font color="#FF0000">red</font> <font color=blue size=5 face="黑体">big</font>',
        '<p><span class="font" style="color:#ff0000">red</span>'
        ' <span class="font" style="color:blue;font-size:24px">big</span></p>',
    ),
    (
        "font colour without # around bold (connector sample)",
        '<font color = "FF6A00">**日报来喽！**</font>',
        '<p><span class="font" style="color:#ff6a00"><strong>日报来喽！</strong></span></p>',
    ),
    (
        "dingtalk:// side-panel link shows its page on hover",
        "[t](dingtalk://dingtalkclient/page/link?url=https%3A%2F%2Fa.com&pc_slide=true)",
        '<p><a href="dingtalk://dingtalkclient/page/link?url=https%3A%2F%2Fa.com&amp;pc_slide=true"'
        f' title="https://a.com" {A}>t</a></p>',
    ),
    ("code fence stays literal (strict)", "```\nx\n```", "<p>```<br>\nx<br>\n```</p>"),
    ("inline code stays literal", "`x`", "<p>`x`</p>"),
    ("rule stays literal", "---", "<p>---</p>"),
    ("strikethrough stays literal", "~~x~~", "<p>~~x~~</p>"),
    ("table stays literal", "| a |\n|---|", "<p>| a |<br>\n|---|</p>"),
    ("mention stays text", "@13800000001 hi", "<p>@13800000001 hi</p>"),
    ("other HTML is stripped, its text kept", "<span>x</span><u>y</u>", "<p>xy</p>"),
]


@pytest.mark.parametrize(("markdown", "expected"), [g[1:] for g in GOLDEN], ids=[g[0] for g in GOLDEN])
def test_markdown_construct_renders_as_dingtalk_does(markdown: str, expected: str) -> None:
    assert str(markdown_html(markdown)) == expected


def test_remote_images_load_only_when_asked() -> None:
    html = str(markdown_html("![c](https://example.com/c.png)", remote_images=True))
    assert html == '<p><img src="https://example.com/c.png" alt="c" referrerpolicy="no-referrer"></p>'


HOSTILE_MARKDOWN = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<svg onload=alert(1)>",
    "<iframe src=https://evil.example/></iframe>",
    '<a href="javascript:alert(1)">x</a>',
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x](java\tscript:alert(1))",
    "[x](data:text/html,<script>alert(1)</script>)",
    "[x](vbscript:msgbox(1))",
    "![x](javascript:alert(1))",
    "![x](//evil.example/t.png)",
    '<font color="red" onmouseover="alert(1)">x</font>',
    '<font color="red;background:url(https://evil.example/t)">x</font>',
    '<font color="expression(alert(1))">x</font>',
    "<style>body{background:url(https://evil.example/t)}</style>",
    '<a href="https://ok.example" onclick="alert(1)" style="x">ok</a>',
    "<form action=https://evil.example><button>go</button></form>",
    "<object data=https://evil.example></object><embed src=https://evil.example>",
    "<link rel=stylesheet href=https://evil.example/s.css><meta http-equiv=refresh content=0>",
    "<base href=https://evil.example/>",
    "<!-- <script>alert(1)</script> -->",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
]


class Elements(HTMLParser):
    """Every element and attribute of a fragment, as a browser would parse them."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, dict[str, str]]] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, {k: v or "" for k, v in attrs}))


ALLOWED_TAGS = {"h1", "h2", "h3", "h4", "h5", "h6", "p", "br", "strong", "em", "a", "ul", "ol", "li"}
ALLOWED_TAGS |= {"blockquote", "span", "div", "dl", "dt", "dd", "time"}
STYLE = re.compile(r"(?:(?:color|background|font-size|width):(?:#[0-9a-f]{3,6}|[a-z]+|\d+px|[\d.]+%);?)+")


def assert_inert(html: str) -> None:
    """No script, no event handler, no URL but a navigation one, nothing that loads by itself."""
    for tag, attrs in Elements(html).found:
        assert tag in ALLOWED_TAGS, (tag, html)
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name, html)
            assert name not in ("src", "srcset", "action", "formaction", "background"), (tag, name, html)
            if name == "href":
                assert re.match(r"(https?|dingtalk|mailto|tel):", value.strip(), re.I), (value, html)
            if name == "style":
                assert STYLE.fullmatch(value), (value, html)


@pytest.mark.parametrize("markdown", HOSTILE_MARKDOWN)
def test_hostile_markdown_is_inert(markdown: str) -> None:
    assert_inert(str(markdown_html(markdown)))


HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(1)>"
BAD_URL = "javascript:alert(document.cookie)"
HOSTILE_MESSAGES = [
    ("text", {"content": HOSTILE}),
    ("markdown", {"title": HOSTILE, "text": HOSTILE + f"[x]({BAD_URL})"}),
    ("link", {"messageUrl": BAD_URL, "picUrl": BAD_URL, "title": HOSTILE, "text": HOSTILE}),
    (
        "action_card",
        {"title": HOSTILE, "markdown": HOSTILE, "single_title": HOSTILE, "single_url": BAD_URL},
    ),
    (
        "action_card",
        {
            "title": "t",
            "markdown": "m",
            "btn_orientation": "1",
            "btn_json_list": [
                {"title": HOSTILE, "action_url": BAD_URL},
                {"title": "b", "action_url": " javascript:x"},
            ],
        },
    ),
    (
        "oa",
        {
            "message_url": BAD_URL,
            "pc_message_url": BAD_URL,
            "head": {"bgcolor": "red;background:url(https://evil.example/t)", "text": HOSTILE},
            "status_bar": {"status_value": HOSTILE, "status_bg": '0xFF000000" onmouseover="alert(1)'},
            "body": {
                "title": HOSTILE,
                "form": [{"key": HOSTILE, "value": HOSTILE}],
                "rich": {"num": HOSTILE, "unit": HOSTILE},
                "content": HOSTILE,
                "image": BAD_URL,
                "file_count": HOSTILE,
                "author": HOSTILE,
            },
        },
    ),
    ("sampleLink", {"title": HOSTILE, "text": HOSTILE, "messageUrl": BAD_URL, "picUrl": BAD_URL}),
    (
        "sampleActionCard2",
        {"title": HOSTILE, "text": HOSTILE, "actionTitle1": HOSTILE, "actionURL1": BAD_URL},
    ),
    ("sampleImageMsg", {"photoURL": BAD_URL}),
    ("feedCard", {"links": [{"title": HOSTILE, "messageURL": BAD_URL, "picURL": BAD_URL}]}),
]


@pytest.mark.parametrize(("msgtype", "content"), HOSTILE_MESSAGES, ids=[m[0] for m in HOSTILE_MESSAGES])
def test_hostile_messages_are_inert(msgtype: str, content: dict[str, object]) -> None:
    html = str(message_html(msgtype, content, app_name="Ops"))
    assert_inert(html)
    if msgtype not in ("markdown", "sampleImageMsg"):  # plain-text fields show the tags as text
        assert "&lt;script&gt;" in html


def test_safe_url_allows_navigation_only() -> None:
    assert safe_url("https://a.example/x?y=1") == "https://a.example/x?y=1"
    assert safe_url("dingtalk://dingtalkclient/page/link?url=x") is not None
    assert safe_url("mailto:a@b.c") is not None
    for bad in (
        "javascript:x",
        " JAVASCRIPT:x",
        "java\nscript:x",
        "data:text/html,x",
        "/relative",
        "//evil",
        None,
        5,
    ):
        assert safe_url(bad) is None, bad


@pytest.mark.parametrize(
    ("given", "css"),
    [
        ("#FF0000", "#ff0000"),
        ("FF6A00", "#ff6a00"),
        ("0xFFF65E5E", "#f65e5e"),
        ("FFBBBBBB", "#bbbbbb"),
        ("red", "red"),
    ],
)
def test_colours_as_dingtalk_senders_write_them(given: str, css: str) -> None:
    assert css_color(given) == css


def test_oa_shows_app_name_head_colour_form_rich_author_and_status() -> None:
    rows = [{"key": f"k{i}:", "value": f"v{i}"} for i in range(8)]
    html = str(
        message_html(
            "oa",
            {
                "message_url": "https://oa.example/1",
                "head": {"bgcolor": "FFF65E5E", "text": "ignored"},
                "status_bar": {"status_value": "进行中", "status_bg": "0xFF00B365"},
                "body": {
                    "title": "报销单",
                    "form": rows,
                    "rich": {"num": "15.6", "unit": "元"},
                    "content": "正文",
                    "author": "李四 ",
                    "file_count": "3",
                },
            },
            app_name="Ops",
        )
    )
    assert '<div class="oa-head" style="background:#f65e5e">Ops</div>' in html
    assert "ignored" not in html
    assert html.count('class="oa-row"') == 6 and "2 more rows hidden" in html
    assert '<span class="num">15.6</span><span class="unit">元</span>' in html
    assert '<div class="oa-author">李四</div>' in html and "3 attachment(s)" in html
    assert 'style="color:#00b365"' in html and "进行中" in html
    assert 'href="https://oa.example/1"' in html


def test_oa_status_bar_follows_its_latest_update() -> None:
    oa = {"head": {"text": "h"}, "body": {"content": "c"}, "status_bar": {"status_value": "进行中"}}
    html = str(message_html("oa", oa, status_bar={"status_value": "已完成", "status_bg": "0xFF999999"}))
    assert "已完成" in html and "进行中" not in html


@pytest.mark.parametrize(
    ("msgtype", "content", "layout", "buttons"),
    [
        (
            "action_card",
            {"title": "t", "markdown": "### m", "single_title": "查看", "single_url": "https://a"},
            "single",
            1,
        ),
        (
            "action_card",
            {
                "title": "t",
                "markdown": "m",
                "btn_orientation": "0",
                "btn_json_list": [
                    {"title": "a", "action_url": "https://a"},
                    {"title": "b", "action_url": "https://b"},
                ],
            },
            "vertical",
            2,
        ),
        (
            "action_card",
            {
                "title": "t",
                "markdown": "m",
                "btn_orientation": 1,
                "btn_json_list": [
                    {"title": "a", "action_url": "https://a"},
                    {"title": "b", "action_url": "https://b"},
                ],
            },
            "horizontal",
            2,
        ),
        (
            "sampleActionCard",
            {"title": "t", "text": "m", "singleTitle": "go", "singleURL": "https://a"},
            "single",
            1,
        ),
        (
            "sampleActionCard3",
            {"title": "t", "text": "m", **{f"actionTitle{i}": f"b{i}" for i in (1, 2, 3)}}
            | {f"actionURL{i}": f"https://{i}" for i in (1, 2, 3)},
            "vertical",
            3,
        ),
        (
            "sampleActionCard6",
            {
                "title": "t",
                "text": "m",
                "buttonTitle1": "yes",
                "buttonUrl1": "https://y",
                "buttonTitle2": "no",
                "buttonUrl2": "https://n",
            },
            "horizontal",
            2,
        ),
        (
            "actionCard",
            {
                "title": "t",
                "text": "m",
                "btnOrientation": "1",
                "btns": [{"title": "a", "actionURL": "https://a"}] * 2,
            },
            "horizontal",
            2,
        ),
    ],
)
def test_action_cards_draw_their_buttons(
    msgtype: str, content: dict[str, object], layout: str, buttons: int
) -> None:
    html = str(message_html(msgtype, content))
    assert f'class="card-buttons {layout}"' in html
    assert html.count('class="card-button"') == buttons
    assert 'class="card-body md"' in html


@pytest.mark.parametrize(
    ("msgtype", "content", "expected"),
    [
        ("text", {"content": "月会通知\n第二行"}, '<div class="msg msg-text">月会通知\n第二行</div>'),
        ("image", {"media_id": "@lADOimg"}, "[image: @lADOimg]"),
        ("voice", {"media_id": "@lADOvoice", "duration": "10"}, '<span class="duration">10″</span>'),
        ("file", {"media_id": "@lADOfile"}, '<span class="file-name">@lADOfile</span>'),
        (
            "link",
            {"messageUrl": "https://a", "picUrl": "@lADOpic", "title": "T", "text": "X"},
            '<div class="link-title">T</div>',
        ),
        ("markdown", {"title": "t", "text": "**b**"}, "<strong>b</strong>"),
        ("sampleText", {"content": "hi"}, '<div class="msg msg-text">hi</div>'),
        ("sampleMarkdown", {"title": "t", "text": "# h"}, "<h1>h</h1>"),
        ("sampleImageMsg", {"photoURL": "@lADOphoto"}, "[image: @lADOphoto]"),
        (
            "sampleLink",
            {"title": "T", "text": "X", "messageUrl": "https://a", "picUrl": ""},
            'href="https://a"',
        ),
        ("sampleAudio", {"mediaId": "@a", "duration": "4000"}, '<span class="duration">4″</span>'),
        (
            "sampleFile",
            {"mediaId": "@f", "fileName": "report.pdf", "fileType": "pdf"},
            '<span class="file-name">report.pdf</span>',
        ),
        (
            "sampleVideo",
            {"duration": "12", "videoMediaId": "@v", "videoType": "mp4", "picMediaId": "@p"},
            "mp4 · 12 s",
        ),
        (
            "feedCard",
            {"links": [{"title": "A", "messageURL": "https://a", "picURL": "@p"}] * 2},
            'class="feed-title">A',
        ),
        ("sampleNoSuchKey", {}, "Unknown message type sampleNoSuchKey"),
    ],
)
def test_every_message_kind_has_its_drawing(msgtype: str, content: dict[str, object], expected: str) -> None:
    assert expected in str(message_html(msgtype, content))


def test_recalled_messages_show_as_recalled() -> None:
    html = str(message_html("text", {"content": "secret"}, recalled=True))
    assert "recalled" in html and "secret" not in html


def test_summaries_are_plain_text() -> None:
    assert plain_summary("markdown", {"title": "", "text": "# Big **news**"}) == "Big news"
    assert plain_summary("text", {"content": "x" * 100}, limit=10) == "x" * 9 + "…"
