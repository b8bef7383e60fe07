"""Apply a trained model to model inputs on the executors, and publish its scores in profiles' shape."""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.model.network import SPEND_TIERS, ModelBundle

PREDICTIONS_SCHEMA = ("user_id string, user_embedding array<float>, purchase_propensity double, churn_risk double, "
                      "category_probs array<double>, spend_tier_index int")


def _stack(column: pd.Series) -> np.ndarray:
    return np.stack(column.to_numpy()).astype(np.float64)


def predict(bundle: ModelBundle) -> Callable[[DataFrame], DataFrame]:
    """model inputs (user_id, behaviour, text, interest) -> embedding and every head's output, per user.

    The weights travel once per executor as a broadcast; each Python worker builds the network once.
    It runs in float64: in float32 a user's scores move by about 1e-8 with the other rows of its batch,
    and a daily step batches users differently from a full recompute, whose scores it must reproduce.
    """
    def apply(inputs: DataFrame) -> DataFrame:
        shipped = inputs.sparkSession.sparkContext.broadcast(bundle.to_bytes())

        def batches(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
            import torch

            network = ModelBundle.from_bytes(shipped.value).network().double()
            for frame in frames:
                if frame.empty:
                    continue
                with torch.no_grad():
                    emb, prop, churn, cat, spend = network(*(torch.from_numpy(_stack(frame[c]))
                                                             for c in ("behaviour", "text", "interest")))
                yield pd.DataFrame({
                    "user_id": frame["user_id"].to_numpy(),
                    "user_embedding": list(emb.numpy().astype(np.float32)),
                    "purchase_propensity": torch.sigmoid(prop).double().numpy(),
                    "churn_risk": torch.sigmoid(churn).double().numpy(),
                    "category_probs": list(torch.sigmoid(cat).double().numpy()),
                    "spend_tier_index": spend.argmax(dim=1).int().numpy(),
                })
        return inputs.mapInPandas(batches, PREDICTIONS_SCHEMA)
    return apply


def with_model_scores(predictions: DataFrame, categories: tuple[str, ...], top_k: int,
                      model_run_id: str) -> Callable[[DataFrame], DataFrame]:
    """profiles + predictions -> profiles with the model columns filled (users without a prediction keep nulls)."""
    names = F.array(*[F.lit(c) for c in categories]) if categories else F.array().cast("array<string>")
    tiers = F.array(*[F.lit(t) for t in SPEND_TIERS])

    def apply(profiles: DataFrame) -> DataFrame:
        scored = predictions.select(
            "user_id", "user_embedding", "purchase_propensity", "churn_risk",
            # Without categories the head keeps one placeholder output, which names no category.
            F.slice(F.sort_array(F.filter(F.arrays_zip(F.col("category_probs").alias("score"), names.alias("name")),
                                          lambda s: s["name"].isNotNull()), asc=False), 1, top_k).alias("_top"),
            F.element_at(tiers, F.col("spend_tier_index") + 1).alias("spend_tier"))
        scored = scored.withColumn("category_affinity", F.transform(
            "_top", lambda s: F.struct(s["name"].alias("name"), s["score"].alias("score")))).drop("_top")
        model_columns = [c for c in scored.columns if c != "user_id"]
        return (profiles.drop(*model_columns, "model_run_id").join(scored, "user_id", "left")
                .withColumn("model_run_id", F.when(F.col("purchase_propensity").isNotNull(), F.lit(model_run_id))))
    return apply
