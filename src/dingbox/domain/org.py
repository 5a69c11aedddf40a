"""The org document (DESIGN §6): parsing, validation with the path to the bad field, and the model.

Pure: the caller passes the ids that corps outside the document already own, so global uniqueness
is checked without a store.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dingbox.domain.identifiers import NUL
from dingbox.domain.templates import TEMPLATE_STATUSES, msg_problem

ROOT_DEPT = 1
APP_TYPES = ("internal", "isv")
LIMIT_KEYS = ("userid_list", "dept_id_list", "per_call", "daily_per_user", "per_minute")
_USERID = re.compile(r"^[^\s,]{1,64}$")
MAX_ID = 2**63 - 1  # ids are 64-bit integers in DingTalk and in the store
MAX_KEYWORDS = 10  # a custom robot has 1 to 10 keywords (spec §11.4.1)


class OrgError(ValueError):
    """An org document that cannot be loaded; the message starts with the path to the bad field."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        super().__init__(f"{path}: {problem}" if path else problem)


@dataclass(frozen=True)
class Department:
    dept_id: int
    name: str
    parent_id: int


@dataclass(frozen=True)
class User:
    userid: str
    name: str
    dept_ids: tuple[int, ...]
    active: bool = True
    mobile: str | None = None
    title: str | None = None
    email: str | None = None


@dataclass(frozen=True)
class Visibility:
    dept_ids: tuple[int, ...] = ()
    userids: tuple[str, ...] = ()


