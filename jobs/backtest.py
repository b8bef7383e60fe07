"""Out-of-time backtests: what a marketing or risk team trusts.

At an as-of date T, train exactly as the full job would on the data before T (features folded before
T - H, labels from [T - H, T)), score every user at T, and compare with what they did in [T, T + H).
The published model and every baseline are scored on the same users in one run; with several origins,
the same again at T - H, T - 2H, ... Results go to the ``backtests`` table and to MLflow.

It folds from the daily tiles a ``full`` run wrote, so it reads no event table. It writes
``backtest_snapshot`` (not ``training_snapshot``) and ``backtests`` only: profiles, labels and the
model the incremental job scores with are untouched.
"""
from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from typing import Mapping

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from conf import Config
from jobs.clock import add_days, day_start, midnight_after
from jobs.features.state_profiles import EVENT_TABLES, present_sources, profiles_from_state
from jobs.full import embedded_vectors, open_warehouse, read_and_validate
from jobs.model.evaluate import (HeldOut, evaluation_sample, gbt_scores, held_out, intervals, metrics, mllib_scores,
                                 rfm_rule_scores)
from jobs.model.inputs import horizon_labels, model_inputs, users_at
from jobs.model.score import predict
from jobs.model.stages import snapshot_stage, train_stage
from jobs.model.tracking import log_backtest
from jobs.runs import RunRecorder, write_run
from schemas import STATE_TABLES
from schemas.model import BACKTESTS

PUBLISHED = "model"  # the method whose scores profiles carry


class NotEnoughHistory(ValueError):
    """An origin whose training days or outcome days fall outside the data."""


@dataclass(frozen=True)
class Origin:
    as_of: datetime   # T: users are scored on the days before it
    cutoff: datetime  # T - H: the training features end here; the training labels are [T - H, T)
    outcome_end: datetime  # T + H: the outcome window is [T, T + H)


def backtest_origins(as_of: datetime, horizon_days: int, count: int, zone: str) -> list[Origin]:
    """T, T - H, T - 2H, ...: ``count`` origins whose outcome windows do not overlap, latest first."""
    starts = [add_days(as_of, -i * horizon_days, zone) for i in range(count)]
    return [Origin(t, add_days(t, -horizon_days, zone), add_days(t, horizon_days, zone)) for t in starts]


def check_origins(origins: list[Origin], first_event: datetime, data_end: datetime) -> None:
    """Every origin needs training days before its cutoff and a whole outcome window inside the data."""
    for o in origins:
        if o.outcome_end > data_end:
            raise NotEnoughHistory(
                f"backtest: as_of {o.as_of.isoformat()} + horizon ends {o.outcome_end.isoformat()}, after the data "
                f"(the last event's day ends {data_end.isoformat()}): its outcome window would be incomplete")
        if o.cutoff <= first_event:
            raise NotEnoughHistory(
                f"backtest: origin {o.as_of.isoformat()} trains on features before {o.cutoff.isoformat()}, but "
                f"the first event is at {first_event.isoformat()}; use fewer origins or a shorter horizon")


def scores_at(cfg: Config, profiles: DataFrame, snapshot_table: DataFrame, bundle, spec,
              baselines: bool) -> dict[str, DataFrame]:
    """Each method's scores (user_id, propensity, churn, category_scores) for ``profiles`` (users at T)."""
    inputs = profiles.transform(model_inputs(spec))
    model = (inputs.transform(predict(bundle))
             .select("user_id", F.col("purchase_propensity").alias("propensity"), F.col("churn_risk").alias("churn"),
                     F.col("category_probs").alias("category_scores")))
    found = {PUBLISHED: model}
    if baselines:
        n = len(spec.categories)
        found["rfm_rule"] = profiles.transform(rfm_rule_scores(spec.categories))
        trained_on = snapshot_table.filter(~F.col("holdout"))  # the rows the network trained on
        found["mllib"] = mllib_scores(trained_on, inputs, n)
        # Trees rank users for the binary targets only; for categories they borrow nothing (zeros, recall n/a).
        found["gbt"] = gbt_scores(trained_on, inputs, cfg.model.seed).withColumn(
            "category_scores", F.array_repeat(F.lit(0.0), n).cast("array<double>"))
    return found


def metric_rows(run_id: str, origin: Origin, horizon: int, method: str, held: HeldOut, draws: int,
                seed: int) -> list[tuple]:
    """``backtests`` rows for one method at one origin."""
    ci = intervals(held, draws, seed)
    rows = []
    for metric, value in metrics(held).items():
        if method == "gbt" and metric.startswith("category"):
            continue  # the trees rank no category
        low, high = ci[metric]
        rows.append((run_id, origin.as_of, origin.cutoff, horizon, metric, method, value, low, high,
                     len(held.bought), method == PUBLISHED))
    return rows


