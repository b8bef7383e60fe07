"""Segments: KMeans (MLlib) on user embeddings, k picked by silhouette, each described against the population."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Callable

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.clustering import KMeans
from pyspark.ml.evaluation import ClusteringEvaluator
from pyspark.ml.feature import Normalizer, StandardScaler
from pyspark.ml.functions import array_to_vector
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.together import run_together
from schemas.model import SEGMENTS

# Interpretable profile columns a segment is described by (z-score of its mean vs the population).
DESCRIBED_FEATURES = ("frequency", "monetary", "avg_order_value", "median_unit_price", "views", "carts",
                      "view_to_cart_rate", "cart_to_buy_rate", "sessions", "active_days", "days_since_last_event",
                      "review_count", "mean_rating", "night_share", "weekend_share", "tenure_days",
                      "purchase_propensity", "churn_risk")
SCORE_COLUMNS = ("purchase_propensity", "churn_risk")  # describe a segment, but are no input a tag can quote


@dataclass(frozen=True)
class SegmentModel:
    pipeline: PipelineModel
    k: int
    silhouettes: dict[int, float]
    # segment_id -> the inputs that most set it apart from the population: what a segment tag's reason quotes.
    marks: dict[int, tuple[str, ...]] = field(default_factory=dict)


def segment_marks(segments: DataFrame, top: int) -> dict[int, tuple[str, ...]]:
    """The segments table (one row per segment) -> per segment, its ``top`` most distinguishing inputs."""
    return {r["segment_id"]: tuple(f["name"] for f in r["input_features"][:top])
            for r in segments.select("segment_id", F.filter("distinguishing_features", lambda f: ~f["name"].isin(
                *SCORE_COLUMNS)).alias("input_features")).collect()}


def _vectors(df: DataFrame) -> DataFrame:
    return df.filter(F.col("user_embedding").isNotNull()).withColumn("raw", array_to_vector("user_embedding"))


def _pipeline(k: int, seed: int) -> Pipeline:
    """Standardise each embedding dimension, project onto the unit sphere, then KMeans (spherical k-means).

    Without the standardisation, the few directions the score heads read dominate the distances
    and clusters split users by score level rather than by the kind of user they are.
    """
    return Pipeline(stages=[StandardScaler(inputCol="raw", outputCol="scaled", withMean=True),
                            Normalizer(inputCol="scaled", outputCol="features", p=2.0),
                            KMeans(k=k, seed=seed, featuresCol="features", predictionCol="segment_id")])


def _silhouette(sampled: DataFrame, k: int, seed: int) -> float:
    """The silhouette of ``sampled`` (user_id, raw) clustered into ``k`` segments by ``_pipeline``."""
    evaluator = ClusteringEvaluator(featuresCol="features", predictionCol="segment_id")
    return float(evaluator.evaluate(_pipeline(k, seed).fit(sampled).transform(sampled)))


def fit_segments(scored: DataFrame, k_min: int, k_max: int, sample: int, seed: int) -> SegmentModel:
    """Pick k in [k_min, k_max] by silhouette on a sample, then fit KMeans with it on every user."""
    vectors = _vectors(scored).select("user_id", "raw").cache()
    total = vectors.count()
    fraction = min(1.0, sample / max(total, 1))
    sampled = vectors.sample(fraction=fraction, seed=seed).cache() if fraction < 1 else vectors
    ks = range(k_min, min(k_max, max(sampled.count() - 1, k_min)) + 1)
    # Every k fitted at once (jobs/together.py): a k-means iteration on a sample is a job of millisecond tasks.
    found = run_together(scored.sparkSession, *(partial(_silhouette, sampled, k, seed) for k in ks))
    silhouettes = dict(zip(ks, found))
    best = max(silhouettes, key=lambda k: (silhouettes[k], -k))
    pipeline = _pipeline(best, seed).fit(vectors)
    if sampled is not vectors:
        sampled.unpersist()
    vectors.unpersist()
    return SegmentModel(pipeline, best, silhouettes)


def assign_segments(model: SegmentModel) -> Callable[[DataFrame], DataFrame]:
    """Add ``segment_id`` (null for users without an embedding)."""
    def apply(profiles: DataFrame) -> DataFrame:
        assigned = model.pipeline.transform(_vectors(profiles).select("user_id", "raw")).select(
            "user_id", F.col("segment_id").cast("int").alias("_segment"))
        return (profiles.drop("segment_id").join(assigned, "user_id", "left")
                .withColumnRenamed("_segment", "segment_id"))
    return apply


def _fmt(name: str, z: float) -> str:
    return f"{'high' if z > 0 else 'low'} {name} ({z:+.1f} sd)"


def describe_segments(model_run_id: str, as_of: datetime, silhouette: float | None, top_features: int,
                      ) -> Callable[[DataFrame], DataFrame]:
    """scored profiles with segment_id -> one row per segment: size, share, distinguishing features, categories."""
    def apply(profiles: DataFrame) -> DataFrame:
        p = profiles.filter(F.col("segment_id").isNotNull()).withColumn(
            "tenure_days", (F.col("as_of").cast("double") - F.col("signup_ts").cast("double")) / 86_400.0)
        features = [c for c in DESCRIBED_FEATURES if c in p.columns]
        population = p.agg(F.count("*").alias("n"), *[F.avg(c).alias(f"m_{c}") for c in features],
                           *[F.stddev_pop(c).alias(f"s_{c}") for c in features]).first()
        per_segment = p.groupBy("segment_id").agg(F.count("*").alias("size"), *[F.avg(c).alias(c) for c in features],
                                                  F.avg("purchase_propensity").alias("mean_propensity"),
                                                  F.avg("churn_risk").alias("mean_churn_risk")).collect()
        cat_counts = p.groupBy("segment_id", "top_category").count().collect()
        cat_total = {}
        for r in cat_counts:
            cat_total[r["top_category"]] = cat_total.get(r["top_category"], 0) + r["count"]
        rows = []
        n = population["n"]
        for seg in sorted(per_segment, key=lambda r: r["segment_id"]):
            z = []
            for c in features:
                sd, value = population[f"s_{c}"], seg[c]
                if sd and value is not None and population[f"m_{c}"] is not None:
                    z.append((c, (value - population[f"m_{c}"]) / sd))
            z = sorted(z, key=lambda t: -abs(t[1]))
            # The description's top features; the table keeps the inputs' too, for the segment tags' reasons.
            z = z[:top_features] + [t for t in z[top_features:] if t[0] not in SCORE_COLUMNS][:top_features]
            lifts = []
            for r in cat_counts:
                if r["segment_id"] == seg["segment_id"] and r["top_category"] is not None:
                    lifts.append((r["top_category"], (r["count"] / seg["size"]) / (cat_total[r["top_category"]] / n)))
            lifts = sorted((t for t in lifts if t[1] > 1.0), key=lambda t: -t[1])[:3]
            shown = ", ".join(_fmt(c, v) for c, v in z[:top_features])
            text = (f"{seg['size']:,} users ({seg['size'] / n:.0%}): " + shown
                    + ("; top categories " + ", ".join(f"{c} (x{lift:.1f})" for c, lift in lifts) if lifts else ""))
            rows.append((seg["segment_id"], seg["size"], seg["size"] / n, text, [(c, float(v)) for c, v in z],
                         [(c, float(v)) for c, v in lifts], seg["mean_propensity"], seg["mean_churn_risk"],
                         silhouette, model_run_id, as_of))
        return profiles.sparkSession.createDataFrame(rows, SEGMENTS)
    return apply
