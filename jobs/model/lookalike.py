"""Lookalike audiences: the users nearest to a seed set by embedding, by blockwise exact cosine search."""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F


class AudienceRefused(ValueError):
    """The request would export an audience below the k-anonymity floor, or has no usable seeds."""


def check_audience_size(n: int, floor: int, what: str = "audience") -> None:
    if n < floor:
        raise AudienceRefused(f"{what} of {n} users is below the k-anonymity floor of {floor} "
                              f"(privacy.k_anonymity_floor); ask for at least {floor}")


def seed_centroid(profiles: DataFrame, seeds: list[str]) -> np.ndarray:
    """The mean of the seeds' L2-normalised embeddings (seeds without an embedding are ignored)."""
    rows = profiles.filter(F.col("user_id").isin(seeds) & F.col("user_embedding").isNotNull()).select(
        "user_embedding").collect()
    if not rows:
        raise AudienceRefused(f"none of the {len(seeds)} seed users has a profile with an embedding")
    vectors = np.array([r[0] for r in rows], dtype=np.float64)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True).clip(min=1e-12)
    return vectors.mean(axis=0)


def lookalikes(seeds: list[str], n: int, floor: int) -> Callable[[DataFrame], DataFrame]:
    """profiles -> the ``n`` non-seed users most similar (cosine) to the seeds' centroid: user_id, similarity.

    Each partition scores its block of users against the centroid (exact, no index to build);
    Spark keeps the top n. Refuses audiences smaller than the k-anonymity floor.
    """
    check_audience_size(n, floor)

    def apply(profiles: DataFrame) -> DataFrame:
        centroid = seed_centroid(profiles, seeds)
        centroid = centroid / max(np.linalg.norm(centroid), 1e-12)

        def block(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
            for frame in frames:
                if frame.empty:
                    continue
                m = np.stack(frame["user_embedding"].to_numpy()).astype(np.float64)
                sims = (m @ centroid) / np.linalg.norm(m, axis=1).clip(min=1e-12)
                yield pd.DataFrame({"user_id": frame["user_id"].to_numpy(), "similarity": sims})

        candidates = profiles.filter(F.col("user_embedding").isNotNull() & ~F.col("user_id").isin(seeds))
        return (candidates.select("user_id", "user_embedding").mapInPandas(block, "user_id string, similarity double")
                .orderBy(F.desc("similarity"), "user_id").limit(n))
    return apply
