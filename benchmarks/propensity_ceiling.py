"""How much propensity signal the model's inputs hold: strong off-the-shelf learners on the same snapshot.

    python benchmarks/model_eval.py          # first: writes the 20k snapshot under benchmarks/.work/model_eval
    python benchmarks/propensity_ceiling.py  # then: about 10 seconds

It reads the training snapshot that ``model_eval.py`` left behind (the same rows, inputs and held-out
users the model was judged on) and fits scikit-learn's gradient-boosted trees and logistic regression
on the behavioural features alone and on behaviour + text + interest. If boosted trees with the text
inputs land where Portrait's network does, the network is not leaving signal on the table: the
margin over the behaviour-only baseline is bounded by what the inputs carry, not by the model.
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


def main(work: Path = WORK, model_eval: Path = ROOT / "benchmarks" / "results" / "model_eval.json",
         out: Path = RESULTS) -> None:
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
    evaluated = json.loads(model_eval.read_text())["propensity_roc_auc"]
    baseline = max(evaluated["mllib"], evaluated["rfm_rule"])
    best_off_the_shelf = max(auc.values())
    result = {
        "rows": int(table.num_rows), "held_out": int(held_out.sum()),
        "propensity_roc_auc": auc,
        "portrait_model": evaluated["model"], "best_baseline_in_model_eval": baseline,
        "best_off_the_shelf": best_off_the_shelf,
        "best_off_the_shelf_margin_over_baseline": best_off_the_shelf - baseline,
        "portrait_model_margin_over_baseline": evaluated["model"] - baseline,
        "seconds": round(time.perf_counter() - started, 1),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(json.dumps(result, indent=2, sort_keys=True))


if __name__ == "__main__":
    typer.run(main)
