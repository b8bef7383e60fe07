"""What to publish: every candidate scored out of time, the best per target, calibrated on the same days.

A round fits the candidates on one snapshot (features before cutoff C, labels [C, C + H)) and scores
users at C + H against [C + H, C + 2H). The full job runs one round inside its training window (fit at
T - 2H, scored at T - H, never touching the days it publishes for) to choose each target's winner and its
Platt calibration, then refits every candidate at T - H and publishes the winner. A backtest runs the same
rounds at each origin, the previous origin's round choosing.
"""
from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial

import numpy as np
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from conf import Config
from jobs.frames import checkpointed
from jobs.model.challengers import (BINARY_TARGETS, CANDIDATES, NETWORK, REFERENCE, STACK, TREES, Scorer,
                                    fit_stack, platt, reported, select_champions, stacked)
from jobs.model.evaluate import HeldOut, category_logistic_scores, held_out, metrics
from jobs.model.inputs import InputSpec, horizon_labels, model_inputs
from jobs.model.network import ModelBundle
from jobs.model.score import predict
from jobs.together import run_together

PUBLISHED = "model"  # the method whose scores profiles carry


@dataclass
class Candidates:
    """Every candidate fitted on one snapshot's training rows."""

    network: ModelBundle                         # its own heads score when it wins
    challengers: dict[str, dict[str, Scorer]]    # target -> method -> scorer
    train: DataFrame                             # the training rows (for the category regression)
    # target -> method -> its margins' standardisation over ``train`` (computed once, when a stack needs it)
    standardisations: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict, repr=False)

    def fitted(self, target: str, method: str) -> Scorer:
        """``method``'s scorer for ``target`` as fitted on this snapshot (the network's head: no parameters)."""
        return self.challengers.get(target, {}).get(method, Scorer(NETWORK))

    def standardisation(self, target: str) -> dict[str, tuple[float, float]]:
        """method -> (a, b): a x margin + b is the margin's z-score over the training rows. Those rows are the
        users the validation round scored, at the same date, so a stack's weights, fitted on z-scores there,
        weigh the refitted candidates as they weighed the validated ones, whatever scale each refit has."""
        if not self.standardisations:
            methods = sorted({NETWORK, *(m for by in self.challengers.values() for m in by)})
            inputs = self.train.select("user_id", "behaviour", "text", "interest")
            columns = {"propensity": "purchase_propensity", "churn": "churn_risk"}
            margins = {t: _logit_column(F.col(c)) for t, c in columns.items()}
            for method in methods:
                bundle = replace(self.network, scorers={t: self.fitted(t, method) for t in BINARY_TARGETS})
                row = inputs.transform(predict(bundle, with_drivers=False)).agg(
                    *[F.mean(m).alias(f"{t}_mean") for t, m in margins.items()],
                    *[F.stddev_pop(m).alias(f"{t}_std") for t, m in margins.items()]).first()
                for each in BINARY_TARGETS:
                    self.standardisations.setdefault(each, {})[method] = _z_score(row[f"{each}_mean"],
                                                                                 row[f"{each}_std"])
        return self.standardisations[target]


@dataclass(frozen=True)
class Choice:
    """Each target's winner on validation, the calibration each candidate got there, and the figures."""

    winners: dict[str, str]
    calibrations: dict[str, dict[str, tuple[float, float]]]   # target -> method -> (a, b)
    validation: dict[str, dict[str, float | None]]            # metric -> method -> value
    # target -> the stack fitted on validation: (its parts, their weights, the intercept)
    stacks: dict[str, tuple[tuple[str, ...], np.ndarray, float]] = field(default_factory=dict)


NO_CHOICE = Choice({t: NETWORK for t in BINARY_TARGETS}, {}, {})
STACK_PARTS = tuple(m for m in CANDIDATES if m != STACK)


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
                     bundles: dict[str, ModelBundle] | None = None) -> dict[str, DataFrame]:
    """Each method's scores (user_id, propensity, churn, category_scores) for ``inputs`` (model inputs), and
    each of ``bundles`` (a name -> a model with its own scorers: the published one, the stack)."""
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
    for name, bundle in (bundles or {}).items():
        found[name] = _renamed(inputs.transform(predict(bundle, with_drivers=False)))
    return found


def scored_round(candidates: Candidates, rows: DataFrame, spec: InputSpec,
                 bundles: dict[str, ModelBundle] | None = None) -> dict[str, HeldOut]:
    """method -> its scores beside the truth, for the labelled ``rows`` (model inputs and horizon labels).

    ``rows`` is computed once, here: every method's scores and the truth are read from it, and its plan
    (profiles folded from the tiles, joined with labels folded from them too) would otherwise be planned and
    run again for each of the half-dozen methods. It is the evaluation sample (at most
    ``model.evaluation_users``, whose scores the metrics collect to the driver anyway), kept on the executors.
    """
    with ExitStack() as cleanup:
        rows = checkpointed(rows, cleanup)
        truth = rows.select("user_id", "bought", "churned", "categories")
        inputs = rows.select("user_id", "behaviour", "text", "interest")
        scores = candidate_scores(candidates, inputs, spec, bundles)
        # Collected at once (jobs/together.py): each is a join of a few thousand rows, mostly waiting.
        found = run_together(rows.sparkSession, *(partial(held_out, truth, s, len(spec.categories))
                                                  for s in scores.values()))
        return dict(zip(scores, found))


