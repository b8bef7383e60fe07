"""Rule tags: which users get which tag, with exact reasons, thresholds from config."""
from __future__ import annotations

import pytest

from conf import TagsConf
from jobs.frames import conform
from jobs.tags import DataGaps, rule_tags
from schemas.profiles import PROFILES
from tests.helpers import AS_OF, naive, ts

TAGS = TagsConf(new_user_days=14, active_window_days=7, active_min_events=10, loyal_window_days=90, loyal_min_orders=3,
                dormant_days=14, spend_window_days=90, spender_quantiles=[0.5, 0.9], category_lover_min_share=0.5,
                category_lover_min_weight=10.0)


def profiles(spark, *users: dict):
    base = {"as_of": naive(AS_OF), "updated_at": naive(AS_OF)}
    columns = sorted({k for u in users for k in u} | set(base))
    data = [tuple({**base, **u}.get(c) for c in columns) for u in users]
    schema = ", ".join(f"{c} {PROFILES[c].dataType.simpleString()}" for c in columns)
    return spark.createDataFrame(data, schema).transform(conform(PROFILES, "profiles", fill_missing=True))


def tags_of(df, gaps=DataGaps()):
    return sorted((r.user_id, r.tag, r.reason) for r in df.transform(rule_tags(TAGS, AS_OF, "UTC", gaps)).collect())


def test_new_active_loyal_and_dormant_users(spark):
    df = profiles(spark,
                  {"user_id": "new", "signup_ts": naive(ts(26)), "last_event_ts": naive(ts(30)),
                   "days_since_last_event": 0.5},
                  {"user_id": "busy", "signup_ts": naive(ts(1, year=2024)), "events_7d": 12, "orders_90d": 4,
                   "last_event_ts": naive(ts(30)), "days_since_last_event": 0.5},
                  {"user_id": "gone", "signup_ts": naive(ts(1, year=2024)), "events_7d": 0,
                   "last_event_ts": naive(ts(10)), "days_since_last_event": 20.5},
                  {"user_id": "silent", "signup_ts": naive(ts(1, year=2024))})
    assert tags_of(df) == [
        ("busy", "active", "12 events in the last 7 days"),
        ("busy", "loyal", "4 orders in the last 90 days"),
        ("gone", "dormant", "no activity for 20 days (last on 2025-01-10)"),
        ("new", "new_user", "signed up 4 days ago (2025-01-26)"),
        ("silent", "dormant", "no recorded activity before the profile date"),
    ]


def test_thresholds_are_inclusive_and_come_from_config(spark):
    df = profiles(spark, {"user_id": "edge", "events_7d": 10, "orders_90d": 3, "last_event_ts": naive(ts(17)),
                          "days_since_last_event": 14.0})
    assert [t for _, t, _ in tags_of(df)] == ["active", "dormant", "loyal"]
    assert [r.tag for r in df.transform(rule_tags(TAGS.model_copy(update={"dormant_days": 15}), AS_OF, "UTC")).collect()
            ] == ["active", "loyal"]


def test_spender_tiers_by_percentile_among_buyers(spark):
    df = profiles(spark, *[{"user_id": f"u{i}", "spend_90d": float(i * 10), "frequency": 1} for i in range(1, 11)],
                  {"user_id": "none", "spend_90d": 0.0, "frequency": 0})
    tiers = {u: (t, r) for u, t, r in tags_of(df) if t.endswith("spender")}
    assert tiers["u1"] == ("low_spender", "spent 10.00 in the last 90 days, more than 0% of buyers")
    assert tiers["u5"][0] == "low_spender" and tiers["u6"][0] == "mid_spender"
    assert tiers["u10"] == ("high_spender", "spent 100.00 in the last 90 days, more than 100% of buyers")
    assert "none" not in tiers


def test_category_lover_needs_share_and_weight(spark):
    df = profiles(spark,
                  {"user_id": "fan", "top_category": "toys", "top_category_share": 0.62, "top_category_weight": 31.0},
                  {"user_id": "light", "top_category": "toys", "top_category_share": 0.9, "top_category_weight": 3.0},
                  {"user_id": "mixed", "top_category": "pet", "top_category_share": 0.4, "top_category_weight": 40.0})
    assert [(u, t, r) for u, t, r in tags_of(df) if t.startswith("category")] == [
        ("fan", "category_lover:toys", "62% of weighted activity is in toys")]


def test_missing_inputs_are_explained_per_user(spark):
    df = profiles(spark, {"user_id": "u1", "frequency": 2, "monetary": None})
    got = tags_of(df, DataGaps(browse_missing=True))
    assert ("u1", "spend_unknown", "orders carry no amounts in the source data, so no spender tier") in got
    assert any(t == "browse_unknown" and "browse table is absent or empty" in r for _, t, r in got)


@pytest.mark.parametrize("key", ["new_user_days", "dormant_days"])
def test_bad_threshold_values_are_rejected(key):
    with pytest.raises(ValueError, match=key):
        TagsConf(**{key: 0})


@pytest.mark.parametrize("values", [
    [3.0, 1.0, 1.0, 7.0, None, 7.0, 7.0, 2.5, 10.0, 0.5, 3.0],   # ties, a null
    [float(v % 13) for v in range(61)],                          # many ties, n - 1 = 60
    [4.0],                                                        # one row ranks 0
])
def test_ranks_reached_matches_sparks_percent_rank_over_a_global_window(spark, values):
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from jobs.ranking import ranks_reached

    thresholds = [0.2, 0.4, 0.5, 0.6, 0.8, 0.9, 1.0]
    df = spark.createDataFrame([(f"u{i}", v) for i, v in enumerate(values)], "user_id string, v double")
    for ascending in (True, False):
        got = {r.user_id: r.n for r in df.transform(ranks_reached("v", "n", thresholds, ascending)).collect()}
        order = F.col("v").asc() if ascending else F.col("v").desc()
        reference = df.filter(F.col("v").isNotNull()).withColumn("p", F.percent_rank().over(Window.orderBy(order)))
        want = {r.user_id: sum(r.p >= q for q in thresholds) for r in reference.collect()}
        assert {u: n for u, n in got.items() if n is not None} == want
        assert [u for u, n in got.items() if n is None] == [f"u{i}" for i, v in enumerate(values) if v is None]
