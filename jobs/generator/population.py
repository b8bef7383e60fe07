"""Users, each drawn into an archetype, with fake PII and personal parameters."""
from __future__ import annotations

from datetime import date

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.generator.archetypes import archetype_frame
from jobs.generator.random import pick_uniform, uniform
from jobs.generator.vocabulary import CITIES


INTENT_SHARE = 0.6


def generate_users(spark: SparkSession, n_users: int, days: int, cutoff_day: int, start: date, seed: int) -> DataFrame:
    """Users joined with their archetype's parameters (the ``_``-free columns are the users table)."""
    u = lambda salt: uniform(seed, salt, "id")  # noqa: E731
    base = spark.range(n_users, numPartitions=4).withColumn("_u", u("archetype"))
    arch = archetype_frame(spark)
    users = base.join(F.broadcast(arch), (F.col("_u") >= arch.share_lo) & (F.col("_u") < arch.share_hi))
    start_ts = F.lit(start).cast("timestamp")
    new_window = min(10, days)
    signup_day = F.when(F.col("archetype") == "new_user", F.lit(days - new_window) + F.floor(u("signup") * new_window))
    signup_ts = F.when(signup_day.isNotNull(), start_ts + F.make_interval(days=signup_day.cast("int"))).otherwise(
        start_ts - F.make_interval(days=(30 + F.floor(u("age") * 700)).cast("int")))
    signup_ts = signup_ts + F.make_interval(hours=F.floor(u("signup_h") * 24).cast("int"))
    # Churners go quiet before the cutoff, so their silence after it is the planted truth.
    churn_day = F.when(F.col("archetype") == "churning",
                       F.least(F.lit(max(cutoff_day - 5, 1)), F.lit(5) + F.floor(u("churn") * max(cutoff_day - 10, 1))))
    # A shopping-intent episode: on intent_day the user asks about an item they mean to buy, then
    # buys far more readily for a week. Only the comment's words tell it apart from other comments.
    intent_day = F.when(u("intent") < INTENT_SHARE, F.floor(u("intent_day") * days).cast("int"))
    return users.select(
        F.format_string("U%07d", "id").alias("user_id"),
        signup_ts.alias("signup_ts"),
        F.when(u("gender") < 0.5, "f").otherwise("m").alias("gender"),
        (F.lit(1960) + F.floor(u("birth") * 45)).cast("int").alias("birth_year"),
        pick_uniform(list(CITIES), u("city")).alias("city"),
        F.format_string("User %07d", "id").alias("name"),
        F.format_string("+86-139-%08d", "id").alias("phone"),
        F.format_string("user%07d@example.com", "id").alias("email"),
        F.lit(None).cast("int").alias("age"),  # the generated platform records birth years, not ages
        "archetype", "pref_categories", "price_preference", "sessions_per_day", "events_per_session", "cart_prob",
        "buy_prob", "peak_hour", "review_prob", "positive_prob", "brand_loyal",
        F.coalesce(signup_day, F.lit(0)).alias("first_day"),
        F.coalesce(churn_day, F.lit(days)).alias("last_day_excl"),
        (0.5 + u("activity")).alias("activity"),
        F.floor(u("brand") * 8).cast("int").alias("fav_brand"),
        intent_day.alias("intent_day"),
    )
