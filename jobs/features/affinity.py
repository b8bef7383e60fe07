"""Category and brand affinity (top-k with shares) and price band: the ``state_interactions`` and
``state_prices`` tiles and their folds."""
from __future__ import annotations

from datetime import datetime
from typing import Callable

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from jobs.clock import local_day, local_midnight_date
from schemas.state import INTERACTION_DAY_STATE, PRICE_DAY_STATE


def interaction_kinds(browse: DataFrame, tx: DataFrame) -> DataFrame:
    """user_id, item_id, kind (the browse event type, or ``buy`` per transaction line), source, ts, dt."""
    return (browse.select("user_id", "item_id", F.col("event_type").alias("kind"),
                          F.lit("browse").alias("source"), "ts", "dt")
            .unionByName(tx.select("user_id", "item_id", F.lit("buy").alias("kind"),
                                   F.lit("transaction").alias("source"), "ts", "dt")))


def kind_weight(weights: dict[str, float]) -> F.Column:
    """The configured weight of the row's ``kind``; 0.0 for kinds without one."""
    weight_of = F.create_map(*[x for k, v in sorted(weights.items()) for x in (F.lit(k), F.lit(float(v)))])
    return F.coalesce(weight_of[F.col("kind")], F.lit(0.0))


def top_k_shares(key: str, k: int, prefix: str, plural: str) -> Callable[[DataFrame], DataFrame]:
    """Per user: the k heaviest values of ``key`` with their share of the user's weight.

    Output columns: ``top_{plural}`` (array of {name, share}, heaviest first, ties by name),
    ``top_{prefix}``, ``top_{prefix}_share`` and ``top_{prefix}_weight``. Null keys are ignored.
    """
    def apply(weighted: DataFrame) -> DataFrame:
        per_key = (weighted.filter(F.col(key).isNotNull()).groupBy("user_id", F.col(key).alias("name"))
                   .agg(F.sum("weight").alias("weight")))
        user_total = Window.partitionBy("user_id")
        ranked = (per_key.withColumn("share", F.col("weight") / F.sum("weight").over(user_total))
                  .withColumn("rank", F.row_number().over(user_total.orderBy(F.desc("weight"), F.asc("name"))))
                  .filter(F.col("rank") <= k))
        top = F.sort_array(F.collect_list(F.struct("rank", "name", "share", "weight")))
        return (ranked.groupBy("user_id").agg(top.alias("_top"))
                .select("user_id",
                        F.transform("_top", lambda x: F.struct(x["name"].alias("name"), x["share"].alias("share")))
                        .alias(f"top_{plural}"),
                        F.col("_top")[0]["name"].alias(f"top_{prefix}"),
                        F.col("_top")[0]["share"].alias(f"top_{prefix}_share"),
                        F.col("_top")[0]["weight"].alias(f"top_{prefix}_weight")))
    return apply


def affinity_features(k: int) -> Callable[[DataFrame], DataFrame]:
    """Top-k category and brand affinity from weighted interactions."""
    def apply(weighted: DataFrame) -> DataFrame:
        categories = weighted.transform(top_k_shares("category", k, "category", "categories"))
        brands = weighted.transform(top_k_shares("brand", k, "brand", "brands")).drop("top_brand_weight")
        return categories.join(brands, "user_id", "full")
    return apply


def paid_lines(tx: DataFrame) -> DataFrame:
    """Transaction lines with a known price: the columns of ``tx`` plus ``unit_price`` (amount / quantity)."""
    return (tx.filter(F.col("amount").isNotNull() & (F.col("quantity") > 0))
            .withColumn("unit_price", F.col("amount") / F.col("quantity")))


def price_bands(quantiles: list[float], items: DataFrame) -> Callable[[DataFrame], DataFrame]:
    """One row per line paid (user_id, unit_price) -> user_id, median_unit_price, price_band."""
    low_q, high_q = quantiles

    def apply(paid: DataFrame) -> DataFrame:
        bounds = items.agg(F.percentile("price", low_q).alias("_low"), F.percentile("price", high_q).alias("_high"))
        medians = paid.groupBy("user_id").agg(F.median("unit_price").alias("median_unit_price"))
        # A catalogue without prices has no quantiles, and then no band (rather than "high" for everyone).
        band = (F.when(F.col("_high").isNull(), F.lit(None).cast("string"))
                .when(F.col("median_unit_price") < F.col("_low"), "low")
                .when(F.col("median_unit_price") < F.col("_high"), "mid").otherwise("high"))
        return (medians.crossJoin(F.broadcast(bounds)).withColumn("price_band", band)
                .select("user_id", "median_unit_price", "price_band"))
    return apply


def interaction_day_state(browse: DataFrame, tx: DataFrame, zone: str) -> DataFrame:
    """browse and transactions -> one ``INTERACTION_DAY_STATE`` row per (user, source, dt, day, item, kind)."""
    return (interaction_kinds(browse, tx).withColumn("day", local_day("ts", zone))
            .groupBy("user_id", "source", "dt", "day", "item_id", "kind").agg(F.count("*").alias("events"))
            .select(*INTERACTION_DAY_STATE.fieldNames()))


def interactions_from_state(weights: dict[str, float], as_of: datetime, zone: str, items: DataFrame
                            ) -> Callable[[DataFrame], DataFrame]:
    """``INTERACTION_DAY_STATE`` tiles -> per (user, item) before ``as_of``: the summed weight of its events (browse
    events by type, purchases as ``buy``; kinds without a weight count for nothing), with the item's category
    and brand. ``affinity_features`` and ``weighted_item_means`` read it.
    """
    today = local_midnight_date(as_of, zone)

    def apply(state: DataFrame) -> DataFrame:
        return (state.filter(F.col("day") < F.lit(today))
                .withColumn("weight", kind_weight(weights) * F.col("events"))
                .filter(F.col("weight") > 0)
                .groupBy("user_id", "item_id").agg(F.sum("weight").alias("weight"))
                .join(items.select("item_id", "category", "brand"), "item_id", "left"))
    return apply


def price_day_state(zone: str) -> Callable[[DataFrame], DataFrame]:
    """transactions -> one ``PRICE_DAY_STATE`` row per (user, dt, day, unit price paid), with its lines."""
    def apply(tx: DataFrame) -> DataFrame:
        return (paid_lines(tx).withColumn("day", local_day("ts", zone))
                .groupBy("user_id", "dt", "day", "unit_price")
                .agg(F.count("*").alias("lines"))
                .select(*PRICE_DAY_STATE.fieldNames()))
    return apply


def price_from_state(quantiles: list[float], as_of: datetime, zone: str, items: DataFrame) -> Callable[[DataFrame], DataFrame]:
    """``PRICE_DAY_STATE`` tiles -> per user: the median unit price paid before ``as_of`` (over the multiset of
    prices, exact), banded low/mid/high by the catalogue's price quantiles."""
    today = local_midnight_date(as_of, zone)

    def apply(state: DataFrame) -> DataFrame:
        paid = state.filter(F.col("day") < F.lit(today)).select(
            "user_id", F.explode(F.array_repeat("unit_price", F.col("lines").cast("int"))).alias("unit_price"))
        return paid.transform(price_bands(quantiles, items))
    return apply
