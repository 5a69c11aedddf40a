"""Prometheus text exposition at /metrics: request counts per surface, and the store's task figures."""

from __future__ import annotations

from collections import Counter

from dingbox.store.base import Tx

SURFACES = ("oapi", "v1", "top", "api", "ui", "other")


class Metrics:
    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()

    def count(self, surface: str) -> None:
        self.requests[surface] += 1

    def render(self, figures: dict[str, float], subscribers: int, store: dict[str, str]) -> str:
        lines = [
            "# HELP dingbox_http_requests_total HTTP requests served, by surface.",
            "# TYPE dingbox_http_requests_total counter",
        ]
        lines += [f'dingbox_http_requests_total{{surface="{s}"}} {self.requests[s]}' for s in SURFACES]
        for name, (kind, help_text) in _FIGURES.items():
            lines += [
                f"# HELP dingbox_{name} {help_text}",
                f"# TYPE dingbox_{name} {kind}",
                f"dingbox_{name} {figures[name]}",
            ]
        lines += [
            "# HELP dingbox_event_subscribers Live subscribers of the event bus (pages, waits, streams).",
            "# TYPE dingbox_event_subscribers gauge",
            f"dingbox_event_subscribers {subscribers}",
            "# HELP dingbox_store_info The store in use and its settings.",
            "# TYPE dingbox_store_info gauge",
            "dingbox_store_info{" + ",".join(f'{k}="{v}"' for k, v in sorted(store.items())) + "} 1",
        ]
        return "\n".join(lines) + "\n"


_FIGURES = {
    "tasks_accepted_total": ("counter", "Send tasks accepted."),
    "tasks_pending": ("gauge", "Send tasks not yet finished."),
    "recipients_decided_total": ("counter", "Recipients the dispatcher has decided."),
    "deliveries_total": ("counter", "Recipients delivered (messages in inboxes)."),
}


def task_figures(tx: Tx) -> dict[str, float]:
    row = tx.one(
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN status < 2 THEN 1 ELSE 0 END), 0),"
        " COALESCE(SUM(cursor), 0), COALESCE(SUM(delivered), 0) FROM tasks"
    ) or (0, 0, 0, 0)
    return {
        "tasks_accepted_total": row[0],
        "tasks_pending": row[1],
        "recipients_decided_total": row[2],
        "deliveries_total": row[3],
    }
