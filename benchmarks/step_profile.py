"""Where a one-day step's seconds go: its stages, and its slowest Spark queries from the event log.

    python benchmarks/step_profile.py --work $PWD/benchmarks/.work/step_ab_20k   # after step_ab.py there: ~4 minutes
    python benchmarks/step_profile.py --work $PWD/benchmarks/.work/sp20k --build  # builds base_new first: ~12 minutes
    python benchmarks/step_profile.py --work ... --set warehouse.settled_compaction_days=1000 --out ...  # appending

Steps two fresh copies of ``--work``'s ``base_new`` (the warehouse ``benchmarks/step_ab.py`` leaves: a full run over
every day but the last, then the last day landed) in one Spark session with Spark's event log on. The second step is
reported (the first pays the JVM's and the Python workers' warm-up): the run's own stage timers, and every Spark SQL
query of that step that took at least ``--min-seconds``, with the size of its physical plan and the tables it scans.
``--build`` makes ``base_new`` first, as step_ab.py does for its new side, with this checkout's code.
Writes benchmarks/results/step_profile.json.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

import typer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results_file import write_result  # noqa: E402  (after the path)
from benchmarks.scale import land_day, last_day, without_last_days  # noqa: E402
from benchmarks.step_ab import HMAC_KEY, settings  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "step_profile.json"


def queries_of(events: Path, group: str, copy: Path, min_seconds: float) -> list[dict]:
    """The SQL queries whose jobs ran in job group ``group``, in start order, those of ``min_seconds`` or more."""
    started, ended, group_of = {}, {}, {}
    for line in (line for log in events.rglob("*") if log.is_file() for line in log.open()):
        event = json.loads(line)
        kind = event.get("Event", "")
        if kind.endswith("SQLExecutionStart"):
            started[event["executionId"]] = event
        elif kind.endswith("SQLExecutionEnd"):
            ended[event["executionId"]] = event["time"]
        elif kind == "SparkListenerJobStart":
            properties = event.get("Properties") or {}
            if properties.get("spark.sql.execution.id") is not None:
                group_of[int(properties["spark.sql.execution.id"])] = properties.get("spark.jobGroup.id")
    found = []
    for execution, start in sorted(started.items(), key=lambda item: item[1]["time"]):
        seconds = (ended.get(execution, start["time"]) - start["time"]) / 1000
        if group_of.get(execution) != group or seconds < min_seconds:
            continue
        plan = start.get("physicalPlanDescription", "")
        found.append({"query": execution, "seconds": round(seconds, 1), "plan_lines": plan.count("\n"),
                      "scans": sorted(set(re.findall(re.escape(str(copy)) + r"/(\w+)", plan)))})
    return found


def build_base(work: Path, users: int, days: int, seed: int) -> None:
    """``work``/base_new as step_ab.py makes its sides' bases: a generated warehouse's full run over every day but
    the last (model off), then the last day's events landed, waiting for a step."""
    from conf import load_config
    from jobs.full import run_full
    from jobs.ingest import run_generate
    from jobs.spark import spark_session

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / "hmac.key").write_text(HMAC_KEY)
    at = lambda name: load_config(overrides=[*settings(work, users, days, seed), f"warehouse.path={work / name}"])  # noqa: E731
    source, base = at("source"), at("base_new")
    spark = spark_session(source.spark)
    run_generate(source, spark)
    without_last_days(spark, source, base, 1)
    run_full(base, spark, env={})
    land_day(spark, source, base, last_day(source))
    spark.stop()


def main(work: Path = typer.Option(..., help="A benchmarks/step_ab.py --work directory (its base_new is stepped)."),
         set_: list[str] = typer.Option([], "--set", help="KEY=VALUE settings for the steps."),
         build: bool = typer.Option(False, help="Make --work's base_new first (generate, full, land the last day)."),
         users: int = 20000, days: int = 180, seed: int = 42, min_seconds: float = 0.5,
         out: Path = RESULTS) -> None:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from conf import load_config
    from jobs.incremental import run_incremental
    from jobs.runs import RunRecorder
    from jobs.spark import spark_session

    work = work.resolve()
    if build:
        build_base(work, users, days, seed)
    events = work / "profile_events"
    shutil.rmtree(events, ignore_errors=True)
    events.mkdir()
    common = [*settings(work, users, days, seed), *set_]
    base = load_config(overrides=common)
    extra = {"spark.eventLog.enabled": "true", "spark.eventLog.dir": str(events), "spark.eventLog.compress": "false",
             "spark.eventLog.rolling.enabled": "false"}
    spark = spark_session(base.spark.model_copy(update={"extra": {**base.spark.extra, **extra}}))
    steps = []
    for n in (1, 2):
        copy = work / "profile_runs" / f"step_{n}"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(work / "base_new", copy)
        spark.catalog.clearCache()
        spark.sparkContext.setJobGroup(f"step_{n}", f"step_{n}")
        recorder = RunRecorder("incremental")
        started = time.perf_counter()
        run_incremental(load_config(overrides=[*common, f"warehouse.path={copy}"]), spark, recorder, env={})
        steps.append({"seconds": round(time.perf_counter() - started, 1),
                      "stages": {name: round(s, 1) for name, s in recorder.stage_seconds.items()},
                      "touched_users": json.loads(recorder.details.get("touched_users", "{}"))})
    spark.stop()
    second = work / "profile_runs" / "step_2"
    write_result(out, {
        "warehouse": str(work / "base_new"), "settings": set_, "users": users, "days": days,
        "first_step_s": steps[0]["seconds"], "second_step": steps[1],
        "second_step_queries": queries_of(events, "step_2", second, min_seconds),
        "conditions": "two steps of fresh copies in one session, event log on; the second reported",
    })
    shutil.rmtree(work / "profile_runs", ignore_errors=True)


if __name__ == "__main__":
    typer.run(main)
