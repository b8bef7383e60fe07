"""Champion and challengers for the binary targets: the network, boosted trees, a logistic regression,
and the RFM rule a team would write without a model.

Each learned candidate is fitted by a well-kept library (the network by TorchDistributor, the trees by
``xgboost.spark``, the regression by Spark MLlib); the rule's quintile cuts come from the training rows.
Each is kept as a :class:`Scorer`: what it needs to score a user's behaviour vector, and to say which
inputs pushed that score (tree SHAP for the trees, exact linear contributions for the regression,
integrated gradients via Captum for the network, the quintiles themselves for the rule). The published
model carries one scorer per target, so the full job, the daily step and serving all score with the same
winner, and a candidate that lost to any other on validation, the rule included, is never published.
"""
from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from functools import cached_property, partial
from typing import Callable

import numpy as np
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.feature import StandardScaler
from pyspark.ml.functions import array_to_vector
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.together import run_together

# Binary target -> (label column in the snapshot, the validation metric its champion is chosen by).
BINARY_TARGETS = {"propensity": ("bought", "propensity_roc_auc"), "churn": ("churned", "churn_pr_auc")}
NETWORK, LOGISTIC, TREES = "network", "mllib", "gbt"
REFERENCE = "rfm_rule"  # the rule a team would write without a model: the baseline every candidate must beat
# A logistic regression over the other candidates' standardised margins, fitted on the validation users. Its
# validation figure is out of fold, so it competes with the others on equal terms.
STACK = "stack"
CANDIDATES = (NETWORK, LOGISTIC, TREES, REFERENCE, STACK)
STACK_FOLDS = 5
# The RFM rule's propensity: (behaviour input, higher is better) quintiles, summed; its churn: days idle.
RULE_QUINTILES = (("recency_days", False), ("frequency", True), ("monetary", True))
RULE_IDLE = "days_since_last_event"
QUINTILE_CUTS = [0.2, 0.4, 0.6, 0.8]


def reported(method: str, metric: str) -> bool:
    """Whether ``metric`` means something for ``method``: the trees rank no category, and the rule's raw scores
    are no probabilities (no Brier score; published, it is calibrated like any winner)."""
    return not ((method in (TREES, STACK) and metric.startswith("category"))
                or (method == REFERENCE and metric.endswith("brier")))


@dataclass(frozen=True)
class Scorer:
    """One target's scorer: ``method``, its fitted parameters and a Platt calibration of its margin."""

    method: str
    params: bytes = b""            # mllib: npz of mean, std, coefficients, intercept; gbt: the booster (UBJSON);
    #                                stack: npz of its parts (method, params, calibration), weights, intercept
    calibration: tuple[float, float] = (1.0, 0.0)  # p = sigmoid(a * margin + b)

    def margins(self, behaviour: np.ndarray, network_margin: np.ndarray) -> np.ndarray:
        """The uncalibrated log-odds per row (the network's comes from its own head)."""
        if self.method == NETWORK:
            return network_margin
        if self.method == LOGISTIC:
            p = self._linear
            return _scaled(behaviour, p) @ p["coefficients"] + float(p["intercept"])
        if self.method == REFERENCE:
            return _rule_margins(behaviour, self._linear)
        if self.method == STACK:
            weights, intercept = self._stack
            return intercept + sum(w * part.calibrated_margins(behaviour, network_margin)
                                   for part, w in zip(self._parts, weights))
        import xgboost

        return self._booster.predict(xgboost.DMatrix(behaviour), output_margin=True).astype(np.float64)

    def calibrated_margins(self, behaviour: np.ndarray, network_margin: np.ndarray) -> np.ndarray:
        a, b = self.calibration
        return a * self.margins(behaviour, network_margin) + b

    def probabilities(self, behaviour: np.ndarray, network_margin: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.calibrated_margins(behaviour, network_margin)))

    def contributions(self, behaviour: np.ndarray, network_ig: Callable[[], np.ndarray]) -> np.ndarray:
        """Each behaviour input's push on the margin, per row, against the average training user."""
        if self.method == NETWORK:
            return network_ig()
        if self.method == LOGISTIC:
            p = self._linear
            centred = _scaled(behaviour, p)  # already relative to the training mean
            return centred * p["coefficients"]
        if self.method == REFERENCE:
            return _rule_contributions(behaviour, self._linear)
        if self.method == STACK:  # each part's pushes, scaled as the stack weighs that part's margin
            weights, _ = self._stack
            return sum(w * part.calibration[0] * part.contributions(behaviour, network_ig)
                       for part, w in zip(self._parts, weights))
        import xgboost

        shap = self._booster.predict(xgboost.DMatrix(behaviour), pred_contribs=True)
        return shap[:, :-1].astype(np.float64)  # the last column is the bias (the average margin)

    def describe(self) -> dict:
        """What a reader of the published model needs: the method, its calibration, and a stack's parts with
        their calibrations and weights."""
        out = {"method": self.method, "calibration": list(self.calibration)}
        if self.method == STACK:
            weights, intercept = self._stack
            out |= {"intercept": intercept, "parts": [{**part.describe(), "weight": float(w)}
                                                      for part, w in zip(self._parts, weights)]}
        return out

    # Parsed once per scorer, not once per scored batch.
    @cached_property
    def _linear(self) -> dict[str, np.ndarray]:
        return dict(np.load(io.BytesIO(self.params)))

    @cached_property
    def _parts(self) -> list["Scorer"]:
        p = self._linear
        return [Scorer(str(method), p[f"part_{i}"].tobytes(), tuple(float(v) for v in p["calibrations"][i]))
                for i, method in enumerate(p["methods"])]

    @cached_property
    def _stack(self) -> tuple[np.ndarray, float]:
        return self._linear["weights"], float(self._linear["intercept"])

    @cached_property
    def _booster(self):
        import xgboost

        booster = xgboost.Booster()
        booster.load_model(bytearray(self.params))
        return booster


