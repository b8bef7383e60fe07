"""Out-of-time backtests: what a marketing or risk team trusts.

At an as-of date T, train exactly as the full job would on the data before T (every candidate fitted on
features folded before T - H and labels from [T - H, T)), score every user at T, and compare with what they
did in [T, T + H). Every candidate, the RFM rule and the published model are scored on the same users in one
run. The published model is what the full job would have published at T: the candidate that won the round
one horizon earlier (fitted before T - 2H, scored at T - H against [T - H, T)), calibrated there; so one more
round than the origins asked for runs first. With several origins, the same at T - H, T - 2H, ... Results go
to the ``backtests`` table and to MLflow.

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
from jobs.features.state_profiles import EVENT_TABLES, events_seen, profiles_from_state
from jobs.full import embedded_vectors, open_warehouse, read_and_validate
from jobs.model.challengers import BINARY_TARGETS, reported
from jobs.model.evaluate import HeldOut, evaluation_sample, intervals, metrics
from jobs.model.inputs import users_at
from jobs.model.selection import NO_CHOICE, PUBLISHED, Choice, choose, outcome_rows, scored_bundles, scored_round
from jobs.model.stages import candidates_stage, snapshot_stage
from jobs.model.tracking import log_backtest
from jobs.runs import RunRecorder, write_run
from schemas import STATE_TABLES
from schemas.model import BACKTESTS

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


def metric_rows(run_id: str, origin: Origin, horizon: int, method: str, held: HeldOut, draws: int,
                seed: int) -> list[tuple]:
    """``backtests`` rows for one method at one origin."""
    ci = intervals(held, draws, seed)
    rows = []
    for metric, value in metrics(held).items():
        if not reported(method, metric):
            continue
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
        clean, _ = read_and_validate(cfg, wh, env, rec, cleanup, partitions={t: [] for t in EVENT_TABLES})
        tiles = {t: wh.read(t) for t in STATE_TABLES}
        first_day, last_ts = tiles["state_events"].agg(F.min("day"), F.max("last_ts")).first()
        if last_ts is None:
            raise NotEnoughHistory("backtest: the tiles hold no event; nothing to train or score on")
        data_end = midnight_after(last_ts, zone)
        as_of = as_of or add_days(data_end, -horizon, zone)
        # One more origin before the earliest: its round is the earliest's validation (the choice of winners).
        validating = cfg.model.baselines
        origins = backtest_origins(as_of, horizon, origins_count + int(validating), zone)
        check_origins(origins, day_start(first_day, zone), data_end)
        present = events_seen(tiles["state_events"], cfg.validation.max_days_after_partition).sources
        vectors = embedded_vectors(cfg, wh, clean, tiles["state_interactions"], rec, cleanup)
        tiles |= {"users": clean["users"], "items": clean["items"]}
        rows: list[tuple] = []
        choice = NO_CHOICE if not validating else None
        # Earliest first: each round chooses the next one's winners, and ``backtest_snapshot`` ends holding
        # what the latest origin trained on.
        for i, origin in enumerate(reversed(origins)):
            found = backtest_round(cfg, spark, wh, tiles, present, vectors, origin, rec, choice)
            if choice is not None:
                rows += origin_rows(rec.run_id, origin, horizon, found, choice, bootstrap_draws, cfg.model.seed + i)
            choice = choose(found, cfg.model.seed, cfg.model.stack) if validating else NO_CHOICE
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


def backtest_round(cfg: Config, spark: SparkSession, wh, tiles: dict[str, DataFrame], present: set[str], vectors,
                   origin: Origin, rec: RunRecorder, choice: Choice | None) -> dict[str, HeldOut]:
    """Train every candidate before T, score the users at T, and set them beside [T, T + H): method -> held-out
    figures, with the published model (``choice``'s winners) among them unless ``choice`` is None."""
    m, zone, label = cfg.model, cfg.time.zone, origin.as_of.date().isoformat()
    with rec.stage(f"train {label}") as st:
        # As the full job would with as_of = T: features before T - H, labels from [T - H, T).
        snap = snapshot_stage(cfg, wh, tiles, origin.as_of, present, vectors, rec.run_id, rec.started_at,
                              table="backtest_snapshot")
        snap.profiles_at_cutoff.unpersist()
        _, candidates = candidates_stage(cfg, spark, wh, snap, rec.run_id, m.baselines)
        st.rows_in = wh.count("backtest_snapshot")
    with rec.stage(f"score {label}") as st:
        existing = tiles["users"].transform(users_at(origin.as_of, zone, tiles["state_events"]))
        users = evaluation_sample(existing.select("user_id"), m.evaluation_users, m.seed)
        known = {**tiles, "users": tiles["users"].join(users, "user_id", "left_semi")}
        profiles = profiles_from_state(cfg, origin.as_of, rec.started_at, present, vectors, settle=False)(known)
        found = scored_round(candidates, outcome_rows(cfg, tiles, profiles, origin.as_of, snap.spec), snap.spec,
                             scored_bundles(candidates, choice))
        st.rows_out = len(next(iter(found.values())).bought)
        for metric in ("propensity_roc_auc", "churn_pr_auc"):
            rec.console.print(f"  {label} {metric:<20}" + "  ".join(
                f"{method} {'n/a' if v is None else f'{v:.3f}'}" for method, held in found.items()
                for v in [metrics(held)[metric]]))
    return found


def origin_rows(run_id: str, origin: Origin, horizon: int, found: dict[str, HeldOut], choice: Choice, draws: int,
                seed: int) -> list[tuple]:
    """The ``backtests`` rows of one origin: every method, and each target's winner (metric
    ``champion_<target>``, value its validation figure)."""
    rows = [row for method, held in found.items() for row in metric_rows(run_id, origin, horizon, method, held,
                                                                          draws, seed)]
    for target, winner in choice.winners.items():
        value = choice.validation.get(BINARY_TARGETS[target][1], {}).get(winner)
        rows.append((run_id, origin.as_of, origin.cutoff, horizon, f"champion_{target}", winner, value, None, None,
                     len(next(iter(found.values())).bought), False))
    return rows
