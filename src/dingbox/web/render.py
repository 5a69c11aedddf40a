"""Messages rendered as DingTalk's client shows them, and nothing a sender writes ever runs.

Pure: a message's type and content go in, sanitized HTML comes out. Markdown follows DingTalk's
subset (spec §12, profile `strict`): headings, bold, italic, links, images, lists, quotes, hard line
breaks, `&nbsp` entities and `<font color size>`; anything else stays literal text. markdown-it
builds HTML from the text, nh3 keeps only the allowlist and checks every URL, and a last pass turns
`<font>` into a styled span and remote images into links (a page loads nothing from elsewhere
unless the reader asks for remote images).

Every message kind (work notifications, robot msgKeys, group-robot types) is first normalized into a
`View`, one shape per way of showing it, which the `message.html` template draws.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import nh3
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markdown_it import MarkdownIt
from markupsafe import Markup

SAFE_SCHEMES = frozenset({"http", "https", "dingtalk", "mailto", "tel"})
REMOTE_SCHEMES = frozenset({"http", "https"})

# DingTalk's documented subset; the rest of CommonMark is shown as the sender typed it.
_md = MarkdownIt("commonmark", {"breaks": True, "html": True}).disable(
    ["code", "fence", "backticks", "hr", "lheading", "reference", "autolink", "html_block"]
)

_TAGS = {"h1", "h2", "h3", "h4", "h5", "h6", "p", "br", "strong", "em", "a", "img", "ul", "ol", "li"}
_TAGS |= {"blockquote", "font"}
_ATTRIBUTES = {"a": {"href"}, "img": {"src", "alt"}, "ol": {"start"}, "font": {"color", "size"}}

_HEX = re.compile(r"#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})")
_NAME = re.compile(r"[a-zA-Z]{3,20}")
# `&nbsp` works without its semicolon in DingTalk (spec §12.3); HTML would keep it literal
_BARE_NBSP = re.compile(r"&(nbsp(?!;)|#160(?![\d;])|#[xX][aA]0(?![0-9a-fA-F;]))")
_FONT_OPEN = re.compile(r"<font((?: [a-z]+=\"[^\"]*\")*)>")
_ATTR = re.compile(r' ([a-z]+)="([^"]*)"')
_IMG = re.compile(r"<img((?: [a-z]+=\"[^\"]*\")*)>")
_DINGTALK_LINK = re.compile(r'<a href="(dingtalk://dingtalkclient/page/link\?[^"]*)"')


def safe_url(value: Any) -> str | None:
    """The URL if a click on it can only navigate (http, https, dingtalk, mailto, tel), else None."""
    if not isinstance(value, str):
        return None
    # browsers drop these anywhere in a URL, so `java\tscript:` is `javascript:` to them
    cleaned = re.sub(r"[\x00-\x20\x7f]", "", value)
    try:
        scheme = urlsplit(cleaned).scheme.lower()
    except ValueError:
        return None
    return value.strip() if scheme in SAFE_SCHEMES else None


def css_color(value: Any) -> str | None:
    """A colour as DingTalk senders write it (`#FF0000`, `FF0000`, `0xFFFF0000`, `FFBBBBBB`, `red`)."""
    if not isinstance(value, str):
        return None
    text = value.strip().strip('"').strip()
    if text[:2].lower() == "0x":
        text = text[2:]
    if re.fullmatch(r"[0-9a-fA-F]{8}", text):
        text = text[2:]  # AARRGGBB: DingTalk's OA colours carry alpha first
    if _HEX.fullmatch(text):
        return "#" + text.lstrip("#").lower()
    if _NAME.fullmatch(text):
        return text.lower()
    return None


def _font_size(value: str) -> str | None:
    try:
        size = int(value)
    except ValueError:
        return None
    return f"{min(max(size, 1), 7) * 3 + 9}px"  # sizes 1..7 as in the old HTML scale


def _keep_attribute(tag: str, attr: str, value: str) -> str | None:
    if attr in ("href", "src"):
        if tag == "img" and value.startswith("@"):
            return value  # a DingTalk media id
        return safe_url(value)
    if tag == "font" and attr == "color":
        return css_color(value)
    if tag == "font" and attr == "size":
        return value if _font_size(value) else None
    return value


def _font_to_span(match: re.Match[str]) -> str:
    styles = []
    for name, value in _ATTR.findall(match.group(1)):
        value = html.unescape(value)
        if name == "color" and (color := css_color(value)):
            styles.append(f"color:{color}")
        elif name == "size" and (size := _font_size(value)):
            styles.append(f"font-size:{size}")
    return f'<span class="font" style="{";".join(styles)}">' if styles else '<span class="font">'


def _image(match: re.Match[str], remote_images: bool) -> str:
    attrs = {name: html.unescape(value) for name, value in _ATTR.findall(match.group(1))}
    return image_html(attrs.get("src", ""), attrs.get("alt", ""), remote_images)


def image_html(src: str, alt: str, remote_images: bool) -> str:
    """An image: a media id as a reference, a remote one as a link unless remote images are on."""
    label = html.escape(alt or "image")
    if src.startswith("@"):
        return f'<span class="media-ref" title="{html.escape(src)}">[{label}: {html.escape(src)}]</span>'
    url = safe_url(src)
    if not url or urlsplit(url).scheme.lower() not in REMOTE_SCHEMES:
        return f'<span class="media-ref">[{label}]</span>'
    if remote_images:
        return f'<img src="{html.escape(url)}" alt="{html.escape(alt)}" referrerpolicy="no-referrer">'
    host = urlsplit(url).hostname or url
    return (
        f'<a class="remote-image" href="{html.escape(url)}" target="_blank" rel="noopener noreferrer"'
        f' title="{html.escape(url)}">[{label} from {html.escape(host)}]</a>'
    )


def markdown_html(text: Any, *, remote_images: bool = False) -> Markup:
    """DingTalk markdown to safe HTML."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    source = _BARE_NBSP.sub(r"&\1;", text)
    raw = _md.render(source)
    clean = nh3.clean(
        raw,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        url_schemes=set(SAFE_SCHEMES),
        attribute_filter=_keep_attribute,
        link_rel="noopener noreferrer",
        set_tag_attribute_values={"a": {"target": "_blank"}},
        strip_comments=True,
    )
    clean = _FONT_OPEN.sub(_font_to_span, clean).replace("</font>", "</span>")
    clean = _IMG.sub(lambda m: _image(m, remote_images), clean)
    clean = _DINGTALK_LINK.sub(_inner_url_title, clean)
    return Markup(clean.strip())