CLIP = 1e-12  # probabilities this close to 0 or 1 are read back as margins of about -+27.6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, CLIP, 1 - CLIP)
    return np.log(p / (1 - p))


def _logit_column(p: Column) -> Column:
    clipped = F.least(F.greatest(p, F.lit(CLIP)), F.lit(1 - CLIP))
    return F.log(clipped / (1 - clipped))


def _z_score(mean: float | None, std: float | None) -> tuple[float, float]:
    """(a, b) with a x margin + b the margin's z-score; (0, 0) for a constant margin (it tells no one apart)."""
    return (1.0 / std, -mean / std) if mean is not None and std else (0.0, 0.0)


def choose(found: dict[str, HeldOut], seed: int = 0, stack: bool = True) -> Choice:
    """Winners by the validation metric of each target, every candidate's Platt calibration on the same
    users (the published scorer keeps its own), and, with ``stack``, each target's stack over the
    candidates' standardised margins, whose figure is its out-of-fold one. Only the candidates compete: a
    published model or stack scored in ``found`` by an earlier choice is left out."""
    found = {method: held for method, held in found.items() if method in STACK_PARTS}
    validation: dict[str, dict[str, float | None]] = {}
    for method, held in found.items():
        for metric, value in metrics(held).items():
            if reported(method, metric):
                validation.setdefault(metric, {})[method] = value
    calibrations, stacks, out_of_fold = {}, {}, {}
    for target, (label, _) in BINARY_TARGETS.items():
        labels = lambda method: getattr(found[method], label)  # noqa: E731
        logits = {method: _logit(getattr(found[method], target)) for method in STACK_PARTS if method in found}
        calibrations[target] = {method: platt(v, labels(method)) for method, v in logits.items()}
        parts = tuple(logits)
        # The stack weighs z-scores, which a refit's change of scale leaves as they were (see
        # Candidates.standardisation); a part's Platt calibration would not.
        z_scores = [a * logits[m] + b for m in parts for a, b in [_z_score(logits[m].mean(), logits[m].std())]]
        fitted = fit_stack(np.column_stack(z_scores), labels(parts[0]), seed) if stack and len(parts) > 1 else None
        if fitted is not None:
            weights, intercept, out_of_fold[target] = fitted
            stacks[target] = (parts, weights, intercept)
    if len(out_of_fold) == len(BINARY_TARGETS):
        base = next(iter(found.values()))
        stack = replace(base, propensity=out_of_fold["propensity"], churn=out_of_fold["churn"])
        for metric, value in metrics(stack).items():
            if reported(STACK, metric):
                validation.setdefault(metric, {})[STACK] = value
    return Choice(select_champions(validation), calibrations, validation, stacks)


def _target_scorer(candidates: Candidates, choice: Choice, target: str, method: str) -> Scorer:
    """``method``'s scorer for ``target``, fitted on ``candidates``' snapshot and calibrated as on validation."""
    if method == STACK:
        parts, weights, intercept = choice.stacks[target]
        scales = candidates.standardisation(target)
        return stacked([replace(candidates.fitted(target, m), calibration=scales[m]) for m in parts], weights,
                       intercept)
    return replace(candidates.fitted(target, method),
                   calibration=choice.calibrations.get(target, {}).get(method, (1.0, 0.0)))


def published_bundle(candidates: Candidates, choice: Choice) -> ModelBundle:
    """The network with each target's winner as its scorer, calibrated as it was on validation."""
    return replace(candidates.network, scorers={target: _target_scorer(candidates, choice, target, method)
                                                for target, method in choice.winners.items()})


def scored_bundles(candidates: Candidates, choice: Choice | None) -> dict[str, ModelBundle]:
    """What a round scores beside the candidates: the published model (``choice``'s winners) and, where
    validation fitted one per target, the stack."""
    if choice is None:
        return {}
    bundles = {PUBLISHED: published_bundle(candidates, choice)}
    if set(choice.stacks) == set(BINARY_TARGETS):
        bundles[STACK] = published_bundle(candidates, replace(choice, winners={t: STACK for t in choice.stacks}))
    return bundles


def outcome_rows(cfg: Config, tiles: dict[str, DataFrame], profiles: DataFrame, at: datetime, spec: InputSpec
                 ) -> DataFrame:
    """Users' model inputs at ``at`` (from their ``profiles`` then) and what they did in [at, at + H)."""
    m = cfg.model
    labels = horizon_labels(at, m.horizon_days, cfg.time.zone, spec.categories, m.spend_tier_quantiles)(
        {**tiles, "users": profiles.select("user_id")})
    return profiles.transform(model_inputs(spec)).join(labels, "user_id")
