"""Where the fold into the profiles spends its time: each feature family folded alone, and all of them together.

    python benchmarks/scale.py --users 20000 --histories 30     # builds the warehouse it reads
    python benchmarks/fold_families.py                         # benchmarks/.work/scale/n30 (N users, 30 days)

The fold is the largest stage of a full run at 20k users and more (benchmarks/results/scale_20k.json), and the
one a step pays for every touched user. On a warehouse a full run has written, each family's fold is run alone
to a no-op sink, then every family together as the full job folds them (``profiles_from_state``), twice each in
one session: the first round warms the JVM and the Python workers, the second is reported. ``share_of_all``
is a family's seconds over the seconds of all together, measured in the same round. Writes
benchmarks/results/fold_families.json.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import typer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results_file import write_result  # noqa: E402  (after the path)

RESULTS = ROOT / "benchmarks" / "results" / "fold_families.json"


def main(warehouse: Path = ROOT / "benchmarks" / ".work" / "scale" / "n30", out: Path = RESULTS,
         rounds: int = 2) -> None:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import DataFrame
    from pyspark.sql import functions as F

    from conf import load_config
    from jobs.clock import midnight_after
    from jobs.features.state_profiles import (Vectors, events_seen, feature_families,
                                              profiles_from_state, settled_tables)
    from jobs.features.text_vectors import title_vectors
    from jobs.full import open_warehouse
    from jobs.spark import spark_session
    from jobs.validation import clean_rows
    from jobs.validation.validate import tag_table
    from schemas import STATE_TABLES

    if not (warehouse / "state_events").exists():
        raise typer.BadParameter(f"{warehouse} holds no tiles: run benchmarks/scale.py first (it builds n30)")
    cfg = load_config(overrides=[f"warehouse.path={warehouse}", "model.enabled=false",
                                 f"privacy.key_file={warehouse.parent / 'hmac.key'}"])
    spark = spark_session(cfg.spark)
    wh = open_warehouse(cfg, spark)

    def clean(table: str) -> DataFrame:
        return wh.read(table).transform(tag_table(table, cfg.validation)).transform(clean_rows(table)).cache()

    state = {t: wh.read(t) for t in STATE_TABLES}
    users, items = clean("users"), clean("items")
    texts = (wh.read("embedding_cache").filter(F.col("model_id") == cfg.embedding.resolved_model_id())
             .select("text_sha256", "embedding"))
    vectors = Vectors(texts, title_vectors(items, texts, cfg.embedding.item_text), None)
    seen = events_seen(state["state_events"], cfg.validation.max_days_after_partition)
    as_of, present = midnight_after(seen.latest, cfg.time.zone), seen.sources
    inputs = {**state, **settled_tables(cfg, as_of, vectors)({**state, "items": items}), "users": users, "items": items}

    def seconds(df: DataFrame) -> float:
        started = time.perf_counter()
        df.write.format("noop").mode("overwrite").save()
        return round(time.perf_counter() - started, 1)

    measured: dict[str, float] = {}
    for _ in range(rounds):
        measured = {family.name: seconds(family.fold(inputs))
                    for family in feature_families(cfg, as_of, items, vectors)}
        measured["all"] = seconds(profiles_from_state(cfg, as_of, as_of, present, vectors)(inputs))
        print(json.dumps(measured), flush=True)
    users_n = users.count()
    spark.stop()
    result = {
        "warehouse": str(warehouse.relative_to(ROOT) if warehouse.is_relative_to(ROOT) else warehouse),
        "users": users_n, "as_of": as_of.isoformat(), "rounds": rounds,
        "seconds": measured,
        "share_of_all": {k: round(v / measured["all"], 3) for k, v in measured.items() if k != "all"},
        "conditions": "each family folded alone to Spark's no-op sink, then all together; the last round",
    }
    write_result(out, result)


if __name__ == "__main__":
    typer.run(main)
