"""Days, hours and windows are the business zone's: checked against zoneinfo, around midnight and across DST."""
from __future__ import annotations

import datetime as dt
from collections import Counter
from zoneinfo import ZoneInfo

import pytest

from jobs.clock import add_days, local_day, midnight_after
from jobs.features.activity import activity_from_state, all_events, event_day_state
from jobs.features.rfm import order_day_state, order_totals, rfm_from_state
from jobs.features.time_patterns import time_patterns_from_state
from schemas.events import BROWSE, TRANSACTIONS
from schemas.social import SOCIAL
from tests.helpers import by_user, settled_fold

UTC = dt.timezone.utc


def orders(spark, instants: list[dt.datetime], zone: str):
    """One order per instant, partitioned by its local date (as ingest files it)."""
    z = ZoneInfo(zone)
    return spark.createDataFrame([(f"o{i}", "u1", "i1", 1, 1.0, t, t.astimezone(z).date())
                                  for i, t in enumerate(instants)], TRANSACTIONS)


def events_of(spark, tx):
    empty = lambda schema: spark.createDataFrame([], schema)  # noqa: E731
    return all_events(empty(BROWSE), tx, empty(SOCIAL))


def expected(instants: list[dt.datetime], zone: str, as_of: dt.datetime, window_days: int) -> dict:
    """From zoneinfo alone: local dates and hours, and the events in the last ``window_days`` local days."""
    z = ZoneInfo(zone)
    local = [t.astimezone(z) for t in instants if t < as_of]
    first_day = as_of.astimezone(z).date() - dt.timedelta(days=window_days)
    hours = Counter(t.hour for t in local)
    return {"dates": sorted(t.date() for t in local), "hours": [hours[h] for h in range(24)],
            "in_window": sum(t.date() >= first_day for t in local), "days": len({t.date() for t in local})}


def features(spark, instants, zone, as_of, window_days):
    """The columns folded from the daily tiles, and the tiles' local days (one per order line)."""
    tx = orders(spark, instants, zone)
    events = events_of(spark, tx)
    state, order_state = events.transform(event_day_state(zone)), tx.transform(order_day_state(zone))
    # What the jobs settle before: no partition before it holds a day of the window (rows filed a day early at most).
    settled_before = as_of.astimezone(ZoneInfo(zone)).date() - dt.timedelta(days=window_days + 1)
    from_state = by_user(order_state.transform(settled_fold(rfm_from_state, [window_days], as_of, zone,
                                                            before=settled_before, summarize=order_totals))
                         .join(state.transform(settled_fold(activity_from_state, as_of, window_days, zone,
                                                            before=settled_before)), "user_id")
                         .join(state.transform(settled_fold(time_patterns_from_state, as_of, [0, 1, 2], zone,
                                                            before=settled_before)), "user_id"))["u1"]
    return from_state, sorted(r.day for r in order_state.collect() for _ in range(r.lines))


def check(spark, instants, zone, as_of, window_days):
    want = expected(instants, zone, as_of, window_days)
    got, state_days = features(spark, instants, zone, as_of, window_days)
    total = sum(want["hours"])
    assert got[f"orders_{window_days}d"] == want["in_window"]
    assert got[f"events_{window_days}d"] == want["in_window"]
    assert got["active_days"] == want["days"]
    # No event lost or counted twice: the local hours hold every event once.
    assert [round(s * total) for s in got["hour_hist"]] == want["hours"]
    # The state keeps every event's local day, whatever as_of is.
    assert state_days == sorted(t.astimezone(ZoneInfo(zone)).date() for t in instants)
    return want


SHANGHAI = "Asia/Shanghai"


def test_a_minute_before_and_after_local_midnight_fall_on_two_days_in_shanghai(spark):
    z = ZoneInfo(SHANGHAI)
    before = dt.datetime(2025, 1, 10, 23, 59, tzinfo=z)   # 15:59 UTC on the 10th
    after = dt.datetime(2025, 1, 11, 0, 1, tzinfo=z)      # 16:01 UTC, still the 10th in UTC
    as_of = midnight_after(after, SHANGHAI)
    assert as_of == dt.datetime(2025, 1, 11, 16, tzinfo=UTC)  # local midnight after the latest event
    want = check(spark, [before, after], SHANGHAI, as_of, 1)
    assert want["dates"] == [dt.date(2025, 1, 10), dt.date(2025, 1, 11)] and want["in_window"] == 1
    assert want["hours"][23] == 1 and want["hours"][0] == 1
    dts = sorted(r.dt for r in orders(spark, [before, after], SHANGHAI).select(
        local_day("ts", SHANGHAI).alias("dt")).collect())
    assert dts == [dt.date(2025, 1, 10), dt.date(2025, 1, 11)]


LONDON = "Europe/London"


def every_half_hour(start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    out, t = [], start
    while t < end:
        out.append(t)
        t += dt.timedelta(minutes=30)
    return out


def test_the_autumn_change_in_london_has_a_25_hour_day_and_two_one_oclocks(spark):
    # 2025-10-26: clocks go back from 02:00 BST to 01:00 GMT.
    instants = every_half_hour(dt.datetime(2025, 10, 25, 21, tzinfo=UTC), dt.datetime(2025, 10, 27, 1, tzinfo=UTC))
    as_of = midnight_after(dt.datetime(2025, 10, 26, 12, tzinfo=UTC), LONDON)
    assert as_of == dt.datetime(2025, 10, 27, 0, tzinfo=UTC)
    want = check(spark, instants, LONDON, as_of, 1)
    assert want["in_window"] == 50  # the 26th has 25 hours
    assert want["hours"][1] == 4     # 01:00 and 01:30, twice


def test_the_spring_change_in_london_has_a_23_hour_day_and_no_one_oclock(spark):
    # 2025-03-30: clocks go forward from 01:00 GMT to 02:00 BST.
    instants = every_half_hour(dt.datetime(2025, 3, 29, 22, tzinfo=UTC), dt.datetime(2025, 3, 31, 1, tzinfo=UTC))
    as_of = midnight_after(dt.datetime(2025, 3, 30, 12, tzinfo=UTC), LONDON)
    assert as_of == dt.datetime(2025, 3, 30, 23, tzinfo=UTC)  # midnight BST
    want = check(spark, instants, LONDON, as_of, 1)
    assert want["in_window"] == 46  # the 30th has 23 hours
    assert want["hours"][1] == 0
    # Seven local days back from a BST midnight is a GMT midnight: 24 * 7 - 1 hours.
    assert as_of.astimezone(UTC) - add_days(as_of, -7, LONDON).astimezone(UTC) == dt.timedelta(hours=167)


def test_as_of_must_be_a_local_midnight_for_the_state(spark):
    with pytest.raises(ValueError, match="not a midnight in Asia/Shanghai"):
        rfm_from_state([7], dt.datetime(2025, 1, 11, 0, tzinfo=UTC), SHANGHAI, dt.date(2025, 1, 1))
