"""The synthetic generator: deterministic by seed, planted archetypes, injected bad rows, hidden truth."""
from __future__ import annotations

import pytest
from pyspark.sql import functions as F

from conf import GeneratorConf
from jobs.generator import generate_tables
from jobs.generator.archetypes import ARCHETYPES

SMALL = GeneratorConf(users=600, days=14, cutoff_day=10, items=240, seed=7, bad_row_share=0.02)


def fingerprint(df) -> int:
    """Order-independent checksum of a frame's rows."""
    return df.select(F.sum(F.pmod(F.xxhash64(*df.columns), F.lit(1 << 31))).alias("h")).first()["h"]


@pytest.fixture(scope="module")
def tables(spark):
    return generate_tables(spark, SMALL)


def test_same_seed_gives_the_same_tables(spark, tables):
    again = generate_tables(spark, SMALL)
    for name, df in tables.inputs().items():
        assert fingerprint(df) == fingerprint(again.inputs()[name]), name


def test_other_seed_gives_other_tables(spark, tables):
    other = generate_tables(spark, SMALL.model_copy(update={"seed": 8}))
    assert fingerprint(other.browse) != fingerprint(tables.browse)


def test_all_archetypes_are_planted_in_the_ground_truth(tables):
    seen = {r.archetype for r in tables.ground_truth.select("archetype").distinct().collect()}
    assert seen == {a.name for a in ARCHETYPES} and len(seen) >= 6
    assert tables.ground_truth.count() == SMALL.users


def test_archetypes_behave_differently(tables):
    truth = tables.ground_truth.select("user_id", "archetype")
    items = tables.items.filter(F.col("price") > 0).dropDuplicates(["item_id"])
    price = (tables.transactions.filter(F.col("amount").between(0.01, 10_000) & (F.col("quantity") > 0)).join(items, "item_id").join(truth, "user_id")
             .groupBy("archetype").agg(F.avg(F.col("amount") / F.col("quantity")).alias("p")))
    p = {r.archetype: r.p for r in price.collect()}
    assert p["high_spender"] > 3 * p["bargain_hunter"]
    browse = tables.browse.join(truth, "user_id").groupBy("archetype").count()
    orders = tables.transactions.join(truth, "user_id").groupBy("archetype").agg(F.countDistinct("order_id").alias("o"))
    ratio = {r.archetype: r.o / r["count"] for r in browse.join(orders, "archetype").collect()}
    assert ratio["window_shopper"] < ratio["high_spender"] / 3


def test_churners_go_silent_before_the_cutoff(tables):
    churners = tables.ground_truth.filter(F.col("archetype") == "churning")
    assert churners.filter(F.col("churned_after_cutoff")).count() / churners.count() > 0.8
    loyal = tables.ground_truth.filter(F.col("archetype") == "brand_loyalist")
    assert loyal.filter(F.col("churned_after_cutoff")).count() / loyal.count() < 0.3


def test_reviews_carry_category_words_and_sentiment(tables):
    reviews = tables.social.filter(F.col("kind") == "review").join(tables.items.select("item_id", "category"), "item_id")
    sample = reviews.filter(F.col("category") == "electronics").select("text", "rating").limit(200).collect()
    nouns = ("headphones", "smartwatch", "bluetooth speaker", "tablet", "power bank")
    composed = [r for r in sample if r.text and any(n in r.text for n in nouns)]
    assert len(composed) > len(sample) / 2
    assert {r.rating for r in sample} >= {1, 5}


def test_bad_rows_are_injected_in_every_table(tables):
    users = tables.users
    assert users.filter(F.col("user_id").isNull()).count() > 0
    assert tables.transactions.filter(F.col("amount") < 0).count() > 0
    assert tables.browse.filter(F.col("event_type") == "hover").count() > 0
    assert tables.social.filter(F.col("kind") == "rate").count() > 0
    assert tables.items.filter(F.col("price") < 0).count() > 0
