"""Each behavioural feature on a handful of hand-built rows, with exact expected values.

A feature is defined once: a daily tile (``*_day_state``) and a fold (``*_from_state``). Each test builds
the tiles from the rows and folds them, as the full and incremental jobs do.
"""
from __future__ import annotations

import datetime as dt

import pytest

from jobs.features.activity import activity_from_state, all_events, event_day_state
from jobs.features.affinity import (affinity_from_state, affinity_weights, interaction_day_state, price_day_state,
                                    price_from_state, price_lines, top_k_shares)
from jobs.features.common import FIXED_POINT
from jobs.features.conversion import (SessionRule, browse_day_state, closed_sessions, conversion_from_state,
                                      session_summaries, sessions_of)
from jobs.features.intent import intent_counts, intent_summaries, last_intent_times
from jobs.features.rfm import order_day_state, order_totals, rfm_from_state
from jobs.features.state import settled
from jobs.features.social import social_day_state, social_from_state, social_totals
from jobs.features.time_patterns import time_patterns_from_state
from schemas.events import BROWSE, TRANSACTIONS
from schemas.items import ITEMS
from schemas.social import SOCIAL
from tests.helpers import AS_OF, by_user, naive, rows, settled_fold, ts, padded


def tx(spark, *lines):
    """(order_id, user_id, item_id, quantity, amount, ts)"""
    return spark.createDataFrame([(*line, line[-1].date()) for line in lines], TRANSACTIONS)


def browse(spark, *events):
    """(user_id, item_id, event_type, ts, dwell_ms, session_id)"""
    return spark.createDataFrame([(*e, e[3].date()) for e in events], BROWSE)


def social(spark, *events):
    """(user_id, item_id, kind, text, rating, ts)"""
    return spark.createDataFrame([(*e, e[-1].date()) for e in events], SOCIAL)


def rfm(df, windows):
    """RFM with the orders of the partitions before the longest window (less a day's filing bound) settled."""
    before = AS_OF.date() - dt.timedelta(days=max(windows) + 1)
    return df.transform(order_day_state("UTC")).transform(
        settled_fold(rfm_from_state, windows, AS_OF, "UTC", before=before, summarize=order_totals))


RULE = SessionRule(gap_minutes=30, id_idle_hours=24)


def conversion(b, t):
    """Conversion with the sessions and orders of the partitions before the 20th settled."""
    orders, browsed, before = t.transform(order_day_state("UTC")), b.transform(browse_day_state("UTC")), dt.date(2025, 1, 20)
    sessions = browsed.transform(settled(before, session_summaries(RULE), closed_sessions(RULE, 1, "UTC")))
    return conversion_from_state(AS_OF, RULE, "UTC", before, before)(browsed, sessions, orders,
                                                                     orders.transform(settled(before, order_totals)))


@pytest.fixture
def items(spark):
    return padded(spark, [
        ("i1", "t1", "toys", "Apex", 10.0), ("i2", "t2", "toys", "Nova", 20.0),
        ("i3", "t3", "books", "Apex", 30.0), ("i4", "t4", "pet", None, 40.0),
    ], ITEMS)


def test_rfm_counts_orders_and_spend_per_window(spark):
    df = tx(spark,
            ("o1", "u1", "i1", 1, 10.0, ts(30)),
            ("o2", "u1", "i1", 1, 5.0, ts(20)), ("o2", "u1", "i2", 1, 15.0, ts(20)),
            ("o3", "u1", "i3", 1, 100.0, ts(15, month=12, year=2024)),
            ("o9", "u1", "i3", 1, 999.0, ts(1, month=2)))  # after as_of: ignored
    u1 = by_user(rfm(df, [7, 30, 90]))["u1"]
    assert (u1["orders_7d"], u1["spend_7d"]) == (1, 10.0)
    assert (u1["orders_30d"], u1["spend_30d"]) == (2, 30.0)
    assert (u1["orders_90d"], u1["spend_90d"]) == (3, 130.0)
    assert (u1["frequency"], u1["monetary"]) == (3, 130.0)
    assert u1["avg_order_value"] == pytest.approx(130.0 / 3)
    assert u1["first_order_ts"] == naive(ts(15, month=12, year=2024))
    assert u1["recency_days"] == 0.5
    # Three orders from Dec 15 12:00 to Jan 30 12:00: 46 days, two gaps.
    assert u1["purchase_interval_days"] == 23.0
    assert by_user(rfm(tx(spark, ("o1", "u9", "i1", 1, 1.0, ts(3))), [7]))["u9"]["purchase_interval_days"] is None


