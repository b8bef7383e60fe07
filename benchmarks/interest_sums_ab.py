"""The interest vectors' fixed-point sums over every tile of a long history, at an older revision and this checkout,
in one Spark session: the query that took half of a full recompute at 180 days.

    python benchmarks/interest_sums_ab.py --old dd18c7e      # about 12 minutes on the 180-day warehouse

Reads the tiles, the items and the embedding cache of a warehouse ``benchmarks/scale.py`` built (its 180-day
source by default), and settles ``settled_interest`` from scratch, as a full run does, with each revision's
``item_vector_sums`` (the older one's module loaded from a git worktree): one untimed run of each first (the
session's first run pays its warm-up, 10-16 s here), then rounds in which the side that goes first alternates. Each
run executes the whole plan into Spark's ``noop`` sink. Besides the seconds, the shuffle bytes each run wrote come
from Spark's event log, and the two revisions' rows are compared (they must be equal, bit for bit). Writes
benchmarks/results/interest_sums_ab.json.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import typer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results_file import write_result  # noqa: E402  (after the path)
from benchmarks.revision_ab import checkout, head_revision  # noqa: E402
from benchmarks.scale import logged_session  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "interest_sums_ab.json"
WAREHOUSE = ROOT / "benchmarks" / ".work" / "scale_20k_180" / "history_180_source"


def module_at(code: Path, name: str):
    """``jobs/features/text_vectors.py`` of a checkout, loaded as its own module (its imports from this tree)."""
    spec = importlib.util.spec_from_file_location(name, code / "jobs" / "features" / "text_vectors.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def shuffle_written(events: Path, group: str) -> int:
    """Bytes the tasks of a job group wrote to shuffle files, from the event log."""
    stage_group, written = {}, 0
    for log in (p for p in events.rglob("*") if p.is_file() and not p.name.startswith(".")):
        for line in log.open():
            event = json.loads(line)
            if event.get("Event") == "SparkListenerJobStart":
                for stage in event.get("Stage IDs", []):
                    stage_group[stage] = (event.get("Properties") or {}).get("spark.jobGroup.id")
            elif event.get("Event") == "SparkListenerTaskEnd" and stage_group.get(event.get("Stage ID")) == group:
                metrics = (event.get("Task Metrics") or {}).get("Shuffle Write Metrics") or {}
                written += int(metrics.get("Shuffle Bytes Written", 0))
    return written


def main(old: str = typer.Option(..., help="The revision to compare with (the new side is this checkout)."),
         warehouse: Path = WAREHOUSE, rounds: int = 2, out: Path = RESULTS,
         work: Path = ROOT / "benchmarks" / ".work" / "interest_sums_ab") -> None:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import functions as F

    from conf import load_config
    from jobs.clock import aware
    from jobs.features.state import settled
    from jobs.features.state_profiles import settled_before
    from jobs.full import open_warehouse
    from jobs.validation import clean_rows
    from jobs.validation.validate import tag_table

    shutil.rmtree(work, ignore_errors=True)
    (work / "events").mkdir(parents=True)
    cfg = load_config(overrides=[f"warehouse.path={warehouse}", "model.enabled=false"])
    spark = logged_session(cfg.spark, work / "events")
    wh = open_warehouse(cfg, spark)
    tiles = wh.read("state_interactions")
    items = wh.read("items").transform(tag_table("items", cfg.validation)).transform(clean_rows("items")).cache()
    texts = (wh.read("embedding_cache").filter(F.col("model_id") == cfg.embedding.resolved_model_id())
             .select("text_sha256", "embedding"))
    as_of = aware(wh.read("profiles").first()["as_of"])  # the full run's, whose settled tables this redoes
    before = settled_before(cfg, as_of, "settled_interest")
    weights = cfg.embedding.interest_weights

    with checkout(old, work / "old") as old_code:
        sides = {"old": module_at(old_code, "old_text_vectors"), "new": module_at(ROOT, "new_text_vectors")}

        def summaries(side: str):
            tv = sides[side]
            titles = tv.title_vectors(items, texts, cfg.embedding.item_text)
            return tiles.transform(settled(before, tv.item_vector_sums(weights, titles)))

        def run(side: str, group: str) -> float:
            spark.sparkContext.setJobGroup(group, group)
            started = time.perf_counter()
            summaries(side).write.format("noop").mode("overwrite").save()
            return round(time.perf_counter() - started, 1)

        # The session's first runs pay the JVM's and the Python workers' warm-up: untimed, for both sides.
        warmup = {side: run(side, f"warmup_{side}") for side in sides}
        print("warm-up (untimed)", warmup, flush=True)
        seconds: dict[str, list[float]] = {side: [] for side in sides}
        for n in range(rounds):
            # Which side goes first alternates, so neither always runs after the other.
            for side in (["old", "new"] if n % 2 == 0 else ["new", "old"]):
                seconds[side].append(run(side, f"{side}_{n}"))
                print(side, seconds[side][-1], flush=True)
        spark.sparkContext.setJobGroup("compare", "compare")
        differing = summaries("old").exceptAll(summaries("new")).count() + summaries("new").exceptAll(
            summaries("old")).count()
        users = summaries("new").count()
    spark.stop()
    median = {side: statistics.median(s) for side, s in seconds.items()}
    write_result(out, {
        "old": old, "new": f"{head_revision()} (the checkout, with any uncommitted changes)",
        "warehouse": str(warehouse.relative_to(ROOT)) if warehouse.is_relative_to(ROOT) else str(warehouse),
        "settled_before": before.isoformat(), "users_summed": users,
        "rows_differing": differing,
        "warmup_s": warmup, "seconds_per_round": seconds, "median_s": median,
        "new_over_old": round(median["new"] / median["old"], 3),
        "shuffle_bytes_written": {side: shuffle_written(work / "events", f"{side}_0") for side in sides},
        "conditions": "one Spark session (local[2]); one untimed warm-up run of each side, then rounds in which "
                      "the side that goes first alternates; each run executes the whole plan into the noop sink; "
                      "nothing else running",
    })
    print(json.dumps({"median_s": median, "rows_differing": differing}))


if __name__ == "__main__":
    typer.run(main)