def _inner_url_title(match: re.Match[str]) -> str:
    """DingTalk's side-panel wrapper keeps its href; hovering shows the page it opens (spec §12.5)."""
    inner = parse_qs(urlsplit(html.unescape(match.group(1))).query).get("url", [""])[0]
    title = f' title="{html.escape(inner)}"' if inner else ""
    return f'<a href="{match.group(1)}"{title}'


# -- message kinds ---------------------------------------------------------------------------------


@dataclass
class Button:
    title: str
    url: str | None


@dataclass
class View:
    """How one message is drawn; `kind` picks the template's block."""

    kind: str  # text | markdown | link | oa | card | image | voice | file | video | feed | unknown
    title: str = ""
    text: str = ""
    body: Markup = field(default_factory=Markup)
    url: str | None = None
    pc_url: str | None = None
    picture: str | None = None  # a remote URL or a media id
    buttons: list[Button] = field(default_factory=list)
    layout: str = ""  # single | vertical | horizontal
    head_color: str | None = None
    head_text: str = ""
    status: dict[str, str | None] | None = None
    form: list[tuple[str, str]] = field(default_factory=list)
    form_hidden: int = 0
    rich: tuple[str, str] | None = None
    author: str = ""
    file_count: str = ""
    media: str = ""
    duration: str = ""
    file_name: str = ""
    file_type: str = ""
    links: list[dict[str, Any]] = field(default_factory=list)


def _s(value: Any) -> str:
    """A field as text: DingTalk fields are strings, but senders pass numbers too."""
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


OA_FORM_ROWS = 6  # DingTalk shows six form rows and hides the rest (spec §4.6)


