"""The model's stages inside a job: snapshot, train, evaluate, score, segment.

Each function reads DataFrames and returns DataFrames or small results; the job decides what
to write. Training data is point-in-time, folded from the daily tiles: features at cutoff
T = as_of - horizon, labels in [T, as_of).
"""
from __future__ import annotations

import hashlib
import json
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Callable

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from conf import Config
from jobs.clock import add_days, local_midnight_date
from jobs.frames import checkpointed
from jobs.features.state_profiles import Settle, Vectors, profiles_from_state
from jobs.model.challengers import BINARY_TARGETS, CANDIDATES, REFERENCE, fit_challengers, reported
from jobs.model.evaluate import evaluation_sample, metrics, reliability
from jobs.model.inputs import (TEXT_DIM, TEXT_VECTORS, InputSpec, category_vocabulary, holdout_flag, horizon_labels,
                               model_inputs, users_at)
from jobs.model.selection import (NO_CHOICE, PUBLISHED, Candidates, Choice, choose, outcome_rows, published_bundle,
                                  scored_bundles, scored_round)
from jobs.model.network import ModelBundle, NetworkShape
from jobs.model.score import predict, with_model_scores
from jobs.model.serving import save_serving
from jobs.model.segments import SegmentModel, assign_segments, describe_segments, fit_segments, segment_marks
from jobs.model.tracking import log_training
from jobs.model.train import TrainSettings, distributed_train, final_state
from jobs.runs import RunRecorder
from jobs.storage import Warehouse
from jobs.tags import model_tags
from jobs.together import run_together
from schemas.model import MODEL_METRICS, TRAINING_SNAPSHOT

MAX_CATEGORIES = 50  # the category head's vocabulary: the most bought categories


@dataclass
class Snapshot:
    cutoff: datetime
    spec: InputSpec
    table: DataFrame          # the snapshot rows (read back from the warehouse)
    profiles_at_cutoff: DataFrame
    name: str = "training_snapshot"  # the table they were written to


@dataclass
class Trained:
    bundle: ModelBundle
    history: list[float]
    resumed_from: int
    checkpoint_dir: str
    metrics: dict[str, dict[str, float | None]] = field(default_factory=dict)  # metric -> method -> value
    holdout_users: int = 0
    mlflow_run_id: str | None = None
    choice: Choice = NO_CHOICE            # which candidate each target publishes, and why
    calibration: dict[str, list[tuple[float, float, int]]] = field(default_factory=dict)  # target -> curve


def image_width(vectors: Vectors) -> int:
    """The photo vectors' width, from one of them; 0 when there are none."""
    if vectors.images is None:
        return 0
    first = vectors.images.select(F.size("embedding").alias("n")).first()
    return int(first["n"]) if first else 0


def fold_dates(cfg: Config, as_of: datetime) -> tuple[datetime, ...]:
    """The earlier dates the model's stages fold profiles at, as of ``as_of``: the training snapshot's cutoff
    T = as_of - horizon and, with the challengers, the validation snapshot's T - horizon. The full job splits its
    settled tables there (``settled_tables``' spans), so these folds read them too."""
    m, zone = cfg.model, cfg.time.zone
    if not m.enabled:
        return ()
    cutoff = add_days(as_of, -m.horizon_days, zone)
    return (add_days(cutoff, -m.horizon_days, zone), cutoff) if m.baselines else (cutoff,)


def snapshot_stage(cfg: Config, wh: Warehouse, tiles: dict[str, DataFrame], as_of: datetime, present: set[str],
                   vectors: Vectors, run_id: str, updated_at: datetime, table: str = "training_snapshot",
                   settle: Settle = False) -> Snapshot:
    """Write the point-in-time training snapshot, folded from the same tiles as today's profiles: features
    from the days before T = as_of - horizon, labels from the days [T, as_of).

    ``tiles``: every state table, plus the clean ``users`` and ``items``; ``settle``: the settled tables among them
    split at T (``fold_dates``), which the fold reads instead of the tiles under them (False: none).
    """
    m, zone = cfg.model, cfg.time.zone
    cutoff = add_days(as_of, -m.horizon_days, zone)
    known = {**tiles, "users": tiles["users"].transform(users_at(cutoff, zone, tiles["state_events"]))}
    vocabulary = category_vocabulary(cutoff, zone, MAX_CATEGORIES, tiles["items"])(tiles["state_interactions"])
    spec = InputSpec(tuple(cfg.features.rfm_windows), vocabulary, cfg.tags.active_window_days, image_width(vectors),
                     tuple(cfg.features.short_windows), m.horizon_days, zone)
    at_cutoff = profiles_from_state(cfg, cutoff, updated_at, present, vectors, settle)(known)
    at_cutoff = at_cutoff.persist(StorageLevel.MEMORY_AND_DISK)
    labels = horizon_labels(cutoff, m.horizon_days, zone, spec.categories, m.spend_tier_quantiles)(known)
    rows = (at_cutoff.transform(model_inputs(spec)).join(labels, "user_id")
            .withColumn("holdout", holdout_flag(m.holdout_share, m.seed))
            .select(*TRAINING_SNAPSHOT.fieldNames()))
    # A few files per training process, so every rank gets its own row groups.
    wh.overwrite(table, rows.repartition(max(2, m.num_processes * 2), "user_id"), run_id=run_id)
    return Snapshot(cutoff, spec, wh.read(table), at_cutoff, table)


