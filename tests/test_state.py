"""The daily tiles: folding partition by partition, with late data replacing its partitions, gives what tiles
built once from every row give (the full job's path); and a step refolds only the users it touched."""
from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyspark.sql import functions as F
from pyspark.sql.types import DateType, StringType, StructField, StructType, TimestampType

from jobs.features.activity import (activity_from_state, all_events, event_day_state, event_summaries,
                                    merged_event_summaries)
from jobs.features.affinity import (affinity_from_state, affinity_weights, interaction_day_state, price_day_state,
                                    price_from_state, price_lines)
from jobs.features.conversion import (SessionRule, browse_day_state, closed_sessions, conversion_from_state,
                                      merged_session_summaries, session_summaries)
from jobs.features.rfm import order_day_state, order_totals, rfm_from_state
from jobs.features.social import social_day_state, social_from_state, social_totals
from jobs.features.state import replace_partitions, resettled, settled, spanned
from jobs.features.state_profiles import (CatalogueChange, EventsSeen, Family, SettledTable, compacts, events_seen,
                                          photo_tiles, refolded_users, touched_users)
from jobs.features.text_vectors import item_vector_means, item_vector_sums
from jobs.features.time_patterns import time_patterns_from_state
from schemas.events import BROWSE, TRANSACTIONS
from schemas.items import ITEMS
from schemas.social import SOCIAL, SOCIAL_KINDS
from tests.helpers import AS_OF, between, by_user, naive, rows, settled_fold, ts, padded

WINDOWS = [1, 3, 7]
RFM_COLUMNS = [c for w in WINDOWS for c in (f"orders_{w}d", f"spend_{w}d")] + [
    "frequency", "monetary", "first_order_ts", "last_order_ts", "avg_order_value", "recency_days"]


def tx(spark, lines):
    """(order_id, user_id, amount, ts[, dt]); dt defaults to the date of ts."""
    return spark.createDataFrame([(o, u, "i1", 1, a, t, rest[0] if rest else t.date()) for o, u, a, t, *rest in lines],
                                 TRANSACTIONS)


# The RFM fold with the tiles of the partitions before the longest window (7 days before AS_OF), less a day's
# filing bound, settled per user: the 20th's orders come from the summary.
RFM_SETTLED = settled_fold(rfm_from_state, WINDOWS, AS_OF, "UTC", before=dt.date(2025, 1, 23), summarize=order_totals)


def assert_same_rfm(from_state, from_lines):
    assert from_state.keys() == from_lines.keys()
    for user, expected in from_lines.items():
        for column in RFM_COLUMNS:
            got, want = from_state[user][column], expected[column]
            if isinstance(want, float):
                assert got == pytest.approx(want, rel=1e-9, abs=1e-12), f"{user}.{column}"
            else:
                assert got == want, f"{user}.{column}"


def test_an_order_straddling_midnight_counts_once_and_late_lines_replace_their_partition(spark):
    lines = [("o1", "u1", 10.0, ts(29, 23, 50)), ("o1", "u1", 5.0, ts(30, 0, 10)),   # one order, two days
             ("o2", "u1", None, ts(30, 9)), ("o3", "u2", None, ts(20)),
             ("o9", "u1", 99.0, ts(31, 1))]                                          # at or after as_of: ignored
    state = tx(spark, lines).transform(order_day_state("UTC"))
    u1 = by_user(state.transform(RFM_SETTLED))["u1"]
    assert (u1["orders_1d"], u1["spend_1d"], u1["orders_3d"], u1["spend_3d"]) == (2, 5.0, 2, 15.0)
    assert (u1["frequency"], u1["monetary"], u1["avg_order_value"]) == (2, 15.0, 7.5)
    u2 = by_user(state.transform(RFM_SETTLED))["u2"]
    assert (u2["orders_7d"], u2["spend_7d"], u2["frequency"], u2["monetary"]) == (0, None, 1, None)

    # A late line filed under dt=2025-01-20, for a day already folded: the partition is rebuilt from all its rows.
    late = lines + [("o4", "u2", 8.0, ts(20, 18))]
    day_20 = [line for line in late if line[3].date() == dt.date(2025, 1, 20)]
    partition = tx(spark, day_20).transform(order_day_state("UTC"))
    u2 = by_user(state.transform(replace_partitions(partition)).transform(RFM_SETTLED))["u2"]
    assert (u2["frequency"], u2["monetary"], u2["spend_7d"]) == (2, 8.0, 0.0)

    # The partition erased to nothing: naming it as replaced drops its old rows, though nothing fresh covers it.
    erased = partition.limit(0)
    replaced = spark.createDataFrame([(dt.date(2025, 1, 20),)], "dt date")
    folded = by_user(state.transform(replace_partitions(erased, replaced=replaced)).transform(RFM_SETTLED))
    assert "u2" not in folded and folded["u1"]["frequency"] == 2
    assert "u2" in by_user(state.transform(replace_partitions(erased)).transform(RFM_SETTLED))