def _quintiles(behaviour: np.ndarray, p: dict[str, np.ndarray]) -> np.ndarray:
    """Per row and rule input: 1-5, how many training quintile cuts the value passes (in its better direction)
    plus one; 0 where the input is unknown (no orders, no amounts)."""
    out = []
    for i, (position, missing, higher) in enumerate(zip(p["positions"], p["missing"], p["higher"])):
        value, cuts = behaviour[:, position][:, None], p["cuts"][i][None, :]
        passed = (value > cuts) if higher else (value < cuts)
        known = (behaviour[:, missing] < 0.5) & bool(np.isfinite(p["cuts"][i]).all())
        out.append(np.where(known, 1 + passed.sum(axis=1), 0))
    return np.stack(out, axis=1).astype(np.float64)


def _rule_margins(behaviour: np.ndarray, p: dict[str, np.ndarray]) -> np.ndarray:
    if str(p["target"]) == "propensity":
        return _quintiles(behaviour, p).sum(axis=1)
    idle, missing = int(p["positions"][0]), int(p["missing"][0])
    # log1p days idle (the input as the vector holds it); never active: longer than any history (log1p of
    # a century is 10.5), yet a margin whose probability still tells it apart from 1 (the stack reads logits).
    return np.where(behaviour[:, missing] < 0.5, behaviour[:, idle], 25.0)


def _rule_contributions(behaviour: np.ndarray, p: dict[str, np.ndarray]) -> np.ndarray:
    """The rule's own parts: each quintile against the middle one (3); for churn, the days idle."""
    out = np.zeros_like(behaviour, dtype=np.float64)
    if str(p["target"]) == "propensity":
        out[:, p["positions"]] = _quintiles(behaviour, p) - 3.0
    else:
        out[:, int(p["positions"][0])] = _rule_margins(behaviour, p)
    return out


def fit_rfm_rule(train: DataFrame, spec, target: str) -> Scorer:
    """The RFM rule for ``target``: for propensity, the training rows' quintile cuts of recency, frequency and
    monetary (sketches, never the rows on the driver); for churn, nothing to fit."""
    from jobs.ranking import ACCURACY

    names, scalars = spec.names(), spec.scalar_columns()
    columns = RULE_QUINTILES if target == "propensity" else ((RULE_IDLE, False),)
    positions = [names.index(c) for c, _ in columns]
    missing = [len(scalars) + scalars.index(c) for c, _ in columns]
    cuts = np.full((len(columns), len(QUINTILE_CUTS)), np.nan)
    if target == "propensity":
        known = [F.when(F.col("behaviour")[m] < 0.5, F.col("behaviour")[p]) for p, m in zip(positions, missing)]
        row = train.agg(*[F.percentile_approx(v, QUINTILE_CUTS, ACCURACY).alias(f"c{i}")
                          for i, v in enumerate(known)]).first()
        cuts = np.array([row[f"c{i}"] or [np.nan] * len(QUINTILE_CUTS) for i in range(len(columns))], dtype=np.float64)
    buffer = io.BytesIO()
    np.savez(buffer, target=np.array(target), positions=np.array(positions), missing=np.array(missing),
             higher=np.array([h for _, h in columns]), cuts=cuts)
    return Scorer(REFERENCE, buffer.getvalue())


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