def test_intent_counts_the_last_days_and_the_items_left_open(spark):
    # As of Jan 31 (UTC): day 30 is the last day, day 29 the one before.
    b = browse(spark, ("u1", "i1", "cart", ts(30, 9), 0, "s1"), ("u1", "i1", "cart", ts(30, 10), 0, "s1"),
               ("u1", "i2", "fav", ts(29, 8), 0, "s2"), ("u1", "i3", "cart", ts(29, 20), 0, "s2"),
               ("u1", "i4", "cart", ts(20), 0, "s3"),      # outside the longest window (3 days): not open
               ("u1", "i1", "view", ts(30, 11), 0, "s1"),
               ("u1", "i9", "cart", ts(31, 1), 0, "s4"),    # on as_of's day: not yet
               ("u2", "i1", "view", ts(28), 0, "s5"))
    t = tx(spark, ("o1", "u1", "i3", 1, 5.0, ts(29, 21)),    # bought the same day it was carted: closed
           ("o2", "u1", "i2", 1, 5.0, ts(27)))               # bought before it was favourited (and the window)
    got = by_user(interaction_day_state(b, t, "UTC").transform(intent_counts([1, 3], AS_OF, "UTC", 1)))
    assert got["u1"] == {"user_id": "u1", "views_1d": 1, "carts_1d": 2, "favs_1d": 0, "buys_1d": 0,
                         "views_3d": 1, "carts_3d": 3, "favs_3d": 1, "buys_3d": 1, "open_intent_items": 2}
    assert got["u2"] == {"user_id": "u2", "views_1d": 0, "carts_1d": 0, "favs_1d": 0, "buys_1d": 0,
                         "views_3d": 1, "carts_3d": 0, "favs_3d": 0, "buys_3d": 0, "open_intent_items": 0}
    # Settled before the 30th: the 20th's and 29th's sessions come from the per-user summary, the 30th's from its tile.
    last = by_user(b.transform(browse_day_state("UTC")).transform(
        settled_fold(last_intent_times, AS_OF, "UTC", before=dt.date(2025, 1, 30), summarize=intent_summaries)))
    # Session s1's last event (the view at 11:00) stands for the carts in it.
    assert last["u1"]["last_cart_ts"] == naive(ts(30, 11)) and last["u1"]["last_fav_ts"] == naive(ts(29, 20))
    assert last["u1"]["days_since_last_cart"] == pytest.approx(13 / 24)
    assert last["u2"]["last_cart_ts"] is None and last["u2"]["days_since_last_cart"] is None


def test_rfm_spend_is_null_when_the_source_has_no_amounts(spark):
    out = by_user(rfm(tx(spark, ("o1", "u2", "i1", 1, None, ts(29))), [7]))["u2"]
    assert (out["orders_7d"], out["spend_7d"], out["monetary"], out["avg_order_value"]) == (1, None, None, None)


def test_rfm_window_with_no_orders_spends_zero(spark):
    out = by_user(rfm(tx(spark, ("o1", "u3", "i1", 1, 8.0, ts(2))), [7]))["u3"]
    assert (out["orders_7d"], out["spend_7d"]) == (0, 0.0)


def test_top_k_shares_ranks_by_weight_then_name(spark):
    unit = int(FIXED_POINT)  # weights arrive in fixed point
    weighted = spark.createDataFrame(
        [("u1", "toys", 3 * unit), ("u1", "books", unit), ("u1", "pet", unit), ("u1", "toys", 3 * unit),
         ("u1", None, 9 * unit)],
        "user_id string, name string, weight long")
    out = rows(weighted.transform(top_k_shares(2, "category", "categories")))
    assert out == [{"user_id": "u1",
                    "top_categories": [{"name": "toys", "share": 0.75}, {"name": "books", "share": 0.125}],
                    "top_category": "toys", "top_category_share": 0.75, "top_category_weight": 6.0}]


