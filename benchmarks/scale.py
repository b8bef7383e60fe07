"""What a run costs as data grows, measured in one run: issue 17's figures.

    python benchmarks/scale.py                         # N = 20k users; history 30, 90, 180 days
    python benchmarks/scale.py --users 2000            # a quicker look, same shape
    python benchmarks/scale.py --histories 30,180 --no-widths   # N users only: the step's ratios (item 4 below)
    python benchmarks/scale.py --users 80000 --histories 180 --no-widths --steps 2   # the ratio at 4N, two steps

1. ``full_n_s`` and ``full_4n_s``: the full job (model off, every text already in the embedding cache) on
   generated warehouses of N and 4N users over 30 days. ``full_4n_over_n`` is their ratio.
2. ``peer_4n_s``: a hand-written Spark SQL job on the 4N tables: one ``groupBy`` per event table (event type
   counts, 7/30/90-day orders and spend, distinct orders, active days, an hour histogram), joined and
   written. It is the yardstick: ``full_over_peer`` is the full job's time over it.
3. ``bytes_read_over_inputs``: the bytes the 4N full run's tasks read (Spark's event log, the sum of every
   task's ``Input Metrics / Bytes Read``) over the bytes of its input tables on disk.
4. For 30, 90 and 180 days of history (N users): daily incremental steps after a full run over the days before
   them: one per day of the last ``warehouse.settled_compaction_days`` (a whole compaction cycle, so exactly one of
   them rewrites the settled tables whole, whatever the dates), or the last ``--steps`` days. ``step_{days}_s`` is
   their mean, the step's cost per day; each step's seconds and the settled tables it rewrote rather than appended
   to are beside it (``steps_{days}``). Then the full job over every day on the same warehouse (``full_{days}_s``;
   the steps left every text in its embedding cache). Then ``step_180_over_step_30`` and ``step_over_full_180``
   from the means, and ``step_over_full_180_max`` from the dearest step.

Each timed run is a Spark job group; the event log is read after the session stops. Writes
benchmarks/results/scale.json.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Callable

import typer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results_file import write_result  # noqa: E402  (after the path)

RESULTS = ROOT / "benchmarks" / "results" / "scale.json"
EVENT_TABLES = ("transactions", "browse", "social")
# The yardstick's columns (peer_job; floor.py's tiled_peer_job computes the same from daily tiles).
BROWSE_TYPES = ("view", "click", "cart", "fav")
SOCIAL_KINDS = ("review", "comment", "like", "share", "follow")
ORDER_WINDOWS = (7, 30, 90)


def input_bytes(root: Path) -> int:
    """Bytes of the input tables' parquet files on disk."""
    from schemas import INPUT_TABLES

    return sum(f.stat().st_size for t in INPUT_TABLES for f in (root / t).rglob("*.parquet"))


def bytes_read_by_group(event_dir: Path) -> dict[str, int]:
    """Per job group, the sum of its tasks' input bytes, from Spark's event log."""
    group_of_stage: dict[int, str] = {}
    read: dict[str, int] = {}
    for log in sorted(p for p in event_dir.rglob("*") if p.is_file() and not p.name.startswith((".", "appstatus"))):
        for line in log.read_text().splitlines():
            event = json.loads(line)
            kind = event.get("Event")
            if kind == "SparkListenerJobStart":
                group = (event.get("Properties") or {}).get("spark.jobGroup.id")
                for stage in event.get("Stage IDs", []):
                    if group:
                        group_of_stage[stage] = group
            elif kind == "SparkListenerTaskEnd":
                group = group_of_stage.get(event.get("Stage ID"))
                metrics = event.get("Task Metrics") or {}
                if group:
                    read[group] = read.get(group, 0) + int((metrics.get("Input Metrics") or {}).get("Bytes Read", 0))
    return read


def logged_session(spark_conf, events: Path, more: dict[str, str] | None = None):
    """A Spark session of ``spark_conf`` (a config's ``spark``) with ``more`` settings and the event log on, under
    ``events``: plain JSON lines, one file per application, what ``bytes_read_by_group`` and step_profile's
    ``logged_events`` read."""
    from jobs.spark import spark_session

    log = {"spark.eventLog.enabled": "true", "spark.eventLog.dir": str(events), "spark.eventLog.compress": "false",
           "spark.eventLog.rolling.enabled": "false"}
    return spark_session(spark_conf.model_copy(update={"extra": {**spark_conf.extra, **(more or {}), **log}}))