def test_as_of_must_be_a_local_midnight():
    with pytest.raises(ValueError, match="not a midnight in UTC"):
        rfm_from_state(WINDOWS, AS_OF + dt.timedelta(hours=6), "UTC", AS_OF.date())
    with pytest.raises(ValueError, match="no time zone"):
        rfm_from_state(WINDOWS, AS_OF.replace(tzinfo=None), "UTC", AS_OF.date())


START = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
LINE = st.tuples(st.sampled_from(["o1", "o2", "o3", "o4", "o5", "o6"]), st.sampled_from(["u1", "u2", "u3"]),
                 st.one_of(st.none(), st.floats(0.01, 1e6)),
                 st.integers(0, 10 * 24 * 60 - 1).map(lambda minute: START + dt.timedelta(minutes=minute)),
                 st.integers(0, 9).map(lambda day: (START + dt.timedelta(days=day)).date()))  # dt may differ from ts


def fold_property(line: st.SearchStrategy, examples: int):
    """A hypothesis property over random rows, a split day k, an as_of (a UTC midnight), late rows, and where appending
    steps left the settled boundary before it reached the fold's (``share`` of the way there: ``between``)."""
    def decorate(test):
        return settings(max_examples=examples, deadline=None,
                        suppress_health_check=[HealthCheck.function_scoped_fixture])(
            given(lines=st.lists(line, min_size=1, max_size=25), k=st.integers(0, 9),
                  as_of=st.integers(1, 11).map(lambda day: START + dt.timedelta(days=day)),
                  late=st.lists(line, max_size=4), share=st.floats(0, 1))(test))
    return decorate


def folded_in_steps(state_of, lines, late, k, partition_of, keys=("dt",)):
    """(state, every row): the state of the partitions up to day k, then of the later partitions, then the
    partitions that late rows landed in (up to day k), each rebuilt from all of its rows, old and late."""
    last_folded = START.date() + dt.timedelta(days=k)
    late = [x for x in late if partition_of(x)[-1] <= last_folded]
    every = lines + late
    touched = {partition_of(x) for x in late}
    state = (state_of([x for x in lines if partition_of(x)[-1] <= last_folded])
             .transform(replace_partitions(state_of([x for x in lines if partition_of(x)[-1] > last_folded]), keys))
             .transform(replace_partitions(state_of([x for x in every if partition_of(x) in touched]), keys)))
    return state, every


@fold_property(LINE, examples=10)
def test_folding_partitions_after_day_k_with_late_data_equals_rfm_over_every_line(spark, lines, k, as_of, late,
                                                                                  share):
    tiles = lambda x: tx(spark, x).transform(order_day_state("UTC"))  # noqa: E731
    state, every = folded_in_steps(tiles, lines, late, k, lambda line: (line[4],))
    # Settled before the first partition holding a day of the longest window (the rows here are filed anywhere).
    window_from = as_of.date() - dt.timedelta(days=max(WINDOWS))
    before = min([line[4] for line in every if line[3].date() >= window_from], default=as_of.date())
    fold = lambda b, appended_from=None: settled_fold(rfm_from_state, WINDOWS, as_of, "UTC", before=b,  # noqa: E731
                                                      summarize=order_totals, appended_from=appended_from)
    # Settled as steps that appended leave it (up to two rows per user, which the fold merges).
    assert_same_rfm(by_user(state.transform(fold(before, between(START.date(), before, share)))),
                    by_user(tiles(every).transform(fold(None))))


EVENTS = StructType([StructField("user_id", StringType(), False), StructField("ts", TimestampType(), False),
                     StructField("source", StringType(), False), StructField("dt", DateType(), False)])  # all_events
EVENT_LINE = st.tuples(st.sampled_from(["u1", "u2", "u3"]), LINE.map(lambda x: x[3]),
                       st.sampled_from(["browse", "transaction", "social"]), LINE.map(lambda x: x[4]))
ACTIVITY_COLUMNS = ["active_days", "events_2d", "last_event_ts", "days_since_last_event", "hour_hist", "weekday_hist",
                    "peak_hour", "peak_weekday", "weekend_share", "night_share"]


def test_all_events_keep_the_partition_each_event_was_filed_under(spark):
    one = [("u1", ts(3), "x", dt.date(2025, 1, 2))]
    b, t, s = (spark.createDataFrame(one, EVENTS).drop("source") for _ in range(3))
    assert {(r.source, r.dt) for r in all_events(b, t, s).collect()} == {
        (source, dt.date(2025, 1, 2)) for source in ("browse", "transaction", "social")}


