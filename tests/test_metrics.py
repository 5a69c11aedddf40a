"""/metrics: Prometheus text with request counts per surface and the store's task figures."""

from __future__ import annotations

import re

from support import Client


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} missing from:\n{text}"
    return float(match.group(1))


def test_metrics_count_requests_and_deliveries(client: Client) -> None:
    """Each surface's requests are counted; accepted tasks and deliveries come from the store."""
    token = client.token()
    before = client.http.get(client.base + "/metrics").text
    sent = client.send(token, userid_list="alice,0356123401,ghost")
    client.task(sent["task_id"])
    resp = client.http.get(client.base + "/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = resp.text
    assert "# TYPE dingbox_http_requests_total counter" in text
    assert (
        _metric(text, 'dingbox_http_requests_total{surface="oapi"}')
        >= _metric(before, 'dingbox_http_requests_total{surface="oapi"}') + 1
    )  # the asyncsend_v2 call
    assert _metric(text, "dingbox_tasks_accepted_total") == 1
    assert _metric(text, "dingbox_tasks_pending") == 0
    assert _metric(text, "dingbox_recipients_decided_total") == 3
    assert _metric(text, "dingbox_deliveries_total") == 2
