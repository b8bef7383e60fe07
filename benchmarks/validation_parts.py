"""What validation's checks cost against issue 17's yardstick, in one Spark session.

    python benchmarks/validation_parts.py                 # 40,000 users (issue 17's tables), 30 days: ~10 min
    python benchmarks/validation_parts.py --users 80000 --out benchmarks/results/validation_parts_80k.json

Times the product's validation of the event tables (``tag_inputs``, every tagged row of transactions, browse and
social written to Spark's no-op sink: what the full job caches before its quarantine write), and again with one of
the checks that need a pass of their own turned off (its flag a constant), then all three off:

- ``duplicate``: exact duplicate rows (``with_duplicate_flags``: a window over every column, so every row crosses
  a shuffle);
- ``volume``: users over ``validation.max_user_rows_per_partition`` in a partition (``with_volume_flags``: a
  map-side-combined count per (user, dt), joined back; issue 17's skew protection);
- ``references``: user_id and item_id against the clean users and items (``with_known_ids``).

Then two rewrites, not in the product, checked to tag the very same rows (``rewrites_equal``):

- ``one_aggregation``: the duplicates and the volume cap from one aggregation over every column (each distinct row
  with its count of copies; the count per user and partition summed from those), the copies exploded again;
- ``hashed_window``: the duplicates' window partitioned by a 64-bit hash of the row first, so its sort compares longs.

(``rewritten`` has a third, ``one_window``, which design_floor.py times.)

Beside them, scale.py's yardstick (``peer_job``) on the same tables. ``all_over_peer``: what validating costs on
the yardstick's scale, before any tile, feature or write; ``marginal_s``: each check's seconds (all checks, less
the run without it). Each round starts one job later than the one before; each figure is the median of its
rounds. Writes benchmarks/results/validation_parts.json.
"""
from __future__ import annotations

import os
import shutil
import statistics
import sys
from contextlib import contextmanager
from datetime import timedelta
from functools import reduce
from operator import and_
from pathlib import Path
from typing import Callable, Iterator

import typer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results_file import write_result  # noqa: E402  (after the path)
from benchmarks.scale import EVENT_TABLES, last_day, peer_job, timed_group  # noqa: E402
from benchmarks.step_ab import HMAC_KEY, settings  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "validation_parts.json"
CHECKS = ("duplicate", "volume", "references")
REWRITES = ("one_aggregation", "hashed_window")


def without(check: str):
    """The transformation that stands in for ``check``: its flag columns set to what a clean row has."""
    from pyspark.sql import functions as F

    from jobs.validation import validate as v

    constant = lambda **flags: lambda *_: (lambda df: df.withColumns(  # noqa: E731
        {name: F.lit(value) for name, value in flags.items()}))
    return {"duplicate": ("with_duplicate_flags", constant(**{v.DUPLICATE: False})),
            "volume": ("with_volume_flags", constant(**{v.OVER_VOLUME: False})),
            "references": ("with_known_ids", constant(**{v.USER_KNOWN: True, v.ITEM_KNOWN: True}))}[check]


