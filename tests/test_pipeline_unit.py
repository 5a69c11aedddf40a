"""Unit tests of the pure send pipeline (domain/pipeline.py): rule order and budgets inside one batch."""

from __future__ import annotations

from dingbox.domain.limits import AppLimits, LimitsProfile
from dingbox.domain.pipeline import BatchFacts, Decision, Outcome, Recipient, decide_batch, threshold

TIGHT = AppLimits(userid_list=100, dept_id_list=20, per_call=3, daily_per_user=2, per_minute=4)


def facts(**kw: object) -> BatchFacts:
    base: dict[str, object] = {
        "visible": None,
        "dedup_owner": {},
        "daily_count": {},
        "minute_count": 0,
        "delivered_in_task": 0,
    }
    base.update(kw)
    return BatchFacts(**base)  # type: ignore[arg-type]


def test_first_applicable_rule_decides_in_design_order() -> None:
    """DESIGN §3: unknown → invalid_user, then not_visible, inactive, duplicate, daily, minute, per-call."""
    recipients = [
        Recipient("ghost", None),
        Recipient("outsider", False),
        Recipient("sleeper", False),
        Recipient("dup", True),
        Recipient("busy", True),
        Recipient("ok", True),
    ]
    visible = frozenset({"sleeper", "dup", "busy", "ok"})
    got = decide_batch(
        7,
        recipients,
        facts(
            visible=visible,
            dedup_owner={"dup": 3, "sleeper": 3},
            daily_count={"dup": 9, "busy": 2, "sleeper": 9},
        ),
        TIGHT,
        is_isv=False,
    )
    assert got == [
        Decision("ghost", Outcome.INVALID, "invalid_user"),
        Decision("outsider", Outcome.INVALID, "not_visible"),
        Decision("sleeper", Outcome.FAILED, "inactive_user"),
        Decision("dup", Outcome.FORBIDDEN, "duplicate_content", "143106"),
        Decision("busy", Outcome.FORBIDDEN, "daily_cap", "143105"),
        Decision("ok", Outcome.DELIVERED),
    ]


def test_isv_codes_are_the_1432xx_family() -> None:
    """Spec §3.4: ISV apps get 143206 (duplicate), 143205 (daily) and 143203 (minute)."""
    recipients = [Recipient("dup", True), Recipient("busy", True), Recipient("late", True)]
    got = decide_batch(
        1,
        recipients,
        facts(dedup_owner={"dup": 0}, daily_count={"busy": 2}, minute_count=4),
        TIGHT,
        is_isv=True,
    )
    assert [(d[2], d[3]) for d in got if d] == [
        ("duplicate_content", "143206"),
        ("daily_cap", "143205"),
        ("minute_cap", "143203"),
    ]


def test_only_delivered_recipients_consume_the_minute_and_call_budgets() -> None:
    """DESIGN §3: undelivered recipients consume no budget; the minute cap precedes per-call."""
    limits = AppLimits(None, None, per_call=2, daily_per_user=None, per_minute=3)
    recipients = [Recipient("x", None), Recipient("a", True), Recipient("i", False), Recipient("b", True)]
    recipients += [Recipient("c", True), Recipient("d", True)]
    got = decide_batch(1, recipients, facts(minute_count=1), limits, is_isv=False)
    assert [d[:3] for d in got if d] == [
        ("x", Outcome.INVALID, "invalid_user"),
        ("a", Outcome.DELIVERED, None),
        ("i", Outcome.FAILED, "inactive_user"),
        ("b", Outcome.DELIVERED, None),
        ("c", Outcome.FORBIDDEN, "minute_cap"),
        ("d", Outcome.FORBIDDEN, "minute_cap"),
    ]


def test_per_call_cap_counts_earlier_batches_and_has_no_code() -> None:
    """DESIGN §3 rule 8: the per-call cap spans the task's batches and has no flow-control code."""
    limits = AppLimits(None, None, per_call=3, daily_per_user=None, per_minute=None)
    got = decide_batch(
        1, [Recipient("c", True), Recipient("d", True)], facts(delivered_in_task=2), limits, is_isv=False
    )
    assert got == [
        Decision("c", Outcome.DELIVERED),
        Decision("d", Outcome.FORBIDDEN, "recipient_limit", None),
    ]


def test_a_replayed_batch_never_forbids_the_task_own_recipients() -> None:
    """DESIGN §3 exactly once: a dedup key owned by this very task means 'already delivered'."""
    got = decide_batch(
        5,
        [Recipient("a", True), Recipient("b", True)],
        facts(dedup_owner={"a": 5, "b": 4}),
        TIGHT,
        is_isv=False,
    )
    assert got == [None, Decision("b", Outcome.FORBIDDEN, "duplicate_content", "143106")]


def test_without_dedup_the_same_content_is_delivered() -> None:
    """Sources without the same-content rule (dedup=False) ignore dedup keys but keep the caps."""
    got = decide_batch(
        5,
        [Recipient("a", True), Recipient("b", True)],
        facts(dedup_owner={"a": 4}, daily_count={"b": 2}),
        TIGHT,
        is_isv=False,
        dedup=False,
    )
    assert got == [Decision("a", Outcome.DELIVERED), Decision("b", Outcome.FORBIDDEN, "daily_cap", "143105")]


def test_threshold_is_the_limit_reached() -> None:
    """Spec §3.4 forbidden_list.count: the threshold of the rule that blocked (daily 500/100, minute 5000)."""
    strict = LimitsProfile.named("strict")
    internal, isv = strict.for_app(False, {}), strict.for_app(True, {})
    assert (threshold("daily_cap", internal), threshold("daily_cap", isv)) == (500, 100)
    assert threshold("minute_cap", internal) == 5000
    assert threshold("duplicate_content", internal) == 1


def test_profiles_and_overrides() -> None:
    """DESIGN §3: strict 100/20 lists, lenient 5000/500, unlimited lifts caps; per-app overrides win."""
    strict, lenient, unlimited = (LimitsProfile.named(n) for n in ("strict", "lenient", "unlimited"))
    assert strict.for_app(False, {}) == AppLimits(100, 20, 5000, 500, 5000)
    assert strict.for_app(True, {}) == AppLimits(100, 20, 1000, 100, 5000)
    assert strict.for_app(False, {}, template=True).per_call == 1000
    assert lenient.for_app(False, {}) == AppLimits(5000, 500, 5000, 500, 5000)
    assert unlimited.for_app(False, {}) == AppLimits(5000, 500, None, None, None)
    assert strict.for_app(False, {"daily_per_user": 5, "per_minute": None}) == AppLimits(
        100, 20, 5000, 5, None
    )


def test_template_limits_are_the_seeds_in_every_profile() -> None:
    """sendbytemplate (spec §3.2): lists of 5000 / 500, 1000 per call, 100 a day, 5000 a minute."""
    for name in ("strict", "lenient"):
        limits = LimitsProfile.named(name).for_app(True, {}, template=True)
        assert limits == AppLimits(
            userid_list=5000, dept_id_list=500, per_call=1000, daily_per_user=100, per_minute=5000
        )
    assert (
        LimitsProfile.named("strict").for_app(True, {"daily_per_user": 7}, template=True).daily_per_user == 7
    )
