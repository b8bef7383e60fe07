"""A week of daily steps that append to the settled tables (and compact them on their dates), against the same
week rewriting every settled table at every step.

    python benchmarks/week_of_steps.py                  # 20,000 users, 180 days, the last 7 stepped: about 30 minutes

One generated warehouse (model off) without its last ``--steps`` days is run in full once, and copied twice. The
copies then take the same days one at a time: each day is landed in both and stepped in both, in one Spark
session, the side that goes first alternating from day to day so that a slow minute of the machine falls on both:
- ``period``: ``warehouse.settled_compaction_days`` at its default. A table takes the day's crossing summaries as
  an append, and is rewritten on the step whose boundary crosses its compaction date;
- ``rewrite``: the setting at 1, so every settled table is rewritten at every step, as before 90c00f2.

Reports each step's seconds and settle-stage seconds, their sums over the week and the ratios, and how each step
wrote each settled table (from its Delta log). The two copies' profiles must be equal at the end (every column but
``updated_at``, ``exceptAll`` both ways), or the benchmark fails. Writes benchmarks/results/week_of_steps.json.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import typer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results_file import write_result  # noqa: E402  (after the path)
from benchmarks.revision_ab import head_revision  # noqa: E402
from benchmarks.scale import EVENT_TABLES, last_day  # noqa: E402
from benchmarks.step_ab import settings  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "week_of_steps.json"
SIDES = {"period": [], "rewrite": ["warehouse.settled_compaction_days=1"]}


def land(spark, source, target, first: date, last: date | None) -> None:
    """Append the ``source`` warehouse's event partitions from ``first`` to ``last`` (None: every later one) to
    ``target``'s inputs."""
    from pyspark.sql import functions as F

    from jobs.full import open_warehouse

    source_wh, target_wh = open_warehouse(source, spark), open_warehouse(target, spark)
    for table in EVENT_TABLES:
        rows = source_wh.read(table).filter(F.col("dt") >= F.lit(first))
        target_wh.append(table, rows if last is None else rows.filter(F.col("dt") <= F.lit(last)))


def write_modes(root: Path, after: dict[str, int]) -> dict[str, str]:
    """Per settled table, how its commits after version ``after[table]`` wrote it (``Append``, ``Overwrite``)."""
    modes = {}
    for table, version in after.items():
        found = []
        for log in sorted((root / table / "_delta_log").glob("*.json")):
            if int(log.stem) <= version:
                continue
            for line in log.read_text().splitlines():
                info = json.loads(line).get("commitInfo")
                if info:
                    found.append(str((info.get("operationParameters") or {}).get("mode", info.get("operation"))))
        modes[table] = ",".join(found)
    return modes


def last_version(root: Path, table: str) -> int:
    return max(int(p.stem) for p in (root / table / "_delta_log").glob("*.json"))


def main(users: int = 20000, days: int = 180, steps: int = 7, seed: int = 42,
         work: Path = ROOT / "benchmarks" / ".work" / "week_of_steps", out: Path = RESULTS) -> None:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import functions as F

    from conf import load_config
    from jobs.full import open_warehouse, run_full
    from jobs.incremental import run_incremental
    from jobs.ingest import run_generate
    from jobs.runs import RunRecorder
    from jobs.spark import spark_session
    from schemas import INPUT_TABLES, SETTLED_TABLES

    work = work.resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / "hmac.key").write_text("week-of-steps-" + "0" * 50)
    common = settings(work, users, days, seed)
    at = lambda name, *more: load_config(overrides=[*common, f"warehouse.path={work / name}", *more])  # noqa: E731
    source = at("source")
    spark = spark_session(source.spark)
    run_generate(source, spark)
    stepped = [last_day(source) - timedelta(days=steps - 1 - n) for n in range(steps)]
    source_wh, base_wh = open_warehouse(source, spark), open_warehouse(at("base"), spark)
    for table in INPUT_TABLES:
        rows = source_wh.read(table)
        base_wh.overwrite(table, rows.filter(F.col("dt") < F.lit(stepped[0])) if table in EVENT_TABLES else rows)
    started = time.perf_counter()
    run_full(at("base"), spark, env={})
    full_s = round(time.perf_counter() - started, 1)
    for side in SIDES:
        shutil.copytree(work / "base", work / side)

    per_step: dict[str, list[dict]] = {side: [] for side in SIDES}
    for n, day in enumerate(stepped):
        order = list(SIDES) if n % 2 == 0 else list(reversed(SIDES))
        for side in SIDES:
            land(spark, source, at(side), day, None if day == stepped[-1] else day)
        for side in order:
            cfg = at(side, *SIDES[side])
            versions = {t: last_version(work / side, t) for t in SETTLED_TABLES}
            spark.catalog.clearCache()
            rec = RunRecorder("incremental")
            began = time.perf_counter()
            run_incremental(cfg, spark, recorder=rec, env={})
            seconds = round(time.perf_counter() - began, 1)
            per_step[side].append({"day": str(day), "seconds": seconds,
                                   "settle_s": round(rec.stage_seconds.get("settle", 0.0), 1),
                                   "writes": write_modes(work / side, versions)})
            print(side, per_step[side][-1], flush=True)

    profiles = {side: open_warehouse(at(side), spark).read("profiles").drop("updated_at") for side in SIDES}
    differ = profiles["period"].exceptAll(profiles["rewrite"]).count() + \
        profiles["rewrite"].exceptAll(profiles["period"]).count()
    spark.stop()
    if differ:
        raise RuntimeError(f"the two sides' profiles differ in {differ} rows")
    total = {side: round(sum(s["seconds"] for s in runs), 1) for side, runs in per_step.items()}
    settle = {side: round(sum(s["settle_s"] for s in runs), 1) for side, runs in per_step.items()}
    result = {
        "revision": f"{head_revision()} (the checkout, with any uncommitted changes)",
        "users": users, "days": days, "steps": steps, "full_s": full_s,
        "period_days": load_config().warehouse.settled_compaction_days,
        "per_step": per_step, "week_s": total, "settle_week_s": settle,
        "week_period_over_rewrite": round(total["period"] / total["rewrite"], 3),
        "settle_period_over_rewrite": round(settle["period"] / settle["rewrite"], 3),
        "profiles_rows_differing": differ,
        "conditions": "one Spark session; both copies of one full run take the same days, landed one at a time; "
                      "the side stepping first alternates per day; model off, texts cached but the stepped days'",
    }
    write_result(out, result)


if __name__ == "__main__":
    typer.run(main)
