"""Texts to embed, and per-user vectors built from their embeddings."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Iterator

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from jobs.features.affinity import interaction_kinds, kind_weight
from jobs.features.common import SECONDS_PER_DAY, before, within_days

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


VECTOR_SCHEMA = "user_id string, {name} array<float>"
TEXT_VECTORS_SCHEMA = "user_id string, text_vector array<float>, recent_text_vector array<float>"


def _weighted_sums(owners: np.ndarray, columns: np.ndarray, weights: np.ndarray, n_owners: int,
                   vectors: np.ndarray) -> np.ndarray:
    """float64 [n_owners, dim]: per owner, the sum of ``weights[i] * vectors[columns[i]]`` over its rows.

    One sparse product instead of a Python loop per owner. Within an owner the rows are summed in the
    order given (a CSR row keeps its input order), so callers sort rows first and the result does not
    depend on how Spark delivered them.
    """
    matrix = csr_matrix((weights, (owners, columns)), shape=(n_owners, len(vectors)))
    return np.asarray(matrix @ vectors)


def _partition_rows(batches: Iterator[pd.DataFrame], order: list[str]
                    ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray] | None:
    """A partition's rows sorted by ``order``, its distinct users, and each row's index into them (None if empty)."""
    frames = [b for b in batches if len(b)]
    if not frames:
        return None
    rows = pd.concat(frames, ignore_index=True).sort_values(order, kind="stable")
    users, owners = np.unique(rows["user_id"].to_numpy(dtype=object), return_inverse=True)
    return rows, users, owners


def _text_means(half_life_days: float) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """pandas: a partition's (user_id, ts, text_sha256, recent, embedding) rows -> per user the recency-weighted
    mean and the mean of the recent rows (``TEXT_VECTORS_SCHEMA``).

    Rows are partitioned by user, so every user is complete within one partition; each user's rows are
    summed in (ts, text_sha256) order. A text's weight is counted from the user's newest text, not from
    as_of: the mean is the same (the ratio of the weights is), and it does not change while as_of moves
    and the texts stay, so a daily step keeps the vectors of users who wrote nothing new.
    """
    def apply(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        found = _partition_rows(batches, ["user_id", "ts", "text_sha256"])
        if found is None:
            return
        rows, users, owners = found
        vectors = np.stack(rows["embedding"].to_numpy()).astype(np.float64)
        newest = rows.groupby("user_id", sort=False)["ts"].transform("max")
        age_days = (newest - rows["ts"]).dt.total_seconds().to_numpy(dtype=np.float64) / SECONDS_PER_DAY
        weights = np.power(0.5, age_days / half_life_days)
        recent = rows["recent"].to_numpy(dtype=bool)
        at = np.arange(len(rows))
        means = (_weighted_sums(owners, at, weights, len(users), vectors)
                 / np.bincount(owners, weights=weights, minlength=len(users))[:, None])
        recent_n = np.bincount(owners[recent], minlength=len(users))
        recent_sums = _weighted_sums(owners[recent], at[recent], np.ones(int(recent.sum())), len(users), vectors)
        recent_means = recent_sums / np.maximum(recent_n, 1)[:, None]
        yield pd.DataFrame({"user_id": users, "text_vector": list(means.astype(np.float32)),
                            "recent_text_vector": [m.astype(np.float32) if n else None
                                                   for m, n in zip(recent_means, recent_n)]})
    return apply


@dataclass(frozen=True)
class VectorLookup:
    """Vectors by key (item_id), small enough to ship to every worker (the catalogue's titles)."""

    keys: dict[str, int]
    matrix: np.ndarray  # float32 [len(keys), dim]

    @classmethod
    def from_rows(cls, rows: list[tuple[str, list[float]]]) -> "VectorLookup":
        keys = {key: i for i, (key, _) in enumerate(rows)}
        dim = len(rows[0][1]) if rows else 0
        matrix = np.asarray([v for _, v in rows], dtype=np.float32).reshape(len(rows), dim)
        return cls(keys, matrix)


def _sum_per_user(name: str, lookup: VectorLookup):
    """pandas: a partition's (user_id, item_id, weight) rows -> each user's weighted mean item vector.

    Rows are partitioned by user, so every user is complete within one partition.
    """
    def apply(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        # Items without a title vector count for no one; the rest sum in a fixed order, so the float32
        # result does not depend on how rows arrived.
        found = _partition_rows((b[b["item_id"].isin(lookup.keys)] for b in batches), ["user_id", "item_id"])
        if found is None:
            return
        rows, users, owners = found
        index = rows["item_id"].map(lookup.keys).to_numpy(dtype=np.int64)
        weights = rows["weight"].to_numpy(dtype=np.float64)
        sums = _weighted_sums(owners, index, weights, len(users), lookup.matrix.astype(np.float64))
        means = (sums / np.bincount(owners, weights=weights)[:, None]).astype(np.float32)
        yield pd.DataFrame({"user_id": users, name: list(means)})
    return apply


def text_vectors(as_of: datetime, half_life_days: float, recent_days: int, zone: str,
                 embeddings: DataFrame) -> Callable[[DataFrame], DataFrame]:
    """Per user, from their reviews and comments before ``as_of``, in one pass over the texts:

    - ``text_vector``: the recency-weighted mean embedding; a text written ``a`` days before ``as_of``
      weighs 0.5 ** (a / half_life_days);
    - ``recent_text_vector``: the plain mean embedding of the last ``recent_days`` local days, null when
      there are none. It is kept beside the long-memory vector because a fresh signal (a comment
      saying the user is about to buy) is one text among many there; here it is one among a few.

    ``embeddings`` has text_sha256 and embedding. Users with no embedded text get no row.
    """
    def apply(social: DataFrame) -> DataFrame:
        return written_texts(social).transform(text_means(as_of, half_life_days, recent_days, zone, embeddings))
    return apply


def written_texts(social: DataFrame) -> DataFrame:
    """user_id, dt, ts, text_sha256: one row per review or comment with a usable text."""
    return (social.filter(F.col("kind").isin(*TEXT_KINDS)).transform(with_text_keys())
            .filter(F.col("text_sha256").isNotNull()).select("user_id", "dt", "ts", "text_sha256"))


def text_means(as_of: datetime, half_life_days: float, recent_days: int, zone: str,
               embeddings: DataFrame) -> Callable[[DataFrame], DataFrame]:
    """``written_texts`` rows -> user_id, text_vector, recent_text_vector (see ``text_vectors``)."""

    def apply(written: DataFrame) -> DataFrame:
        return (written.filter(before(as_of)).join(embeddings, "text_sha256")
                .select("user_id", "ts", "text_sha256", within_days(as_of, recent_days, zone).alias("recent"), "embedding")
                .repartition("user_id").mapInPandas(_text_means(half_life_days), TEXT_VECTORS_SCHEMA))
    return apply


def title_vectors(items: DataFrame, embeddings: DataFrame) -> DataFrame:
    """item_id, embedding of its normalised title."""
    return items.transform(with_text_keys("title")).join(embeddings, "text_sha256").select("item_id", "embedding")


def interest_vectors(weights: dict[str, float], as_of: datetime,
                     titles: VectorLookup) -> Callable[[DataFrame, DataFrame], DataFrame]:
    """Per user: the weighted mean title embedding of items they viewed, carted or bought.

    Weights per event kind come from config (purchases count as ``buy``); an item's weight is the
    sum over the user's events on it. ``titles`` maps item_id to its title's embedding.
    """
    def apply(browse: DataFrame, tx: DataFrame) -> DataFrame:
        events = interaction_kinds(browse.filter(before(as_of)), tx.filter(before(as_of)))
        per_item = (events.withColumn("w", kind_weight(weights)).filter(F.col("w") > 0)
                    .groupBy("user_id", "item_id").agg(F.sum("w").alias("weight")))
        return per_item.transform(weighted_title_means(titles))
    return apply


def weighted_title_means(titles: VectorLookup) -> Callable[[DataFrame], DataFrame]:
    """(user_id, item_id, weight) per item -> user_id, interest_vector (the weighted mean of the titles' vectors)."""
    def apply(per_item: DataFrame) -> DataFrame:
        return (per_item.select("user_id", "item_id", "weight").repartition("user_id")
                .mapInPandas(_sum_per_user("interest_vector", titles), VECTOR_SCHEMA.format(name="interest_vector")))
    return apply
