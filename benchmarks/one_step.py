"""One one-day step of a chosen day, on a warehouse that ``benchmarks/scale.py`` generated: the step of a date it
did not step (a compaction date, say), without generating or timing the full recompute again.

    python benchmarks/one_step.py --work $PWD/benchmarks/.work/scale80k --users 80000 --days 180 --back 6

Copies ``--work``'s ``history_{days}_source`` inputs without their last ``--back`` + 1 days into
``history_{days}_one``, runs the full job there (untimed: it warms the session and caches the texts), lands the day
``--back`` days before the last, and times the step over it. Writes the step's seconds, its stages and the settled
tables it rewrote whole (a compaction date rewrites them all) to ``--out``. Its ratio to a full recompute is against
another run's (scale.py's), so it is a weaker figure than scale.py's own.
"""
from __future__ import annotations

import os
import sys
import time
from datetime import timedelta
from pathlib import Path

import typer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results_file import write_result  # noqa: E402  (after the path)
from benchmarks.scale import land_day, last_day, rewritten_settled, without_last_days  # noqa: E402
from benchmarks.step_ab import settings  # noqa: E402


def main(work: Path = typer.Option(..., help="A scale.py --work directory holding history_{days}_source."),
         users: int = 80_000, days: int = 180, seed: int = 42, back: int = 6,
         out: Path = ROOT / "benchmarks" / "results" / "one_step.json") -> None:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from conf import load_config
    from jobs.full import run_full
    from jobs.incremental import run_incremental
    from jobs.runs import RunRecorder
    from jobs.spark import spark_session

    work = work.resolve()
    at = lambda name: load_config(overrides=[*settings(work, users, days, seed), f"warehouse.path={work / name}"])  # noqa: E731
    source, target = at(f"history_{days}_source"), at(f"history_{days}_one")
    spark = spark_session(source.spark)
    without_last_days(spark, source, target, back + 1)
    run_full(target, spark, env={})
    dt = last_day(source) - timedelta(days=back)
    land_day(spark, source, target, dt)
    recorder = RunRecorder("incremental")
    started = time.perf_counter()
    run_incremental(target, spark, recorder, env={})
    seconds = round(time.perf_counter() - started, 1)
    spark.stop()
    write_result(out, {"users": users, "days": days, "dt": str(dt), "seconds": seconds,
                       "stages": {name: round(s, 1) for name, s in recorder.stage_seconds.items()},
                       "settled_rewritten": rewritten_settled(target), "warehouse": str(work / f"history_{days}_one")})


if __name__ == "__main__":
    typer.run(main)
