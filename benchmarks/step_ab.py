"""A one-day incremental step at two revisions of the code, on the same long-history warehouse.

    python benchmarks/step_ab.py --old 41219f6                 # 2,000 users, 180 days: about 25 minutes
    python benchmarks/step_ab.py --old HEAD --old-set warehouse.settled_compaction_days=1 \
        --new-set warehouse.settled_compaction_days=1000 --users 20000 --work $PWD/benchmarks/.work/step_ab_20k
                                                               # one revision, two settings: about 35 minutes

``--reuse`` steps the bases an earlier run left in ``--work`` (the same revisions, sizes and seed): the generation and
the two full runs are most of a run at 20,000 users.

One generated warehouse (``--users`` users over ``--days`` days, model off) without its last day's events is run
in full by each revision's code (so each steps tables its own code wrote, folded with its own key), then the last
day's events are landed in both. Each timed run is a new process with a revision's code on its path and one Spark
session, which steps two fresh copies of that revision's warehouse: the first step pays the JVM's and the Python
workers' warm-up, the second is what a session's next step costs. The revisions alternate (old, new, old, new).
Besides the seconds, each step's input bytes come from Spark's event log (deterministic, so one round says it).
Writes benchmarks/results/step_ab.json.
"""
from __future__ import annotations

import os
import shutil
import statistics
import sys
from pathlib import Path

import typer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results_file import write_result  # noqa: E402  (after the path)
from benchmarks.revision_ab import alternated, checkout, head_revision, seconds_at  # noqa: E402
from benchmarks.scale import bytes_read_by_group, land_day, last_day, without_last_days  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "step_ab.json"

# Run inside each revision's checkout: two steps, each on a fresh copy of the base, the seconds as a JSON line.
STEP = """
import json, shutil, sys, time
from conf import load_config
from jobs.incremental import run_incremental
from jobs.spark import spark_session
base, runs, events, overrides = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
cfg = load_config(overrides=overrides)
extra = {"spark.eventLog.enabled": "true", "spark.eventLog.dir": events, "spark.eventLog.compress": "false",
         "spark.eventLog.rolling.enabled": "false"}
spark = spark_session(cfg.spark.model_copy(update={"extra": {**cfg.spark.extra, **extra}}))
seconds = []
for n in (1, 2):
    copy = f"{runs}/step_{n}"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(base, copy)
    spark.catalog.clearCache()
    spark.sparkContext.setJobGroup(f"step_{n}", f"step_{n}")
    started = time.perf_counter()
    run_incremental(load_config(overrides=[*overrides, f"warehouse.path={copy}"]), spark, env={})
    seconds.append(round(time.perf_counter() - started, 1))
print("SECONDS " + json.dumps(seconds))
"""


# Run inside each revision's checkout: the full job over the warehouse without its last day.
FULL = """
import sys
from conf import load_config
from jobs.full import run_full
from jobs.spark import spark_session
cfg = load_config(overrides=sys.argv[1:])
run_full(cfg, spark_session(cfg.spark), env={})
print("SECONDS []")
"""


HMAC_KEY = "step-ab-" + "0" * 56  # the pseudonymisation key of every warehouse these step benchmarks build


def settings(work: Path, users: int, days: int, seed: int) -> list[str]:
    """What scale.py's warehouses are run with: model off, the default features, embedding and images."""
    return [f"generator.users={users}", f"generator.days={days}", f"generator.seed={seed}",
            f"privacy.key_file={work / 'hmac.key'}", "model.enabled=false", f"model.tracking_uri=file:{work / 'mlruns'}"]


def main(old: str = typer.Option(..., help="The revision to compare with (the new side is this checkout)."),
         old_set: list[str] = typer.Option([], help="KEY=VALUE settings for the old side's steps only."),
         new_set: list[str] = typer.Option([], help="KEY=VALUE settings for the new side's steps only."),
         reuse: bool = typer.Option(False, help="Step the bases an earlier run left in --work."),
         rounds: int = 2, users: int = 2000, days: int = 180, seed: int = 42,
         work: Path = ROOT / "benchmarks" / ".work" / "step_ab", out: Path = RESULTS) -> None:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from conf import load_config
    from jobs.ingest import run_generate
    from jobs.spark import spark_session

    work = work.resolve()  # each side's runs start in its own checkout
    if not reuse:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        (work / "hmac.key").write_text(HMAC_KEY)
    shutil.rmtree(work / "events", ignore_errors=True)
    common = settings(work, users, days, seed)
    source = load_config(overrides=[*common, f"warehouse.path={work / 'source'}"])
    at = lambda name: load_config(overrides=[*common, f"warehouse.path={work / name}"])  # noqa: E731
    spark = spark_session(source.spark)
    if not reuse:
        run_generate(source, spark)
        without_last_days(spark, source, at("inputs"), 1)

    bytes_read: dict[str, list[dict[str, int]]] = {"old": [], "new": []}

    def stepped(side: str, code: Path) -> list[float]:
        events = work / "events" / f"{side}_{len(bytes_read[side])}"
        events.mkdir(parents=True)
        extra = old_set if side == "old" else new_set
        seconds = seconds_at(code, STEP,
                             [str(work / f"base_{side}"), str(work / "runs"), str(events), *common, *extra])
        bytes_read[side].append(bytes_read_by_group(events))
        return seconds

    with checkout(old, work / "old") as old_code:
        sides = {"old": old_code, "new": ROOT}
        for side, code in sides.items():
            if reuse:
                continue
            shutil.copytree(work / "inputs", work / f"base_{side}")
            seconds_at(code, FULL, [*common, f"warehouse.path={work / f'base_{side}'}"])
            land_day(spark, source, at(f"base_{side}"), last_day(source))
        spark.stop()
        measured = alternated(rounds, sides, stepped)
    median = {side: {"first_step_s": round(statistics.median(r[0] for r in runs), 1),
                     "second_step_s": round(statistics.median(r[1] for r in runs), 1)}
              for side, runs in measured.items()}
    result = {
        "old": head_revision(old), "old_settings": old_set,
        "new": f"{head_revision()} (the checkout, with any uncommitted changes)", "new_settings": new_set,
        "users": users, "days": days, "rounds": rounds,
        "seconds_per_round": measured, "median": median, "bytes_read_per_round": bytes_read,
        "second_step_new_over_old": round(median["new"]["second_step_s"] / median["old"]["second_step_s"], 3),
        "first_step_new_over_old": round(median["new"]["first_step_s"] / median["old"]["first_step_s"], 3),
        "bytes_new_over_old": round(bytes_read["new"][0]["step_2"] / bytes_read["old"][0]["step_2"], 3),
        "conditions": "one-day incremental step after a full run over the other days (each side's own), model off, "
                      "texts cached but the last day's; each run a new process stepping two fresh copies; sides "
                      "alternate",
    }
    write_result(out, result)


if __name__ == "__main__":
    typer.run(main)
