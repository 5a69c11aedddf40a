"""Loading and exporting the org (DESIGN §6): validate against the ids other corps own, replace whole."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import yaml

from dingbox.domain.org import OrgError, parse_document
from dingbox.runtime import Runtime
from dingbox.store import Store, org_sql, state_sql
from dingbox.store.base import Tx


def read_org_file(path: str | Path) -> Any:
    """Parse a YAML or JSON org file; OrgError (with the file name) when it cannot be read."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise OrgError(str(path), f"cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise OrgError(str(path), "not UTF-8 text") from None
    kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
    try:
        return orjson.loads(text) if kind == "JSON" else yaml.safe_load(text)
    except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
        # the parsers explain over several lines; the CLI reports in one
        raise OrgError(str(path), f"not valid {kind}: {' '.join(str(exc).split())}") from None


def demo_document() -> Any:
    return yaml.safe_load((Path(__file__).parent.parent / "demo_org.yaml").read_text(encoding="utf-8"))


def _named_corps(raw: Any) -> list[str]:
    if not isinstance(raw, dict) or not isinstance(raw.get("corps"), list):
        return []
    return [
        str(c["corp_id"]) for c in raw["corps"] if isinstance(c, dict) and isinstance(c.get("corp_id"), str)
    ]


def load_document_tx(tx: Tx, raw: Any) -> dict[str, int]:
    """Validate and write in one transaction, so the uniqueness check sees what it replaces. The
    caller bumps the org's generation (first, so that loads from several processes follow each other)."""
    doc = parse_document(raw, org_sql.taken_ids(tx, _named_corps(raw)))
    return org_sql.replace_document(tx, doc)


def load_tx(tx: Tx, raw: Any) -> tuple[dict[str, int], int]:
    """Load one document: its counts and the org's new generation."""
    generation = state_sql.bump(tx, "org")
    return load_document_tx(tx, raw), generation


def load_files_tx(tx: Tx, documents: list[tuple[str, Any]]) -> int:
    """Load (name, document) pairs in order in one transaction: a bad one rolls back them all. Gives
    the org's new generation.

    A later document sees the corps of earlier ones as existing, so naming a corp again replaces it.
    """
    generation = state_sql.bump(tx, "org")
    for name, raw in documents:
        try:
            load_document_tx(tx, raw)
        except OrgError as exc:
            raise OrgError(name, str(exc)) from None
    return generation


def load_files(store: Store, documents: list[tuple[str, Any]]) -> None:
    """Load documents outside a server (the CLI), and tell the processes sharing the store, which
    reload their directory (their watch would find the new generation within two seconds anyway)."""
    if not documents:
        return
    generation = store.write_sync(load_files_tx, documents)
    if store.shared:
        corp_ids = sorted({corp for _, raw in documents for corp in _named_corps(raw)})
        store.broadcast("org.changed", {"corp_id": None, "corp_ids": corp_ids, "generation": generation})


class OrgService:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        # one load at a time: otherwise a slower directory reload of an earlier load could land
        # after a later one and bring back the org as it was in between
        self._loading = asyncio.Lock()

    async def load(self, raw: Any) -> dict[str, int]:
        async with self._loading:
            counts, generation = await self.rt.store.write(load_tx, raw)
            await self.rt.org_loaded(generation, _named_corps(raw))
        return counts

    async def overview(self, *, with_secrets: bool) -> list[dict[str, Any]]:
        corps = await self.rt.store.read(org_sql.corps_overview)
        if not with_secrets:
            for corp in corps:
                for app in corp["apps"]:
                    app.pop("app_secret", None)
        return corps


def export_yaml(document: dict[str, Any]) -> str:
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False)