def test_interactions_weight_browse_and_purchases_settled_or_not(spark, items):
    b = browse(spark, ("u1", "i1", "view", ts(3), 1000, "s1"), ("u1", "i3", "cart", ts(20), 1000, "s1"))
    t = tx(spark, ("o1", "u1", "i3", 1, 30.0, ts(3)))
    weights = {"view": 1.0, "cart": 3.0, "buy": 5.0}
    tiles = interaction_day_state(b, t, "UTC")
    for before in (ts(1).date(), ts(10).date(), AS_OF.date()):  # nothing settled, the 3rd's tiles, every tile
        out = tiles.transform(settled_fold(affinity_from_state, weights, 3, AS_OF, "UTC", items, before=before,
                                           summarize=affinity_weights(weights, items)))
        u1 = by_user(out)["u1"]
        assert u1["top_categories"] == [{"name": "books", "share": 8 / 9}, {"name": "toys", "share": 1 / 9}]
        assert (u1["top_category"], u1["top_category_weight"]) == ("books", 8.0)
        assert u1["top_brand"] == "Apex" and u1["top_brand_share"] == 1.0


def test_price_band_uses_catalogue_quantiles(spark, items):
    # Catalogue prices 10, 20, 30, 40: the 0.33 / 0.66 quantiles are 19.9 and 29.8.
    t = tx(spark, ("o1", "cheap", "i1", 2, 20.0, ts(3)),   # unit price 10
           ("o2", "mid", "i2", 1, 20.0, ts(3)),            # 20
           ("o3", "dear", "i4", 1, 40.0, ts(3)), ("o4", "dear", "i3", 1, 30.0, ts(4)))  # median 35
    tiles = t.transform(price_day_state("UTC"))
    # Nothing settled, the 3rd's partition settled, and both settled: the same multiset of prices.
    for before in (dt.date(2025, 1, 3), dt.date(2025, 1, 4), dt.date(2025, 1, 5)):
        fold = settled_fold(price_from_state, [0.33, 0.66], AS_OF, "UTC", items, before=before, summarize=price_lines)
        out = by_user(tiles.transform(fold))
        assert {u: (r["median_unit_price"], r["price_band"]) for u, r in out.items()} == {
            "cheap": (10.0, "low"), "mid": (20.0, "mid"), "dear": (35.0, "high")}, before


def test_sessions_merge_pieces_within_the_gap_of_the_latest_end_and_split_a_session_id_idle_for_a_day(spark):
    pieces = [  # (user, session id, first, last, events)
        ("u1", None, ts(3, 10, 0), ts(3, 10, 0), 1), ("u1", None, ts(3, 10, 20), ts(3, 10, 20), 1),
        ("u1", None, ts(3, 11, 0), ts(3, 11, 0), 1),                  # 40 minutes after the last: a new session
        ("u1", "s", ts(3, 12, 0), ts(3, 12, 30), 2), ("u1", "s", ts(4, 11, 0), ts(4, 11, 10), 3),  # 22.5 hours: one
        ("u1", "s", ts(6, 9, 0), ts(6, 9, 0), 1),                     # the id unseen for 46 hours: a new session
        # A piece inside another: the next one is within 30 minutes of the longer one's end, not of the inner one's.
        ("u2", None, ts(3, 10, 0), ts(3, 10, 50), 4), ("u2", None, ts(3, 10, 30), ts(3, 10, 35), 2),
        ("u2", None, ts(3, 11, 15), ts(3, 11, 15), 1),
    ]
    frame = spark.createDataFrame(pieces, "user_id string, session_id string, first_ts timestamp, "
                                          "last_ts timestamp, n long")
    got = sorted((r.user_id, r.session_id or "", r.first_ts, r.last_ts, r.n)
                 for r in frame.transform(sessions_of(RULE)).collect())
    at = lambda *a: naive(ts(*a))  # noqa: E731
    assert got == [("u1", "", at(3, 10, 0), at(3, 10, 20), 2), ("u1", "", at(3, 11, 0), at(3, 11, 0), 1),
                   ("u1", "s", at(3, 12, 0), at(4, 11, 10), 5), ("u1", "s", at(6, 9, 0), at(6, 9, 0), 1),
                   ("u2", "", at(3, 10, 0), at(3, 11, 15), 7)]