@fold_property(EVENT_LINE, examples=8)
def test_folding_event_partitions_equals_activity_and_time_patterns_over_every_event(spark, lines, k, as_of, late,
                                                                                     share):
    tiles = lambda x: spark.createDataFrame(x, EVENTS).transform(event_day_state("UTC"))  # noqa: E731
    state, every = folded_in_steps(tiles, lines, late, k, lambda line: (line[2], line[3]), keys=("source", "dt"))
    night = [23, 0, 1]
    # Settled before the first partition holding a day of the 2-day window (the rows here are filed anywhere):
    # the summaries of the partitions before it, merged with the tiles after it, give what all the tiles give.
    window_from = as_of.date() - dt.timedelta(days=2)
    settled_before = min([line[3] for line in every if line[1].date() >= window_from], default=as_of.date())

    def fold(state, before, appended_from=None):
        def of(fold_of, *args):
            return state.transform(settled_fold(fold_of, *args, before=before, appended_from=appended_from))
        return by_user(of(activity_from_state, as_of, 2, "UTC").join(of(time_patterns_from_state, as_of, night, "UTC"),
                                                                       "user_id"))
    # Settled as steps that appended leave it (up to two rows per user, which the folds merge).
    folded = fold(state, settled_before, between(START.date(), settled_before, share))
    expected = fold(tiles(every), None)
    assert folded.keys() == expected.keys()
    for user in expected:
        assert {c: folded[user][c] for c in ACTIVITY_COLUMNS} == {c: expected[user][c] for c in ACTIVITY_COLUMNS}, user


def test_a_step_compacts_a_settled_table_when_its_boundary_crosses_a_date_whose_ordinal_the_period_divides():
    # Ordinal 1 is Monday 0001-01-01, so with a 7-day period the dates whose ordinal 7 divides are the Sundays.
    sunday = dt.date(2025, 1, 5)
    assert sunday.weekday() == 6
    days = [sunday + dt.timedelta(days=n) for n in range(-3, 12)]
    for was in days:
        for now in days:
            if now >= was:
                crossed_sunday = any((was + dt.timedelta(days=n)).weekday() == 6 for n in range((now - was).days))
                assert compacts(was, now, 7) == crossed_sunday, (was, now)
                assert compacts(was, now, 1) == (now > was)  # a period of 1: rewritten whenever the boundary moves


def test_a_settled_table_that_closes_its_rows_at_the_boundary_cannot_be_declared_to_take_appends():
    close = closed_sessions(RULE, 1, "UTC")
    with pytest.raises(ValueError, match="state_browse summaries cannot both add and close"):
        SettledTable("state_browse", session_summaries(RULE), merged_session_summaries(RULE), close=close, adds=True)
    assert not SettledTable("state_browse", session_summaries(RULE), merged_session_summaries(RULE), close=close).adds


def test_moving_the_settled_boundary_merges_the_crossing_partitions_and_settles_rewritten_users_again(spark):
    def tiles(events):
        return spark.createDataFrame(events, EVENTS).transform(event_day_state("UTC"))
    d = lambda day: dt.date(2025, 1, day)  # noqa: E731
    u1 = [("u1", ts(1, 10), "browse", d(1)), ("u1", ts(3, 11), "browse", d(3)), ("u1", ts(5, 8), "social", d(5))]
    found = tiles(u1 + [("u2", ts(2, 9), "browse", d(2)), ("u3", ts(2, 7), "browse", d(2))])
    # The step rewrote partition 2: a late row for u2, and u3's row gone (erased, or its user left).
    now = tiles(u1 + [("u2", ts(2, 9), "browse", d(2)), ("u2", ts(2, 20), "browse", d(2))])
    old = found.transform(settled(d(3), event_summaries))
    changed = now.filter(F.col("dt") == d(2)).unionByName(found.filter(F.col("dt") == d(2))).select("user_id").distinct()

    moved = resettled(old, d(3), now, changed, d(5), event_summaries, merged_event_summaries)

    hours = lambda *hs: [sum(h == x for h in hs) for x in range(24)]  # noqa: E731
    weekdays = lambda *ws: [sum(w == x for w in ws) for x in range(1, 8)]  # noqa: E731 (1 = Monday)
    # 2025-01-01 is a Wednesday, the 2nd a Thursday, the 3rd a Friday; the 5th's partition stays a tile.
    assert sorted((r.user_id, r.days, r.hour_counts, r.weekday_counts, r.last_ts, r.settled_before)
                  for r in moved.collect()) == [
        ("u1", [d(1), d(3)], hours(10, 11), weekdays(3, 5), naive(ts(3, 11)), d(5)),
        ("u2", [d(2)], hours(9, 20), weekdays(4, 4), naive(ts(2, 20)), d(5))]
    # An as_of moved back, or nothing settled yet: everyone is settled again from the tiles.
    again = resettled(old, d(3), now, changed.limit(0), d(2), event_summaries, merged_event_summaries)
    assert sorted((r.user_id, r.days, r.settled_before) for r in again.collect()) == [("u1", [d(1)], d(2))]


