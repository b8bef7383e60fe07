"""How much propensity signal the model's inputs hold: strong off-the-shelf learners on the same snapshot.

    python benchmarks/model_eval.py          # first: writes the 20k snapshot under benchmarks/.work/model_eval
    python benchmarks/propensity_ceiling.py  # then: about 10 seconds

It reads the training snapshot that ``model_eval.py`` left behind (the same rows, inputs and held-out
users the model was judged on) and fits scikit-learn's gradient-boosted trees and logistic regression
on the behavioural features alone and on behaviour + text + interest. If boosted trees with the text
inputs land where Portrait's network does, the network is not leaving signal on the table: the
margin over the behaviour-only baseline is bounded by what the inputs carry, not by the model.

It then measures the information limit with the generator's hidden truth (``oracle/*``, boosted
trees only). The generator is re-run for the same seed to recover each user's planted shopping-intent
day and personal parameters, which no input table holds:

- ``behaviour_visible_intent``: behaviour plus the exact age of the user's intent comment when it was
  written before the cutoff: what a perfect reader of the texts could know;
- ``hidden_params``, ``hidden_params_visible_intent``: the archetype and per-user rates the events are
  drawn from (no model can recover these exactly from 23 days of events), without and with it.

Writes benchmarks/results/propensity_ceiling.json.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import typer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WORK = ROOT / "benchmarks" / ".work" / "model_eval"
RESULTS = ROOT / "benchmarks" / "results" / "propensity_ceiling.json"
HIDDEN_RATES = ("sessions_per_day", "activity", "buy_prob", "cart_prob", "events_per_session", "first_day",
                "last_day_excl")
TEXT_COMPONENTS = 16  # principal components per 384-wide vector: trees split poorly on raw embeddings


def _matrix(table, column: str) -> np.ndarray:
    return np.stack(table[column].to_numpy(zero_copy_only=False)).astype(np.float32)


def input_sets(table, train: np.ndarray) -> dict[str, np.ndarray]:
    """behaviour only, and behaviour + each text vector and the interest vector (PCA on training rows) + norms."""
    from sklearn.decomposition import PCA

    behaviour, text, interest = _matrix(table, "behaviour"), _matrix(table, "text"), _matrix(table, "interest")
    width = interest.shape[1]
    vectors = [text[:, i:i + width] for i in range(0, text.shape[1], width)] + [interest]
    reduced = [PCA(TEXT_COMPONENTS, random_state=0).fit(v[train]).transform(v) for v in vectors]
    norms = np.stack([np.linalg.norm(v, axis=1) for v in vectors], axis=1)
    return {"behaviour": behaviour, "behaviour_text_interest": np.hstack([behaviour, *reduced, norms])}


def fit_and_score(name: str, x: np.ndarray, y: np.ndarray, train: np.ndarray) -> float:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    learner = (HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, random_state=0) if name == "gbt"
               else make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000)))
    learner.fit(x[train], y[train])
    return float(roc_auc_score(y[~train], learner.predict_proba(x[~train])[:, 1]))


def hidden_truth(ids: list[str], users: int, days: int, cutoff_day: int, seed: int, key_file: Path
                 ) -> dict[str, np.ndarray]:
    """Per snapshot row: the generator's planted parameters and the age of a pre-cutoff intent comment."""
    import pandas as pd

    from conf import load_config
    from jobs.generator.population import generate_users
    from jobs.privacy import PseudonymKey, pseudonym
    from jobs.spark import spark_session

    cfg = load_config()
    spark = spark_session(cfg.spark)
    start = cfg.generator.start_date
    population = generate_users(spark, users, days, cutoff_day, start, seed).toPandas()
    key = PseudonymKey(key_file.read_text().strip().encode(), "model_eval")
    truth = population.set_index(population["user_id"].map(lambda raw: pseudonym(raw, key))).reindex(ids)
    intent_day = truth["intent_day"].astype(float).to_numpy()
    visible_age = np.where(intent_day < cutoff_day, cutoff_day - intent_day, np.nan)
    params = np.column_stack([pd.get_dummies(truth["archetype"]).to_numpy(float)]
                             + [truth[c].astype(float).to_numpy() for c in HIDDEN_RATES])
    return {"visible_intent_age": visible_age, "params": params}


def oracle_sets(behaviour: np.ndarray, truth: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    intent = truth["visible_intent_age"][:, None]
    return {"oracle/behaviour_visible_intent": np.hstack([behaviour, intent]),
            "oracle/hidden_params": truth["params"],
            "oracle/hidden_params_visible_intent": np.hstack([truth["params"], intent])}


def main(work: Path = WORK, model_eval: Path = ROOT / "benchmarks" / "results" / "model_eval.json",
         out: Path = RESULTS, seed: int = 42) -> None:
    from deltalake import DeltaTable

    snapshot = work / "warehouse" / "training_snapshot"
    if not snapshot.exists():
        raise typer.BadParameter(f"no training snapshot at {snapshot}: run benchmarks/model_eval.py first")
    started = time.perf_counter()
    table = DeltaTable(str(snapshot)).to_pyarrow_table()
    held_out = table["holdout"].to_numpy(zero_copy_only=False)
    train, bought = ~held_out, table["bought"].to_numpy(zero_copy_only=False)
    auc = {f"{learner}/{inputs}": fit_and_score(learner, x, bought, train)
           for inputs, x in input_sets(table, train).items() for learner in ("logistic", "gbt")}
    run = json.loads(model_eval.read_text())
    truth = hidden_truth(table["user_id"].to_pylist(), run["users"], run["days"], run["cutoff_day"], seed,
                         work / "hmac.key")
    auc.update({name: fit_and_score("gbt", x, bought, train)
                for name, x in oracle_sets(_matrix(table, "behaviour"), truth).items()})
    evaluated = run["propensity_roc_auc"]
    baseline = max(evaluated["mllib"], evaluated["rfm_rule"])
    best_off_the_shelf = max(v for k, v in auc.items() if not k.startswith("oracle/"))
    result = {
        "rows": int(table.num_rows), "held_out": int(held_out.sum()),
        "propensity_roc_auc": auc,
        "portrait_model": evaluated["model"], "best_baseline_in_model_eval": baseline,
        "best_off_the_shelf": best_off_the_shelf,
        "best_off_the_shelf_margin_over_baseline": best_off_the_shelf - baseline,
        "portrait_model_margin_over_baseline": evaluated["model"] - baseline,
        "bar": baseline + 0.03,
        "perfect_text_reader_margin_over_baseline": auc["oracle/behaviour_visible_intent"] - baseline,
        "seconds": round(time.perf_counter() - started, 1),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(json.dumps(result, indent=2, sort_keys=True))


if __name__ == "__main__":
    typer.run(main)
