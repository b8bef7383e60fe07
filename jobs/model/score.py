"""Apply a trained model to model inputs on the executors, and publish its scores in profiles' shape."""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.model.inputs import InputSpec
from jobs.model.network import SPEND_TIERS, ModelBundle

PREDICTIONS_SCHEMA = ("user_id string, user_embedding array<float>, purchase_propensity double, churn_risk double, "
                      "propensity_drivers array<string>, churn_drivers array<string>, "
                      "category_probs array<double>, spend_tier_index int")
DRIVERS = 3         # inputs named per score
IG_STEPS = 16       # integrated-gradients steps for the network's attributions


def _stack(column: pd.Series) -> np.ndarray:
    return np.stack(column.to_numpy()).astype(np.float64)


def drivers(contributions: np.ndarray, behaviour: np.ndarray, spec: InputSpec, count: int = DRIVERS
            ) -> list[list[str]]:
    """Per row, the ``count`` inputs with the largest positive contribution, as "name=value" (the value as
    the profile holds it); when nothing pushed the score up, the one input that moved it most."""
    order = np.argsort(-contributions, axis=1, kind="stable")[:, :count]
    strongest = np.abs(contributions).argmax(axis=1)
    return [[spec.describe(j, float(behaviour[i, j])) for j in row if contributions[i, j] > 0]
            or [spec.describe(int(strongest[i]), float(behaviour[i, strongest[i]]))]
            for i, row in enumerate(order)]


def _integrated_gradients(network, head: int, behaviour, text, interest) -> np.ndarray:
    """Captum's integrated gradients of one head's logit over the behaviour inputs, from the average training
    user (the network's standardisation mean) to this one; text and interest stay the user's own, so their part
    of the first layer is computed once (``UserModel.from_behaviour``): 0.375 of the time, the same attributions
    (``benchmarks/attributions_ab.py``)."""
    import torch
    from captum.attr import IntegratedGradients

    explain = IntegratedGradients(lambda b, held: network.from_behaviour(b, held)[head])
    start = network.mean.double().expand_as(behaviour)
    with torch.no_grad():
        held = network.held_inputs(text, interest)
    return explain.attribute(behaviour, baselines=start, additional_forward_args=(held,),
                             n_steps=IG_STEPS, internal_batch_size=4096).detach().numpy()


def predict(bundle: ModelBundle, with_drivers: bool = True) -> Callable[[DataFrame], DataFrame]:
    """model inputs (user_id, behaviour, text, interest) -> embedding and every head's output, per user; the
    binary targets scored by their published scorers (the network's head where the bundle names none), with
    the inputs that drove each score (null without ``with_drivers``: evaluation needs none).

    The weights travel once per executor as a broadcast; each Python worker builds the network once.
    It runs in float64: in float32 a user's scores move by about 1e-8 with the other rows of its batch,
    and a daily step batches users differently from a full recompute, whose scores it must reproduce.
    """
    from jobs.model.challengers import Scorer

    spec = bundle.spec
    heads = {"propensity": 1, "churn": 2}

    def apply(inputs: DataFrame) -> DataFrame:
        shipped = inputs.sparkSession.sparkContext.broadcast(bundle.to_bytes())

        def batches(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
            import torch

            loaded = ModelBundle.from_bytes(shipped.value)
            network = loaded.network().double()
            for frame in frames:
                if frame.empty:
                    continue
                tensors = [torch.from_numpy(_stack(frame[c])) for c in ("behaviour", "text", "interest")]
                with torch.no_grad():
                    outputs = network(*tensors)
                emb, _, _, cat, spend = outputs
                behaviour = tensors[0].numpy()
                out = {"user_id": frame["user_id"].to_numpy(), "user_embedding": list(emb.numpy().astype(np.float32))}
                for target, column in (("propensity", "purchase_propensity"), ("churn", "churn_risk")):
                    scorer = loaded.scorers.get(target, Scorer("network"))
                    out[column] = scorer.probabilities(behaviour, outputs[heads[target]].numpy())
                    if with_drivers:
                        pushed = scorer.contributions(behaviour, lambda: _integrated_gradients(
                            network, heads[target], *tensors))
                        out[f"{target}_drivers"] = drivers(pushed, behaviour, spec)
                    else:
                        out[f"{target}_drivers"] = [None] * len(frame)
                out["category_probs"] = list(torch.sigmoid(cat).double().numpy())
                out["spend_tier_index"] = spend.argmax(dim=1).int().numpy()
                yield pd.DataFrame(out)
        return inputs.mapInPandas(batches, PREDICTIONS_SCHEMA)
    return apply


def with_model_scores(predictions: DataFrame, categories: tuple[str, ...], top_k: int,
                      model_run_id: str) -> Callable[[DataFrame], DataFrame]:
    """profiles + predictions -> profiles with the model columns filled (users without a prediction keep nulls)."""
    names = F.array(*[F.lit(c) for c in categories]) if categories else F.array().cast("array<string>")
    tiers = F.array(*[F.lit(t) for t in SPEND_TIERS])

    def apply(profiles: DataFrame) -> DataFrame:
        scored = predictions.select(
            "user_id", "user_embedding", "purchase_propensity", "churn_risk", "propensity_drivers", "churn_drivers",
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
