"""What a fold reads on a warehouse a full run has written: the tiles, the clean users and items, the text vectors
from the embedding cache, and the date after the last event. Shared by the fold benchmarks."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession


@dataclass
class FoldInputs:
    cfg: object
    spark: SparkSession
    state: dict[str, DataFrame]   # every tile table, with the clean ``users`` and ``items``
    vectors: object               # state_profiles.Vectors: text and title vectors, no photos
    as_of: datetime               # local midnight after the last event
    present: set[str]             # the event tables with rows


def fold_inputs(warehouse: Path, *overrides: str) -> FoldInputs:
    """A session on ``warehouse`` (model off), and what a fold there reads."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from contextlib import ExitStack

    from pyspark.sql import functions as F

    from conf import load_config
    from jobs.clock import midnight_after
    from jobs.features.state_profiles import EVENT_TABLES, Vectors, events_seen
    from jobs.features.text_vectors import title_vectors
    from jobs.full import open_warehouse, read_and_validate
    from jobs.runs import RunRecorder
    from jobs.spark import spark_session
    from schemas import STATE_TABLES

    if not (warehouse / "state_events").exists():
        raise SystemExit(f"{warehouse} holds no tiles: run benchmarks/scale.py first (it builds the warehouses)")
    cfg = load_config(overrides=[f"warehouse.path={warehouse}", "model.enabled=false",
                                 f"privacy.key_file={warehouse.parent / 'hmac.key'}", *overrides])
    spark = spark_session(cfg.spark)
    wh = open_warehouse(cfg, spark)
    # Users and items as the jobs read them (pseudonymised with the warehouse's key, validated); every event is
    # in the tiles already. The cached rows stay for the session.
    clean, _ = read_and_validate(cfg, wh, {}, RunRecorder("benchmark"), ExitStack(),
                                 partitions={t: [] for t in EVENT_TABLES})
    state = {t: wh.read(t) for t in STATE_TABLES}
    items = clean["items"]
    texts = (wh.read("embedding_cache").filter(F.col("model_id") == cfg.embedding.resolved_model_id())
             .select("text_sha256", "embedding"))
    vectors = Vectors(texts, title_vectors(items, texts, cfg.embedding.item_text), None)
    seen = events_seen(state["state_events"], cfg.validation.max_days_after_partition)
    return FoldInputs(cfg, spark, {**state, "users": clean["users"], "items": items}, vectors,
                      midnight_after(seen.latest, cfg.time.zone), seen.sources)

def noop_seconds(df: DataFrame) -> float:
    """Seconds to compute ``df`` whole into Spark's no-op sink: the work, without a write."""
    import time

    started = time.perf_counter()
    df.write.format("noop").mode("overwrite").save()
    return round(time.perf_counter() - started, 1)
