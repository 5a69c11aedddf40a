"""Store operations on message templates: look up, list, create, replace the message, change status.

The org file writes templates with the rest of a corp (`org_sql.replace_document`); these operations
change them afterwards, until an org load replaces the corp again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from dingbox.store.base import Tx

_COLUMNS = "template_id, corp_id, agent_id, status, msg"


@dataclass(frozen=True)
class TemplateRow:
    template_id: str
    corp_id: str
    agent_id: int
    status: str
    msg: dict[str, Any]


def _row(values: Any) -> TemplateRow:
    template_id, corp_id, agent_id, status, msg = values
    return TemplateRow(template_id, corp_id, agent_id, status, orjson.loads(msg))


def template_by_id(tx: Tx, template_id: str) -> TemplateRow | None:
    row = tx.one(f"SELECT {_COLUMNS} FROM templates WHERE template_id = ?", (template_id,))
    return None if row is None else _row(row)


def list_templates(
    tx: Tx, corp_id: str | None, agent_id: int | None, status: str | None
) -> list[TemplateRow]:
    """Templates matching every filter given, by template_id."""
    conditions, params = [], []
    for column, value in (("corp_id", corp_id), ("agent_id", agent_id), ("status", status)):
        if value is not None:
            conditions.append(f"{column} = ?")
            params.append(value)
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    rows = tx.all(f"SELECT {_COLUMNS} FROM templates{where} ORDER BY template_id", tuple(params))
    return [_row(r) for r in rows]


def insert_template(tx: Tx, template: TemplateRow) -> bool:
    """Add a template; False when its id is taken (template ids are global, DESIGN §6)."""
    inserted = tx.execute(
        f"INSERT INTO templates ({_COLUMNS}) VALUES (?, ?, ?, ?, ?) ON CONFLICT (template_id) DO NOTHING",
        (
            template.template_id,
            template.corp_id,
            template.agent_id,
            template.status,
            orjson.dumps(template.msg).decode(),
        ),
    )
    return inserted > 0


def replace_msg(tx: Tx, template_id: str, msg: dict[str, Any]) -> TemplateRow | None:
    tx.execute(
        "UPDATE templates SET msg = ? WHERE template_id = ?", (orjson.dumps(msg).decode(), template_id)
    )
    return template_by_id(tx, template_id)


def set_status(tx: Tx, template_id: str, status: str) -> TemplateRow | None:
    tx.execute("UPDATE templates SET status = ? WHERE template_id = ?", (status, template_id))
    return template_by_id(tx, template_id)
