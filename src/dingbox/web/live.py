"""Live pages: each page holds one server-sent-event stream that patches it as the bus reports changes.

A stream subscribes to the kinds its page shows, wakes on each event, re-reads what changed and sends
`patch` events holding rendered HTML: `prepend` a new message, `replace` a section or a message,
`remove` an element. The page's script applies them; it never asks the server for anything else.
Bursts (a fan-out publishes an event per batch) are coalesced: a stream drains what is queued and
renders once. If the bus drops a slow stream, the page is told to `reload`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Collection
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dingbox.api.events import EventStream, sse
from dingbox.events import Event, Subscription
from dingbox.services.container import Services
from dingbox.services.inbox import UnknownUser
from dingbox.services.ui import Chat
from dingbox.web.pages import macro, short_time

SETTLE_SECONDS = 0.15  # how long a stream lets a burst of events gather before it renders once
HOME_SETTLE_SECONDS = 0.5  # the overview re-reads every corp's recent tasks: less often
Op = dict[str, str]


def _int(raw: str | None) -> int | None:
    return int(raw) if raw and raw.isascii() and raw.isdigit() and len(raw) < 19 else None


async def _burst(sub: Subscription, first: Event, settle: float) -> list[Event] | None:
    """`first` and whatever else arrives within `settle` seconds; None when the bus dropped us."""
    events = [first]
    await asyncio.sleep(settle)
    while not sub.queue.empty():
        event = sub.queue.get_nowait()
        if event is None:
            return None
        events.append(event)
    return events


def stream(
    services: Services,
    kinds: Collection[str],
    accept: Callable[[Event], bool],
    render: Callable[[list[Event]], Awaitable[list[Op]]],
    initial: Callable[[], Awaitable[list[Op]]] | None = None,
    settle: float = SETTLE_SECONDS,
) -> EventStream:
    async def chunks() -> AsyncGenerator[bytes, None]:
        with services.runtime.events.subscribe(kinds, accept) as sub:
            yield sse("ready", {})
            if initial is not None and (ops := await initial()):
                yield sse("patch", {"ops": ops})
            while True:
                first = await sub.queue.get()
                events = None if first is None else await _burst(sub, first, settle)
                if events is None:
                    yield sse("reload", {})
                    return
                if ops := await render(events):
                    yield sse("patch", {"ops": ops})

    return EventStream(chunks())


def routes(services: Services) -> list[Route]:
    ui = services.ui

    async def inbox(request: Request) -> Response:
        q = request.query_params
        corp_id, userid = q.get("corp_id", ""), q.get("userid", "")
        chat = Chat.parse(q.get("chat", "")) if q.get("chat") else None
        try:
            await ui.inbox(corp_id, userid, chat, before=None, limit=0)
        except UnknownUser:
            return Response(status_code=204)  # tells EventSource not to reconnect
        after = _int(q.get("after")) or 0
        remote = q.get("images") == "1"
        older = q.get("older") == "1"  # a later page: its messages change, nothing new joins it

        def wanted(m: dict[str, Any]) -> bool:
            if chat is None:
                return True
            if chat.kind == "robot":
                return bool(m["source"] == "robot" and m["robot_code"] == chat.key)
            return bool(m["source"] != "robot" and str(m["agent_id"]) == chat.key)

        def items(messages: list[dict[str, Any]], op: str) -> list[Op]:
            return [
                {"op": op, "sel": f"#m-{m['id']}", "into": "#messages", "html": _item(m)}
                for m in sorted(messages, key=lambda m: (m["created_at"], m["seq"], m["id"]))
                if wanted(m)
            ]

        def _item(m: dict[str, Any]) -> str:
            return macro("message_item", m=m, ui=ui, remote_images=remote)

        async def chats() -> list[Op]:
            page = await ui.inbox(corp_id, userid, chat, before=None, limit=0)
            return [{"op": "replace", "sel": "#chats", "html": macro("chat_list", page=page)}]

        shown: set[int] = set()  # messages this stream added to the page

        async def initial() -> list[Op]:
            # what arrived between drawing the page and subscribing
            missed = [] if older else await ui.messages_after(corp_id, userid, after)
            shown.update(m["id"] for m in missed)
            return items(missed, "prepend") + (await chats() if missed else [])

        def accept(e: Event) -> bool:
            if e.corp_id != corp_id:
                return False
            if e.kind == "message.delivered":
                return any(uid == userid for _, uid in e.data.get("messages", ()))
            if e.kind == "message.read":
                return bool(e.data.get("userid") == userid)
            return True

        async def render(events: list[Event]) -> list[Op]:
            fresh: set[int] = set()
            changed: set[int] = set()
            for e in events:
                if e.kind == "message.delivered":
                    fresh |= {mid for mid, uid in e.data["messages"] if uid == userid}
                elif e.kind == "message.read":
                    changed.add(e.data["message_id"])
                elif e.kind == "message.recalled":
                    ids = e.data.get("message_ids")
                    if ids is None:
                        ids = await ui.task_message_ids(e.data["task_id"], corp_id, userid)
                    changed |= set(ids)
            fresh -= shown  # already added by the catch-up read of `initial`
            shown.update(fresh)
            ops = [] if older else items(await ui.messages(sorted(fresh)), "prepend")
            ops += items(await ui.messages(sorted(changed - fresh)), "replace")
            if ops:
                ops += await chats()
            return ops

        kinds = ("message.delivered", "message.read", "message.recalled")
        return stream(services, kinds, accept, render, initial)

    async def message(request: Request) -> Response:
        message_id = _int(request.query_params.get("id"))
        found = await services.inbox.message(message_id) if message_id is not None else None
        if found is None:
            return Response(status_code=204)  # tells EventSource to stop retrying
        task_id, remote = found["task_id"], request.query_params.get("images") == "1"

        def accept(e: Event) -> bool:
            if e.kind == "message.read":
                return bool(e.data.get("message_id") == message_id)
            ids = e.data.get("message_ids")
            return bool(e.data.get("task_id") == task_id and (ids is None or message_id in ids))

        async def render(events: list[Event]) -> list[Op]:
            m = await services.inbox.message(message_id or 0)
            if m is None:
                return []
            ops = [
                {
                    "op": "replace",
                    "sel": f"#m-{m['id']}",
                    "html": macro("message_item", m=m, ui=ui, remote_images=remote),
                },
                {"op": "remove", "sel": "#read-form"},
            ]
            if m["read_at"]:
                ops.append({"op": "text", "sel": "#read-at", "text": short_time(m["read_at"])})
            return ops

        return stream(services, ("message.read", "message.recalled"), accept, render)

    async def task(request: Request) -> Response:
        task_id = _int(request.query_params.get("task_id"))
        outcome = request.query_params.get("outcome") or None
        reason = request.query_params.get("reason") or None
        if task_id is None:
            return Response(status_code=204)

        def accept(e: Event) -> bool:
            return bool(e.data.get("task_id") == task_id)

        async def render(events: list[Event]) -> list[Op]:
            t = await ui.task(task_id or 0, outcome=outcome, reason=reason, cursor=0, limit=1000)
            if t is None:
                return []
            return [
                {"op": "replace", "sel": "#task-summary", "html": macro("task_summary", t=t)},
                {"op": "replace", "sel": "#task-recipients", "html": macro("task_recipients", t=t)},
                {"op": "replace", "sel": "#getsendresult", "html": macro("getsendresult", t=t)},
            ]

        kinds = ("task.progress", "task.finished", "message.delivered", "message.read", "message.recalled")
        return stream(services, kinds, accept, render)

    async def home(request: Request) -> Response:
        async def render(events: list[Event]) -> list[Op]:
            ops = [
                {
                    "op": "replace",
                    "sel": "#recent-tasks",
                    "html": macro("recent_tasks", tasks=await ui.recent_tasks()),
                }
            ]
            for corp_id in sorted({e.corp_id for e in events if e.corp_id}):
                users = await ui.users(corp_id)
                html = macro("users_table", corp_id=corp_id, users=users)
                ops.append({"op": "replace", "sel": f"#users-{corp_id}", "html": html})
            return ops

        kinds = ("task.accepted", "task.finished", "message.read", "message.recalled", "robot.sent")
        return stream(services, kinds, lambda e: True, render, settle=HOME_SETTLE_SECONDS)

    async def quota(request: Request) -> Response:
        corp_id = request.query_params.get("corp_id", "")
        agent_id = _int(request.query_params.get("agent_id"))

        def accept(e: Event) -> bool:
            return e.corp_id == corp_id and e.data.get("agent_id") == agent_id

        async def render(events: list[Event]) -> list[Op]:
            q = await ui.quota(corp_id, agent_id)
            return (
                []
                if q is None
                else [{"op": "replace", "sel": "#quota-body", "html": macro("quota_body", q=q)}]
            )

        return stream(services, ("message.delivered", "task.finished"), accept, render)

    return [
        Route("/ui/live/inbox", inbox, methods=["GET"]),
        Route("/ui/live/message", message, methods=["GET"]),
        Route("/ui/live/task", task, methods=["GET"]),
        Route("/ui/live/home", home, methods=["GET"]),
        Route("/ui/live/quota", quota, methods=["GET"]),
    ]