def _oa(content: dict[str, Any], app_name: str) -> View:
    head, body = _obj(content.get("head")), _obj(content.get("body"))
    bar = content.get("status_bar")
    rows = [(_s(r.get("key")), _s(r.get("value"))) for r in _list(body.get("form")) if isinstance(r, dict)]
    rich = _obj(body.get("rich")) or None
    return View(
        "oa",
        title=_s(body.get("title")),
        text=_s(body.get("content")),
        url=safe_url(content.get("message_url")),
        pc_url=safe_url(content.get("pc_message_url")),
        picture=_s(body.get("image")) or None,
        head_color=css_color(head.get("bgcolor")),
        # DingTalk's client puts the app's name in the head of a work notification (spec §4.6)
        head_text=app_name or _s(head.get("text")),
        status={"value": _s(bar.get("status_value")), "color": css_color(bar.get("status_bg"))}
        if isinstance(bar, dict) and bar.get("status_value")
        else None,
        form=rows[:OA_FORM_ROWS],
        form_hidden=max(0, len(rows) - OA_FORM_ROWS),
        rich=(_s(rich.get("num")), _s(rich.get("unit"))) if rich else None,
        author=_s(body.get("author")).strip(),
        file_count=_s(body.get("file_count")),
    )


def _work_card(c: dict[str, Any], remote_images: bool) -> View:
    body = markdown_html(c.get("markdown"), remote_images=remote_images)
    if c.get("single_title") or c.get("single_url"):
        return View(
            "card",
            title=_s(c.get("title")),
            body=body,
            layout="single",
            buttons=[Button(_s(c.get("single_title")), safe_url(c.get("single_url")))],
        )
    raw = _list(c.get("btn_json_list"))
    buttons = [Button(_s(b.get("title")), safe_url(b.get("action_url"))) for b in raw if isinstance(b, dict)]
    layout = "horizontal" if _s(c.get("btn_orientation")) == "1" else "vertical"
    return View("card", title=_s(c.get("title")), body=body, layout=layout, buttons=buttons)


def _robot_buttons(c: dict[str, Any], title_key: str, url_key: str) -> list[Button]:
    buttons = []
    for n in range(1, 6):
        title = c.get(f"{title_key}{n}")
        if title is None and c.get(f"{url_key}{n}") is None:
            continue
        buttons.append(Button(_s(title), safe_url(c.get(f"{url_key}{n}"))))
    return buttons


def _robot(msg_key: str, c: dict[str, Any], remote_images: bool) -> View | None:
    md = {"remote_images": remote_images}
    if msg_key == "sampleText":
        return View("text", text=_s(c.get("content")))
    if msg_key == "sampleMarkdown":
        return View("markdown", title=_s(c.get("title")), body=markdown_html(c.get("text"), **md))
    if msg_key == "sampleImageMsg":
        return View("image", picture=_s(c.get("photoURL")))
    if msg_key == "sampleLink":
        return _link(c)
    if msg_key == "sampleActionCard":
        return View(
            "card",
            title=_s(c.get("title")),
            body=markdown_html(c.get("text"), **md),
            layout="single",
            buttons=[Button(_s(c.get("singleTitle")), safe_url(c.get("singleURL")))],
        )
    if msg_key in ("sampleActionCard2", "sampleActionCard3", "sampleActionCard4", "sampleActionCard5"):
        buttons = _robot_buttons(c, "actionTitle", "actionURL")
        body = markdown_html(c.get("text"), **md)
        return View("card", title=_s(c.get("title")), body=body, layout="vertical", buttons=buttons)
    if msg_key == "sampleActionCard6":
        buttons = _robot_buttons(c, "buttonTitle", "buttonUrl")
        body = markdown_html(c.get("text"), **md)
        return View("card", title=_s(c.get("title")), body=body, layout="horizontal", buttons=buttons)
    if msg_key == "sampleAudio":
        seconds = _s(c.get("duration"))
        if seconds.isdigit():
            seconds = str(round(int(seconds) / 1000))  # robot audio durations are milliseconds
        return View("voice", media=_s(c.get("mediaId")), duration=seconds)
    if msg_key == "sampleFile":
        return View(
            "file",
            media=_s(c.get("mediaId")),
            file_name=_s(c.get("fileName")),
            file_type=_s(c.get("fileType")),
        )
    if msg_key == "sampleVideo":
        return View(
            "video",
            media=_s(c.get("videoMediaId")),
            picture=_s(c.get("picMediaId")) or None,
            duration=_s(c.get("duration")),
            file_type=_s(c.get("videoType")),
        )
    return None


