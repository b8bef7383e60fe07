"""The MLlib baseline against scikit-learn fitting the same objective on the same rows."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from jobs.model.evaluate import mllib_scores

REG = 0.001  # MLlib's regParam in mllib_scores: (1/n) sum(loss) + REG/2 |w|^2 is sklearn's C = 1 / (n * REG)
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
    got = {r.user_id: r for r in mllib_scores(*split(spark, rows), 4).collect()}
    train, test = [r for r in rows if not r[2]], [r for r in rows if r[2]]
    assert sorted(got) == [r[0] for r in test]

    x = np.array([r[1] for r in train])
    mean, std = x.mean(axis=0), x.std(axis=0, ddof=1)  # StandardScaler(withMean) on the training rows
    held = (np.array([r[1] for r in test]) - mean) / std

    def fitted(features: np.ndarray, labels: list) -> LogisticRegression:
        return LogisticRegression(C=1 / (len(labels) * REG), max_iter=1000, tol=1e-10).fit(features, labels)

    for target, column in ((3, "propensity"), (4, "churn")):
        expected = fitted((x - mean) / std, [r[target] for r in train]).predict_proba(held)[:, 1]
        assert np.array([got[r[0]][column] for r in test]) == pytest.approx(expected, abs=1e-4), column

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
    got = mllib_scores(*split(spark, rows), 2).collect()
    assert len(got) == 10 and {tuple(r.category_scores) for r in got} == {(0.0, 0.0)}
