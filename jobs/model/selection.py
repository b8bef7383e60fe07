"""What to publish: every candidate scored out of time, the best per target, calibrated on the same days.

A round fits the candidates on one snapshot (features before cutoff C, labels [C, C + H)) and scores
users at C + H against [C + H, C + 2H). The full job runs one round inside its training window (fit at
T - 2H, scored at T - H, never touching the days it publishes for) to choose each target's winner and its
Platt calibration, then refits every candidate at T - H and publishes the winner. A backtest runs the same
rounds at each origin, the previous origin's round choosing.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from conf import Config
from jobs.model.challengers import (BINARY_TARGETS, CANDIDATES, NETWORK, REFERENCE, TREES, Scorer, fit_challengers,
                                    platt, select_champions)
from jobs.model.evaluate import HeldOut, category_logistic_scores, held_out, metrics
from jobs.model.inputs import InputSpec, horizon_labels, model_inputs
from jobs.model.network import ModelBundle
from jobs.model.score import predict

PUBLISHED = "model"  # the method whose scores profiles carry


@dataclass
class Candidates:
    """Every candidate fitted on one snapshot's training rows."""

    network: ModelBundle                         # its own heads score when it wins
    challengers: dict[str, dict[str, Scorer]]    # target -> method -> scorer
    train: DataFrame                             # the training rows (for the category regression)


@dataclass(frozen=True)
class Choice:
    """Each target's winner on validation, the calibration each candidate got there, and the figures."""

    winners: dict[str, str]
    calibrations: dict[str, dict[str, tuple[float, float]]]   # target -> method -> (a, b)
    validation: dict[str, dict[str, float | None]]            # metric -> method -> value


NO_CHOICE = Choice({t: NETWORK for t in BINARY_TARGETS}, {}, {})


def fit_candidates(network: ModelBundle, train: DataFrame, seed: int, challengers: bool) -> Candidates:
    """The challengers fitted on ``train`` (a snapshot's rows, holdout excluded) beside the trained network."""
    return Candidates(network, fit_challengers(train, network.spec, seed) if challengers else {}, train)


def rule_category_scores(spec: InputSpec) -> Column:
    """The RFM rule's category ranking: the user's historical category shares (from the behaviour vector),
    popularity (vocabulary order) breaking ties."""
    n = len(spec.categories)
    if not n:
        return F.array().cast("array<double>")
    start = spec.names().index(f"category_share:{spec.categories[0]}")
    shares = F.slice("behaviour", start + 1, n)
    return F.transform(shares, lambda s, i: s.cast("double") + (F.lit(n) - i) * F.lit(1e-6))


def _renamed(predictions: DataFrame) -> DataFrame:
    return predictions.select("user_id", F.col("purchase_propensity").alias("propensity"),
                              F.col("churn_risk").alias("churn"), F.col("category_probs").alias("category_scores"))


def candidate_scores(candidates: Candidates, inputs: DataFrame, spec: InputSpec,
                     published: ModelBundle | None = None) -> dict[str, DataFrame]:
    """Each method's scores (user_id, propensity, churn, category_scores) for ``inputs`` (model inputs)."""
    n = len(spec.categories)
    found = {NETWORK: _renamed(inputs.transform(predict(candidates.network, with_drivers=False)))}
    methods = sorted({m for by in candidates.challengers.values() for m in by})
    for method in methods:
        scorers = {t: by[method] for t, by in candidates.challengers.items() if method in by}
        scores = _renamed(inputs.transform(predict(replace(candidates.network, scorers=scorers), with_drivers=False)))
        if method == TREES:  # the trees rank no category
            categories = F.array_repeat(F.lit(0.0), n).cast("array<double>")
            found[method] = scores.withColumn("category_scores", categories)
        elif method == REFERENCE:
            shares = inputs.select("user_id", rule_category_scores(spec).alias("category_scores"))
            found[method] = scores.drop("category_scores").join(shares, "user_id")
        else:
            found[method] = scores.drop("category_scores").join(
                category_logistic_scores(candidates.train, inputs, n), "user_id")
    if published is not None:
        found[PUBLISHED] = _renamed(inputs.transform(predict(published, with_drivers=False)))
    return found


def scored_round(candidates: Candidates, rows: DataFrame, spec: InputSpec,
                 published: ModelBundle | None = None) -> dict[str, HeldOut]:
    """method -> its scores beside the truth, for the labelled ``rows`` (model inputs and horizon labels)."""
    truth = rows.select("user_id", "bought", "churned", "categories").cache()
    inputs = rows.select("user_id", "behaviour", "text", "interest")
    scores = candidate_scores(candidates, inputs, spec, published)
    found = {method: held_out(truth, s, len(spec.categories)) for method, s in scores.items()}
    truth.unpersist()
    return found


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return np.log(p / (1 - p))


def choose(found: dict[str, HeldOut]) -> Choice:
    """Winners by the validation metric of each target, and every candidate's Platt calibration on the same
    users (the published scorer keeps its own)."""
    validation: dict[str, dict[str, float | None]] = {}
    for method, held in found.items():
        for metric, value in metrics(held).items():
            validation.setdefault(metric, {})[method] = value
    calibrations = {target: {method: platt(_logit(getattr(found[method], target)), getattr(found[method], label))
                             for method in CANDIDATES if method in found}
                    for target, (label, _) in BINARY_TARGETS.items()}
    return Choice(select_champions(validation), calibrations, validation)


def published_bundle(candidates: Candidates, choice: Choice) -> ModelBundle:
    """The network with each target's winner as its scorer, calibrated as it was on validation."""
    scorers = {}
    for target, method in choice.winners.items():
        fitted = candidates.challengers.get(target, {}).get(method, Scorer(NETWORK))
        scorers[target] = replace(fitted, calibration=choice.calibrations.get(target, {}).get(method, (1.0, 0.0)))
    return replace(candidates.network, scorers=scorers)


def outcome_rows(cfg: Config, tiles: dict[str, DataFrame], profiles: DataFrame, at: datetime, spec: InputSpec
                 ) -> DataFrame:
    """Users' model inputs at ``at`` (from their ``profiles`` then) and what they did in [at, at + H)."""
    m = cfg.model
    labels = horizon_labels(at, m.horizon_days, cfg.time.zone, spec.categories, m.spend_tier_quantiles)(
        {**tiles, "users": profiles.select("user_id")})
    return profiles.transform(model_inputs(spec)).join(labels, "user_id")
