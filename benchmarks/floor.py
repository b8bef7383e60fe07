"""What issue 17's "full job ÷ one-pass Spark SQL job ≤ 3" asks of a full run, measured in one Spark session.

    python benchmarks/floor.py                       # 4N = 80,000 users and a 300-user warehouse, 30 days: ~30 min
    python benchmarks/floor.py --no-full-4n          # not the full job at 4N (its untimed warm-up embeds every text)
    python benchmarks/floor.py --set embedding.enabled=false --set images.enabled=false --out ...  # no vectors

Four jobs, each timed on a generated warehouse of ``--users`` (4N) and on one of ``--tiny-users``:

- ``peer``: scale.py's yardstick, one ``groupBy`` per event table, joined and written (``peer_job``);
- ``tiled``: the same columns by the design issue 17 asks for, written by hand: each event table read once into
  per-(user, day) tiles written as parquet, the tiles read back and folded per user, joined and written
  (``tiled_peer_job``). Its rows must equal the peer's (checked here, every column, ``tiled_equals_peer``);
- ``full``: the product's full job (model off, every text already in the embedding cache, as scale.py runs it),
  at the tiny size, and at 4N unless ``--no-full-4n``.

A run over ``--tiny-users`` costs what a run costs whatever the data: Spark's jobs, stages and tasks, Delta commits,
plans built in Python. ``full_tiny_over_peer_4n`` puts the full job's on the yardstick's scale at 4N; ``accounting``
says what it is made of (jobs, stages, tasks and Delta commits, from the event log and the warehouse's Delta logs),
``full_stages_s`` where it goes (the run's own stage timers).
``tiled_4n_over_peer_4n`` is what the tiles themselves cost, with the peer's few columns. Writes
benchmarks/results/floor.json.
"""
from __future__ import annotations

import os
import shutil
import sys
import time
from datetime import timedelta
from pathlib import Path

import typer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results_file import write_result  # noqa: E402  (after the path)
from benchmarks.scale import (BROWSE_TYPES, EVENT_TABLES, ORDER_WINDOWS, SOCIAL_KINDS,  # noqa: E402
                              bytes_read_by_group, last_day, logged_session, peer_job, raw_rows, timed_group)
from benchmarks.step_ab import HMAC_KEY, settings  # noqa: E402
from benchmarks.step_profile import accounting, logged_events  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "floor.json"


def tiled_peer_job(spark, root: Path, tiles: Path, out: Path, as_of) -> None:
    """``peer_job``'s columns from daily tiles: each event table read once and aggregated per (user, day) into a
    parquet tile table (``write_tiles``); the tiles read back, folded per user and joined to the users
    (``fold_tiles``)."""
    write_tiles({t: raw_rows(spark, root, t) for t in EVENT_TABLES}, tiles, as_of)
    fold_tiles(spark, raw_rows(spark, root, "users").select("user_id"), tiles, out, as_of)


def write_tiles(events: dict, tiles: Path, as_of, by: tuple[str, ...] = ("user_id",)) -> None:
    """The event rows before ``as_of`` aggregated per (``by``, day) into parquet tile tables under ``tiles``.

    A user's distinct orders cannot be summed across days, so an order tile keeps the day's order ids (the fold
    takes the distinct ids of all its tiles)."""
    from pyspark.sql import functions as F

    day = F.to_date("ts").alias("day")
    before = F.col("ts") < F.lit(as_of)
    events["browse"].filter(before).groupBy(*by, day).agg(
        *[F.count(F.when(F.col("event_type") == t, 1)).alias(f"{t}s") for t in BROWSE_TYPES],
        F.array(*[F.count(F.when(F.hour("ts") == h, 1)) for h in range(24)]).alias("hours"),
    ).write.mode("overwrite").parquet(str(tiles / "browse"))
    events["transactions"].filter(before).groupBy(*by, day).agg(
        F.collect_set("order_id").alias("orders"), F.sum("amount").alias("spend"), F.max("ts").alias("last_order"),
    ).write.mode("overwrite").parquet(str(tiles / "orders"))
    events["social"].filter(before).groupBy(*by, day).agg(
        *[F.count(F.when(F.col("kind") == k, 1)).alias(f"{k}s") for k in SOCIAL_KINDS],
    ).write.mode("overwrite").parquet(str(tiles / "social"))


def fold_tiles(spark, users, tiles: Path, out: Path, as_of) -> None:
    """``write_tiles``' tiles folded per user (windows by whole days: ``as_of`` is a midnight in the session's
    zone), left-joined to ``users`` (user_id) and written as parquet to ``out``."""
    from pyspark.sql import functions as F

    def within(days: int):
        return F.col("day") >= F.lit((as_of - timedelta(days=days)).date())

    def distinct_orders(rows):
        return F.size(F.array_distinct(F.flatten(F.collect_list(rows))))

    browse = spark.read.parquet(str(tiles / "browse")).groupBy("user_id").agg(
        *[F.sum(f"{t}s").alias(f"{t}s") for t in BROWSE_TYPES], F.count_distinct("day").alias("browse_days"),
        F.array(*[F.sum(F.col("hours")[h]) for h in range(24)]).alias("hours"))
    orders = spark.read.parquet(str(tiles / "orders")).groupBy("user_id").agg(
        *[x for w in ORDER_WINDOWS for x in (distinct_orders(F.when(within(w), F.col("orders"))).alias(f"orders_{w}d"),
                                             F.sum(F.when(within(w), F.col("spend"))).alias(f"spend_{w}d"))],
        distinct_orders(F.col("orders")).alias("frequency"), F.sum("spend").alias("monetary"),
        F.max("last_order").alias("last_order"))
    social = spark.read.parquet(str(tiles / "social")).groupBy("user_id").agg(
        *[F.sum(f"{k}s").alias(f"{k}s") for k in SOCIAL_KINDS])
    (users.join(browse, "user_id", "left").join(orders, "user_id", "left")
     .join(social, "user_id", "left").write.mode("overwrite").parquet(str(out)))