def test_spanned_summaries_are_a_row_per_user_and_span_marked_with_its_end_and_a_fold_reads_those_up_to_its_own(spark):
    d = lambda day: dt.date(2025, 1, day)  # noqa: E731
    # "u@1" holds the character that joins a user's key to its span while the summaries run.
    events = [("u@1", ts(1, 10), "browse", d(1)), ("u@1", ts(3, 11), "browse", d(3)), ("u@1", ts(3, 13), "browse", d(3)),
              ("u@1", ts(5, 8), "social", d(5)), ("u2", ts(2, 9), "browse", d(2)), ("u2", ts(6, 9), "browse", d(6))]
    tiles = spark.createDataFrame(events, EVENTS).transform(event_day_state("UTC"))

    spans = tiles.transform(spanned([d(2), d(4)], d(6), event_summaries))

    hours = lambda *hs: [sum(h == x for h in hs) for x in range(24)]  # noqa: E731
    weekdays = lambda *ws: [sum(w == x for w in ws) for x in range(1, 8)]  # noqa: E731 (1 = Monday)
    # 2025-01-01 is a Wednesday. Partitions before the 2nd end at the 2nd, [2nd, 4th) at the 4th, [4th, 6th) at the
    # 6th; the 6th's partition is no span's.
    assert sorted((r.user_id, r.days, r.hour_counts, r.weekday_counts, r.last_ts, r.settled_before)
                  for r in spans.collect()) == [
        ("u2", [d(2)], hours(9), weekdays(4), naive(ts(2, 9)), d(4)),
        ("u@1", [d(1)], hours(10), weekdays(3), naive(ts(1, 10)), d(2)),
        ("u@1", [d(3)], hours(11, 13), weekdays(5, 5), naive(ts(3, 13)), d(4)),
        ("u@1", [d(5)], hours(8), weekdays(7), naive(ts(5, 8)), d(6))]
    # A fold as of the 4th (boundary the 4th) reads the rows up to it and the tiles from it on: what it folds from
    # every tile.
    as_of = dt.datetime(2025, 1, 4, tzinfo=dt.timezone.utc)
    every_tile = tiles.transform(settled_fold(time_patterns_from_state, as_of, [0, 1, 2], "UTC", before=None))
    up_to = spans.filter(F.col("settled_before") <= d(4))
    from_spans = time_patterns_from_state(as_of, [0, 1, 2], "UTC", d(4))(tiles, up_to)
    assert rows(from_spans) == rows(every_tile) and len(rows(every_tile)) == 2


SOCIAL_LINE = st.tuples(st.sampled_from(["u1", "u2"]), st.sampled_from(SOCIAL_KINDS),
                        st.one_of(st.none(), st.integers(1, 5)), LINE.map(lambda x: x[3]), LINE.map(lambda x: x[4]))


def social_of(spark, lines):
    return spark.createDataFrame([(u, None, kind, None, rating, t, d) for u, kind, rating, t, d in lines], SOCIAL)


@fold_property(SOCIAL_LINE, examples=6)
def test_folding_social_partitions_equals_social_features_over_every_row(spark, lines, k, as_of, late, share):
    tiles = lambda x: social_of(spark, x).transform(social_day_state("UTC"))  # noqa: E731
    state, every = folded_in_steps(tiles, lines, late, k, lambda line: (line[4],))
    # Social has no window: settled before the first partition holding a day from as_of's on (the rows here are
    # filed anywhere; the jobs' filing bound puts that partition at most a day before as_of's).
    settled_before = min([line[4] for line in every if line[3].date() >= as_of.date()], default=as_of.date())
    fold = lambda before, appended_from=None: settled_fold(social_from_state, as_of, "UTC", before=before,  # noqa: E731
                                                           summarize=social_totals, appended_from=appended_from)
    folded = rows(state.transform(fold(settled_before, between(START.date(), settled_before, share))))
    expected = rows(tiles(every).transform(fold(None)))
    assert [sorted(r.items()) for r in folded] == [sorted(r.items()) for r in expected]


WEIGHTS = {"view": 1.0, "click": 1.0, "fav": 2.0, "cart": 3.0, "buy": 5.0}  # conf/local.yaml's affinity weights
INTERACTION_LINE = st.tuples(st.sampled_from(["u1", "u2"]), st.sampled_from(["i1", "i2", "i3", "i4"]),
                             st.sampled_from(["view", "click", "fav", "cart", "buy", "unknown"]),
                             LINE.map(lambda x: x[3]), LINE.map(lambda x: x[4]))


def browse_and_tx(spark, lines):
    """``buy`` lines become transaction lines; every other kind is a browse event."""
    browse = spark.createDataFrame([(u, i, kind, t, None, None, d) for u, i, kind, t, d in lines if kind != "buy"],
                                   BROWSE)
    bought = spark.createDataFrame([(f"o{n}", u, i, 1, 1.0, t, d) for n, (u, i, kind, t, d) in enumerate(lines)
                                    if kind == "buy"], TRANSACTIONS)
    return browse, bought