def timed_group(spark, seconds: dict[str, float], group: str, run: Callable[[], object]) -> None:
    """``run()`` as Spark job group ``group`` (what the event log's figures are summed by), from a cleared cache so
    that nothing an earlier run cached serves it; its wall seconds go to ``seconds[group]``. The jobs after it are
    the group "setup"."""
    spark.catalog.clearCache()
    spark.sparkContext.setJobGroup(group, group)
    started = time.perf_counter()
    run()
    seconds[group] = round(time.perf_counter() - started, 1)
    print(f"timed {group}: {seconds[group]} s", flush=True)
    spark.sparkContext.setJobGroup("setup", "setup")


def without_last_days(spark, source, target, days: int) -> None:
    """Copy the ``source`` warehouse's inputs to ``target``'s without the events of their last ``days`` days."""
    from pyspark.sql import functions as F

    from jobs.full import open_warehouse
    from schemas import INPUT_TABLES

    source_wh, target_wh = open_warehouse(source, spark), open_warehouse(target, spark)
    first_held = last_day(source) - timedelta(days=days - 1)
    for table in INPUT_TABLES:
        rows = source_wh.read(table)
        target_wh.overwrite(table, rows.filter(F.col("dt") < F.lit(first_held)) if table in EVENT_TABLES else rows)


def land_day(spark, source, target, dt) -> None:
    """Append the ``source`` warehouse's events of partition ``dt`` to ``target``'s inputs: what its next step
    takes in."""
    from pyspark.sql import functions as F

    from jobs.full import open_warehouse

    source_wh, target_wh = open_warehouse(source, spark), open_warehouse(target, spark)
    for table in EVENT_TABLES:
        target_wh.append(table, source_wh.read(table).filter(F.col("dt") == F.lit(dt)))


def last_day(cfg):
    return cfg.generator.start_date + timedelta(days=cfg.generator.days - 1)


def rewritten_settled(cfg) -> list[str]:
    """The settled tables whose latest commit replaced them whole (a compaction, or users settled again) rather
    than appending the crossing summaries: the Delta log's own record of what the step did."""
    from deltalake import DeltaTable

    from schemas import SETTLED_TABLES

    def mode(table: str) -> str | None:
        return DeltaTable(str(Path(cfg.warehouse.path) / table)).history(1)[0].get("operationParameters", {}).get("mode")
    return [t for t in SETTLED_TABLES if mode(t) == "Overwrite"]


def raw_rows(spark, root: Path, table: str):
    """``table``'s rows in the warehouse under ``root``, read from its parquet files as a plain Spark job reads them
    (no Delta log, no ``dt`` from the directories): what the yardstick and the jobs beside it read."""
    return spark.read.parquet(*[str(p) for p in (root / table).rglob("*.parquet")])


def peer_job(spark, root: Path, out: Path, as_of) -> None:
    """The one-pass yardstick: one groupBy per event table, joined, written."""
    from pyspark.sql import functions as F

    def read(table: str):
        return raw_rows(spark, root, table)

    def days_before(days: int):
        return F.col("ts") >= F.lit(as_of - timedelta(days=days))

    before = F.col("ts") < F.lit(as_of)
    browse = read("browse").filter(before).groupBy("user_id").agg(
        *[F.count(F.when(F.col("event_type") == t, 1)).alias(f"{t}s") for t in BROWSE_TYPES],
        F.count_distinct(F.to_date("ts")).alias("browse_days"),
        F.array(*[F.count(F.when(F.hour("ts") == h, 1)) for h in range(24)]).alias("hours"))
    orders = read("transactions").filter(before).groupBy("user_id").agg(
        *[x for w in ORDER_WINDOWS
          for x in (F.count_distinct(F.when(days_before(w), F.col("order_id"))).alias(f"orders_{w}d"),
                    F.sum(F.when(days_before(w), F.col("amount"))).alias(f"spend_{w}d"))],
        F.count_distinct("order_id").alias("frequency"), F.sum("amount").alias("monetary"),
        F.max("ts").alias("last_order"))
    social = read("social").filter(before).groupBy("user_id").agg(
        *[F.count(F.when(F.col("kind") == k, 1)).alias(f"{k}s") for k in SOCIAL_KINDS])
    (read("users").select("user_id").join(browse, "user_id", "left").join(orders, "user_id", "left")
     .join(social, "user_id", "left").write.mode("overwrite").parquet(str(out)))