def differing_rows(spark, left: Path, right: Path) -> int:
    """Rows of either parquet output not in the other, every column compared, sums rounded to cents (the two jobs
    add the same amounts in different orders)."""
    from pyspark.sql import functions as F

    def rows(path: Path):
        df = spark.read.parquet(str(path))
        return df.select(*[F.round(c, 2).alias(c) if c == "monetary" or c.startswith("spend_") else F.col(c)
                           for c in sorted(df.columns)])
    a, b = rows(left), rows(right)
    return a.exceptAll(b).count() + b.exceptAll(a).count()


def delta_commits_since(warehouse: Path, started: float) -> int:
    """Delta commits written under ``warehouse`` since ``started`` (epoch seconds): its tables' new log entries."""
    return sum(1 for log in warehouse.glob("*/_delta_log/*.json") if log.stat().st_mtime >= started)


def main(users: int = 80_000, tiny_users: int = 300, days: int = 30, seed: int = 42,
         full_4n: bool = typer.Option(True, help="also the full job at --users (an untimed full run first embeds "
                                                 "every text)"),
         set_: list[str] = typer.Option([], "--set", help="KEY=VALUE settings for the full job's runs (the "
                                                         "product's config), e.g. embedding.enabled=false"),
         work: Path = ROOT / "benchmarks" / ".work" / "floor", out: Path = RESULTS) -> None:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from conf import load_config
    from jobs.clock import day_start
    from jobs.full import run_full
    from jobs.ingest import run_generate
    from jobs.runs import RunRecorder

    work = work.resolve()
    shutil.rmtree(work, ignore_errors=True)
    (work / "events").mkdir(parents=True)
    (work / "hmac.key").write_text(HMAC_KEY)
    sizes = {"tiny": tiny_users, "4n": users}
    configs = {size: load_config(overrides=[*settings(work, n, days, seed), f"warehouse.path={work / size}", *set_])
               for size, n in sizes.items()}
    spark = logged_session(configs["tiny"].spark, work / "events")
    seconds: dict[str, float] = {}
    commits: dict[str, int] = {}
    stages: dict[str, dict[str, float]] = {}

    def timed(group: str, run) -> None:
        started_at = time.time()
        timed_group(spark, seconds, group, run)
        commits[group] = sum(delta_commits_since(work / size, started_at) for size in sizes)

    spark.sparkContext.setJobGroup("setup", "setup")
    agree: dict[str, bool] = {}
    for size, cfg in configs.items():
        run_generate(cfg, spark)
        if size == "tiny" or full_4n:
            run_full(cfg, spark, env={})  # untimed: warms the session and embeds every text
            recorder = RunRecorder("full")
            timed(f"full_{size}", lambda: run_full(cfg, spark, recorder, env={}))
            stages[f"full_{size}"] = {name: round(s, 1) for name, s in recorder.stage_seconds.items()}
        as_of = day_start(last_day(cfg) + timedelta(days=1), cfg.time.zone)  # the midnight after the last day
        root = work / size
        timed(f"peer_{size}", lambda: peer_job(spark, root, work / f"peer_{size}", as_of))
        timed(f"tiled_{size}", lambda: tiled_peer_job(spark, root, work / f"tiles_{size}", work / f"tiled_{size}",
                                                      as_of))
        agree[size] = differing_rows(spark, work / f"peer_{size}", work / f"tiled_{size}") == 0
    spark.stop()

    events = list(logged_events(work / "events"))
    read = bytes_read_by_group(work / "events")
    ratio = lambda a, b: round(seconds[a] / seconds[b], 2)  # noqa: E731
    result = {
        "users": sizes, "days": days, "as_of": "the midnight after the last generated day",
        "seconds": seconds, "full_stages_s": stages,
        "accounting": {group: {**accounting(events, group, s), "delta_commits": commits[group],
                               "bytes_read": read.get(group, 0)} for group, s in seconds.items()},
        "tiled_equals_peer": agree,
        "full_tiny_over_peer_4n": ratio("full_tiny", "peer_4n"),
        "tiled_4n_over_peer_4n": ratio("tiled_4n", "peer_4n"),
        "peer_tiny_over_peer_4n": ratio("peer_tiny", "peer_4n"),
        "model": "off; with the embedding on, every text already in the embedding cache", "settings": set_,
    }
    if full_4n:
        result |= {"full_4n_over_peer_4n": ratio("full_4n", "peer_4n"),
                   "full_tiny_over_full_4n": ratio("full_tiny", "full_4n")}
    write_result(out, result)


if __name__ == "__main__":
    typer.run(main)
