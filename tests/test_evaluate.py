"""The challengers against reference libraries: the logistic regressions against scikit-learn fitting the same
objective on the same rows, the trees' margins and SHAP contributions against xgboost's own; and the choice of
the published candidate."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from jobs.model.challengers import Scorer, fit_logistic, fit_trees, platt, select_champions, stacked, tree_workers
from jobs.model.evaluate import HeldOut, category_logistic_scores
from tests.helpers import ts

REG = 0.001  # MLlib's regParam in fit_logistic and category_logistic_scores: (1/n) sum(loss) + REG/2 |w|^2 is sklearn's C = 1 / (n * REG)
SCHEMA = ("user_id string, behaviour array<double>, holdout boolean, bought boolean, churned boolean, "
          "categories array<double>")


def snapshot_rows(users: int = 120, held: int = 30) -> list[tuple]:
    """Three features; four categories, the last never bought; every seventh user bought two."""
    rng = np.random.default_rng(3)
    rows = []
    for u in range(users):
        x = rng.normal(size=3)
        logits = np.array([x[0], x[1], -x[0] - x[1], -30.0])
        c = rng.choice(4, p=np.exp(logits) / np.exp(logits).sum())
        categories = [0.0] * 4
        categories[c] = 1.0
        if u % 7 == 0:
            categories[(c + 1) % 3] = 1.0
        rows.append((f"u{u:03d}", [float(v) for v in x], u >= users - held, bool(rng.random() < 0.5),
                     bool(rng.random() < 0.3), categories))
    return rows


def split(spark, rows: list[tuple]):
    """(training rows, held-out rows): the held-out users' labels dropped, as a scoring frame has none."""
    df = spark.createDataFrame(rows, SCHEMA)
    return df.filter("not holdout"), df.filter("holdout").select("user_id", "behaviour")


def test_mllib_baseline_equals_sklearn_binary_and_multinomial_fits(spark):
    rows = snapshot_rows()
    training, scoring = split(spark, rows)
    got = {r.user_id: r for r in category_logistic_scores(training, scoring, 4).collect()}
    train, test = [r for r in rows if not r[2]], [r for r in rows if r[2]]
    assert sorted(got) == [r[0] for r in test]

    x = np.array([r[1] for r in train])
    mean, std = x.mean(axis=0), x.std(axis=0, ddof=1)  # StandardScaler(withMean) on the training rows
    held = (np.array([r[1] for r in test]) - mean) / std

    def fitted(features: np.ndarray, labels: list) -> LogisticRegression:
        return LogisticRegression(C=1 / (len(labels) * REG), max_iter=1000, tol=1e-10).fit(features, labels)

    raw = np.array([r[1] for r in test])
    for target, label in ((3, "bought"), (4, "churned")):
        reference = fitted((x - mean) / std, [r[target] for r in train])
        scorer = fit_logistic(training, label)
        assert scorer.probabilities(raw, None) == pytest.approx(reference.predict_proba(held)[:, 1], abs=1e-4), label
        # Exact linear attributions: against the training mean, they add up to the margin less the intercept.
        pushed = scorer.contributions(raw, None)
        assert pushed == pytest.approx(held * reference.coef_[0], abs=1e-3)

    # Categories: one multinomial fit over (user, category bought) rows.
    pairs = [(r[1], i) for r in train for i, bought in enumerate(r[5]) if bought]
    category = fitted((np.array([p[0] for p in pairs]) - mean) / std, [p[1] for p in pairs])
    assert list(category.classes_) == [0, 1, 2]
    scores = np.array([got[r[0]].category_scores for r in test])
    assert scores.shape == (len(test), 4)  # a probability for every category, bought or not
    assert scores[:, :3] == pytest.approx(category.predict_proba(held), abs=1e-3)
    assert scores[:, 3].max() < 1e-6


def test_mllib_baseline_without_categories_bought_ranks_nothing(spark):
    rows = [(u, x, h, b, c, [0.0, 0.0]) for u, x, h, b, c, _ in snapshot_rows(40, 10)]
    got = category_logistic_scores(*split(spark, rows), 2).collect()
    assert len(got) == 10 and {tuple(r.category_scores) for r in got} == {(0.0, 0.0)}