def main(users: int = 20_000, histories: str = "30,90,180", seed: int = 42,
         work: Path = ROOT / "benchmarks" / ".work" / "scale", out: Path = RESULTS,
         widths: bool = typer.Option(True, help="also the full job at N and 4N users and the peer job (items 1-3)"),
         steps: int = typer.Option(0, help="one-day steps per history (the last days); 0: a whole compaction cycle")
         ) -> None:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from conf import load_config
    from jobs.full import open_warehouse, run_full
    from jobs.incremental import run_incremental
    from jobs.ingest import run_generate

    shutil.rmtree(work, ignore_errors=True)
    (work / "events").mkdir(parents=True)
    (work / "hmac.key").write_text(hashlib.sha256(f"portrait-scale-{seed}".encode()).hexdigest())

    def config(name: str, n: int, days: int, *more: str):
        return load_config(overrides=[
            f"warehouse.path={work / name}", f"generator.users={n}", f"generator.days={days}",
            f"generator.seed={seed}", f"privacy.key_file={work / 'hmac.key'}", "model.enabled=false",
            f"model.tracking_uri=file:{work / 'mlruns'}", *more])

    base = config("n30", users, 30)
    spark = logged_session(base.spark, work / "events")
    seconds: dict[str, float] = {}
    timed = partial(timed_group, spark, seconds)

    def warm_full(name: str, n: int, days: int) -> None:
        """Generate, then one untimed full run, so the timed one finds every text in the embedding cache."""
        cfg = config(name, n, days)
        run_generate(cfg, spark)
        run_full(cfg, spark, env={})

    spark.sparkContext.setJobGroup("setup", "setup")
    if widths:
        warm_full("n30", users, 30)
        timed("full_n", lambda: run_full(config("n30", users, 30), spark, env={}))
        warm_full("n4_30", 4 * users, 30)
        timed("full_4n", lambda: run_full(config("n4_30", 4 * users, 30), spark, env={}))
        as_of = open_warehouse(config("n4_30", 4 * users, 30), spark).read("profiles").first()["as_of"]
        timed("peer_4n", lambda: peer_job(spark, work / "n4_30", work / "peer_out", as_of))

    taken: dict[int, list[dict]] = {}
    for days in [int(d) for d in histories.split(",")]:
        name = f"history_{days}"
        source, target = config(f"{name}_source", users, days), config(name, users, days)
        stepped = steps or target.warehouse.settled_compaction_days
        run_generate(source, spark)
        without_last_days(spark, source, target, stepped)
        run_full(target, spark, env={})
        taken[days] = []
        for back in range(stepped - 1, -1, -1):
            dt = last_day(source) - timedelta(days=back)
            land_day(spark, source, target, dt)
            timed(f"step_{days}_{dt}", lambda: run_incremental(target, spark, env={}))
            taken[days].append({"dt": str(dt), "seconds": seconds[f"step_{days}_{dt}"],
                                "settled_rewritten": rewritten_settled(target)})
        seconds[f"step_{days}"] = round(sum(s["seconds"] for s in taken[days]) / stepped, 1)
        # The full recompute over every day on the stepped warehouse: the full run and the steps left every text in
        # its embedding cache.
        timed(f"full_{days}", lambda: run_full(target, spark, env={}))

    spark.stop()
    read = bytes_read_by_group(work / "events")
    days = sorted(int(d) for d in histories.split(","))
    first, last = days[0], days[-1]
    result = {
        "users_n": users, "histories_days": days,
        "seconds": seconds,
        f"step_{last}_over_step_{first}": round(seconds[f"step_{last}"] / seconds[f"step_{first}"], 2),
        f"step_over_full_{last}": round(seconds[f"step_{last}"] / seconds[f"full_{last}"], 3),
        f"step_over_full_{last}_max": round(max(s["seconds"] for s in taken[last]) / seconds[f"full_{last}"], 3),
        **{f"steps_{d}": taken[d] for d in days},
        "step_is": (f"the mean of the last {steps} days' one-day steps" if steps else
                    "the mean of one-day steps over a compaction cycle (warehouse.settled_compaction_days)"),
        "bytes_read_by_run": read,
        "model": "off; every text already in the embedding cache",
    }
    if widths:
        inputs_4n = input_bytes(work / "n4_30")
        result |= {
            "full_over_peer": round(seconds["full_4n"] / seconds["peer_4n"], 2),
            "full_4n_over_n": round(seconds["full_4n"] / seconds["full_n"], 2),
            "input_bytes_4n": inputs_4n,
            "bytes_read_full_4n": read.get("full_4n", 0),
            "bytes_read_peer_4n": read.get("peer_4n", 0),
            "bytes_read_over_inputs": round(read.get("full_4n", 0) / inputs_4n, 2),
        }
    write_result(out, result)


if __name__ == "__main__":
    typer.run(main)