@fold_property(INTERACTION_LINE, examples=6)
def test_folding_interaction_partitions_equals_affinity_and_interest_vectors(spark, lines, k, as_of, late, share):
    items = padded(spark, [("i1", "t1", "toys", "Apex", 10.0), ("i2", "t2", "toys", "Nova", 20.0),
                                   ("i3", "t3", "books", "Apex", 30.0), ("i4", "t4", "pet", None, 40.0)], ITEMS)
    source = lambda kind: "transaction" if kind == "buy" else "browse"  # noqa: E731
    tiles = lambda x: interaction_day_state(*browse_and_tx(spark, x), "UTC")  # noqa: E731
    state, every = folded_in_steps(tiles, lines, late, k, lambda line: (source(line[2]), line[4]),
                                   keys=("source", "dt"))
    # With the partitions before the first holding a day from as_of's on settled (the rows here are filed anywhere),
    # the folds equal those of all the tiles, bit for bit: their sums are whole numbers.
    settled_before = min([line[4] for line in every if line[3].date() >= as_of.date()], default=as_of.date())
    appended_from = between(START.date(), settled_before, share)  # as appending steps leave it: up to two rows per key
    affinity = lambda before, appended_from=None: settled_fold(  # noqa: E731
        affinity_from_state, WEIGHTS, 2, as_of, "UTC", items, before=before, summarize=affinity_weights(WEIGHTS, items),
        appended_from=appended_from)
    assert rows(state.transform(affinity(settled_before, appended_from))) == rows(tiles(every).transform(
        affinity(None)))
    # The interest vectors (i4 has no title vector, as an item with no title).
    titles = spark.createDataFrame([("i1", [1.0, 0.0, 0.5]), ("i2", [0.1, 0.7, 0.0]), ("i3", [0.3, 0.3, 0.9])],
                                   "item_id string, embedding array<float>")
    fold = lambda before, appended_from=None: settled_fold(  # noqa: E731
        item_vector_means, WEIGHTS, as_of, "UTC", titles, "interest_vector", before=before,
        summarize=item_vector_sums(WEIGHTS, titles), appended_from=appended_from)
    folded = rows(state.transform(fold(settled_before, appended_from)))
    assert folded == rows(tiles(every).transform(fold(None)))
    assert folded == rows(item_vector_means(WEIGHTS, as_of, "UTC", titles, "interest_vector")(tiles(every), None))


RULE = SessionRule(gap_minutes=30, id_idle_hours=24)


def conversion_of(tiles, orders, before, sessions=None):
    """The conversion fold with the browse tiles before ``before`` settled (or ``sessions``: those settled rows)."""
    close = closed_sessions(RULE, 1, "UTC")
    if sessions is None:
        sessions = tiles.transform(settled(before, session_summaries(RULE), close))
    return conversion_from_state(AS_OF, RULE, "UTC", before, None)(tiles, sessions, orders, orders.limit(0))


def test_a_gap_session_across_midnight_and_two_partitions_stays_one_session(spark):
    events = [  # (user, event_type, ts, dwell_ms, session_id, dt)
        ("u1", "view", ts(29, 23, 50), 1000, None, dt.date(2025, 1, 29)),
        ("u1", "cart", ts(30, 0, 5), 3000, None, dt.date(2025, 1, 30)),   # 15 minutes later: the same session
        ("u1", "view", ts(30, 9), None, None, dt.date(2025, 1, 30)),      # a new one
        ("u1", "view", ts(28, 23, 0), 2000, "s9", dt.date(2025, 1, 28)),  # a named session over two days
        ("u1", "fav", ts(29, 0, 30), 4000, "s9", dt.date(2025, 1, 29)),
        ("u2", "view", ts(31, 1), 500, None, dt.date(2025, 1, 31)),       # at or after as_of: ignored
    ]
    browse = spark.createDataFrame([(u, "i1", e, t, d, s, p) for u, e, t, d, s, p in events], BROWSE)
    lines = tx(spark, [("o1", "u1", 10.0, ts(30, 10))])
    day_parts = [browse.filter(browse.dt == d).transform(browse_day_state("UTC")) for d in sorted({e[5] for e in events})]
    state = day_parts[0]
    for part in day_parts[1:]:
        state = state.unionByName(part)
    orders = lines.transform(order_day_state("UTC"))
    folded = by_user(conversion_of(state, orders, None))
    u1 = folded["u1"]
    assert (u1["views"], u1["carts"], u1["favs"], u1["sessions"]) == (3, 1, 1, 3)
    assert (u1["avg_session_events"], u1["avg_session_minutes"]) == (5 / 3, (15 + 0 + 90) / 3)
    assert (u1["avg_dwell_s"], u1["view_to_cart_rate"], u1["cart_to_buy_rate"]) == (2.5, 1 / 3, 1.0)
    assert "u2" not in folded