@dataclass(frozen=True)
class App:
    agent_id: int
    name: str
    type: str
    app_key: str | None = None
    app_secret: str | None = None
    suite_key: str | None = None
    visible_to: Visibility | None = None
    limits: Mapping[str, int | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Robot:
    robot_code: str
    agent_id: int
    name: str


@dataclass(frozen=True)
class Template:
    template_id: str
    agent_id: int
    status: str
    msg: Mapping[str, Any]


@dataclass(frozen=True)
class Webhook:
    access_token: str
    name: str
    keywords: tuple[str, ...] = ()
    secret: str | None = None
    ip_allowlist: tuple[str, ...] = ()


@dataclass(frozen=True)
class Group:
    open_conversation_id: str
    name: str
    members: tuple[str, ...]
    robots: tuple[str, ...] = ()
    webhooks: tuple[Webhook, ...] = ()


@dataclass(frozen=True)
class Corp:
    corp_id: str
    name: str
    departments: tuple[Department, ...]
    users: tuple[User, ...]
    apps: tuple[App, ...]
    robots: tuple[Robot, ...] = ()
    templates: tuple[Template, ...] = ()
    groups: tuple[Group, ...] = ()
    source: Mapping[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Suite:
    suite_key: str
    suite_secret: str


@dataclass(frozen=True)
class OrgDocument:
    suites: tuple[Suite, ...]
    corps: tuple[Corp, ...]


@dataclass
class TakenIds:
    """Global ids already owned by corps (or suites) that the document does not replace."""

    corp_id: set[str] = field(default_factory=set)
    app_key: set[str] = field(default_factory=set)
    agent_id: set[int] = field(default_factory=set)
    robot_code: set[str] = field(default_factory=set)
    template_id: set[str] = field(default_factory=set)
    webhook: set[str] = field(default_factory=set)
    suite_key: set[str] = field(default_factory=set)


# -- field readers --------------------------------------------------------------------------------


def _object(value: Any, path: str, allowed: Iterable[str], required: Iterable[str] = ()) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise OrgError(path, "must be an object")
    allowed_set = set(allowed)
    for key in value:
        if key not in allowed_set:
            raise OrgError(_join(path, str(key)), "unknown field")
    for key in required:
        if value.get(key) in (None, ""):
            raise OrgError(_join(path, key), "is required")
    return value


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _list(value: Any, path: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise OrgError(path, "must be a list")
    return value


def _text(value: Any, path: str, *, max_len: int = 256) -> str:
    # Numbers are refused rather than converted: YAML reads an unquoted 0356123401 as an octal integer,
    # so converting would silently load a different userid.
    if not isinstance(value, str):
        raise OrgError(path, "must be a string")
    text = value
    if not text.strip():
        raise OrgError(path, "must not be empty")
    if len(text) > max_len:
        raise OrgError(path, f"is longer than {max_len} characters")
    return text


def _int(value: Any, path: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise OrgError(path, "must be an integer")
    if value < minimum:
        raise OrgError(path, f"must be at least {minimum}")
    if value > MAX_ID:
        raise OrgError(path, f"must be at most {MAX_ID}")
    return value


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise OrgError(path, "must be true or false")
    return value


def _optional_text(value: Any, path: str, max_len: int = 256) -> str | None:
    return None if value is None else _text(value, path, max_len=max_len)


def _refuse_nul(value: Any, path: str) -> None:
    """No string of an org document holds a NUL: ids never can, and names, keywords or a template's
    text would load on SQLite and fail on PostgreSQL, whose text cannot carry one."""
    pending: list[tuple[Any, str]] = [(value, path)]
    while pending:
        node, where = pending.pop()
        if isinstance(node, str):
            if NUL in node:
                raise OrgError(where, "must not hold a NUL character")
        elif isinstance(node, dict):
            for key, child in reversed(node.items()):
                if isinstance(key, str) and NUL in key:
                    raise OrgError(where, "a field name must not hold a NUL character")
                pending.append((child, _join(where, str(key))))
        elif isinstance(node, list):
            pending.extend((child, _join(where, i)) for i, child in reversed(list(enumerate(node))))


def _claim(seen: set[Any], taken: set[Any], value: Any, path: str, what: str) -> None:
    if value in seen:
        raise OrgError(path, f"duplicate {what} {value!r}")
    if value in taken:
        raise OrgError(path, f"{what} {value!r} is used by a corp this document does not replace")
    seen.add(value)


# -- the document ---------------------------------------------------------------------------------


def parse_document(raw: Any, taken: TakenIds | None = None) -> OrgDocument:
    """Validate a whole org document; raise OrgError naming the first bad field."""
    taken = taken or TakenIds()
    if not isinstance(raw, dict):
        raise OrgError("", "the document must be an object with suites and corps")
    doc = _object(raw, "", ("suites", "corps"))
    _refuse_nul(doc, "")
    seen = TakenIds()
    suites = tuple(
        _suite(item, f"suites[{i}]", seen) for i, item in enumerate(_list(doc.get("suites"), "suites"))
    )
    known_suites = taken.suite_key | {s.suite_key for s in suites}
    corps = tuple(
        _corp(item, f"corps[{i}]", taken, seen, known_suites)
        for i, item in enumerate(_list(doc.get("corps"), "corps"))
    )
    if not suites and not corps:
        raise OrgError("", "the document names no corps and no suites")
    return OrgDocument(suites=suites, corps=corps)


def _suite(raw: Any, path: str, seen: TakenIds) -> Suite:
    item = _object(raw, path, ("suite_key", "suite_secret"), ("suite_key", "suite_secret"))
    key = _text(item["suite_key"], _join(path, "suite_key"))
    if key in seen.suite_key:
        raise OrgError(_join(path, "suite_key"), f"duplicate suite_key {key!r}")
    seen.suite_key.add(key)
    return Suite(key, _text(item["suite_secret"], _join(path, "suite_secret")))


_CORP_FIELDS = ("corp_id", "name", "departments", "users", "apps", "robots", "templates", "groups")


def _corp(raw: Any, path: str, taken: TakenIds, seen: TakenIds, suites: set[str]) -> Corp:
    item = _object(raw, path, _CORP_FIELDS, ("corp_id", "name"))
    corp_id = _text(item["corp_id"], _join(path, "corp_id"), max_len=64)
    _claim(seen.corp_id, taken.corp_id, corp_id, _join(path, "corp_id"), "corp_id")
    departments = _departments(
        _list(item.get("departments"), _join(path, "departments")), _join(path, "departments")
    )
    dept_ids = {ROOT_DEPT} | {d.dept_id for d in departments}
    users = _users(_list(item.get("users"), _join(path, "users")), _join(path, "users"), dept_ids)
    userids = {u.userid for u in users}
    apps = tuple(
        _app(a, _join(_join(path, "apps"), i), taken, seen, suites, dept_ids, userids)
        for i, a in enumerate(_list(item.get("apps"), _join(path, "apps")))
    )
    by_agent = {a.agent_id: a for a in apps}
    robots = tuple(
        _robot(r, _join(_join(path, "robots"), i), taken, seen, by_agent)
        for i, r in enumerate(_list(item.get("robots"), _join(path, "robots")))
    )
    templates = tuple(
        _template(t, _join(_join(path, "templates"), i), taken, seen, by_agent)
        for i, t in enumerate(_list(item.get("templates"), _join(path, "templates")))
    )
    robot_codes = {r.robot_code for r in robots}
    group_ids: set[str] = set()
    groups = tuple(
        _group(g, _join(_join(path, "groups"), i), taken, seen, userids, robot_codes, group_ids)
        for i, g in enumerate(_list(item.get("groups"), _join(path, "groups")))
    )
    return Corp(
        corp_id=corp_id,
        name=_text(item["name"], _join(path, "name")),
        departments=departments,
        users=users,
        apps=apps,
        robots=robots,
        templates=templates,
        groups=groups,
        source=item,
    )


def _departments(items: list[Any], path: str) -> tuple[Department, ...]:
    departments: list[Department] = []
    seen: set[int] = set()
    for i, raw in enumerate(items):
        p = _join(path, i)
        item = _object(raw, p, ("dept_id", "name", "parent_id"), ("dept_id", "name"))
        dept_id = _int(item["dept_id"], _join(p, "dept_id"))
        if dept_id == ROOT_DEPT:
            raise OrgError(_join(p, "dept_id"), "department 1 is the implicit root; do not declare it")
        if dept_id in seen:
            raise OrgError(_join(p, "dept_id"), f"duplicate dept_id {dept_id}")
        seen.add(dept_id)
        parent = _int(item.get("parent_id", ROOT_DEPT), _join(p, "parent_id"))
        departments.append(Department(dept_id, _text(item["name"], _join(p, "name")), parent))
    known = seen | {ROOT_DEPT}
    # Every parent is checked before any chain is walked, so a walk only meets known departments.
    for i, dept in enumerate(departments):
        if dept.parent_id not in known:
            raise OrgError(_join(_join(path, i), "parent_id"), f"unknown department {dept.parent_id}")
    parents = {d.dept_id: d.parent_id for d in departments}
    for i, dept in enumerate(departments):
        walked = {dept.dept_id}
        cursor = dept.parent_id
        while cursor != ROOT_DEPT:
            if cursor in walked:
                raise OrgError(_join(_join(path, i), "parent_id"), "departments form a cycle")
            walked.add(cursor)
            cursor = parents[cursor]
    return tuple(departments)


_USER_FIELDS = ("userid", "name", "dept_ids", "active", "mobile", "title", "email")


def _users(items: list[Any], path: str, dept_ids: set[int]) -> tuple[User, ...]:
    users: list[User] = []
    seen: set[str] = set()
    mobiles: set[str] = set()
    for i, raw in enumerate(items):
        p = _join(path, i)
        item = _object(raw, p, _USER_FIELDS, ("userid", "name"))
        userid = _text(item["userid"], _join(p, "userid"), max_len=64)
        if not _USERID.match(userid):
            raise OrgError(_join(p, "userid"), "must be 1 to 64 characters without spaces or commas")
        if userid in seen:
            raise OrgError(_join(p, "userid"), f"duplicate userid {userid!r}")
        seen.add(userid)
        depts = _list(item.get("dept_ids", [ROOT_DEPT]), _join(p, "dept_ids"))
        if not depts:
            raise OrgError(_join(p, "dept_ids"), "a user belongs to at least one department")
        parsed: list[int] = []
        for j, d in enumerate(depts):
            dept = _int(d, _join(_join(p, "dept_ids"), j))
            if dept not in dept_ids:
                raise OrgError(_join(p, "dept_ids"), f"unknown department {dept}")
            if dept not in parsed:
                parsed.append(dept)
        mobile = _optional_text(item.get("mobile"), _join(p, "mobile"), 32)
        if mobile is not None:
            # unique in a corp as in DingTalk (60104), so a lookup by mobile names one user
            if mobile in mobiles:
                raise OrgError(_join(p, "mobile"), f"duplicate mobile {mobile!r}")
            mobiles.add(mobile)
        users.append(
            User(
                userid=userid,
                name=_text(item["name"], _join(p, "name"), max_len=80),
                dept_ids=tuple(parsed),
                active=_bool(item.get("active", True), _join(p, "active")),
                mobile=mobile,
                title=_optional_text(item.get("title"), _join(p, "title"), 200),
                email=_optional_text(item.get("email"), _join(p, "email"), 100),
            )
        )
    return tuple(users)


_APP_FIELDS = ("agent_id", "name", "type", "app_key", "app_secret", "suite_key", "visible_to", "limits")


def _app(
    raw: Any,
    path: str,
    taken: TakenIds,
    seen: TakenIds,
    suites: set[str],
    dept_ids: set[int],
    userids: set[str],
) -> App:
    item = _object(raw, path, _APP_FIELDS, ("agent_id", "name", "type"))
    agent_id = _int(item["agent_id"], _join(path, "agent_id"))
    _claim(seen.agent_id, taken.agent_id, agent_id, _join(path, "agent_id"), "agent_id")
    app_type = item["type"]
    if app_type not in APP_TYPES:
        raise OrgError(_join(path, "type"), "must be internal or isv")
    app_key = app_secret = suite_key = None
    if app_type == "internal":
        for key in ("app_key", "app_secret"):
            if not item.get(key):
                raise OrgError(_join(path, key), "is required for an internal app")
        if item.get("suite_key") is not None:
            raise OrgError(_join(path, "suite_key"), "only ISV apps belong to a suite")
        app_key = _text(item["app_key"], _join(path, "app_key"))
        _claim(seen.app_key, taken.app_key, app_key, _join(path, "app_key"), "app_key")
        app_secret = _text(item["app_secret"], _join(path, "app_secret"))
    else:
        for key in ("app_key", "app_secret"):
            if item.get(key) is not None:
                raise OrgError(_join(path, key), "ISV apps authenticate through their suite")
        suite_key = _text(item.get("suite_key"), _join(path, "suite_key")) if item.get("suite_key") else None
        if suite_key is None:
            raise OrgError(_join(path, "suite_key"), "is required for an ISV app")
        if suite_key not in suites:
            raise OrgError(_join(path, "suite_key"), f"unknown suite {suite_key!r}")
    return App(
        agent_id=agent_id,
        name=_text(item["name"], _join(path, "name")),
        type=app_type,
        app_key=app_key,
        app_secret=app_secret,
        suite_key=suite_key,
        visible_to=_visibility(item.get("visible_to"), _join(path, "visible_to"), dept_ids, userids),
        limits=_limits(item.get("limits"), _join(path, "limits")),
    )


def _visibility(raw: Any, path: str, dept_ids: set[int], userids: set[str]) -> Visibility | None:
    if raw is None:
        return None
    item = _object(raw, path, ("dept_ids", "userids"))
    depts_path, users_path = _join(path, "dept_ids"), _join(path, "userids")
    depts = tuple(
        _int(d, _join(depts_path, i)) for i, d in enumerate(_list(item.get("dept_ids"), depts_path))
    )
    for i, d in enumerate(depts):
        if d not in dept_ids:
            raise OrgError(_join(depts_path, i), f"unknown department {d}")
    users = tuple(
        _text(u, _join(users_path, i)) for i, u in enumerate(_list(item.get("userids"), users_path))
    )
    for i, u in enumerate(users):
        if u not in userids:
            raise OrgError(_join(users_path, i), f"unknown user {u!r}")
    return Visibility(depts, users)


def _limits(raw: Any, path: str) -> dict[str, int | None]:
    if raw is None:
        return {}
    item = _object(raw, path, LIMIT_KEYS)
    return {key: None if value is None else _int(value, _join(path, key)) for key, value in item.items()}


def _robot(raw: Any, path: str, taken: TakenIds, seen: TakenIds, apps: dict[int, App]) -> Robot:
    item = _object(raw, path, ("robot_code", "agent_id", "name"), ("robot_code", "agent_id"))
    code = _text(item["robot_code"], _join(path, "robot_code"))
    _claim(seen.robot_code, taken.robot_code, code, _join(path, "robot_code"), "robot_code")
    agent_id = _int(item["agent_id"], _join(path, "agent_id"))
    app = apps.get(agent_id)
    if app is None:
        raise OrgError(_join(path, "agent_id"), f"unknown app {agent_id}")
    if app.type != "internal":
        raise OrgError(_join(path, "agent_id"), "robots belong to internal apps")
    return Robot(code, agent_id, _text(item.get("name", code), _join(path, "name")))


def _template(raw: Any, path: str, taken: TakenIds, seen: TakenIds, apps: dict[int, App]) -> Template:
    item = _object(
        raw, path, ("template_id", "agent_id", "status", "msg"), ("template_id", "agent_id", "msg")
    )
    template_id = _text(item["template_id"], _join(path, "template_id"))
    _claim(seen.template_id, taken.template_id, template_id, _join(path, "template_id"), "template_id")
    agent_id = _int(item["agent_id"], _join(path, "agent_id"))
    app = apps.get(agent_id)
    if app is None:
        raise OrgError(_join(path, "agent_id"), f"unknown app {agent_id}")
    if app.type != "isv":
        raise OrgError(_join(path, "agent_id"), "templates belong to ISV apps")
    status = item.get("status", "approved")
    if status not in TEMPLATE_STATUSES:
        raise OrgError(_join(path, "status"), "must be approved, pending or disabled")
    msg = item["msg"]
    problem = msg_problem(msg)
    if problem is not None:
        raise OrgError(_join(path, problem[0]), problem[1])
    return Template(template_id, agent_id, status, msg)


def _group(
    raw: Any,
    path: str,
    taken: TakenIds,
    seen: TakenIds,
    userids: set[str],
    robot_codes: set[str],
    group_ids: set[str],
) -> Group:
    item = _object(
        raw,
        path,
        ("open_conversation_id", "name", "members", "robots", "webhooks"),
        ("open_conversation_id", "name"),
    )
    ocid = _text(item["open_conversation_id"], _join(path, "open_conversation_id"))
    if ocid in group_ids:
        raise OrgError(_join(path, "open_conversation_id"), f"duplicate open_conversation_id {ocid!r}")
    group_ids.add(ocid)
    members_path, robots_path = _join(path, "members"), _join(path, "robots")
    members = tuple(
        _text(m, _join(members_path, i)) for i, m in enumerate(_list(item.get("members"), members_path))
    )
    for i, member in enumerate(members):
        if member not in userids:
            raise OrgError(_join(members_path, i), f"unknown user {member!r}")
    robots = tuple(
        _text(r, _join(robots_path, i)) for i, r in enumerate(_list(item.get("robots"), robots_path))
    )
    for i, robot in enumerate(robots):
        if robot not in robot_codes:
            raise OrgError(_join(robots_path, i), f"unknown robot {robot!r}")
    webhooks = tuple(
        _webhook(hook, _join(_join(path, "webhooks"), i), taken, seen)
        for i, hook in enumerate(_list(item.get("webhooks"), _join(path, "webhooks")))
    )
    return Group(ocid, _text(item["name"], _join(path, "name")), members, robots, webhooks)


def _webhook(raw: Any, path: str, taken: TakenIds, seen: TakenIds) -> Webhook:
    hook = _object(
        raw, path, ("access_token", "name", "keywords", "secret", "ip_allowlist"), ("access_token",)
    )
    token = _text(hook["access_token"], _join(path, "access_token"))
    _claim(seen.webhook, taken.webhook, token, _join(path, "access_token"), "webhook access_token")
    keywords_path, allow_path = _join(path, "keywords"), _join(path, "ip_allowlist")
    keywords = tuple(
        _text(k, _join(keywords_path, i)) for i, k in enumerate(_list(hook.get("keywords"), keywords_path))
    )
    if len(keywords) > MAX_KEYWORDS:
        raise OrgError(keywords_path, f"at most {MAX_KEYWORDS} keywords")
    allowlist = tuple(
        _text(a, _join(allow_path, i)) for i, a in enumerate(_list(hook.get("ip_allowlist"), allow_path))
    )
    for i, entry in enumerate(allowlist):
        try:
            # DingTalk's allowlist takes IPv4 addresses and ranges only (spec §11.4.3)
            ipaddress.IPv4Network(entry, strict=False)
        except ValueError:
            raise OrgError(_join(allow_path, i), f"not an IPv4 address or CIDR range: {entry!r}") from None
    return Webhook(
        access_token=token,
        name=_text(hook.get("name", token), _join(path, "name")),
        keywords=keywords,
        secret=_optional_text(hook.get("secret"), _join(path, "secret")),
        ip_allowlist=allowlist,
    )
