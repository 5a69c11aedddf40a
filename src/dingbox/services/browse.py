"""Browsing what dingbox holds (the /api/v1 views of a new user's first hour): a corp's users with
their unread counts, its departments, and the recent tasks of every app."""

from __future__ import annotations

from typing import Any

from dingbox.domain.identifiers import NUL, names_nothing
from dingbox.runtime import Runtime
from dingbox.services.inbox import AnchorNotFound, task_json
from dingbox.store import browse_sql
from dingbox.store.browse_sql import DepartmentRow

MAX_USERS_PAGE = 1000
MAX_TASKS_PAGE = 200


class UnknownCorp(LookupError):
    """A corp_id the org does not have."""


def departments_in_tree_order(rows: list[DepartmentRow]) -> list[dict[str, Any]]:
    """Each department after its parent, siblings by dept_id, with its depth (the root is 0).

    The org loader refuses unknown parents and cycles, so a walk from the root meets every department.
    """
    children: dict[int, list[DepartmentRow]] = {}
    for row in rows:  # rows come in dept_id order, so each list of siblings is sorted
        children.setdefault(row.parent_id, []).append(row)
    ordered: list[dict[str, Any]] = []
    stack = [(row, 0) for row in reversed(children.get(0, []))]
    while stack:
        row, depth = stack.pop()
        ordered.append(
            {
                "dept_id": row.dept_id,
                "name": row.name,
                "parent_id": row.parent_id or None,
                "depth": depth,
                "member_count": row.members,
            }
        )
        stack += [(child, depth + 1) for child in reversed(children.get(row.dept_id, []))]
    return ordered


class BrowseService:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    async def users(self, corp_id: str, *, after: str, limit: int) -> dict[str, Any]:
        if names_nothing(corp_id):
            raise UnknownCorp(corp_id)
        # in byte order, the userids after "a\0b" are exactly those after "a" (none holds a NUL)
        after = after.split(NUL, 1)[0]
        page = await self.rt.store.read(browse_sql.users_page, corp_id, after=after, limit=limit)
        if page is None:
            raise UnknownCorp(corp_id)
        users, more = page
        items = []
        for user in users:
            item: dict[str, Any] = {
                "userid": user.userid,
                "name": user.name,
                "dept_ids": user.dept_ids,
                "active": user.active,
            }
            for field in ("mobile", "title", "email"):
                if (value := getattr(user, field)) is not None:
                    item[field] = value
            item["unread"] = user.unread
            items.append(item)
        return {"users": items, "next_after": users[-1].userid if more else None}

    async def departments(self, corp_id: str) -> dict[str, Any]:
        if names_nothing(corp_id):
            raise UnknownCorp(corp_id)
        rows = await self.rt.store.read(browse_sql.departments, corp_id)
        if rows is None:
            raise UnknownCorp(corp_id)
        return {"departments": departments_in_tree_order(rows)}

    async def tasks(
        self,
        *,
        limit: int,
        before: int | None,
        corp_id: str | None,
        agent_id: int | None,
        source: str | None,
        status: int | None,
    ) -> dict[str, Any]:
        store = self.rt.store
        before_seq = None
        if before is not None:
            before_seq = await store.read(browse_sql.task_seq, before)
            if before_seq is None:
                raise AnchorNotFound(before)
        if names_nothing(corp_id):  # names no corp: no tasks
            return {"tasks": [], "next_before": None}
        summaries = await store.read(
            browse_sql.tasks_page,
            before_seq=before_seq,
            limit=limit,
            corp_id=corp_id,
            agent_id=agent_id,
            source=source,
            status=status,
        )
        more = len(summaries) > limit
        summaries = summaries[:limit]
        return {
            "tasks": [task_json(s.task, s.outcome_counts) for s in summaries],
            "next_before": summaries[-1].task.task_id if more and summaries else None,
        }