def test_sessions_settled_at_any_boundary_or_moved_there_give_the_same_profile_and_close_what_nothing_can_reach(spark):
    # Filed a day late at most (lead 1). As of the 31st, with no orders.
    events = [  # (user, event_type, ts, session_id, dt)
        ("u1", "view", ts(20, 10, 0), None, dt.date(2025, 1, 20)),  # a session of its own, long closed
        ("u1", "view", ts(26, 23, 50), None, dt.date(2025, 1, 26)),
        ("u1", "cart", ts(27, 0, 10), None, dt.date(2025, 1, 28)),  # 20 minutes later, filed a day late: one session
        ("u1", "view", ts(28, 9, 0), "a", dt.date(2025, 1, 28)),
        ("u1", "view", ts(29, 8, 0), "a", dt.date(2025, 1, 29)),    # 23 hours later: session a goes on
        ("u1", "view", ts(30, 9, 0), "a", dt.date(2025, 1, 30)),    # 25 hours later: a new session a
        ("u2", "view", ts(29, 23, 45), None, dt.date(2025, 1, 29)),
        ("u2", "fav", ts(30, 0, 5), None, dt.date(2025, 1, 30)),    # across midnight and partitions: one session
    ]
    browse = spark.createDataFrame([(u, "i1", e, t, 1000, s, p) for u, e, t, s, p in events], BROWSE)
    tiles = browse.transform(browse_day_state("UTC"))
    orders = tx(spark, []).transform(order_day_state("UTC"))
    d = lambda day: dt.date(2025, 1, day)  # noqa: E731
    # Independent of any boundary: u1 has 4 sessions (20th; 26th-27th; a on 28th-29th; a on 30th) of 1, 2, 2, 1
    # events over 0, 20, 23*60 and 0 minutes; u2 one of 2 events over 20 minutes.
    # Views: 5 and 1.
    expected = {"u1": (4, 6 / 4, (20 + 23 * 60) / 4, 5), "u2": (1, 2.0, 20.0, 1)}

    def profile(sessions_before, sessions=None):
        out = by_user(conversion_of(tiles, orders, sessions_before, sessions))
        return {u: (r["sessions"], r["avg_session_events"], r["avg_session_minutes"], r["views"])
                for u, r in out.items()}

    for before in (None, d(1), d(28), d(31)):  # nothing settled (none; before any tile); the late piece; all
        assert profile(before) == expected, before
    close = closed_sessions(RULE, 1, "UTC")
    old = tiles.transform(settled(d(27), session_summaries(RULE), close))
    nobody = tiles.select("user_id").limit(0)
    moved = resettled(old, d(27), tiles, nobody, d(30), session_summaries(RULE), merged_session_summaries(RULE), close)
    assert profile(d(30), moved) == expected
    assert sorted(map(tuple, moved.collect())) == sorted(
        map(tuple, tiles.transform(settled(d(30), session_summaries(RULE), close)).collect()))
    # Settled before the 30th, a later partition holds no day before the 29th: u1's sessions of the 20th and the
    # 26th-27th can take no more events (closed); session a, last seen on the 29th, can (open); u2's too.
    kept = {r.user_id: (r.closed_sessions, r.closed_events, r.closed_micros, len(r.open_sessions)) for r in moved.collect()}
    assert kept == {"u1": (2, 3, 20 * 60_000_000, 1), "u2": (0, 0, 0, 1)}


def test_price_state_keeps_the_multiset_so_the_median_is_exact(spark):
    lines = [("o1", "u1", 10.0, ts(3)), ("o2", "u1", 10.0, ts(4)), ("o3", "u1", 30.0, ts(5)),
             ("o4", "u1", 40.0, ts(6)), ("o5", "u1", None, ts(6)), ("o6", "u1", 99.0, ts(31, 2))]
    items = padded(spark, [("i1", "t", "c", "b", float(p)) for p in (5, 10, 20, 50)], ITEMS)
    state = tx(spark, lines).transform(price_day_state("UTC"))
    # Unit prices 10, 10, 30, 40 (the line without an amount and the one after as_of do not count), with nothing
    # settled, the 3rd and 4th's partitions settled (10 twice in one settled row), and all before as_of's settled.
    for before in (dt.date(2025, 1, 3), dt.date(2025, 1, 5), dt.date(2025, 1, 31)):
        fold = settled_fold(price_from_state, [0.25, 0.75], AS_OF, "UTC", items, before=before, summarize=price_lines)
        folded = by_user(state.transform(fold))
        assert (folded["u1"]["median_unit_price"], folded["u1"]["price_band"]) == (20.0, "mid"), before


@fold_property(LINE, examples=8)
def test_folding_price_partitions_equals_the_median_over_every_line(spark, lines, k, as_of, late, share):
    items = padded(spark, [("i1", "t", "c", "b", float(p)) for p in (5, 500, 5000, 50_000)], ITEMS)
    tiles = lambda x: tx(spark, x).transform(price_day_state("UTC"))  # noqa: E731
    state, every = folded_in_steps(tiles, lines, late, k, lambda line: (line[4],))
    # Prices have no window: settled before the first partition holding a day from as_of's on.
    settled_before = min([line[4] for line in every if line[3].date() >= as_of.date()], default=as_of.date())
    fold = lambda before, appended_from=None: settled_fold(price_from_state, [0.25, 0.75], as_of, "UTC", items,  # noqa: E731
                                                           before=before, summarize=price_lines,
                                                           appended_from=appended_from)
    folded = rows(state.transform(fold(settled_before, between(START.date(), settled_before, share))))
    assert folded == rows(tiles(every).transform(fold(None)))
    paid = defaultdict(list)
    for _, user, amount, at, _ in every:
        if amount is not None and at < as_of:
            paid[user].append(amount)
    assert {r["user_id"]: r["median_unit_price"] for r in folded} == {
        u: pytest.approx(statistics.median(p), rel=1e-12) for u, p in paid.items()}


