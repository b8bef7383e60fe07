"""Category and brand affinity (top-k with shares) and price band: the ``state_interactions`` and
``state_prices`` tiles and their folds."""
from __future__ import annotations

from datetime import date, datetime
from functools import reduce
from typing import Callable

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from jobs.clock import local_day
from jobs.features.common import FIXED_POINT, unsettled
from schemas.state import AFFINITY_SUMMARY, INTERACTION_DAY_STATE, PRICE_DAY_STATE, PRICE_SUMMARY


def interaction_kinds(browse: DataFrame, tx: DataFrame) -> DataFrame:
    """user_id, item_id, kind (the browse event type, or ``buy`` per transaction line), source, ts, dt."""
    return (browse.select("user_id", "item_id", F.col("event_type").alias("kind"),
                          F.lit("browse").alias("source"), "ts", "dt")
            .unionByName(tx.select("user_id", "item_id", F.lit("buy").alias("kind"),
                                   F.lit("transaction").alias("source"), "ts", "dt")))


def fixed_kind_weight(weights: dict[str, float]) -> F.Column:
    """The configured weight of the row's ``kind`` in ``FIXED_POINT`` units, a whole number; 0 for kinds without one."""
    weight_of = F.create_map(*[x for k, v in sorted(weights.items())
                               for x in (F.lit(k), F.lit(round(float(v) * FIXED_POINT)).cast("long"))])
    return F.coalesce(weight_of[F.col("kind")], F.lit(0).cast("long"))


AFFINITY_FACETS = ("category", "brand")


def top_k_shares(k: int, prefix: str, plural: str) -> Callable[[DataFrame], DataFrame]:
    """(user_id, name, weight) rows, weights in ``FIXED_POINT`` units -> per user: the k heaviest names with their
    share of the user's weight.

    Output columns: ``top_{plural}`` (array of {name, share}, heaviest first, ties by name), ``top_{prefix}``,
    ``top_{prefix}_share`` and ``top_{prefix}_weight`` (in the configured weights' units). Null names are ignored.
    The weights are whole numbers, so their sums, and the shares, do not depend on the order rows arrive in.
    """
    def apply(weighted: DataFrame) -> DataFrame:
        per_key = (weighted.filter(F.col("name").isNotNull()).groupBy("user_id", "name")
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
                        (F.col("_top")[0]["weight"] / F.lit(FIXED_POINT)).alias(f"top_{prefix}_weight")))
    return apply


def affinity_weights(weights: dict[str, float], items: DataFrame) -> Callable[[DataFrame], DataFrame]:
    """``INTERACTION_DAY_STATE`` tiles -> one ``AFFINITY_SUMMARY`` row per (user, facet, name): the weight of the
    user's events on items of that category or brand, in ``FIXED_POINT`` units (browse events by type, purchases as ``buy``; kinds without a weight count for nothing).
    Whole numbers, so the settled rows and the recent tiles' merge exactly."""
    def apply(tiles: DataFrame) -> DataFrame:
        per_item = (tiles.withColumn("weight", fixed_kind_weight(weights) * F.col("events"))
                    .filter(F.col("weight") > 0)
                    .groupBy("user_id", "item_id").agg(F.sum("weight").alias("weight"))
                    .join(items.select("item_id", *AFFINITY_FACETS), "item_id"))
        facets = [per_item.select("user_id", F.lit(f).alias("facet"), F.col(f).alias("name"), "weight")
                  for f in AFFINITY_FACETS]
        return reduce(DataFrame.unionByName, facets).filter(F.col("name").isNotNull()).transform(merged_affinity)
    return apply


def merged_affinity(rows: DataFrame) -> DataFrame:
    """``AFFINITY_SUMMARY`` rows -> one per (user, facet, name), their weights added."""
    return (rows.groupBy("user_id", "facet", "name").agg(F.sum("weight").alias("weight"))
            .select(*AFFINITY_SUMMARY.fieldNames()))


def affinity_from_state(weights: dict[str, float], k: int, as_of: datetime, zone: str, items: DataFrame,
                        settled_before: date | None) -> Callable[[DataFrame, DataFrame], DataFrame]:
    """(``INTERACTION_DAY_STATE`` tiles, ``SETTLED_AFFINITY`` settled before ``settled_before``) -> per user, from
    their events before ``as_of``: the top-k categories and brands by weight, with shares (``top_k_shares``). The
    tiles read are those of the partitions from ``settled_before`` on; the settled rows stand for the others."""
    def apply(tiles: DataFrame, settled: DataFrame) -> DataFrame:
        recent = tiles.transform(unsettled(as_of, zone, settled_before)).transform(affinity_weights(weights, items))
        weighted = settled.select(*AFFINITY_SUMMARY.fieldNames()).unionByName(recent)
        facet = lambda name: weighted.filter(F.col("facet") == F.lit(name))  # noqa: E731
        categories = facet("category").transform(top_k_shares(k, "category", "categories"))
        brands = facet("brand").transform(top_k_shares(k, "brand", "brands")).drop("top_brand_weight")
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


def price_day_state(zone: str) -> Callable[[DataFrame], DataFrame]:
    """transactions -> one ``PRICE_DAY_STATE`` row per (user, dt, day, unit price paid), with its lines."""
    def apply(tx: DataFrame) -> DataFrame:
        return (paid_lines(tx).withColumn("day", local_day("ts", zone))
                .groupBy("user_id", "dt", "day", "unit_price")
                .agg(F.count("*").alias("lines"))
                .select(*PRICE_DAY_STATE.fieldNames()))
    return apply


def price_lines(tiles: DataFrame) -> DataFrame:
    """``PRICE_DAY_STATE`` tiles, or ``PRICE_SUMMARY`` rows -> one ``PRICE_SUMMARY`` row per (user, unit price): the
    lines paid at it. Summarises the tiles and merges summaries alike (a multiset's counts add)."""
    return tiles.groupBy("user_id", "unit_price").agg(F.sum("lines").alias("lines")).select(*PRICE_SUMMARY.fieldNames())


def price_from_state(quantiles: list[float], as_of: datetime, zone: str, items: DataFrame,
                     settled_before: date | None
                     ) -> Callable[[DataFrame, DataFrame], DataFrame]:
    """(``PRICE_DAY_STATE`` tiles, ``SETTLED_PRICES`` settled before ``settled_before``) -> per user: the median unit
    price paid before ``as_of`` (over the multiset of prices, exact), banded low/mid/high by the catalogue's price
    quantiles."""
    def apply(tiles: DataFrame, settled: DataFrame) -> DataFrame:
        recent = tiles.transform(unsettled(as_of, zone, settled_before)).select(*PRICE_SUMMARY.fieldNames())
        paid = settled.select(*PRICE_SUMMARY.fieldNames()).unionByName(recent).select(
            "user_id", F.explode(F.array_repeat("unit_price", F.col("lines").cast("int"))).alias("unit_price"))
        return paid.transform(price_bands(quantiles, items))
    return apply
