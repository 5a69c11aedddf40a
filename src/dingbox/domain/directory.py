"""Who may call: apps, suites and robots indexed for token checks and `agent_id` ownership.

Small (one row per app), held in memory and rebuilt whenever the org changes; users and departments
stay in the store, where fan-out resolves them set-wise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dingbox.domain.org import Visibility


@dataclass(frozen=True)
class AppInfo:
    agent_id: int
    corp_id: str
    name: str
    type: str
    app_key: str | None
    app_secret: str | None
    suite_key: str | None
    visible_to: Visibility | None
    limits: Mapping[str, Any]

    @property
    def is_isv(self) -> bool:
        return self.type == "isv"


@dataclass(frozen=True)
class Principal:
    """Who a token speaks for: one internal app, or a suite inside one corp (all its ISV apps there)."""

    kind: str  # internal | isv
    corp_id: str
    key: str  # app_key or suite_key
    agent_ids: frozenset[int]

    @property
    def is_isv(self) -> bool:
        return self.kind == "isv"


@dataclass(frozen=True)
class Directory:
    corps: Mapping[str, str] = field(default_factory=dict)
    suites: Mapping[str, str] = field(default_factory=dict)
    apps: Mapping[int, AppInfo] = field(default_factory=dict)
    by_app_key: Mapping[str, AppInfo] = field(default_factory=dict)
    robots: Mapping[str, tuple[str, int, str]] = field(default_factory=dict)
    # principals asked for on every authenticated call; a directory never changes once built
    _principals: dict[tuple[str, str, str], Principal | None] = field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def build(
        cls,
        *,
        corps: Mapping[str, str],
        suites: Mapping[str, str],
        apps: list[AppInfo],
        robots: Mapping[str, tuple[str, int, str]],
    ) -> Directory:
        return cls(
            corps=dict(corps),
            suites=dict(suites),
            apps={a.agent_id: a for a in apps},
            by_app_key={a.app_key: a for a in apps if a.app_key},
            robots=dict(robots),
        )

    def suite_agents(self, suite_key: str, corp_id: str) -> frozenset[int]:
        return frozenset(
            a.agent_id for a in self.apps.values() if a.suite_key == suite_key and a.corp_id == corp_id
        )

    def owned_app(self, principal: Principal, agent_id: int) -> AppInfo | None:
        """The app `agent_id` names, when the token speaks for it; None for any other app or corp."""
        app = self.apps.get(agent_id)
        if app is None or agent_id not in principal.agent_ids or app.corp_id != principal.corp_id:
            return None
        return app

    def owned_robot(self, principal: Principal, robot_code: str) -> AppInfo | None:
        """The app of a robot the token's app owns; None for unknown robots and those of other apps."""
        robot = self.robots.get(robot_code)
        return None if robot is None else self.owned_app(principal, robot[1])

    def principal(self, kind: str, key: str, corp_id: str) -> Principal | None:
        """The principal a stored token names, or None when the org no longer has it."""
        cache_key = (kind, key, corp_id)
        if cache_key not in self._principals:
            self._principals[cache_key] = self._find_principal(kind, key, corp_id)
        return self._principals[cache_key]

    def _find_principal(self, kind: str, key: str, corp_id: str) -> Principal | None:
        if kind == "internal":
            app = self.by_app_key.get(key)
            if app is None or app.corp_id != corp_id:
                return None
            return Principal("internal", corp_id, key, frozenset({app.agent_id}))
        agents = self.suite_agents(key, corp_id)
        if key not in self.suites or not agents:
            return None
        return Principal("isv", corp_id, key, agents)