def tree_workers(rows: int, parallelism: int, rows_per_worker: int) -> int:
    """How many xgboost workers fit ``rows`` training rows: one per ``rows_per_worker``
    (``model.tree_rows_per_worker``), at least one, at most one per task slot (``parallelism``).

    A fit is one barrier stage that starts a tracker and waits for every worker: on the demo's 7,000 rows two
    workers took 4.4 s where one took 3.1, and held both cores, so the two targets' fits could not run at once."""
    return max(1, min(parallelism, -(-rows // rows_per_worker)))


def fit_trees(train: DataFrame, label: str, seed: int, workers: int | None = None) -> Scorer:
    """Gradient-boosted trees (``xgboost.spark``: one distributed fit) of ``label`` on the behaviour vector, on
    ``workers`` workers (``tree_workers``; None: one per task slot)."""
    from xgboost.spark import SparkXGBClassifier

    # Quiet: its per-round training loss and parameter dumps would bury the job's own console lines.
    logging.getLogger("XGBoost-PySpark").setLevel(logging.WARNING)
    workers = workers or max(1, train.sparkSession.sparkContext.defaultParallelism)
    trees = SparkXGBClassifier(features_col="behaviour", label_col=label, num_workers=workers, n_estimators=100,
                               max_depth=4, learning_rate=0.1, subsample=0.8, random_state=seed, verbosity=0,
                               verbose=False)
    model = trees.fit(train.withColumn(label, F.col(label).cast("double")))
    return Scorer(TREES, bytes(model.get_booster().save_raw("ubj")))


def fit_challengers(train: DataFrame, spec, seed: int, tree_rows_per_worker: int) -> dict[str, dict[str, Scorer]]:
    """target -> challenger -> fitted scorer, on the training rows (user_id, behaviour and the labels).
    A target with one class only in the training rows gets only the rule: there is nothing to learn from.
    The trees' workers follow the rows (``tree_workers``)."""
    classes = train.agg(F.count(F.lit(1)).alias("rows"), *[F.countDistinct(label).alias(target)
                                                            for target, (label, _) in BINARY_TARGETS.items()]).first()
    workers = tree_workers(classes["rows"], train.sparkSession.sparkContext.defaultParallelism, tree_rows_per_worker)
    fits: dict[tuple[str, str], Callable[[], Scorer]] = {}
    for target, (label, _) in BINARY_TARGETS.items():
        fits[target, REFERENCE] = partial(fit_rfm_rule, train, spec, target)
        if classes[target] > 1:
            fits[target, LOGISTIC] = partial(fit_logistic, train, label)
            fits[target, TREES] = partial(fit_trees, train, label, seed, workers)
    # Fitted at once (jobs/together.py): each fit is a chain of small Spark jobs, mostly waiting.
    fitted = dict(zip(fits, run_together(train.sparkSession, *fits.values())))
    return {target: {method: scorer for (t, method), scorer in fitted.items() if t == target}
            for target in BINARY_TARGETS}


def stacked(parts: list[Scorer], weights: np.ndarray, intercept: float) -> Scorer:
    """The stack's scorer over ``parts`` (each fitted, its calibration slot holding the affine map the weights
    expect: a z-score): p = sigmoid(intercept + sum of weight x the part's mapped margin). Its own calibration
    is the identity: the regression's output is one."""
    buffer = io.BytesIO()
    np.savez(buffer, methods=np.array([p.method for p in parts]), weights=np.asarray(weights, dtype=np.float64),
             intercept=np.array(float(intercept)), calibrations=np.array([p.calibration for p in parts]),
             **{f"part_{i}": np.frombuffer(p.params, dtype=np.uint8) for i, p in enumerate(parts)})
    return Scorer(STACK, buffer.getvalue())


def fit_stack(margins: np.ndarray, labels: np.ndarray, seed: int) -> tuple[np.ndarray, float, np.ndarray] | None:
    """The stack's weights and intercept over the candidates' standardised margins (users x candidates), and
    its out-of-fold probabilities: each user scored by a fit on the other folds, so the validation figure
    the stack competes with is measured on users its weights never saw. None with one class in any fold's
    training users."""
    from sklearn.linear_model import LogisticRegression as Regression

    folds = np.random.default_rng(seed).permutation(len(labels)) % STACK_FOLDS
    out_of_fold = np.zeros(len(labels))
    for fold in range(STACK_FOLDS):
        train = folds != fold
        if labels[train].min(initial=1) == labels[train].max(initial=0):
            return None
        out_of_fold[~train] = Regression().fit(margins[train], labels[train]).predict_proba(margins[~train])[:, 1]
    fitted = Regression().fit(margins, labels)
    return fitted.coef_[0], float(fitted.intercept_[0]), out_of_fold


def select_champions(validation: dict[str, dict[str, float | None]]) -> dict[str, str]:
    """target -> the candidate with the best validation metric; the network when no candidate has one.

    ``validation``: metric -> method -> value, measured out of time. No candidate is ever published over
    one that beat it there, the RFM rule included.
    """
    winners = {}
    for target, (_, metric) in BINARY_TARGETS.items():
        found = {m: v for m, v in validation.get(metric, {}).items() if m in CANDIDATES and v is not None}
        # Ties go to the simplest candidate: the rule, the regression, the trees, the network, then the stack.
        order = (REFERENCE, LOGISTIC, TREES, NETWORK, STACK)
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
