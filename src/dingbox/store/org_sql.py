"""Store operations on the org: replace corps whole, read the ids others own, export, and the directory."""

from __future__ import annotations

from typing import Any

import orjson

from dingbox.domain.directory import AppInfo, Directory
from dingbox.domain.org import Corp, OrgDocument, TakenIds, Visibility
from dingbox.store.base import Tx, placeholders

_CORP_TABLES = (
    "departments",
    "users",
    "user_depts",
    "apps",
    "robots",
    "templates",
    "chat_groups",
    "webhooks",
)


def taken_ids(tx: Tx, replaced: list[str]) -> TakenIds:
    """Global ids owned by corps the document does not name (those corps stay untouched)."""
    marks = placeholders(len(replaced)) if replaced else "''"
    keep = f"corp_id NOT IN ({marks})"
    params = tuple(replaced)
    taken = TakenIds()
    taken.corp_id = {r[0] for r in tx.all(f"SELECT corp_id FROM corps WHERE {keep}", params)}
    taken.agent_id = {r[0] for r in tx.all(f"SELECT agent_id FROM apps WHERE {keep}", params)}
    taken.app_key = {
        r[0] for r in tx.all(f"SELECT app_key FROM apps WHERE {keep} AND app_key IS NOT NULL", params)
    }
    taken.robot_code = {r[0] for r in tx.all(f"SELECT robot_code FROM robots WHERE {keep}", params)}
    taken.template_id = {r[0] for r in tx.all(f"SELECT template_id FROM templates WHERE {keep}", params)}
    taken.webhook = {r[0] for r in tx.all(f"SELECT access_token FROM webhooks WHERE {keep}", params)}
    taken.suite_key = {r[0] for r in tx.all("SELECT suite_key FROM suites")}
    return taken


def replace_document(tx: Tx, doc: OrgDocument) -> dict[str, int]:
    """Write a validated document: suites upserted, each named corp replaced whole."""
    for suite in doc.suites:
        tx.execute("DELETE FROM suites WHERE suite_key = ?", (suite.suite_key,))
        tx.execute(
            "INSERT INTO suites (suite_key, suite_secret) VALUES (?, ?)",
            (suite.suite_key, suite.suite_secret),
        )
    counts = dict.fromkeys(
        ("suites", "corps", "departments", "users", "apps", "robots", "templates", "groups"), 0
    )
    counts["suites"] = len(doc.suites)
    for corp in doc.corps:
        _replace_corp(tx, corp)
        counts["corps"] += 1
        counts["departments"] += len(corp.departments) + 1  # the implicit root
        counts["users"] += len(corp.users)
        counts["apps"] += len(corp.apps)
        counts["robots"] += len(corp.robots)
        counts["templates"] += len(corp.templates)
        counts["groups"] += len(corp.groups)
    return counts


def _replace_corp(tx: Tx, corp: Corp) -> None:
    cid = corp.corp_id
    tx.execute("DELETE FROM corps WHERE corp_id = ?", (cid,))
    for table in _CORP_TABLES:
        tx.execute(f"DELETE FROM {table} WHERE corp_id = ?", (cid,))
    tx.execute(
        "INSERT INTO corps (corp_id, name, document) VALUES (?, ?, ?)",
        (cid, corp.name, orjson.dumps(corp.source).decode()),
    )
    tx.executemany(
        "INSERT INTO departments (corp_id, dept_id, parent_id, name) VALUES (?, ?, ?, ?)",
        [(cid, 1, 0, corp.name)] + [(cid, d.dept_id, d.parent_id, d.name) for d in corp.departments],
    )
    tx.executemany(
        "INSERT INTO users (corp_id, userid, name, active, mobile, title, email)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(cid, u.userid, u.name, int(u.active), u.mobile, u.title, u.email) for u in corp.users],
    )
    tx.executemany(
        "INSERT INTO user_depts (corp_id, dept_id, userid) VALUES (?, ?, ?)",
        [(cid, d, u.userid) for u in corp.users for d in u.dept_ids],
    )
    tx.executemany(
        "INSERT INTO apps (agent_id, corp_id, name, type, app_key, app_secret, suite_key, visible_to, limits)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                a.agent_id,
                cid,
                a.name,
                a.type,
                a.app_key,
                a.app_secret,
                a.suite_key,
                None
                if a.visible_to is None
                else _json({"dept_ids": a.visible_to.dept_ids, "userids": a.visible_to.userids}),
                _json(dict(a.limits)),
            )
            for a in corp.apps
        ],
    )
    tx.executemany(
        "INSERT INTO robots (robot_code, corp_id, agent_id, name) VALUES (?, ?, ?, ?)",
        [(r.robot_code, cid, r.agent_id, r.name) for r in corp.robots],
    )
    tx.executemany(
        "INSERT INTO templates (template_id, corp_id, agent_id, status, msg) VALUES (?, ?, ?, ?, ?)",
        [(t.template_id, cid, t.agent_id, t.status, _json(dict(t.msg))) for t in corp.templates],
    )
    tx.executemany(
        "INSERT INTO chat_groups (corp_id, open_conversation_id, name, members, robots)"
        " VALUES (?, ?, ?, ?, ?)",
        [(cid, g.open_conversation_id, g.name, _json(g.members), _json(g.robots)) for g in corp.groups],
    )
    tx.executemany(
        "INSERT INTO webhooks"
        " (access_token, corp_id, open_conversation_id, name, keywords, secret, ip_allowlist)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (
                w.access_token,
                cid,
                g.open_conversation_id,
                w.name,
                _json(w.keywords),
                w.secret,
                _json(w.ip_allowlist),
            )
            for g in corp.groups
            for w in g.webhooks
        ],
    )