def _fingerprint(settings: TrainSettings, snapshot: Snapshot) -> str:
    content = snapshot.table.agg(F.sum(F.xxhash64("user_id", "behaviour", "text", "interest", "bought", "churned",
                                                   "spend_tier", "holdout").cast("decimal(38,0)"))).first()[0]
    payload = json.dumps([settings.fingerprint_payload(), snapshot.cutoff.isoformat(), str(content)], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _local_mode(cfg: Config, spark: SparkSession) -> bool:
    if cfg.model.local_mode != "auto":
        return cfg.model.local_mode == "local"
    return spark.sparkContext.master.startswith("local")


def _use_gpu(cfg: Config, spark: SparkSession, local: bool) -> bool:
    if not cfg.model.use_gpu:
        return False
    if local:
        import torch

        return torch.cuda.is_available()
    return spark.conf.get("spark.task.resource.gpu.amount", None) is not None


def train_stage(cfg: Config, spark: SparkSession, wh: Warehouse, snapshot: Snapshot, run_id: str) -> Trained:
    """Train across ``model.num_processes`` TorchDistributor processes; resumes a matching interrupted run."""
    m = cfg.model
    local = _local_mode(cfg, spark)
    shape = NetworkShape(n_behaviour=len(snapshot.spec.names()), text_dim=TEXT_DIM,
                         n_categories=len(snapshot.spec.categories), embedding_dim=m.embedding_dim,
                         hidden_dim=m.hidden_dim, n_text_vectors=len(TEXT_VECTORS), image_dim=snapshot.spec.image_dim)
    settings = TrainSettings(files=tuple(wh.files(snapshot.name)), checkpoint_dir="", shape=shape,
                             epochs=m.epochs, batch_size=m.batch_size, learning_rate=m.learning_rate,
                             weight_decay=m.weight_decay, seed=m.seed, use_gpu=_use_gpu(cfg, spark, local))
    directory = str(Path(m.checkpoint_dir).absolute() / _fingerprint(settings, snapshot))
    settings = replace(settings, checkpoint_dir=directory)
    result = distributed_train(settings, m.num_processes, local)
    state = final_state(settings)
    bundle = ModelBundle(shape, state["model"], snapshot.spec, run_id)
    return Trained(bundle, list(state["history"]), int(result["resumed_from"]), directory)


def candidates_stage(cfg: Config, spark: SparkSession, wh: Warehouse, snapshot: Snapshot, run_id: str,
                     challengers: bool) -> tuple[Trained, Candidates]:
    """The network trained (``train_stage``) and, with ``challengers``, the challengers fitted on the same training
    rows (the snapshot's, holdout excluded), at once (jobs/together.py): the network trains in processes of its
    own while the challengers' small Spark jobs run."""
    train = snapshot.table.filter(~F.col("holdout"))
    m = cfg.model
    trained, fitted = run_together(spark, partial(train_stage, cfg, spark, wh, snapshot, run_id),
                                   partial(fit_challengers, train, snapshot.spec, m.seed, m.tree_rows_per_worker)
                                   if challengers else dict)
    return trained, Candidates(trained.bundle, fitted, train)


def validation_stage(cfg: Config, spark: SparkSession, wh: Warehouse, tiles: dict[str, DataFrame], snapshot: Snapshot,
                     present: set[str], vectors: Vectors, run_id: str, updated_at: datetime, settle: Settle = False
                     ) -> tuple[Choice, int]:
    """Inside the training window, out of time: every candidate fitted at T - 2H (``validation_snapshot``),
    scored on the users of T - H against what they did in [T - H, T). Returns the choice and the users."""
    m = cfg.model
    at = snapshot.cutoff  # T - H: the training snapshot's cutoff, and validation's scoring date
    early = snapshot_stage(cfg, wh, tiles, at, present, vectors, run_id, updated_at, table="validation_snapshot",
                           settle=settle)
    early.profiles_at_cutoff.unpersist()
    _, candidates = candidates_stage(cfg, spark, wh, early, run_id, challengers=True)
    users = evaluation_sample(snapshot.profiles_at_cutoff.select("user_id"), m.evaluation_users, m.seed)
    profiles = snapshot.profiles_at_cutoff.join(users, "user_id", "left_semi")
    found = scored_round(candidates, outcome_rows(cfg, tiles, profiles, at, early.spec), early.spec)
    return choose(found, m.seed, m.stack), len(next(iter(found.values())).bought)


def room_to_validate(cfg: Config, tiles: dict[str, DataFrame], snapshot: Snapshot) -> bool:
    """Whether a validation snapshot (cutoff T - 2H) would have any day of events before its cutoff."""
    first = tiles["state_events"].agg(F.min("day")).first()[0]
    zone = cfg.time.zone
    return first is not None and first < local_midnight_date(add_days(snapshot.cutoff, -cfg.model.horizon_days, zone),
                                                             zone)


def evaluate_stage(cfg: Config, snapshot: Snapshot, candidates: Candidates, trained: Trained) -> None:
    """The published model, every candidate and the RFM rule on the same held-out users; fills
    ``trained.metrics`` and the published scores' reliability curves."""
    held = evaluation_sample(snapshot.table.filter("holdout"), cfg.model.evaluation_users, cfg.model.seed)
    found = scored_round(candidates, held, snapshot.spec, scored_bundles(candidates, trained.choice))
    for method, scores in found.items():
        trained.holdout_users = len(scores.bought)
        for metric, value in metrics(scores).items():
            if reported(method, metric):
                trained.metrics.setdefault(metric, {})[method] = value
    published = found[PUBLISHED]
    trained.calibration = {"propensity": reliability(published.bought, published.propensity),
                           "churn": reliability(published.churned, published.churn)}


def metrics_rows(trained: Trained, run_id: str, as_of: datetime) -> list[tuple]:
    """``model_metrics``: every method on the held-out users; each target's validation figures (metric
    ``validation_*``) and its winner (metric ``champion_<target>``: the winner's validation lead over the best
    other method, the RFM rule included); the published scores' reliability curve."""
    n = trained.holdout_users
    rows = [(run_id, metric, method, value, n, as_of)
            for metric, by_method in sorted(trained.metrics.items()) for method, value in sorted(by_method.items())]
    choice = trained.choice
    rows += [(run_id, f"validation_{metric}", method, value, None, as_of)
             for metric, by_method in sorted(choice.validation.items()) for method, value in sorted(by_method.items())]
    for target, winner in choice.winners.items():
        figures = choice.validation.get(BINARY_TARGETS[target][1], {})
        others = [v for m, v in figures.items() if m != winner and m in (*CANDIDATES, REFERENCE) and v is not None]
        lead = figures[winner] - max(others) if figures.get(winner) is not None and others else None
        rows.append((run_id, f"champion_{target}", winner, lead, None, as_of))
    for target, curve in trained.calibration.items():
        for i, (predicted, observed, users) in enumerate(curve):
            rows += [(run_id, f"reliability_{target}_{i}_predicted", PUBLISHED, predicted, users, as_of),
                     (run_id, f"reliability_{target}_{i}_observed", PUBLISHED, observed, users, as_of)]
    return rows


def score_stage(cfg: Config, profiles: DataFrame, trained: Trained, as_of: datetime, rec: RunRecorder,
                cleanup: ExitStack) -> tuple[DataFrame, DataFrame, SegmentModel]:
    """Today's profiles with embedding, scores and segment; and the segments table."""
    m = cfg.model
    # Every user scored once, now: the segment fits read samples of it many times.
    scored = checkpointed(profiles.transform(model_scores(trained.bundle, cfg.features.top_k)), cleanup)
    segments = fit_segments(scored, m.segments_k_min, m.segments_k_max, m.segments_sample, m.seed)
    rec.details["segments_k"] = str(segments.k)
    rec.details["silhouettes"] = json.dumps({str(k): round(v, 4) for k, v in segments.silhouettes.items()})
    with_segments = checkpointed(scored.transform(assign_segments(segments)), cleanup)
    table = with_segments.transform(describe_segments(trained.bundle.run_id, as_of, segments.silhouettes[segments.k],
                                                      m.segment_top_features)).localCheckpoint(eager=True)
    segments = replace(segments, marks=segment_marks(table, m.segment_top_features))
    return with_segments, table, segments


def model_scores(bundle: ModelBundle, top_k: int) -> Callable[[DataFrame], DataFrame]:
    """profiles -> profiles with the network's embedding and scores (``segment_id`` is assigned separately)."""
    def apply(profiles: DataFrame) -> DataFrame:
        predictions = profiles.transform(model_inputs(bundle.spec)).transform(predict(bundle))
        return profiles.transform(with_model_scores(predictions, bundle.categories, top_k, bundle.run_id))
    return apply


def rescored(cfg: Config, bundle: ModelBundle, segments: SegmentModel) -> Callable[[DataFrame], DataFrame]:
    """profiles -> profiles scored and segmented by a model trained earlier (the incremental job)."""
    return lambda profiles: (profiles.transform(model_scores(bundle, cfg.features.top_k))
                             .transform(assign_segments(segments)))


def model_labels(cfg: Config, marks: dict[int, tuple[str, ...]]) -> Callable[[DataFrame], DataFrame]:
    m = cfg.model
    return model_tags(m.propensity_tag_min, m.churn_tag_min, m.horizon_days, marks)


@dataclass
class ModelOutputs:
    profiles: DataFrame   # scored, with segment_id
    labels: DataFrame     # model-based tags
    segments: DataFrame
    metrics: DataFrame    # model_metrics rows
    trained: Trained


def model_stages(cfg: Config, spark: SparkSession, wh: Warehouse, tiles: dict[str, DataFrame], profiles: DataFrame,
                 as_of: datetime, present: set[str], vectors: Vectors, rec: RunRecorder, cleanup: ExitStack,
                 split: Settle = False) -> ModelOutputs:
    """Snapshot, train, evaluate, score and segment, each a recorded stage; then log it all to MLflow.

    ``split``: the settled tables in ``tiles`` that are split at ``fold_dates`` (``settled_tables``' spans), which
    the snapshots read; they fold every tile under the others."""
    m = cfg.model
    with rec.stage("snapshot") as st:
        snap = snapshot_stage(cfg, wh, tiles, as_of, present, vectors, rec.run_id, rec.started_at, settle=split)
        st.rows_out = rec.rows_out["training_snapshot"] = wh.count("training_snapshot")
        rec.details["cutoff"] = snap.cutoff.isoformat()
    choice, why = NO_CHOICE, "the network: no challengers (model.baselines is false)"
    if m.baselines and room_to_validate(cfg, tiles, snap):
        with rec.stage("validate") as st:
            choice, st.rows_in = validation_stage(cfg, spark, wh, tiles, snap, present, vectors, rec.run_id,
                                                  rec.started_at, split)
        why = "on validation " + ", ".join(
            f"{BINARY_TARGETS[t][1]} {choice.validation.get(BINARY_TARGETS[t][1], {}).get(w)}" for t, w in
            choice.winners.items())
    elif m.baselines:
        why = "the network: no room for a validation window (T - 2 x horizon is before the first event)"
    with rec.stage("train") as st:
        trained, candidates = candidates_stage(cfg, spark, wh, snap, rec.run_id, m.baselines)
        trained.bundle, trained.choice = published_bundle(candidates, choice), choice
        st.rows_in = st.rows_out
        rec.details["checkpoints"] = trained.checkpoint_dir
        rec.details["published"] = json.dumps(choice.winners)
        rec.console.print("  loss per epoch: " + ", ".join(f"{v:.4f}" for v in trained.history)
                          + (f" (resumed from the checkpoint of epoch {trained.resumed_from - 1})"
                             if trained.resumed_from else ""))
        rec.console.print(f"  published: {json.dumps(choice.winners)} ({why})")
    with rec.stage("evaluate") as st:
        evaluate_stage(cfg, snap, candidates, trained)
        snap.profiles_at_cutoff.unpersist()
        st.rows_in = trained.holdout_users
        for metric, by_method in sorted(trained.metrics.items()):
            rec.console.print(f"  {metric:<24}" + "  ".join(
                f"{method} {'n/a' if v is None else f'{v:.3f}'}" for method, v in sorted(by_method.items())))
    with rec.stage("score") as st:
        scored, segments, seg = score_stage(cfg, profiles, trained, as_of, rec, cleanup)
        st.rows_in, st.rows_out = None, seg.k
    flat = {f"{method}/{metric}": v for metric, by in trained.metrics.items() for method, v in by.items()}
    trained.mlflow_run_id = log_training(m, rec.run_id, {
        **{k: v for k, v in m.model_dump().items() if k not in ("tracking_uri",)},
        "cutoff": snap.cutoff.isoformat(), "categories": len(snap.spec.categories),
        "behaviour_features": len(snap.spec.names()), "segments_k": seg.k}, trained.history,
        {**flat, "segments_k": seg.k, "silhouette": seg.silhouettes[seg.k]}, trained.bundle)
    rec.details["mlflow_run_id"] = trained.mlflow_run_id
    metrics = spark.createDataFrame(metrics_rows(trained, rec.run_id, as_of), MODEL_METRICS)
    labels = scored.transform(model_labels(cfg, seg.marks))
    rec.details["serving_model"] = str(save_serving(m.serving_dir, trained.bundle, seg))
    return ModelOutputs(scored, labels, segments, metrics, trained)