def run_backtest(cfg: Config, spark: SparkSession, as_of: datetime | None = None, origins_count: int = 1,
                 recorder: RunRecorder | None = None, env: Mapping[str, str] | None = None,
                 bootstrap_draws: int = 200) -> list[tuple]:
    """Backtest at ``as_of`` (and ``origins_count - 1`` earlier dates) over ``cfg.model.horizon_days``;
    returns and appends the ``backtests`` rows. ``as_of`` defaults to the latest local midnight with a whole
    horizon of data after it (``cfg.as_of`` is the profiles' date, not the backtest's)."""
    rec = recorder or RunRecorder("backtest")
    wh = open_warehouse(cfg, spark)
    rec.details["engine"] = wh.engine
    cleanup = ExitStack()
    try:
        missing = [t for t in STATE_TABLES if not wh.exists(t)]
        if missing:
            raise NotEnoughHistory(f"backtest: no daily tiles under {wh.root} ({', '.join(missing)}); run "
                                   f"'portrait full' once first: the backtest folds from the tiles it writes")
        zone, horizon = cfg.time.zone, cfg.model.horizon_days
        # Users and items only: every event is in the tiles already.
        clean, _, _ = read_and_validate(cfg, wh, env, rec, cleanup, partitions={t: [] for t in EVENT_TABLES})
        tiles = {t: wh.read(t) for t in STATE_TABLES}
        first_day, last_ts = tiles["state_events"].agg(F.min("day"), F.max("last_ts")).first()
        if last_ts is None:
            raise NotEnoughHistory("backtest: the tiles hold no event; nothing to train or score on")
        data_end = midnight_after(last_ts, zone)
        as_of = as_of or add_days(data_end, -horizon, zone)
        origins = backtest_origins(as_of, horizon, origins_count, zone)
        check_origins(origins, day_start(first_day, zone), data_end)
        present = present_sources(tiles["state_events"])
        vectors = embedded_vectors(cfg, wh, clean, tiles["state_interactions"], rec, cleanup)
        tiles |= {"users": clean["users"], "items": clean["items"]}
        rows: list[tuple] = []
        # Earliest first: ``backtest_snapshot`` ends holding what the latest origin trained on.
        for i, origin in enumerate(reversed(origins)):
            rows += backtest_origin(cfg, spark, wh, tiles, present, vectors, origin, rec, bootstrap_draws, i)
        with rec.stage("write") as st:
            wh.append("backtests", spark.createDataFrame(rows, BACKTESTS), run_id=rec.run_id)
            st.rows_out = len(rows)
        rec.details["mlflow_run_id"] = log_backtest(cfg.model, rec.run_id, rows)
        write_run(wh, rec, "succeeded")
        rec.console.print(rec.summary())
        return rows
    except Exception as error:
        write_run(wh, rec, "failed", error)
        raise
    finally:
        cleanup.close()


def backtest_origin(cfg: Config, spark: SparkSession, wh, tiles: dict[str, DataFrame], present: set[str], vectors,
                    origin: Origin, rec: RunRecorder, draws: int, index: int) -> list[tuple]:
    """Train before T, score at T, compare with [T, T + H): the rows of one origin."""
    m, zone, label = cfg.model, cfg.time.zone, origin.as_of.date().isoformat()
    with rec.stage(f"train {label}") as st:
        # As the full job would with as_of = T: features before T - H, labels from [T - H, T).
        snap = snapshot_stage(cfg, wh, tiles, origin.as_of, present, vectors, rec.run_id, rec.started_at,
                              table="backtest_snapshot")
        trained = train_stage(cfg, spark, wh, snap, rec.run_id)
        snap.profiles_at_cutoff.unpersist()
        st.rows_in = wh.count("backtest_snapshot")
    with rec.stage(f"score {label}") as st:
        existing = tiles["users"].transform(users_at(origin.as_of, zone, tiles["state_events"]))
        users = evaluation_sample(existing.select("user_id"), m.evaluation_users, m.seed)
        known = {**tiles, "users": tiles["users"].join(users, "user_id", "left_semi")}
        profiles = profiles_from_state(cfg, origin.as_of, rec.started_at, present, vectors)(known).cache()
        outcome = (horizon_labels(origin.as_of, m.horizon_days, zone, snap.spec.categories, m.spend_tier_quantiles)(known)
                   .select("user_id", "bought", "churned", "categories").cache())
        scored = scores_at(cfg, profiles, snap.table, trained.bundle, snap.spec, m.baselines)
        rows = []
        for method, scores in scored.items():
            held = held_out(outcome, scores, len(snap.spec.categories))
            rows += metric_rows(rec.run_id, origin, m.horizon_days, method, held, draws, m.seed + index)
        st.rows_out = len(held.bought)
        for metric in ("propensity_roc_auc", "churn_pr_auc"):
            rec.console.print(f"  {label} {metric:<20}" + "  ".join(
                f"{r[5]} {'n/a' if r[6] is None else f'{r[6]:.3f}'}" for r in rows if r[4] == metric))
        profiles.unpersist()
        outcome.unpersist()
    return rows