def is_empty(tx: Tx) -> bool:
    return tx.one("SELECT 1 FROM corps LIMIT 1") is None and tx.one("SELECT 1 FROM suites LIMIT 1") is None


def suite_secrets(tx: Tx) -> dict[str, str]:
    return {key: secret for key, secret in tx.all("SELECT suite_key, suite_secret FROM suites")}


def export_document(tx: Tx) -> dict[str, Any]:
    """The org as loaded: suites, then each corp's document as it was given."""
    suites = [
        {"suite_key": k, "suite_secret": s}
        for k, s in tx.all("SELECT suite_key, suite_secret FROM suites ORDER BY suite_key")
    ]
    corps = [orjson.loads(doc) for (doc,) in tx.all("SELECT document FROM corps ORDER BY corp_id")]
    return {"suites": suites, "corps": corps}


def load_directory(tx: Tx) -> Directory:
    corps: dict[str, str] = {cid: name for cid, name in tx.all("SELECT corp_id, name FROM corps")}
    suites = suite_secrets(tx)
    apps = []
    for agent_id, corp_id, name, app_type, app_key, app_secret, suite_key, visible_to, limits in tx.all(
        "SELECT agent_id, corp_id, name, type, app_key, app_secret, suite_key, visible_to, limits FROM apps"
    ):
        visibility = None
        if visible_to is not None:
            raw = orjson.loads(visible_to)
            visibility = Visibility(tuple(raw["dept_ids"]), tuple(raw["userids"]))
        apps.append(
            AppInfo(
                agent_id,
                corp_id,
                name,
                app_type,
                app_key,
                app_secret,
                suite_key,
                visibility,
                orjson.loads(limits),
            )
        )
    robots = {
        code: (corp_id, agent_id, name)
        for code, corp_id, agent_id, name in tx.all("SELECT robot_code, corp_id, agent_id, name FROM robots")
    }
    return Directory.build(corps=corps, suites=suites, apps=apps, robots=robots)


def corps_overview(tx: Tx) -> list[dict[str, Any]]:
    """Corps with their apps, robots and templates, for GET /api/v1/corps."""
    overview = []
    for corp_id, name in tx.all("SELECT corp_id, name FROM corps ORDER BY corp_id"):
        users, active = tx.one(
            "SELECT COUNT(*), COALESCE(SUM(active), 0) FROM users WHERE corp_id = ?", (corp_id,)
        ) or (0, 0)
        depts = tx.one("SELECT COUNT(*) FROM departments WHERE corp_id = ?", (corp_id,))
        overview.append(
            {
                "corp_id": corp_id,
                "name": name,
                "departments": depts[0] if depts else 0,
                "users": users,
                "active_users": active,
                "apps": [
                    {
                        "agent_id": a,
                        "name": n,
                        "type": t,
                        "app_key": k,
                        "app_secret": s,
                        "suite_key": sk,
                        "visible_to": None if v is None else orjson.loads(v),
                        "limits": orjson.loads(lim),
                    }
                    for a, n, t, k, s, sk, v, lim in tx.all(
                        "SELECT agent_id, name, type, app_key, app_secret, suite_key, visible_to, limits"
                        " FROM apps WHERE corp_id = ? ORDER BY agent_id",
                        (corp_id,),
                    )
                ],
                "robots": [
                    {"robot_code": c, "agent_id": a, "name": n}
                    for c, a, n in tx.all(
                        "SELECT robot_code, agent_id, name FROM robots WHERE corp_id = ? ORDER BY robot_code",
                        (corp_id,),
                    )
                ],
                "templates": [
                    {"template_id": t, "agent_id": a, "status": s, "msg": orjson.loads(m)}
                    for t, a, s, m in tx.all(
                        "SELECT template_id, agent_id, status, msg FROM templates WHERE corp_id = ?"
                        " ORDER BY template_id",
                        (corp_id,),
                    )
                ],
                "groups": [
                    {
                        "open_conversation_id": o,
                        "name": n,
                        "members": orjson.loads(m),
                        "robots": orjson.loads(r),
                    }
                    for o, n, m, r in tx.all(
                        "SELECT open_conversation_id, name, members, robots FROM chat_groups"
                        " WHERE corp_id = ? ORDER BY open_conversation_id",
                        (corp_id,),
                    )
                ],
            }
        )
    return overview


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()
