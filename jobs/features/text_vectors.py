"""Texts to embed, and per-user vectors built from their embeddings."""
from __future__ import annotations

from datetime import datetime
from typing import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from jobs.features.common import SECONDS_PER_DAY, before

TEXT_KINDS = ("review", "comment")


def normalized_text(column: str) -> Column:
    """Strip and collapse whitespace; null when nothing is left. Mirrors ``udfs.embeddings.normalize_text``."""
    cleaned = F.trim(F.regexp_replace(F.col(column), r"\s+", " "))
    return F.when(cleaned != "", cleaned)


def text_key(column: str) -> Column:
    """The cache key of a normalised text: its SHA-256."""
    return F.sha2(F.col(column), 256)


def with_text_keys(column: str = "text") -> Callable[[DataFrame], DataFrame]:
    """Add ``norm_text`` and ``text_sha256``; rows with no usable text get nulls."""
    def apply(df: DataFrame) -> DataFrame:
        return df.withColumn("norm_text", normalized_text(column)).withColumn("text_sha256", text_key("norm_text"))
    return apply


def texts_to_embed(social: DataFrame, items: DataFrame) -> DataFrame:
    """Every review, comment and item title, normalised and keyed: text_sha256, norm_text."""
    written = social.filter(F.col("kind").isin(*TEXT_KINDS)).select("text")
    titles = items.select(F.col("title").alias("text"))
    return (written.unionByName(titles).transform(with_text_keys())
            .filter(F.col("text_sha256").isNotNull()).select("text_sha256", "norm_text"))


def weighted_mean(weight: str, vector: str, out: str) -> Column:
    """Aggregate: sum(weight * vector) / sum(weight) over the group, null when the group has no vector."""
    pairs = F.filter(F.collect_list(F.struct(F.col(weight).alias("w"), F.col(vector).alias("v"))),
                     lambda p: p["v"].isNotNull() & (p["w"] > 0))
    zeros = F.transform(F.element_at(pairs, 1)["v"], lambda _: F.lit(0.0))
    total = F.aggregate(pairs, zeros, lambda acc, p: F.zip_with(acc, p["v"], lambda a, b: a + p["w"] * b))
    weight_sum = F.aggregate(pairs, F.lit(0.0), lambda acc, p: acc + p["w"])
    mean = F.transform(total, lambda a: (a / weight_sum).cast("float"))
    return F.when(F.size(pairs) > 0, mean).alias(out)


def text_vectors(as_of: datetime, half_life_days: float, embeddings: DataFrame) -> Callable[[DataFrame], DataFrame]:
    """Per user: the recency-weighted mean embedding of their reviews and comments.

    A text written ``a`` days before ``as_of`` weighs 0.5 ** (a / half_life_days).
    ``embeddings`` has text_sha256 and embedding.
    """
    def apply(social: DataFrame) -> DataFrame:
        age_days = (F.lit(as_of).cast("double") - F.col("ts").cast("double")) / SECONDS_PER_DAY
        written = (social.filter(before(as_of) & F.col("kind").isin(*TEXT_KINDS)).transform(with_text_keys())
                   .join(embeddings, "text_sha256")
                   .withColumn("weight", F.pow(F.lit(0.5), age_days / half_life_days)))
        return written.groupBy("user_id").agg(weighted_mean("weight", "embedding", "text_vector"))
    return apply


def interest_vectors(weights: dict[str, float], as_of: datetime, items: DataFrame,
                     embeddings: DataFrame) -> Callable[[DataFrame, DataFrame], DataFrame]:
    """Per user: the weighted mean title embedding of items they viewed, carted or bought.

    Weights per event kind come from config (purchases count as ``buy``); an item's weight is the
    sum over the user's events on it.
    """
    weight_of = F.create_map(*[x for k, v in sorted(weights.items()) for x in (F.lit(k), F.lit(float(v)))])
    titles = items.transform(with_text_keys("title")).join(embeddings, "text_sha256").select("item_id", "embedding")

    def apply(browse: DataFrame, tx: DataFrame) -> DataFrame:
        events = (browse.filter(before(as_of)).select("user_id", "item_id", F.col("event_type").alias("kind"))
                  .unionByName(tx.filter(before(as_of)).select("user_id", "item_id", F.lit("buy").alias("kind"))))
        per_item = (events.withColumn("w", F.coalesce(weight_of[F.col("kind")], F.lit(0.0))).filter(F.col("w") > 0)
                    .groupBy("user_id", "item_id").agg(F.sum("w").alias("weight")))
        return (per_item.join(titles, "item_id").groupBy("user_id")
                .agg(weighted_mean("weight", "embedding", "interest_vector")))
    return apply
