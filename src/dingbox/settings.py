"""The settings table: every knob of dingbox, its default, its `DINGBOX_*` variable and its help.

The CLI builds one flag per row, the environment fills what the command line leaves out, and the
result is a frozen `Settings` handed to `create_app`. Nothing reads the environment at import.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

LIMIT_PROFILES = ("strict", "lenient", "unlimited")
DEFAULT_DB = "sqlite:///./dingbox-data/dingbox.db"


class SettingsError(ValueError):
    """A setting has a value dingbox cannot use; the message names the setting and the value."""


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("not a boolean")


def _paths(raw: str) -> tuple[str, ...]:
    return tuple(part for part in raw.split(os.pathsep) if part)


def _names(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str
    parse: Callable[[str], Any] = str

    @property
    def env(self) -> str:
        return "DINGBOX_" + self.name.upper()


SETTINGS: tuple[Setting, ...] = (
    Setting("host", "127.0.0.1", "Address to listen on."),
    Setting("port", 8610, "Port to listen on (0 picks a free one).", int),
    Setting("db", DEFAULT_DB, "Store URL: sqlite:///relative.db, sqlite:////absolute.db or postgresql://…"),
    Setting(
        "org",
        (),
        "Org files (YAML or JSON) to load on start; the variable separates them with the OS path separator.",
        _paths,
    ),
    Setting("no_demo", False, "Do not load the demo org into an empty store.", _bool),
    Setting(
        "limits", "strict", "Limits profile: strict (DingTalk's documented limits), lenient or unlimited."
    ),
    Setting("dispatchers", 1, "Dispatcher loops in this process; 0 only accepts tasks.", int),
    Setting("auth", "", "Protect /ui/ and /api/v1 with this token (bearer or basic auth password)."),
    Setting(
        "test_controls", False, "Allow test controls (reset, clock, drain) from non-loopback clients.", _bool
    ),
    Setting("dispatch_delay", 0.0, "Seconds a task waits after acceptance before dispatch starts.", float),
    Setting(
        "batch_size",
        100_000,
        "Most recipients decided and written per dispatch transaction; a write ends sooner when requests"
        " wait for the store.",
        int,
    ),
    Setting("batch_pause", 0.0, "Seconds the dispatcher pauses between two batches of one task.", float),
    Setting("body_limit", 1048576, "Largest request body accepted, in bytes.", int),
    Setting(
        "allowed_host",
        (),
        "Host name also accepted in the Host header of /api/v1 and /ui/ requests, besides loopback names and"
        " the bound address (repeatable; the variable separates names with commas).",
        _names,
    ),
    Setting("header_timeout", 10.0, "Seconds a client has to send a request's headers; then 408.", float),
    Setting("body_timeout", 30.0, "Seconds a client has to send a whole request body; then 408.", float),
    Setting("keep_alive_timeout", 5, "Seconds an idle keep-alive connection stays open.", int),
    Setting("max_connections", 1000, "Open connections at most; one more is answered 503 and closed.", int),
    Setting("log_level", "info", "Log level: debug, info, warning or error."),
    Setting(
        "synchronous",
        "normal",
        "SQLite durability: normal (an acknowledged send survives a crash of dingbox) or full (also"
        " survives power loss, at an fsync per commit).",
    ),
    Setting(
        "robot_minute_limit",
        0,
        "Recipients one robot may reach per calendar minute; those beyond are flow-controlled (0: no limit).",
        int,
    ),
)
SETTINGS_BY_NAME = {setting.name: setting for setting in SETTINGS}


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8610
    db: str = DEFAULT_DB
    org: tuple[str, ...] = field(default_factory=tuple)
    no_demo: bool = False
    limits: str = "strict"
    dispatchers: int = 1
    auth: str = ""
    test_controls: bool = False
    dispatch_delay: float = 0.0
    batch_size: int = 100_000
    batch_pause: float = 0.0
    body_limit: int = 1048576
    allowed_host: tuple[str, ...] = field(default_factory=tuple)
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keep_alive_timeout: int = 5
    max_connections: int = 1000
    log_level: str = "info"
    synchronous: str = "normal"
    robot_minute_limit: int = 0

    @classmethod
    def build(cls, explicit: Mapping[str, Any], environ: Mapping[str, str]) -> Settings:
        """Explicit values (the command line) win over `DINGBOX_*` variables, which win over defaults."""
        values: dict[str, Any] = {}
        for setting in SETTINGS:
            if explicit.get(setting.name) is not None:
                values[setting.name] = explicit[setting.name]
            elif setting.env in environ:
                raw = environ[setting.env]
                try:
                    values[setting.name] = setting.parse(raw)
                except ValueError:
                    raise SettingsError(
                        f"{setting.env} has value {raw!r}: not a valid {setting.name}"
                    ) from None
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if not self.host.strip():
            raise SettingsError("host is empty: give an address such as 127.0.0.1 or 0.0.0.0")
        if self.limits not in LIMIT_PROFILES:
            raise SettingsError(
                f"limits has value {self.limits!r}: choose one of {', '.join(LIMIT_PROFILES)}"
            )
        if self.dispatchers < 0:
            raise SettingsError(f"dispatchers has value {self.dispatchers}: must be 0 or more")
        if not 0 <= self.port <= 65535:
            raise SettingsError(f"port has value {self.port}: must be between 0 and 65535")
        if self.batch_size < 1:
            raise SettingsError(f"batch_size has value {self.batch_size}: must be 1 or more")
        if self.body_limit < 1024:
            raise SettingsError(f"body_limit has value {self.body_limit}: must be at least 1024")
        for name in ("dispatch_delay", "batch_pause"):
            seconds = getattr(self, name)
            if not (math.isfinite(seconds) and seconds >= 0):  # NaN or infinity would stall dispatch for good
                raise SettingsError(f"{name} has value {seconds}: must be a number of seconds, 0 or more")
        if self.synchronous not in ("normal", "full"):
            raise SettingsError(f"synchronous has value {self.synchronous!r}: choose normal or full")
        for name in ("header_timeout", "body_timeout"):
            seconds = getattr(self, name)
            if not (math.isfinite(seconds) and seconds > 0):  # no deadline is what these settings prevent
                raise SettingsError(f"{name} has value {seconds}: must be a number of seconds above 0")
        if self.keep_alive_timeout < 1:
            raise SettingsError(f"keep_alive_timeout has value {self.keep_alive_timeout}: must be 1 or more")
        if self.max_connections < 1:
            raise SettingsError(f"max_connections has value {self.max_connections}: must be 1 or more")
        for name in self.allowed_host:
            if not name or any(c.isspace() or c in "/@,?#" for c in name):
                raise SettingsError(f"allowed_host has value {name!r}: give a host name such as dingbox.test")
        if self.robot_minute_limit < 0:
            raise SettingsError(
                f"robot_minute_limit has value {self.robot_minute_limit}: must be 0 (no limit) or more"
            )
        if self.log_level not in ("debug", "info", "warning", "error"):
            raise SettingsError(
                f"log_level has value {self.log_level!r}: choose debug, info, warning or error"
            )


assert {f.name for f in fields(Settings)} == set(SETTINGS_BY_NAME), "Settings and SETTINGS disagree"
