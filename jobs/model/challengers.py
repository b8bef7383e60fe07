"""Champion and challengers for the binary targets: the network, boosted trees and a logistic regression.

Each candidate is fitted by a well-kept library (the network by TorchDistributor, the trees by
``xgboost.spark``, the regression by Spark MLlib) and kept as a :class:`Scorer`: what it needs to score a
user's behaviour vector, and to say which inputs pushed that score (tree SHAP for the trees, exact linear
contributions for the regression, integrated gradients via Captum for the network). The published model
carries one scorer per target, so the full job, the daily step and serving all score with the same winner.
"""
from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.feature import StandardScaler
from pyspark.ml.functions import array_to_vector
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

# Binary target -> (label column in the snapshot, the validation metric its champion is chosen by).
BINARY_TARGETS = {"propensity": ("bought", "propensity_roc_auc"), "churn": ("churned", "churn_pr_auc")}
NETWORK, LOGISTIC, TREES = "network", "mllib", "gbt"
CANDIDATES = (NETWORK, LOGISTIC, TREES)
REFERENCE = "rfm_rule"  # the rule a team would write without a model: reported, never published


def reported(method: str, metric: str) -> bool:
    """Whether ``metric`` means something for ``method``: the trees rank no category, and the rule's scores
    are no probabilities (no Brier score)."""
    return not ((method == TREES and metric.startswith("category")) or (method == REFERENCE and metric.endswith("brier")))


@dataclass(frozen=True)
class Scorer:
    """One target's scorer: ``method``, its fitted parameters and a Platt calibration of its margin."""

    method: str
    params: bytes = b""            # mllib: npz of mean, std, coefficients, intercept; gbt: the booster (UBJSON)
    calibration: tuple[float, float] = (1.0, 0.0)  # p = sigmoid(a * margin + b)

    def margins(self, behaviour: np.ndarray, network_margin: np.ndarray) -> np.ndarray:
        """The uncalibrated log-odds per row (the network's comes from its own head)."""
        if self.method == NETWORK:
            return network_margin
        if self.method == LOGISTIC:
            p = self._linear()
            return _scaled(behaviour, p) @ p["coefficients"] + float(p["intercept"])
        import xgboost

        return self._booster().predict(xgboost.DMatrix(behaviour), output_margin=True).astype(np.float64)

    def probabilities(self, behaviour: np.ndarray, network_margin: np.ndarray) -> np.ndarray:
        a, b = self.calibration
        return 1.0 / (1.0 + np.exp(-(a * self.margins(behaviour, network_margin) + b)))

    def contributions(self, behaviour: np.ndarray, network_ig: Callable[[], np.ndarray]) -> np.ndarray:
        """Each behaviour input's push on the margin, per row, against the average training user."""
        if self.method == NETWORK:
            return network_ig()
        if self.method == LOGISTIC:
            p = self._linear()
            centred = _scaled(behaviour, p)  # already relative to the training mean
            return centred * p["coefficients"]
        import xgboost

        shap = self._booster().predict(xgboost.DMatrix(behaviour), pred_contribs=True)
        return shap[:, :-1].astype(np.float64)  # the last column is the bias (the average margin)

    def _linear(self) -> dict[str, np.ndarray]:
        return dict(np.load(io.BytesIO(self.params)))

    def _booster(self):
        import xgboost

        booster = xgboost.Booster()
        booster.load_model(bytearray(self.params))
        return booster


def _scaled(behaviour: np.ndarray, p: dict[str, np.ndarray]) -> np.ndarray:
    """MLlib's StandardScaler(withMean, withStd): a constant input (std 0) scales to 0."""
    std = p["std"]
    return np.where(std > 0, (behaviour - p["mean"]) / np.where(std > 0, std, 1.0), 0.0)


def fit_logistic(train: DataFrame, label: str) -> Scorer:
    """MLlib logistic regression of ``label`` on the standardised behaviour vector (L-BFGS from zero:
    deterministic)."""
    rows = train.select(array_to_vector("behaviour").alias("features"), F.col(label).cast("double").alias("label"))
    scaler = StandardScaler(inputCol="features", outputCol="scaled", withMean=True).fit(rows)
    scaled = scaler.transform(rows).cache()
    model = LogisticRegression(featuresCol="scaled", labelCol="label", maxIter=50, regParam=0.001).fit(scaled)
    scaled.unpersist()
    buffer = io.BytesIO()
    np.savez(buffer, mean=scaler.mean.toArray(), std=scaler.std.toArray(),
             coefficients=model.coefficients.toArray(), intercept=np.array(model.intercept))
    return Scorer(LOGISTIC, buffer.getvalue())


def fit_trees(train: DataFrame, label: str, seed: int) -> Scorer:
    """Gradient-boosted trees (``xgboost.spark``: one distributed fit) of ``label`` on the behaviour vector."""
    from xgboost.spark import SparkXGBClassifier

    # Quiet: its per-round training loss and parameter dumps would bury the job's own console lines.
    logging.getLogger("XGBoost-PySpark").setLevel(logging.WARNING)
    workers = max(1, train.sparkSession.sparkContext.defaultParallelism)
    trees = SparkXGBClassifier(features_col="behaviour", label_col=label, num_workers=workers, n_estimators=100,
                               max_depth=4, learning_rate=0.1, subsample=0.8, random_state=seed, verbosity=0,
                               verbose=False)
    model = trees.fit(train.withColumn(label, F.col(label).cast("double")))
    return Scorer(TREES, bytes(model.get_booster().save_raw("ubj")))


def fit_challengers(train: DataFrame, seed: int) -> dict[str, dict[str, Scorer]]:
    """target -> challenger -> fitted scorer, on the training rows (user_id, behaviour and the labels).
    A target with one class only in the training rows gets no challenger: there is nothing to rank by."""
    classes = train.agg(*[F.countDistinct(label).alias(target)
                          for target, (label, _) in BINARY_TARGETS.items()]).first()
    return {target: ({LOGISTIC: fit_logistic(train, label), TREES: fit_trees(train, label, seed)}
                     if classes[target] > 1 else {})
            for target, (label, _) in BINARY_TARGETS.items()}


def select_champions(validation: dict[str, dict[str, float | None]]) -> dict[str, str]:
    """target -> the candidate with the best validation metric; the network when no candidate has one.

    ``validation``: metric -> method -> value, measured out of time. A learned candidate that the RFM rule
    beats is still published when it is the best learned one (the rule is a reference, not a scorer), but
    no candidate is ever published over a challenger that beat it.
    """
    winners = {}
    for target, (_, metric) in BINARY_TARGETS.items():
        found = {m: v for m, v in validation.get(metric, {}).items() if m in CANDIDATES and v is not None}
        # Ties go to the simplest candidate: the regression, then the trees, then the network.
        order = (LOGISTIC, TREES, NETWORK)
        winners[target] = max(found, key=lambda m: (found[m], -order.index(m))) if found else NETWORK
    return winners


def platt(margins: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Platt scaling: the (a, b) of p = sigmoid(a * margin + b) that fit ``labels`` (scikit-learn, nearly
    unpenalised); the identity when the labels hold one class."""
    if len(labels) == 0 or labels.min() == labels.max():
        return 1.0, 0.0
    from sklearn.linear_model import LogisticRegression as Platt

    fitted = Platt(C=1e6).fit(margins.reshape(-1, 1), labels)
    return float(fitted.coef_[0, 0]), float(fitted.intercept_[0])
