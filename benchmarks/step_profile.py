"""Where a one-day step's seconds go: its stages, and its slowest Spark queries from the event log.

    python benchmarks/step_profile.py --work $PWD/benchmarks/.work/step_ab_20k   # after step_ab.py there: ~4 minutes
    python benchmarks/step_profile.py --work $PWD/benchmarks/.work/sp20k --build  # builds base_new first: ~12 minutes
    python benchmarks/step_profile.py --work ... --set warehouse.settled_compaction_days=1000 --out ...  # appending
    python benchmarks/step_profile.py --work ... --conf spark.sql.codegen.wholeStage=false --out ...  # a Spark setting

Steps two fresh copies of ``--work``'s ``base_new`` (the warehouse ``benchmarks/step_ab.py`` leaves: a full run over
every day but the last, then the last day landed) in one Spark session with Spark's event log on. The second step is
reported (the first pays the JVM's and the Python workers' warm-up):
- the run's own stage timers;
- how much of its wall time Spark's jobs and SQL queries cover, and how many jobs, stages (skipped ones too) and
  tasks it ran (``accounting``);
- how many classes code generation compiled for each step (Spark's own metric; the first step compiles most of
  its own, as every daily run in a fresh JVM does);
- every Spark SQL query that took at least ``--min-seconds``, with the size of its physical plan and the tables it
  scans.
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
from typing import Iterator

import typer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results_file import write_result  # noqa: E402  (after the path)
from benchmarks.scale import land_day, last_day, logged_session, without_last_days  # noqa: E402
from benchmarks.step_ab import HMAC_KEY, settings  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "step_profile.json"


def logged_events(events: Path) -> Iterator[dict]:
    """Every event of the Spark event logs under ``events`` (plain JSON lines), in file order."""
    for log in sorted(p for p in events.rglob("*") if p.is_file()):
        with log.open() as lines:
            yield from (json.loads(line) for line in lines)


def key_values(pairs: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` options (``--conf``) as a dict."""
    return dict(pair.split("=", 1) for pair in pairs)


def queries_of(events: list[dict], group: str, copy: Path, min_seconds: float) -> list[dict]:
    """The SQL queries whose jobs ran in job group ``group``, in start order, those of ``min_seconds`` or more."""
    started, ended, group_of = {}, {}, {}
    for event in events:
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


def _union_seconds(intervals: list[tuple[int, int]]) -> float:
    """Seconds covered by at least one of ``intervals`` (epoch milliseconds)."""
    covered, end = 0, None
    for start, stop in sorted(intervals):
        if end is None or start > end:
            covered, end = covered + (stop - start), stop
        elif stop > end:
            covered, end = covered + (stop - end), stop
    return round(covered / 1000, 1)


def accounting(events: list[dict], group: str, wall_s: float) -> dict:
    """How much of a step's ``wall_s`` its Spark jobs and SQL queries cover, and how many jobs, stages and tasks it
    ran. The rest is the driver alone: Python building plans through Py4J, delta-rs opening tables and committing."""
    jobs: dict[int, list] = {}
    stage_ids: set[int] = set()
    executions: set[int] = set()
    query_start, query_end, tasks = {}, {}, 0
    for event in events:
        kind = event.get("Event", "")
        properties = event.get("Properties") or {}
        if kind == "SparkListenerJobStart" and properties.get("spark.jobGroup.id") == group:
            jobs[event["Job ID"]] = [event["Submission Time"], None]
            stage_ids |= set(event.get("Stage IDs", []))
            if properties.get("spark.sql.execution.id") is not None:
                executions.add(int(properties["spark.sql.execution.id"]))
        elif kind == "SparkListenerJobEnd" and event["Job ID"] in jobs:
            jobs[event["Job ID"]][1] = event["Completion Time"]
        elif kind.endswith("SQLExecutionStart"):
            query_start[event["executionId"]] = event["time"]
        elif kind.endswith("SQLExecutionEnd"):
            query_end[event["executionId"]] = event["time"]
        elif kind == "SparkListenerTaskEnd" and event.get("Stage ID") in stage_ids:
            tasks += 1
    in_queries = _union_seconds([(query_start[q], query_end[q]) for q in executions
                                 if q in query_start and q in query_end])
    return {"wall_s": wall_s, "jobs": len(jobs), "stages": len(stage_ids), "tasks": tasks,
            "in_jobs_s": _union_seconds([(start, end) for start, end in jobs.values() if end]),
            "in_queries_s": in_queries, "outside_queries_s": round(wall_s - in_queries, 1)}


def step_a_copy(spark, work: Path, copy: Path, overrides: list[str], recorder=None) -> float:
    """Step a fresh copy of ``work``'s base_new at ``copy`` with nothing cached; its seconds."""
    from conf import load_config
    from jobs.incremental import run_incremental

    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(work / "base_new", copy)
    spark.catalog.clearCache()
    started = time.perf_counter()
    run_incremental(load_config(overrides=[*overrides, f"warehouse.path={copy}"]), spark, recorder, env={})
    return round(time.perf_counter() - started, 1)


def compilations(spark) -> int:
    """How many classes Spark's code generation has compiled in this JVM so far (its own metric)."""
    return int(spark.sparkContext._jvm.org.apache.spark.metrics.source.CodegenMetrics.METRIC_COMPILATION_TIME()
               .getCount())


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
         conf: list[str] = typer.Option([], "--conf", help="KEY=VALUE Spark settings for the steps' session."),
         build: bool = typer.Option(False, help="Make --work's base_new first (generate, full, land the last day)."),
         users: int = 20000, days: int = 180, seed: int = 42, min_seconds: float = 0.5,
         out: Path = RESULTS) -> None:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from conf import load_config
    from jobs.runs import RunRecorder

    work = work.resolve()
    if build:
        build_base(work, users, days, seed)
    events = work / "profile_events"
    shutil.rmtree(events, ignore_errors=True)
    events.mkdir()
    common = [*settings(work, users, days, seed), *set_]
    base = load_config(overrides=common)
    spark = logged_session(base.spark, events, key_values(conf))
    steps = []
    for n in (1, 2):
        spark.sparkContext.setJobGroup(f"step_{n}", f"step_{n}")
        recorder = RunRecorder("incremental")
        compiled = compilations(spark)
        seconds = step_a_copy(spark, work, work / "profile_runs" / f"step_{n}", common, recorder)
        steps.append({"seconds": seconds,
                      "stages": {name: round(s, 1) for name, s in recorder.stage_seconds.items()},
                      "touched_users": json.loads(recorder.details.get("touched_users", "{}")),
                      "classes_compiled": compilations(spark) - compiled})
    spark.stop()
    second = work / "profile_runs" / "step_2"
    logged = list(logged_events(events))  # read once for both
    write_result(out, {
        "warehouse": str(work / "base_new"), "settings": set_, "spark_conf": conf, "users": users, "days": days,
        "first_step_s": steps[0]["seconds"], "first_step_classes_compiled": steps[0]["classes_compiled"],
        "second_step": steps[1],
        "second_step_time": accounting(logged, "step_2", steps[1]["seconds"]),
        "second_step_queries": queries_of(logged, "step_2", second, min_seconds),
        "conditions": "two steps of fresh copies in one session, event log on; the second reported",
    })
    shutil.rmtree(work / "profile_runs", ignore_errors=True)


if __name__ == "__main__":
    typer.run(main)