def _group(msgtype: str, c: dict[str, Any], remote_images: bool) -> View | None:
    """Group-robot (webhook) types, spec §11.2; text, link and markdown share the work forms."""
    if msgtype == "actionCard":
        body = markdown_html(c.get("text"), remote_images=remote_images)
        if c.get("singleTitle") or c.get("singleURL"):
            buttons = [Button(_s(c.get("singleTitle")), safe_url(c.get("singleURL")))]
            return View("card", title=_s(c.get("title")), body=body, layout="single", buttons=buttons)
        raw = _list(c.get("btns"))
        buttons = [
            Button(_s(b.get("title")), safe_url(b.get("actionURL"))) for b in raw if isinstance(b, dict)
        ]
        layout = "horizontal" if _s(c.get("btnOrientation")) == "1" else "vertical"
        return View("card", title=_s(c.get("title")), body=body, layout=layout, buttons=buttons)
    if msgtype == "feedCard":
        raw = _list(c.get("links"))
        links = [
            {
                "title": _s(item.get("title")),
                "url": safe_url(item.get("messageURL")),
                "picture": _s(item.get("picURL")),
            }
            for item in raw
            if isinstance(item, dict)
        ]
        return View("feed", links=links)
    if msgtype == "image":
        return View("image", picture=_s(c.get("picURL")))
    return None


def view(msgtype: str, content: Any, *, app_name: str = "", remote_images: bool = False) -> View:
    """The normalized view of a message of any source."""
    c = content if isinstance(content, dict) else {}
    md = {"remote_images": remote_images}
    if msgtype.startswith("sample"):
        return _robot(msgtype, c, remote_images) or View("unknown", title=msgtype)
    if msgtype == "text":
        return View("text", text=_s(c.get("content")))
    if msgtype == "markdown":
        return View("markdown", title=_s(c.get("title")), body=markdown_html(c.get("text"), **md))
    if msgtype == "link":
        return _link(c)
    if msgtype == "oa":
        return _oa(c, app_name)
    if msgtype == "action_card":
        return _work_card(c, remote_images)
    if msgtype == "image":
        if "picURL" in c:
            return View("image", picture=_s(c.get("picURL")))
        return View("image", picture=_s(c.get("media_id")))
    if msgtype == "voice":
        return View("voice", media=_s(c.get("media_id")), duration=_s(c.get("duration")))
    if msgtype == "file":
        return View("file", media=_s(c.get("media_id")))
    return _group(msgtype, c, remote_images) or View("unknown", title=msgtype)


templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def message_html(
    msgtype: str,
    content: Any,
    *,
    app_name: str = "",
    remote_images: bool = False,
    recalled: bool = False,
    status_bar: Any = None,
) -> Markup:
    """A message's body as DingTalk's client draws it; `status_bar` is an OA message's current bar."""
    if recalled:
        return Markup('<div class="msg-recalled">This message was recalled by its sender.</div>')
    if msgtype == "oa" and isinstance(content, dict) and isinstance(status_bar, dict):
        content = {**content, "status_bar": status_bar}
    v = view(msgtype, content, app_name=app_name, remote_images=remote_images)
    template = templates.get_template("message.html")
    return Markup(
        template.render(
            v=v, picture=lambda ref, alt="image": Markup(image_html(ref or "", alt, remote_images))
        )
    )


def plain_summary(msgtype: str, content: Any, limit: int = 80) -> str:
    """One line for lists and search results: the title or the start of the text."""
    v = view(msgtype, content)
    text = v.title or v.text or re.sub(r"<[^>]+>", "", str(v.body)) or v.file_name or msgtype
    text = " ".join(html.unescape(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _link(c: dict[str, Any]) -> View:
    """A link card; the robot's sampleLink and the work notification's link name their fields alike."""
    return View(
        "link",
        title=_s(c.get("title")),
        text=_s(c.get("text")),
        url=safe_url(c.get("messageUrl")),
        picture=_s(c.get("picUrl")) or None,
    )