def rewritten(rewrite: str) -> dict:
    """The validate module's transformations that ``rewrite`` stands in for, and what stands in."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from jobs.validation import validate as v

    def one_aggregation(cap: int):
        def apply(df):
            copies = df.groupBy(*df.columns).agg(F.count(F.lit(1)).alias("_copies"))
            over = (copies.filter(F.col("user_id").isNotNull()).groupBy("user_id", "dt")
                    .agg(F.sum("_copies").alias("_rows")).filter(F.col("_rows") > cap)
                    .select("user_id", "dt", F.lit(True).alias(v.OVER_VOLUME)))
            return (copies.join(F.broadcast(over), ["user_id", "dt"], "left").fillna({v.OVER_VOLUME: False})
                    .withColumn("_copy", F.explode(F.sequence(F.lit(1), F.col("_copies"))))
                    .withColumn(v.DUPLICATE, F.col("_copy") > 1).drop("_copies", "_copy"))
        return apply

    def hashed_window(columns: list[str]):
        by_row = Window.partitionBy(F.xxhash64(*columns), *columns).orderBy(F.lit(1))
        return lambda df: df.withColumn(v.DUPLICATE, F.row_number().over(by_row) > 1)

    def one_window(cap: int):
        # Sorted by every column inside its (user, dt), a row's copies are neighbours: one shuffle and one sort
        # give the duplicates (a row equal to the one before it) and the volume (the rows in its partition).
        # A bot's day of rows goes to one task: not the product's skew protection, a floor for design_floor.py.
        def apply(df):
            ordered = Window.partitionBy("user_id", "dt").orderBy(*[F.col(c).asc_nulls_first() for c in df.columns])
            same = [F.row_number().over(ordered) > 1,
                    *[F.col(c).eqNullSafe(F.lag(c).over(ordered)) for c in df.columns]]
            rows = F.count(F.lit(1)).over(Window.partitionBy("user_id", "dt"))
            return df.withColumns({v.DUPLICATE: reduce(and_, same),
                                   v.OVER_VOLUME: F.col("user_id").isNotNull() & (rows > cap)})
        return apply

    def flagged_already(columns: list[str], window=v.with_duplicate_flags):
        # One aggregation flags the event tables' duplicates; the users and items keep the product's window.
        return lambda df: df if v.DUPLICATE in df.columns else df.transform(window(columns))

    return {"one_aggregation": {"with_volume_flags": one_aggregation, "with_duplicate_flags": flagged_already},
            "hashed_window": {"with_duplicate_flags": hashed_window},
            "one_window": {"with_volume_flags": one_window, "with_duplicate_flags": flagged_already}}[rewrite]


@contextmanager
def swapped_in(swapped: dict) -> Iterator[None]:
    """``jobs.validation.validate`` with its functions named in ``swapped`` replaced while the block runs."""
    from jobs.validation import validate as v

    kept = {name: getattr(v, name) for name in swapped}
    try:
        for name, stand_in in swapped.items():
            setattr(v, name, stand_in)
        yield
    finally:
        for name, original in kept.items():
            setattr(v, name, original)


def tagged_inputs(spark, cfg) -> dict:
    """Every input table read, pseudonymised and tagged as the full job does."""
    from jobs.full import open_warehouse
    from jobs.inputs import read_inputs
    from jobs.privacy import ingest_privacy
    from jobs.runs import RunRecorder
    from jobs.validation import tag_inputs

    raw, _ = read_inputs(open_warehouse(cfg, spark), cfg.inputs, None, None)
    private = ingest_privacy(cfg.privacy, {}, RunRecorder("full"))
    return tag_inputs({t: df.transform(private) for t, df in raw.items()}, cfg.validation, cfg.time.zone)


def tagged_events(spark, cfg) -> dict:
    """The event tables of ``tagged_inputs``."""
    tagged = tagged_inputs(spark, cfg)
    return {t: tagged[t] for t in EVENT_TABLES}


def validate_events(spark, cfg) -> None:
    """``tagged_events``, every tagged row written to the no-op sink."""
    for rows in tagged_events(spark, cfg).values():
        rows.write.format("noop").mode("overwrite").save()


def same_rows(product: dict, rewrite: dict) -> bool:
    """Whether two taggings of the event tables hold the same rows, copies counted, every column."""
    return all(product[t].exceptAll(rewrite[t]).count() == 0 == rewrite[t].exceptAll(product[t]).count()
               for t in product)


def generated_warehouse(work: Path, users: int, days: int, seed: int):
    """A Spark session, and the config of a warehouse generated afresh under ``work``/warehouse (model off), with
    ``as_of``: the midnight after its last day."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from conf import load_config
    from jobs.clock import day_start
    from jobs.ingest import run_generate
    from jobs.spark import spark_session

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / "hmac.key").write_text(HMAC_KEY)
    cfg = load_config(overrides=[*settings(work, users, days, seed), f"warehouse.path={work / 'warehouse'}"])
    spark = spark_session(cfg.spark)
    run_generate(cfg, spark)
    return spark, cfg, day_start(last_day(cfg) + timedelta(days=1), cfg.time.zone)


def rotated_rounds(spark, jobs: dict[str, tuple[dict, Callable[[], object]]], rounds: int) -> dict[str, list[float]]:
    """Each of ``jobs`` (name -> (the validate module's functions it swaps in, the run)) timed once a round; each
    round starts one job later than the one before, so no job always follows the same one."""
    seconds: dict[str, list[float]] = {}
    names = list(jobs)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            swapped, run = jobs[name]
            timed: dict[str, float] = {}
            with swapped_in(swapped):
                timed_group(spark, timed, name, run)
            seconds.setdefault(name, []).append(timed[name])
    return seconds


def main(users: int = 40_000, days: int = 30, seed: int = 42, rounds: int = 3,
         work: Path = ROOT / "benchmarks" / ".work" / "validation_parts", out: Path = RESULTS) -> None:
    work = work.resolve()
    spark, cfg, as_of = generated_warehouse(work, users, days, seed)
    variants = {"all": {}, **{f"no_{c}": dict([without(c)]) for c in CHECKS},
                "none": dict(without(c) for c in CHECKS), **{r: rewritten(r) for r in REWRITES}}

    jobs = {"peer": ({}, lambda: peer_job(spark, work / "warehouse", work / "peer", as_of)),
            **{name: (swapped, lambda: validate_events(spark, cfg)) for name, swapped in variants.items()}}

    validate_events(spark, cfg)  # untimed: the session's first pass compiles what every later one reuses
    seconds = rotated_rounds(spark, jobs, rounds)
    product = tagged_events(spark, cfg)
    equal = {}
    for rewrite in REWRITES:
        with swapped_in(rewritten(rewrite)):
            equal[rewrite] = same_rows(product, tagged_events(spark, cfg))
    spark.stop()
    median = {name: round(statistics.median(s), 1) for name, s in seconds.items()}
    write_result(out, {
        "users": users, "days": days, "rounds": rounds, "seconds": seconds, "median_s": median,
        "all_over_peer": round(median["all"] / median["peer"], 2),
        "none_over_peer": round(median["none"] / median["peer"], 2),
        "marginal_s": {c: round(median["all"] - median[f"no_{c}"], 1) for c in CHECKS},
        "rewrites_over_all": {r: round(median[r] / median["all"], 2) for r in REWRITES}, "rewrites_equal": equal,
        "conditions": "one Spark session; the event tables' tagged rows written to the no-op sink (nothing cached, "
                      "no quarantine written); 'none': read, pseudonymise, the row checks and reasons alone",
    })


if __name__ == "__main__":
    typer.run(main)