def test_tree_scorer_margins_and_shap_are_xgboost_s_own(spark):
    import xgboost

    rows = snapshot_rows()
    training, _ = split(spark, rows)
    scorer = fit_trees(training, "bought", seed=1)
    raw = np.array([r[1] for r in rows])
    booster = xgboost.Booster()
    booster.load_model(bytearray(scorer.params))
    margin = booster.predict(xgboost.DMatrix(raw), output_margin=True)
    assert scorer.margins(raw, None) == pytest.approx(margin, abs=1e-5)
    assert scorer.probabilities(raw, None) == pytest.approx(booster.predict(xgboost.DMatrix(raw)), abs=1e-5)
    shap = booster.predict(xgboost.DMatrix(raw), pred_contribs=True)
    pushed = scorer.contributions(raw, None)
    assert pushed.shape == raw.shape and pushed == pytest.approx(shap[:, :3], abs=1e-5)
    assert pushed.sum(axis=1) + shap[:, 3] == pytest.approx(margin, abs=1e-4)  # SHAP adds up to the margin


def test_the_best_validated_candidate_is_published_and_never_one_that_lost():
    validation = {"propensity_roc_auc": {"network": 0.61, "mllib": 0.64, "gbt": 0.63, "rfm_rule": 0.60, "model": 0.9},
                  "churn_pr_auc": {"network": 0.50, "mllib": 0.40, "gbt": None, "rfm_rule": 0.45}}
    # The published scores of an earlier choice are no candidate; an undefined figure is skipped.
    assert select_champions(validation) == {"propensity": "mllib", "churn": "network"}
    # The rule is a candidate like any other: a model that lost to it is not published.
    validation["propensity_roc_auc"]["rfm_rule"] = 0.70
    assert select_champions(validation)["propensity"] == "rfm_rule"
    # Ties go to the simplest candidate; nothing measured: the network.
    assert select_champions({"propensity_roc_auc": {"network": 0.6, "gbt": 0.6, "mllib": 0.6}}) == {
        "propensity": "mllib", "churn": "network"}
    assert select_champions({"propensity_roc_auc": {"network": 0.6, "rfm_rule": 0.6}})["propensity"] == "rfm_rule"


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def test_the_stack_competes_out_of_fold_and_weighs_the_standardised_candidates_as_scikit_learn_does():
    from sklearn.metrics import roc_auc_score

    from jobs.model.selection import choose

    rng = np.random.default_rng(11)
    n = 3000
    first, second, noise = rng.normal(size=(3, n))
    bought = (rng.random(n) < sigmoid(1.5 * first + 1.5 * second)).astype(float)
    churned = (rng.random(n) < sigmoid(2 * second - 1)).astype(float)
    # Each learned candidate saw half the propensity signal; the rule a weak share of one half.
    seen = {"mllib": first, "gbt": second, "network": noise, "rfm_rule": 0.3 * first + rng.normal(size=n)}
    found = {m: HeldOut(bought, churned, np.zeros((n, 0)), sigmoid(x), sigmoid(x + second), np.zeros((n, 0)))
             for m, x in seen.items()}
    # An earlier round's published scores and stack are no candidates, however good.
    found["model"] = found["stack"] = HeldOut(bought, churned, np.zeros((n, 0)), bought, churned, np.zeros((n, 0)))
    choice = choose(found, seed=3)
    figures = choice.validation["propensity_roc_auc"]
    assert set(figures) == {"mllib", "gbt", "network", "rfm_rule", "stack"}
    assert choice.winners["propensity"] == "stack"
    assert figures["stack"] > max(v for m, v in figures.items() if m != "stack") + 0.05
    parts, weights, intercept = choice.stacks["propensity"]
    # The weights are over each candidate's margin as a z-score over the validation users.
    calibrated = np.column_stack([(seen[m] - seen[m].mean()) / seen[m].std() for m in parts])
    reference = LogisticRegression().fit(calibrated, bought)
    assert weights == pytest.approx(reference.coef_[0], abs=1e-4) and intercept == pytest.approx(
        reference.intercept_[0], abs=1e-4)
    # Out of fold, the figure is below what the weights score on the users they were fitted on.
    assert figures["stack"] < roc_auc_score(bought, reference.decision_function(calibrated))


