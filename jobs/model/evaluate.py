"""Honest evaluation on held-out users: the model against an RFM rule and an MLlib baseline.

All three methods are scored on the same held-out users of the same training snapshot, in the
same run. The baselines see behavioural features only; the model also sees text and interest.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.feature import StandardScaler
from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from sklearn.metrics import average_precision_score, roc_auc_score


@dataclass(frozen=True)
class HeldOut:
    """Held-out truth and one method's scores, row-aligned."""

    bought: np.ndarray
    churned: np.ndarray
    categories: np.ndarray       # users x categories, multi-hot
    propensity: np.ndarray
    churn: np.ndarray
    category_scores: np.ndarray  # users x categories


def recall_at_k(truth: np.ndarray, scores: np.ndarray, k: int) -> float | None:
    """Mean over users with at least one true category of |top-k ∩ true| / |true|."""
    has = truth.sum(axis=1) > 0
    if not has.any() or truth.shape[1] == 0:
        return None
    top = np.argsort(-scores[has], axis=1, kind="stable")[:, :k]
    hits = np.take_along_axis(truth[has], top, axis=1).sum(axis=1)
    return float(np.mean(hits / truth[has].sum(axis=1)))


def evaluation_sample(users: DataFrame, limit: int, seed: int) -> DataFrame:
    """At most about ``limit`` of ``users``: the metrics are computed on the driver, so beyond that a stable
    hashed sample of them, not all."""
    count = users.count()
    if count <= limit:
        return users
    share = int(1_000_000 * limit / count)
    return users.filter(F.abs(F.xxhash64(F.lit(seed + 1), "user_id")) % 1_000_000 < share)


def _binary(metric, y: np.ndarray, s: np.ndarray) -> float | None:
    return float(metric(y, s)) if 0 < y.sum() < len(y) else None  # undefined with one class only


def brier(y: np.ndarray, p: np.ndarray) -> float | None:
    """Mean squared error of a probability (undefined for a score that is not one, such as the RFM rule's)."""
    return float(np.mean((p - y) ** 2)) if len(y) and p.min() >= 0 and p.max() <= 1 else None


def reliability(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[tuple[float, float, int]]:
    """The reliability curve: per tenth of predicted probability with users in it, (mean predicted, share
    that did it, users)."""
    which = np.minimum((p * bins).astype(int), bins - 1)
    return [(float(p[which == b].mean()), float(y[which == b].mean()), int((which == b).sum()))
            for b in range(bins) if (which == b).any()]


def metrics(h: HeldOut, k: int = 10) -> dict[str, float | None]:
    return {
        "propensity_roc_auc": _binary(roc_auc_score, h.bought, h.propensity),
        "propensity_pr_auc": _binary(average_precision_score, h.bought, h.propensity),
        "propensity_brier": brier(h.bought, h.propensity),
        "churn_roc_auc": _binary(roc_auc_score, h.churned, h.churn),
        "churn_pr_auc": _binary(average_precision_score, h.churned, h.churn),
        "churn_brier": brier(h.churned, h.churn),
        f"category_recall_at_{k}": recall_at_k(h.categories, h.category_scores, k),
    }


def intervals(h: HeldOut, draws: int, seed: int, k: int = 10) -> dict[str, tuple[float | None, float | None]]:
    """Each metric's 95% bootstrap interval over users: ``draws`` resamples of the users, with replacement."""
    rng = np.random.default_rng(seed)
    n = len(h.bought)
    found: dict[str, list[float]] = {}
    for _ in range(draws if n else 0):
        i = rng.integers(0, n, n)
        resample = HeldOut(h.bought[i], h.churned[i], h.categories[i], h.propensity[i], h.churn[i],
                           h.category_scores[i])
        for name, value in metrics(resample, k).items():
            if value is not None:
                found.setdefault(name, []).append(value)
    return {name: (float(np.percentile(found[name], 2.5)), float(np.percentile(found[name], 97.5)))
            if found.get(name) else (None, None) for name in metrics(h, k)}


def _logistic(train: DataFrame, test: DataFrame, label: str, **options) -> DataFrame:
    """The held-out users' class probabilities (``p``: an array) from one MLlib logistic regression."""
    # L-BFGS from a zero start: deterministic, so no seed.
    lr = LogisticRegression(featuresCol="scaled", labelCol=label, maxIter=50, regParam=0.001, **options)
    return lr.fit(train).transform(test).select("user_id", vector_to_array("probability").alias("p"))


def _category_labels(n_categories: int) -> Callable[[DataFrame], DataFrame]:
    """Training rows -> one row per (user, category bought in the horizon), ``_category`` its index, marked as
    one of ``n_categories`` classes so the model has a probability for every category, bought or not."""
    def apply(train: DataFrame) -> DataFrame:
        bought = F.posexplode(F.col("categories")).alias("_category", "_bought")
        classes = {"ml_attr": {"type": "nominal", "num_vals": n_categories}}
        return (train.select("scaled", bought).filter(F.col("_bought") > 0)
                .select("scaled", F.col("_category").cast("double").alias("_category", metadata=classes)))
    return apply


def _standardised(train: DataFrame, test: DataFrame) -> tuple[DataFrame, DataFrame]:
    """``scaled``: the behaviour vector standardised by the training rows. The training rows are
    cached (every fit reads them once per iteration); the scored rows are read once, so they are not."""
    scaler = StandardScaler(inputCol="features", outputCol="scaled", withMean=True).fit(
        train.withColumn("features", array_to_vector("behaviour")))

    def prepared(df: DataFrame, labelled: bool) -> DataFrame:
        df = scaler.transform(df.withColumn("features", array_to_vector("behaviour")))
        return df.cache() if labelled else df
    return prepared(train, True), prepared(test, False)


def category_logistic_scores(train: DataFrame, test: DataFrame, n_categories: int) -> DataFrame:
    """One multinomial logistic regression (Spark MLlib) over the categories users bought, on the standardised
    behavioural features: one fit ranks every category, however many. user_id, category_scores.

    ``train``: behaviour and the horizon's multi-hot ``categories``; ``test``: user_id, behaviour.
    """
    train, test = _standardised(train, test)
    bought = train.transform(_category_labels(n_categories)).cache()
    if n_categories and bought.limit(1).count():
        categories = _logistic(bought, test, "_category", family="multinomial").select(
            "user_id", F.col("p").cast("array<double>").alias("category_scores"))
    else:  # no category was bought in the training horizon: nothing to rank by
        categories = test.select("user_id", F.array_repeat(F.lit(0.0), n_categories).cast("array<double>")
                                 .alias("category_scores"))
    for frame_i in (train, bought):
        frame_i.unpersist()
    return categories


def held_out(truth: DataFrame, scores: DataFrame, n_categories: int) -> HeldOut:
    """Collect held-out truth joined with one method's scores (user_id, propensity, churn, category_scores)."""
    rows = truth.join(scores, "user_id").orderBy("user_id").collect()
    width = max(n_categories, 0)
    # The network's category head keeps one placeholder output when there are no categories: cut to the width.
    matrix = lambda key: np.array([r[key][:width] for r in rows], dtype=np.float64).reshape(len(rows), width)  # noqa: E731
    return HeldOut(
        bought=np.array([r["bought"] for r in rows], dtype=np.float64),
        churned=np.array([r["churned"] for r in rows], dtype=np.float64),
        categories=matrix("categories"),
        propensity=np.array([r["propensity"] for r in rows], dtype=np.float64),
        churn=np.array([r["churn"] for r in rows], dtype=np.float64),
        category_scores=matrix("category_scores"),
    )
