"""Embedding throughput: the bare model vs the Spark UDF vs the full dedupe path, in one run.

    python benchmarks/embed_throughput.py [--texts 20000] [--users 10000]

(a) the bare model in one process using all cores, batch 64, texts sorted by token length;
(b) the Spark UDF on local[*], cache off, dedupe off;
(c) the full path: normalise, embed each distinct text once, join the vectors back to every text.
Texts are reviews, comments and item titles from the generator, with its length distribution and
its duplication. Writes benchmarks/results/embed_throughput.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pyspark.sql import functions as F  # noqa: E402

from conf import GeneratorConf, load_config  # noqa: E402
from jobs.embed import embed_column, embed_settings  # noqa: E402
from jobs.features.text_vectors import TEXT_KINDS, with_text_keys  # noqa: E402
from jobs.generator import generate_tables  # noqa: E402
from jobs.spark import spark_session  # noqa: E402
from udfs.embeddings import embed_texts, load_model  # noqa: E402

RESULT = ROOT / "benchmarks" / "results" / "embed_throughput.json"


def generated_texts(spark, users: int, n: int) -> list[str]:
    """``n`` review, comment and title texts from the generator, in a fixed pseudo-random order."""
    tables = generate_tables(spark, GeneratorConf(users=users, days=30, bad_row_share=0.0))
    written = tables.social.filter(F.col("kind").isin(*TEXT_KINDS)).select("text")
    titles = tables.items.select(F.col("title").alias("text"))
    corpus = written.unionByName(titles).filter(F.col("text").isNotNull())
    rows = corpus.orderBy(F.xxhash64("text", F.monotonically_increasing_id())).limit(n).collect()
    if len(rows) < n:
        raise SystemExit(f"the generator gave only {len(rows)} texts; raise --users")
    return [r.text for r in rows]


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=10_000)
    args = parser.parse_args()

    cfg = load_config(overrides=["spark.master=local[*]"])
    spark = spark_session(cfg.spark)
    cores = spark.sparkContext.defaultParallelism
    texts = generated_texts(spark, args.users, args.texts)
    distinct = len({" ".join(t.split()) for t in texts})
    print(f"{len(texts):,} texts, {distinct:,} distinct after normalisation, {cores} cores", flush=True)

    import torch

    settings = embed_settings(cfg.embedding, spark)  # threads = spark.task.cpus per UDF worker
    bare = settings.__class__(**{**settings.__dict__, "threads": cores})

    # (a) bare model, one process, all cores, batch 64, sorted by token length (embed_texts sorts).
    torch.set_num_threads(cores)
    load_model(bare.model_path, "cpu")
    embed_texts(texts[:200], bare)  # warm-up
    bare_s = timed(lambda: embed_texts(texts, bare))
    print(f"(a) bare model: {bare_s:.1f}s", flush=True)

    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(cfg.embedding.arrow_batch_size))
    df = spark.createDataFrame([(t,) for t in texts], "text string").cache()
    df.count()
    # Warm the Python workers (they are reused) so both sides are timed at steady state.
    embed_column(df.limit(200), "text", settings, cores).write.format("noop").mode("overwrite").save()

    # (b) the Spark UDF, no dedupe, no cache: every text row is embedded.
    udf_s = timed(lambda: embed_column(df, "text", settings, cores).write.format("noop").mode("overwrite").save())
    print(f"(b) Spark UDF: {udf_s:.1f}s", flush=True)

    # (c) the full path: normalise and key, embed each distinct text once, join back to every row.
    def dedupe_path() -> None:
        keyed = df.transform(with_text_keys())
        unique = keyed.filter(F.col("text_sha256").isNotNull()).dropDuplicates(["text_sha256"])
        vectors = embed_column(unique.select("text_sha256", "norm_text"), "norm_text", settings, cores)
        keyed.join(vectors.select("text_sha256", "embedding"), "text_sha256", "left") \
            .write.format("noop").mode("overwrite").save()
    dedupe_s = timed(dedupe_path)
    print(f"(c) dedupe path: {dedupe_s:.1f}s", flush=True)

    n = len(texts)
    result = {
        "texts": n,
        "distinct_texts": distinct,
        "bare_texts_per_s": round(n / bare_s, 1),
        "udf_texts_per_s": round(n / udf_s, 1),
        "dedupe_texts_per_s": round(n / dedupe_s, 1),
        "ratio_udf_vs_bare": round(bare_s / udf_s, 3),
        "ratio_dedupe_vs_bare": round(bare_s / dedupe_s, 3),
        "cores": cores,
        "model": "packaged:all-MiniLM-L6-v2",
        "batch_size": settings.batch_size,
        "max_length": settings.max_length,
        "arrow_batch_size": cfg.embedding.arrow_batch_size,
        "udf_threads_per_worker": settings.threads,
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus, torch {torch.__version__}",
    }
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    spark.stop()


if __name__ == "__main__":
    main()
