"""Category and brand affinity (top-k with shares) and price band."""
from __future__ import annotations

from datetime import datetime
from typing import Callable

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from jobs.features.common import before


def interactions(weights: dict[str, float], as_of: datetime, items: DataFrame) -> Callable[[DataFrame, DataFrame], DataFrame]:
    """Weighted user-item interactions: browse events by type, plus purchases as ``buy``.

    Returns a function of (browse, transactions) giving user_id, item_id, weight, category, brand.
    """
    def apply(browse: DataFrame, tx: DataFrame) -> DataFrame:
        events = interaction_kinds(browse.filter(before(as_of)), tx.filter(before(as_of)))
        return (events.withColumn("weight", kind_weight(weights))
                .filter(F.col("weight") > 0)
                .join(items.select("item_id", "category", "brand"), "item_id", "left"))
    return apply


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


def price_band_features(quantiles: list[float], as_of: datetime, items: DataFrame) -> Callable[[DataFrame], DataFrame]:
    """Per user: median unit price paid, banded low/mid/high by the catalogue's price quantiles."""
    def apply(tx: DataFrame) -> DataFrame:
        return paid_lines(tx.filter(before(as_of))).transform(price_bands(quantiles, items))
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