def test_a_step_refolds_a_family_only_for_users_in_a_rewritten_partition_or_at_a_window_edge(spark):
    family = Family("rfm", ("state_orders",), fold=lambda state: state["state_orders"], windows=(7,))
    day = dt.timedelta(days=1)
    kept = [("o1", "u1", 1.0, ts(24)),      # as_of moves a day: this order leaves the 7-day window
            ("o2", "u2", 1.0, ts(25)),      # still inside it
            ("o3", "u3", 1.0, ts(31)),      # the day as_of moves past
            ("o6", "u6", 1.0, ts(23)),      # outside the window before and after
            ("o4", "u4", 1.0, ts(10))]      # in the partition the step rewrote
    erased = [("o5", "u5", 1.0, ts(10))]    # the rewrite took it out: u5 must be folded again too
    before = tx(spark, kept + erased).transform(order_day_state("UTC"))
    after = tx(spark, kept).transform(order_day_state("UTC"))
    touched = touched_users(family, {"state_orders": after}, {"state_orders": before},
                            {"state_orders": [dt.date(2025, 1, 10)]}, AS_OF, AS_OF + day, "UTC", 1)
    assert sorted(r.user_id for r in touched.collect()) == ["u1", "u3", "u4", "u5"]
    # as_of moving back crosses the same edges; not moving crosses none.
    back = touched_users(family, {"state_orders": after}, {"state_orders": before}, {}, AS_OF + day, AS_OF, "UTC", 1)
    assert sorted(r.user_id for r in back.collect()) == ["u1", "u3"]
    assert touched_users(family, {"state_orders": after}, {"state_orders": before}, {}, AS_OF, AS_OF, "UTC", 1).count() == 0


def test_each_family_refolds_its_touched_users_and_every_sign_up(spark):
    """One frame of (family, user): a family's touched users, plus the users the old profiles lack, in every family."""
    orders = Family("rfm", ("state_orders",), fold=lambda s: s)
    events = Family("activity", ("state_events",), fold=lambda s: s)
    quiet = Family("social", ("state_social",), fold=lambda s: s)
    touched = {"rfm": ["u1", "u2"], "activity": ["u2", "u9"], "social": []}
    users = spark.createDataFrame([(u,) for u in ("u1", "u2", "u3", "u9")], "user_id string")
    old = spark.createDataFrame([(u,) for u in ("u1", "u2", "u9")], "user_id string")  # u3 signed up since

    def touched_by(family: Family):
        return spark.createDataFrame([(u,) for u in touched[family.name]], "user_id string")
    found = refolded_users([orders, events, quiet], touched_by, users, old)
    assert sorted((r.family, r.user_id) for r in found.collect()) == [
        ("activity", "u2"), ("activity", "u3"), ("activity", "u9"),
        ("rfm", "u1"), ("rfm", "u2"), ("rfm", "u3"), ("social", "u3")]


def test_a_catalogue_change_refolds_users_with_rows_on_changed_items_or_everyone_for_catalogue_wide_columns(spark):
    from schemas.state import INTERACTION_DAY_STATE, PRICE_DAY_STATE

    then = padded(spark, [("i1", "t1", "c1", "b1", 1.0), ("i2", "t2", "c2", "b2", 2.0),
                                  ("i3", "t3", "c3", "b3", 3.0)], ITEMS)
    renamed = padded(spark, [("i1", "t1", "c9", "b1", 1.0), ("i2", "t2", "c2", "b2", 2.0),
                                     ("i3", "t3", "c3", "b3", 3.0)], ITEMS)
    relisted = padded(spark, [("i1", "t1", "c1", "b1", 1.0), ("i2", "new title", "c2", "b2", 2.0),
                                      ("i4", "t4", "c4", "b4", 4.0)], ITEMS)
    day = dt.date(2025, 1, 5)
    interactions = spark.createDataFrame([("u1", "browse", day, day, "i1", "view", 1),
                                          ("u2", "browse", day, day, "i2", "view", 1),
                                          ("u3", "browse", day, day, "i3", "view", 1)], INTERACTION_DAY_STATE)
    prices = spark.createDataFrame([("u1", day, day, 1.0, 1), ("u5", day, day, 9.0, 1)], PRICE_DAY_STATE)
    state = {"state_interactions": interactions, "state_prices": prices}
    affinity = Family("affinity", ("state_interactions",), fold=lambda s: s, item_columns=("category", "brand"))
    interest = Family("interest", ("state_interactions",), fold=lambda s: s, item_columns=("title",))
    price = Family("price", ("state_prices",), fold=lambda s: s, catalogue_columns=("price",))

    def touched(family, change):
        return sorted(r.user_id for r in touched_users(family, state, state, {}, AS_OF, AS_OF, "UTC", 1, change).collect())

    # A category changed: only the users with rows on that item, and only where the fold reads it.
    renaming = CatalogueChange(then, renamed)
    assert renaming.came_or_went().count() == 0
    assert (touched(affinity, renaming), touched(interest, renaming), touched(price, renaming)) == (["u1"], [], [])
    # An item came, one went (their rows' validity changes: the partitions are validated again), and a
    # title changed. The catalogue's prices changed with them: everyone with price rows.
    relisting = CatalogueChange(then, relisted)
    assert sorted(r.item_id for r in relisting.came_or_went().collect()) == ["i3", "i4"]
    assert (touched(affinity, relisting), touched(interest, relisting), touched(price, relisting)) == \
        ([], ["u2"], ["u1", "u5"])