def test_conversion_funnel_and_sessions(spark):
    b = browse(spark,
               ("u1", "i1", "view", ts(3, 10, 0), 2000, "s1"), ("u1", "i1", "cart", ts(3, 10, 6), 4000, "s1"),
               ("u1", "i2", "view", ts(4, 10, 0), 6000, "s2"), ("u1", "i2", "view", ts(4, 10, 2), None, "s2"),
               ("u1", "i2", "click", ts(4, 10, 4), None, "s2"))
    t = tx(spark, ("o1", "u1", "i1", 1, 10.0, ts(3, 10, 8)))
    u1 = by_user(conversion(b, t))["u1"]
    assert (u1["views"], u1["clicks"], u1["carts"], u1["favs"]) == (3, 1, 1, 0)
    assert (u1["view_to_cart_rate"], u1["cart_to_buy_rate"]) == (1 / 3, 1.0)
    assert (u1["sessions"], u1["avg_session_events"], u1["avg_session_minutes"]) == (2, 2.5, 5.0)
    assert u1["avg_dwell_s"] == 4.0


def test_rates_are_null_without_denominator(spark):
    b = browse(spark, ("u1", "i1", "click", ts(3), None, "s1"))
    u1 = by_user(conversion(b, tx(spark, ("o1", "u9", "i1", 1, 1.0, ts(3)))))["u1"]
    assert (u1["view_to_cart_rate"], u1["cart_to_buy_rate"]) == (None, None)


def test_activity_counts_days_recent_events_and_idle_time(spark):
    b = browse(spark, ("u1", "i1", "view", ts(3), None, "s"), ("u1", "i1", "view", ts(3, 13), None, "s"))
    t = tx(spark, ("o1", "u1", "i1", 1, 1.0, ts(29, 0)))
    s = social(spark, ("u1", "i1", "like", None, None, ts(30, 6)))
    tiles = all_events(b, t, s).transform(event_day_state("UTC"))
    # Settled before the 10th: the 3rd's events come from the per-user summary, the others from their tiles.
    for before in (dt.date(2025, 1, 1), dt.date(2025, 1, 10)):
        u1 = by_user(tiles.transform(settled_fold(activity_from_state, AS_OF, 7, "UTC", before=before)))["u1"]
        assert (u1["active_days"], u1["events_7d"], u1["days_since_last_event"]) == (3, 2, 0.75)


def test_time_patterns_histograms_and_peaks(spark):
    # 2025-01-04 is a Saturday, 2025-01-06 a Monday.
    b = browse(spark, ("u1", "i1", "view", ts(4, 2), None, "s"), ("u1", "i1", "view", ts(4, 20), None, "s"),
               ("u1", "i1", "view", ts(6, 20), None, "s"), ("u1", "i1", "view", ts(6, 21), None, "s"))
    events = all_events(b, tx(spark), social(spark))
    # Settled before the 5th: Saturday's events come from the per-user summary, Monday's from their tiles.
    u1 = by_user(events.transform(event_day_state("UTC")).transform(
        settled_fold(time_patterns_from_state, AS_OF, [0, 1, 2, 3, 4, 5], "UTC", before=dt.date(2025, 1, 5))))["u1"]
    assert u1["hour_hist"][20] == 0.5 and u1["hour_hist"][2] == 0.25 and sum(u1["hour_hist"]) == 1.0
    assert u1["weekday_hist"] == [0.5, 0.0, 0.0, 0.0, 0.0, 0.5, 0.0]
    assert (u1["peak_hour"], u1["peak_weekday"], u1["weekend_share"], u1["night_share"]) == (20, 1, 0.5, 0.25)


def test_social_counts_and_mean_rating(spark):
    s = social(spark, ("u1", "i1", "review", "good", 5, ts(3)), ("u1", "i2", "review", "bad", 2, ts(4)),
               ("u1", "i2", "comment", "why?", None, ts(4)), ("u1", None, "follow", None, None, ts(5)),
               ("u1", "i1", "like", None, None, ts(5)))
    # The days before the 4th settled into one summary per user, as the jobs keep them.
    u1 = by_user(s.transform(social_day_state("UTC")).transform(
        settled_fold(social_from_state, AS_OF, "UTC", before=dt.date(2025, 1, 4), summarize=social_totals)))["u1"]
    assert u1 == {"user_id": "u1", "review_count": 2, "mean_rating": 3.5, "comment_count": 1, "like_count": 1,
                  "share_count": 0, "follow_count": 1}
