"""The embedding stage: embed each distinct review, comment and title text once, through the cache."""
from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from conf import EmbeddingConf
from jobs.features.text_vectors import texts_to_embed
from jobs.runs import utc_now
from jobs.storage import Warehouse
from udfs.embeddings import EmbedSettings, embedding_udf, resolve_model_path


@dataclass(frozen=True)
class EmbedCounts:
    texts: int        # distinct texts this run needs
    embedded: int     # of those, embedded now
    from_cache: int   # of those, served from embedding_cache


def embed_settings(cfg: EmbeddingConf, spark: SparkSession) -> EmbedSettings:
    """Worker settings; torch threads default to the task's CPU share (spark.task.cpus)."""
    threads = cfg.threads or int(spark.conf.get("spark.task.cpus", "1"))
    return EmbedSettings(model_path=resolve_model_path(cfg.model), batch_size=cfg.batch_size,
                         max_length=cfg.max_length, threads=threads, gpu_batch_size=cfg.gpu_batch_size,
                         use_gpu=cfg.use_gpu, text_prefix=cfg.resolved_text_prefix())


def embed_column(texts: DataFrame, column: str, settings: EmbedSettings, partitions: int) -> DataFrame:
    """Add ``embedding`` for ``column``: spread over ``partitions``, each ordered by text length, so the
    Arrow batches the UDF sees hold texts of similar length."""
    return (texts.repartition(partitions).sortWithinPartitions(F.length(column))
            .withColumn("embedding", embedding_udf(settings)(F.col(column))))


def embed_stage(wh: Warehouse, cfg: EmbeddingConf, social: DataFrame, items: DataFrame,
                run_id: str) -> tuple[DataFrame, EmbedCounts]:
    """Embeddings (text_sha256, embedding) for every text in ``social`` and ``items``.

    Texts already in ``embedding_cache`` for this model are not embedded again; new ones are
    appended to it in one commit. The cache holds one row per (model_id, text_sha256) by construction, so
    it is read as it is, never de-duplicated: a run appends only texts the cache lacked when it started, and
    the jobs embed after committing their step's tiles, which only one of two racing runs can do.
    """
    spark = wh.spark
    model_id = cfg.resolved_model_id()
    texts = texts_to_embed(social, items, cfg.item_text)
    if cfg.dedupe:
        texts = texts.dropDuplicates(["text_sha256"])
    # Counted as the pass that finds the texts to embed reads them, not in a pass of their own.
    seen = Observation()
    todo = texts.observe(seen, F.count(F.lit(1)).alias("texts"))
    if cfg.cache:
        cached = wh.read_or_empty("embedding_cache").filter(F.col("model_id") == model_id).select("text_sha256")
        todo = todo.join(cached, "text_sha256", "left_anti")
    todo = todo.cache()
    to_embed = todo.count()
    needed = seen.get["texts"]
    partitions = max(1, spark.sparkContext.defaultParallelism * cfg.partitions_per_core)
    previous = spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch")
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(cfg.arrow_batch_size))
    try:
        embedded = (embed_column(todo, "norm_text", embed_settings(cfg, spark), partitions)
                    .select(F.lit(model_id).alias("model_id"), "text_sha256", "embedding",
                            F.lit(utc_now()).cast("timestamp").alias("created_at")))
        if cfg.cache:
            if to_embed:
                wh.append("embedding_cache", embedded, run_id=run_id)
            # read_or_empty: a source with no text at all (Taobao) never creates the cache.
            vectors = wh.read_or_empty("embedding_cache").filter(F.col("model_id") == model_id)
        else:
            vectors = embedded.cache()
            vectors.count()
            if not cfg.dedupe:  # a text written twice was embedded twice, within this run only
                vectors = vectors.dropDuplicates(["text_sha256"])
    finally:
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", previous)
        todo.unpersist()
    vectors = vectors.select("text_sha256", "embedding")
    return vectors, EmbedCounts(texts=needed, embedded=to_embed, from_cache=needed - to_embed)