def test_a_step_reads_photos_of_the_tiles_from_the_settled_boundary_on_and_of_every_user_it_settles_again(spark):
    from conf import load_config
    from schemas.state import INTERACTION_DAY_STATE

    cfg = load_config(overrides=["time.zone=UTC", "validation.max_days_after_partition=1"])
    d = lambda day: dt.date(2025, 1, day)  # noqa: E731
    as_of = dt.datetime(2025, 1, 10, tzinfo=dt.timezone.utc)  # settled before the 9th now (a day's filing bound)
    was = d(8)                                                  # ... and before the 8th when the step began

    def tiles(rows):
        return spark.createDataFrame([(u, "browse", d(day), d(day), i, "view", 1) for u, day, i in rows],
                                     INTERACTION_DAY_STATE)
    kept = [("u1", 2, "i1"), ("u1", 8, "i2"),   # u1: an old tile, and one crossing the boundary now
            ("u3", 4, "i5"),                    # u3: an old tile on an item whose photo changed
            ("u4", 2, "i6"), ("u4", 9, "i7")]   # u4: an old tile left alone, and the new day's
    found = tiles(kept + [("u2", 3, "i3")])
    now = tiles(kept + [("u2", 3, "i3"), ("u2", 3, "i4")])  # the step rewrote partition 3: late data for u2
    items = lambda photo_of_i5: spark.createDataFrame(  # noqa: E731
        [("i1", "/p/1.jpg"), ("i5", photo_of_i5), ("i6", "/p/6.jpg")], "item_id string, image_path string")
    catalogue = CatalogueChange(items("/p/5.jpg"), items("/p/5-new.jpg"))

    def read(was, catalogue=None):
        return sorted({r.item_id for r in photo_tiles(cfg, as_of, was, now, found, [d(3), d(9)], catalogue).collect()})

    # From the boundary on (i2, i7), and every tile of u2 (late data) and of u3 (its item's photo changed).
    assert read(was, catalogue) == ["i2", "i3", "i4", "i5", "i7"]
    assert read(was) == ["i2", "i3", "i4", "i7"]
    # Nothing settled alike (None), or a boundary moved back (an earlier as_of): every user is settled from all tiles.
    everything = ["i1", "i2", "i3", "i4", "i5", "i6", "i7"]
    assert read(None) == read(d(9) + dt.timedelta(days=1)) == everything


def test_the_latest_event_and_the_sources_are_read_from_recent_partitions_when_they_hold_it_and_from_all_when_not(
        spark):
    d = lambda day: dt.date(2025, 1, day)  # noqa: E731
    events = [("u1", ts(1, 9), "browse", d(1)),
              ("u2", ts(7, 22), "social", d(6)),     # a row of the 7th filed on the 6th (a day's filing bound)
              ("u3", ts(3, 8), "browse", d(9)),      # a late row of the 3rd filed on the 9th
              ("u1", ts(10, 6), "browse", d(10))]

    def seen(rows: list[tuple], since: dt.date | None = None) -> EventsSeen:
        return events_seen(spark.createDataFrame(rows, EVENTS).transform(event_day_state("UTC")), 1, since)
    # The profiles were as of the 10th: the partitions from the 9th on hold a day from it on, so they hold the
    # latest. Social is not in them, and is found in the 6th's.
    assert seen(events, d(10)) == seen(events) == EventsSeen(naive(ts(10, 6)), {"browse", "social"})
    # Without the 10th, the partitions from the 8th on hold only the late row of the 3rd: every partition is read,
    # and the 7th's row, filed on the 6th, is the latest.
    assert seen(events[:3], d(9)) == seen(events[:3]) == EventsSeen(naive(ts(7, 22)), {"browse", "social"})
    # No social row anywhere, no transaction, no row at all.
    assert seen([events[0], events[3]], d(10)) == EventsSeen(naive(ts(10, 6)), {"browse"})
    assert seen([], d(10)) == seen([]) == EventsSeen(None, set())
