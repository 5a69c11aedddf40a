"""The layers of the architecture (docs/architecture.md), checked on the imports and code of every module.

- Wire adapters (`protocols/`, `api/`, `web/`) work through the Services they are handed: they import
  nothing of the store, the runtime or the dispatcher, and never reach for a `.store`.
- SQL lives in the store's modules: no other module holds an SQL statement or drives a transaction.
- `domain/` is pure rules: nothing it imports, directly or through other dingbox modules, does I/O,
  reads the wall clock or draws random numbers.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).parent.parent / "src"

ADAPTERS = ("dingbox.protocols", "dingbox.api", "dingbox.web")
ADAPTERS_MAY_NOT_IMPORT = ("dingbox.store", "dingbox.runtime", "dingbox.dispatch", "dingbox.app", "sqlite3")
STORE = "dingbox.store"
DOMAIN = "dingbox.domain"
DOMAIN_MAY_NOT_IMPORT = (
    *(f"dingbox.{name}" for name in ("store", "services", "protocols", "api", "web", "dispatch")),
    *(f"dingbox.{name}" for name in ("runtime", "app", "cli", "settings", "metrics", "clock", "ids")),
    *("sqlite3", "psycopg", "asyncio", "socket", "ssl", "subprocess", "threading", "multiprocessing"),
    *("os", "io", "pathlib", "shutil", "tempfile", "logging", "time", "random", "secrets", "uuid"),
    *("urllib.request", "http", "requests", "starlette", "uvicorn", "click"),
)
SQL = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|PRAGMA|WITH|BEGIN|COMMIT)\s")


@dataclass(frozen=True)
class Module:
    name: str
    tree: ast.Module

    def imports(self) -> list[tuple[str, int]]:
        """(imported name, line): `from a.b import c` gives a.b and a.b.c (c may be a module)."""
        found = []
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                found += [(alias.name, node.lineno) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    package = self.name.split(".")[: -node.level]
                    base = ".".join([*package, base] if base else package)
                found.append((base, node.lineno))
                found += [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
        return found


def within(name: str, prefixes: tuple[str, ...] | str) -> bool:
    prefixes = (prefixes,) if isinstance(prefixes, str) else prefixes
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def violations(modules: dict[str, Module]) -> list[str]:
    found: list[str] = []
    for module in modules.values():
        if within(module.name, ADAPTERS):
            found += [
                f"{module.name}:{line} imports {name}: adapters use their Services"
                for name, line in module.imports()
                if within(name, ADAPTERS_MAY_NOT_IMPORT)
            ]
            found += [
                f"{module.name}:{node.lineno} reaches for .store: adapters use their Services"
                for node in ast.walk(module.tree)
                if isinstance(node, ast.Attribute) and node.attr == "store"
            ]
        if not within(module.name, STORE):
            for node in ast.walk(module.tree):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.match(node.value):
                    found.append(f"{module.name}:{node.lineno} holds SQL: it belongs in a store *_sql module")
                if (
                    isinstance(node, ast.Attribute)
                    and isinstance(node.value, ast.Name)
                    and node.value.id == "tx"
                ):
                    found.append(f"{module.name}:{node.lineno} drives a transaction: that is the store's")
        if within(module.name, DOMAIN):
            found += [f"{module.name} {problem}" for problem in _impure_imports(module, modules)]
    return found


def _impure_imports(start: Module, modules: dict[str, Module]) -> list[str]:
    """Forbidden imports of a domain module and of every dingbox module it reaches through imports."""
    problems, seen, todo = [], {start.name}, [(start, "")]
    while todo:
        module, via = todo.pop()
        for name, line in module.imports():
            if within(name, DOMAIN_MAY_NOT_IMPORT):
                where = f" (through {via.lstrip(' →')})" if via else ""
                problems.append(f"imports {name} at {module.name}:{line}{where}: the domain does no I/O")
            elif name in modules and name not in seen:
                seen.add(name)
                todo.append((modules[name], f"{via} → {name}"))
    return problems


def parse(name: str, source: str) -> Module:
    return Module(name, ast.parse(source))


def the_tree() -> dict[str, Module]:
    modules = {}
    for path in sorted((SRC / "dingbox").rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = parse(name, path.read_text(encoding="utf-8"))
    return modules


def test_the_source_tree_keeps_its_layers() -> None:
    """Every module of src/dingbox obeys the layer rules above."""
    modules = the_tree()
    assert {
        "dingbox.cli",
        "dingbox.metrics",
        "dingbox.domain.pipeline",
        "dingbox.protocols.oapi.routes",
    } <= set(modules)
    assert violations(modules) == []


# The checker itself: each rule catches what it is there for.


@pytest.mark.parametrize(
    ("name", "source", "expected"),
    [
        (
            "dingbox.protocols.oapi.x",
            "from dingbox.store import task_sql\nimport dingbox.runtime\n",
            [
                "dingbox.protocols.oapi.x:1 imports dingbox.store: adapters use their Services",
                "dingbox.protocols.oapi.x:1 imports dingbox.store.task_sql: adapters use their Services",
                "dingbox.protocols.oapi.x:2 imports dingbox.runtime: adapters use their Services",
            ],
        ),
        (
            "dingbox.api.x",
            "async def f(services):\n    return await services.runtime.store.read(op)\n",
            ["dingbox.api.x:2 reaches for .store: adapters use their Services"],
        ),
        (
            "dingbox.cli",
            'rows = store.read_sync(lambda tx: tx.all("SELECT suite_key FROM suites"))\n',
            [
                "dingbox.cli:1 drives a transaction: that is the store's",
                "dingbox.cli:1 holds SQL: it belongs in a store *_sql module",
            ],
        ),
        (
            "dingbox.metrics",
            'def f(where):\n    return f"  UPDATE tasks SET x = 1 WHERE {where}"\n',
            ["dingbox.metrics:2 holds SQL: it belongs in a store *_sql module"],
        ),
        (
            "dingbox.domain.x",
            "import os.path\nfrom dingbox import clock\n",
            [
                "dingbox.domain.x imports os.path at dingbox.domain.x:1: the domain does no I/O",
                "dingbox.domain.x imports dingbox.clock at dingbox.domain.x:2: the domain does no I/O",
            ],
        ),
        ("dingbox.store.x", 'def f(tx):\n    tx.execute("DELETE FROM tasks")\n', []),
        (
            "dingbox.services.x",
            '"""Select the users, then update them."""\nfrom dingbox.store import org_sql\n',
            [],
        ),
    ],
)
def test_each_rule_catches_its_violation(name: str, source: str, expected: list[str]) -> None:
    assert violations({name: parse(name, source)}) == expected


def test_domain_purity_follows_imports_through_other_modules() -> None:
    """A domain module importing a harmless-looking dingbox module that does I/O is caught, with the path."""
    modules = {
        "dingbox.domain.rules": parse("dingbox.domain.rules", "from dingbox.helpers import tidy\n"),
        "dingbox.helpers": parse("dingbox.helpers", "from . import disk\n"),
        "dingbox.disk": parse("dingbox.disk", "import sqlite3\n"),
    }
    assert violations(modules) == [
        "dingbox.domain.rules imports sqlite3 at dingbox.disk:1 (through dingbox.helpers → dingbox.disk):"
        " the domain does no I/O"
    ]
