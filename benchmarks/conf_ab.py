"""A runtime Spark SQL setting on a one-day step: with it and without, alternated in one session.

    python benchmarks/conf_ab.py --work $PWD/benchmarks/.work/sp20k --conf spark.sql.codegen.wholeStage=false
                                 # after step_profile.py --build there (20,000 users, 180 days): about 7 minutes

Steps fresh copies of ``--work``'s ``base_new`` (see benchmarks/step_profile.py): one untimed step to warm the JVM and
the Python workers, then ``--rounds`` rounds of a step without the settings (A: the session's own values) and one
with them (B), in turns (A B, then B A, ...). Only settings Spark reads at run time (``spark.sql.*`` ones that are
not static) can differ within one session. Reports each side's seconds and B's median over A's; also how many classes
code generation compiled in each step (Spark's own metric). Writes benchmarks/results/conf_ab.json.
"""
from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path

import typer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results_file import write_result  # noqa: E402  (after the path)
from benchmarks.step_ab import settings  # noqa: E402
from benchmarks.step_profile import compilations, key_values, step_a_copy  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "conf_ab.json"


def main(work: Path = typer.Option(..., help="A directory whose base_new step_profile.py --build made."),
         conf: list[str] = typer.Option(..., "--conf", help="KEY=VALUE runtime Spark settings of side B."),
         rounds: int = 2, users: int = 20000, days: int = 180, seed: int = 42, out: Path = RESULTS) -> None:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from conf import load_config
    from jobs.spark import spark_session

    work = work.resolve()
    common = settings(work, users, days, seed)
    spark = spark_session(load_config(overrides=common).spark)
    side_b = key_values(conf)
    side_a = {key: spark.conf.get(key, None) for key in side_b}

    def step(values: dict[str, str | None]) -> dict[str, float]:
        for key, value in values.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)
        compiled = compilations(spark)
        seconds = step_a_copy(spark, work, work / "conf_ab_runs" / "step", common)
        return {"seconds": seconds, "classes_compiled": compilations(spark) - compiled}

    warm_up = step(side_a)
    runs: dict[str, list[dict[str, float]]] = {"A": [], "B": []}
    for n in range(rounds):
        for side in ("A", "B") if n % 2 == 0 else ("B", "A"):
            runs[side].append(step(side_a if side == "A" else side_b))
            print(f"round {n + 1} {side}: {runs[side][-1]}", flush=True)
    spark.stop()
    median = {side: statistics.median(r["seconds"] for r in found) for side, found in runs.items()}
    write_result(out, {
        "warehouse": str(work / "base_new"), "users": users, "days": days, "rounds": rounds,
        "A": {"settings": side_a, "runs": runs["A"], "median_s": median["A"]},
        "B": {"settings": side_b, "runs": runs["B"], "median_s": median["B"]},
        "warm_up": warm_up, "b_over_a": round(median["B"] / median["A"], 3),
        "conditions": "one session; an untimed warm-up step, then the sides in turns, each a fresh copy of base_new",
    })


if __name__ == "__main__":
    typer.run(main)
