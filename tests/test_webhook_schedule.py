"""The retry schedule, jitter, ``Retry-After`` and the webhook settings: pure functions."""

from __future__ import annotations

from email.utils import format_datetime

import pytest

from payout131.clock import ManualClock, from_micros
from payout131.settings import Settings
from payout131.webhooks.schedule import (
    DEFAULT_SCHEDULE,
    Schedule,
    format_duration,
    parse_duration,
    parse_retry_after,
    parse_schedule,
)

HOUR = 3600


def test_the_default_schedule_is_the_documented_one() -> None:
    schedule = Schedule()
    assert schedule.delays == (0, 5, 300, 1800, 2 * HOUR, 5 * HOUR, 10 * HOUR, 10 * HOUR)
    assert schedule.attempts == 8
    assert [format_duration(d) for d in DEFAULT_SCHEDULE] == [
        "0", "5s", "5m", "30m", "2h", "5h", "10h", "10h"
    ]  # fmt: skip
    assert schedule.horizon == 36 * HOUR
    assert sum(DEFAULT_SCHEDULE) * 1.1 < schedule.horizon  # jitter never reaches the horizon


def test_retries_follow_the_schedule_then_the_event_is_dead() -> None:
    clock = ManualClock()
    schedule, created = Schedule(jitter=0), clock.now()
    waits = []
    for failed in range(1, 8):
        due = schedule.next_attempt(failed, created, clock.now(), 0.5)
        assert due is not None
        waits.append((due - clock.now()) / 1_000_000)
        clock.micros = due
    assert waits == [5, 300, 1800, 7200, 18000, 36000, 36000]
    assert schedule.next_attempt(8, created, clock.now(), 0.5) is None


def test_jitter_spreads_each_wait_within_its_bounds() -> None:
    schedule = Schedule(jitter=0.1)
    assert schedule.wait(2, 0.0) == pytest.approx(270)
    assert schedule.wait(2, 0.5) == pytest.approx(300)
    assert schedule.wait(2, 0.999999) == pytest.approx(330, abs=0.001)
    spread = {round(schedule.wait(2, u / 10), 3) for u in range(10)}
    assert len(spread) == 10
    assert Schedule(jitter=0.1).wait(0, 0.9) == 0  # "immediately" stays immediate


def test_retry_after_is_a_lower_bound_capped_by_the_longest_wait() -> None:
    schedule = Schedule(jitter=0)
    assert schedule.wait(1, 0.5, retry_after=60) == 60  # longer than the 5 s step: honoured
    assert schedule.wait(3, 0.5, retry_after=60) == 1800  # shorter than 30 min: the schedule
    assert schedule.wait(1, 0.5, retry_after=10**9) == 10 * HOUR  # a bogus value is capped


def test_the_horizon_is_counted_from_the_round_start() -> None:
    schedule = Schedule(jitter=0, horizon=600)
    start = ManualClock().now()
    assert schedule.next_attempt(1, start, start, 0.5) == start + 5_000_000
    later = start + 500_000_000
    assert schedule.next_attempt(2, start, later, 0.5) is None  # 500 s + 300 s > 600 s
    assert schedule.next_attempt(2, later, later, 0.5) == later + 300_000_000  # replayed


def test_retry_after_header_values() -> None:
    now = ManualClock().now()
    assert parse_retry_after("120", now) == 120
    assert parse_retry_after(" 7 ", now) == 7
    in_a_minute = format_datetime(from_micros(now + 60_000_000), usegmt=True)
    assert parse_retry_after(in_a_minute, now) == pytest.approx(60)
    a_minute_ago = format_datetime(from_micros(now - 60_000_000), usegmt=True)
    assert parse_retry_after(a_minute_ago, now) == 0
    for bad in (None, "", "soon", "-5", "1.5", "Mon, 99 Foo 2026 00:00:00"):
        assert parse_retry_after(bad, now) is None


def test_durations_and_schedules_parse() -> None:
    assert parse_duration("90") == 90
    assert parse_duration("1.5s") == 1.5
    assert parse_duration("250ms") == 0.25
    assert parse_duration("5m") == 300
    assert parse_duration("2h") == 7200
    assert parse_duration("1d") == 86400
    assert parse_schedule("0,5s,5m,30m,2h,5h,10h,10h") == DEFAULT_SCHEDULE
    assert parse_schedule(" 1s , 2s ") == (1, 2)
    for bad in ("", "5 minutes", "-1s", "1h30m", "abc"):
        with pytest.raises(ValueError, match="not a duration"):
            parse_duration(bad)
    with pytest.raises(ValueError, match="not a duration"):
        parse_schedule("1s,,2s")


def test_a_schedule_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="at least one attempt"):
        Schedule(delays=())
    with pytest.raises(ValueError, match="jitter"):
        Schedule(jitter=1.5)
    with pytest.raises(ValueError, match="horizon"):
        Schedule(horizon=0)


def test_webhook_settings_come_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "PAYOUT131_WEBHOOK_SCHEDULE": "0,1s,1m",
            "PAYOUT131_WEBHOOK_JITTER": "0.2",
            "PAYOUT131_WEBHOOK_TIMEOUT": "3s",
            "PAYOUT131_WEBHOOK_HORIZON": "2h",
            "PAYOUT131_WEBHOOK_CONCURRENCY": "10",
            "PAYOUT131_WEBHOOK_PER_ENDPOINT": "2",
            "PAYOUT131_WEBHOOK_LEASE": "30s",
            "PAYOUT131_WEBHOOK_POLL": "500ms",
        }
    )
    assert settings.webhook_schedule == (0, 1, 60)
    assert settings.webhook_jitter == 0.2
    assert settings.webhook_timeout_s == 3
    assert settings.webhook_horizon_s == 7200
    assert (settings.webhook_concurrency, settings.webhook_per_endpoint) == (10, 2)
    assert (settings.webhook_lease_s, settings.webhook_poll_s) == (30, 0.5)
    assert not settings.webhook_test_hang_after_send
    assert Settings.from_env({"PAYOUT131_TEST_HANG_AFTER_SEND": "1"}).webhook_test_hang_after_send


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PAYOUT131_WEBHOOK_SCHEDULE": "soon"}, "PAYOUT131_WEBHOOK_SCHEDULE: 'soon' is not"),
        ({"PAYOUT131_WEBHOOK_TIMEOUT": "0"}, "PAYOUT131_WEBHOOK_TIMEOUT: out of its bounds"),
        ({"PAYOUT131_WEBHOOK_TIMEOUT": "2m"}, "PAYOUT131_WEBHOOK_LEASE: must be longer"),
        ({"PAYOUT131_WEBHOOK_CONCURRENCY": "many"}, "_CONCURRENCY: not a whole number"),
        ({"PAYOUT131_WEBHOOK_PER_ENDPOINT": "0"}, "_PER_ENDPOINT: out of its bounds"),
        ({"PAYOUT131_WEBHOOK_JITTER": "1"}, "PAYOUT131_WEBHOOK_JITTER: not a fraction"),
    ],
)
def test_bad_webhook_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings.from_env(env)