def test_a_stacked_scorer_is_its_weights_over_its_calibrated_parts(spark):
    rows = snapshot_rows()
    training, _ = split(spark, rows)
    regression = replace(fit_logistic(training, "bought"), calibration=(0.5, 0.2))
    network = Scorer("network", calibration=(2.0, -1.0))
    stack = stacked([regression, network], np.array([0.7, -0.4]), 0.3)
    raw = np.array([r[1] for r in rows])
    head = np.linspace(-2, 2, len(rows))
    margin = 0.3 + 0.7 * (0.5 * regression.margins(raw, head) + 0.2) - 0.4 * (2 * head - 1)
    assert stack.probabilities(raw, head) == pytest.approx(sigmoid(margin))
    assert stack.describe() == {"method": "stack", "calibration": [1.0, 0.0], "intercept": 0.3, "parts": [
        {"method": "mllib", "calibration": [0.5, 0.2], "weight": 0.7},
        {"method": "network", "calibration": [2.0, -1.0], "weight": -0.4}]}
    gradients = np.ones_like(raw)
    assert stack.contributions(raw, lambda: gradients) == pytest.approx(
        0.7 * 0.5 * regression.contributions(raw, None) - 0.4 * 2 * gradients)


def test_platt_calibration_is_scikit_learn_s_and_identity_on_one_class():
    rng = np.random.default_rng(0)
    margin = rng.normal(size=400)
    labels = (rng.random(400) < 1 / (1 + np.exp(-(2 * margin - 1)))).astype(float)
    a, b = platt(margin, labels)
    assert a == pytest.approx(2, abs=0.5) and b == pytest.approx(-1, abs=0.4)
    assert Scorer("network", calibration=(a, b)).probabilities(np.zeros((2, 1)), np.array([0.0, 1.0])) == \
        pytest.approx(1 / (1 + np.exp(-np.array([b, a + b]))))
    assert platt(margin, np.zeros(400)) == (1.0, 0.0)


def test_the_rfm_rule_is_quintiles_of_the_training_rows_cut_as_a_plain_sort_cuts_them(spark):
    import math

    from jobs.model.challengers import fit_rfm_rule
    from jobs.model.inputs import InputSpec, model_inputs
    from schemas.profiles import profiles_schema

    rng = np.random.default_rng(5)
    users = [(f"u{i:02d}", float(rng.integers(1, 60)), int(rng.integers(1, 9)), float(rng.integers(5, 500)),
              float(rng.integers(0, 40))) for i in range(40)]
    users.append(("never", None, 0, None, None))  # no order, no event: quintiles 0, idle longest
    schema = profiles_schema()
    rows = [{"user_id": u, "recency_days": r, "frequency": f, "monetary": m, "days_since_last_event": d,
             "as_of": ts(31), "updated_at": ts(31)} for u, r, f, m, d in users]
    profiles = spark.createDataFrame([tuple(row.get(f.name) for f in schema.fields) for row in rows], schema)
    spec = InputSpec((7, 30, 90), (), 7)
    inputs = profiles.transform(model_inputs(spec)).orderBy("user_id").collect()
    behaviour = np.array([r.behaviour for r in inputs], dtype=np.float64)
    ids = [r.user_id for r in inputs]
    train = spark.createDataFrame([(r.user_id, r.behaviour) for r in inputs], "user_id string, behaviour array<float>")

    def quintile(values: dict[str, float | None], user: str, higher: bool) -> int:
        known = sorted(v for v in values.values() if v is not None)
        # percentile_approx's exact order statistic for p: the value of 1-based rank ceil(p n).
        cuts = [known[math.ceil(p * len(known)) - 1] for p in (0.2, 0.4, 0.6, 0.8)]
        x = values[user]
        return 0 if x is None else 1 + sum((x > c) if higher else (x < c) for c in cuts)

    columns = ("recency_days", "frequency", "monetary")
    by = {name: {u: values[i] for u, *values in users} for i, name in enumerate(columns)}
    expected = [quintile(by["recency_days"], u, False) + quintile(by["frequency"], u, True)
                + quintile(by["monetary"], u, True) for u in ids]
    rule = fit_rfm_rule(train, spec, "propensity")
    assert list(rule.margins(behaviour, None)) == expected
    idle = fit_rfm_rule(train, spec, "churn").margins(behaviour, None)
    assert idle[ids.index("never")] > idle.max(initial=0, where=np.array(ids) != "never")
    days = {u: d for u, *_, d in users}
    assert [round(float(np.expm1(v))) for u, v in zip(ids, idle) if u != "never"] == \
        [days[u] for u in ids if u != "never"]


def test_tree_workers_follow_the_training_rows_within_the_task_slots():
    assert tree_workers(7_000, 2, 500_000) == 1          # the demo: one worker, so both targets fit at once
    assert tree_workers(1_000_001, 8, 500_000) == 3      # a worker per 500,000 rows, rounded up
    assert tree_workers(10 ** 9, 8, 500_000) == 8        # never more than the task slots
    assert tree_workers(0, 2, 500_000) == 1              # and never none
