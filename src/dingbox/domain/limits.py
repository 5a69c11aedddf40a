"""Limits profiles (DESIGN §3): the list limits, caps and windows in force, and per-app overrides.

`None` means "no limit". `strict` is DingTalk as documented today; `lenient` raises the list limits
and answers getsendresult for any size; `unlimited` also lifts every cap (dedup stays on).

sendbytemplate documents its own limits (spec §3.2): lists of 5000 userids and 500 departments in
every profile, 1000 recipients per call, 5000 per minute and 100 messages per employee per day. The
minute and daily budgets are the app's, shared with its asyncsend_v2 sends.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

DAY = 86400


@dataclass(frozen=True)
class AppLimits:
    userid_list: int | None
    dept_id_list: int | None
    per_call: int | None
    daily_per_user: int | None
    per_minute: int | None


@dataclass(frozen=True)
class LimitsProfile:
    name: str
    userid_list: int | None = 100
    dept_id_list: int | None = 20
    per_call_internal: int | None = 5000
    per_call_isv: int | None = 1000
    daily_internal: int | None = 500
    daily_isv: int | None = 100
    per_minute: int | None = 5000
    template_userid_list: int | None = 5000
    template_dept_id_list: int | None = 500
    result_max_recipients: int | None = 100
    result_window: int = DAY
    recall_window: int = DAY
    status_bar_window: int = 7 * DAY

    @classmethod
    def named(cls, name: str) -> LimitsProfile:
        strict = cls(name="strict")
        if name == "strict":
            return strict
        lenient = replace(
            strict, name="lenient", userid_list=5000, dept_id_list=500, result_max_recipients=None
        )
        if name == "lenient":
            return lenient
        if name == "unlimited":
            return replace(
                lenient,
                name="unlimited",
                per_call_internal=None,
                per_call_isv=None,
                daily_internal=None,
                daily_isv=None,
                per_minute=None,
            )
        raise ValueError(f"unknown limits profile {name!r}")

    def for_app(self, is_isv: bool, overrides: Mapping[str, Any], *, template: bool = False) -> AppLimits:
        """The limits one app's send runs under; the org file's per-app `limits` win over the profile."""
        base = AppLimits(
            userid_list=self.template_userid_list if template else self.userid_list,
            dept_id_list=self.template_dept_id_list if template else self.dept_id_list,
            per_call=self.per_call_isv if (is_isv or template) else self.per_call_internal,
            daily_per_user=self.daily_isv if (is_isv or template) else self.daily_internal,
            per_minute=self.per_minute,
        )
        known = {k: v for k, v in overrides.items() if k in AppLimits.__dataclass_fields__}
        return replace(base, **known)
