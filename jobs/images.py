"""The image stage: each distinct product photo through the CNN once, through ``image_cache``.

Photos are keyed by the sha256 of their bytes, not by their path: the same photo under two paths is
embedded once, and a photo replaced at the same path is embedded again. So every listed photo is read
once per run to hash it (cheap next to the CNN); only photos whose hash the cache lacks are decoded and
embedded. A photo that cannot be read or decoded gets a null vector and a reason; the run goes on.
"""
from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from conf import ImagesConf
from jobs.runs import utc_now
from jobs.storage import Warehouse
from udfs.images import ImageSettings, image_digest_udf, image_embedding_udf


@dataclass(frozen=True)
class ImageCounts:
    items: int                     # items with an image_path
    images: int                    # distinct photos (by content) the catalogue lists
    embedded: int                  # of those, embedded now
    from_cache: int                # of those, found in image_cache
    failed: dict[str, int] = field(default_factory=dict)  # items whose photo has no vector, by reason


def image_settings(cfg: ImagesConf, spark: SparkSession) -> ImageSettings:
    threads = cfg.threads or int(spark.conf.get("spark.task.cpus", "1"))
    return ImageSettings(model=cfg.model, batch_size=cfg.batch_size, gpu_batch_size=cfg.gpu_batch_size,
                         threads=threads, use_gpu=cfg.use_gpu)


def image_digests(items: DataFrame) -> DataFrame:
    """items -> item_id, image_path, image_sha256, reason (``missing_image`` when the file cannot be read)."""
    listed = items.select("item_id", "image_path").filter(F.col("image_path").isNotNull())
    digests = listed.select("image_path").distinct().withColumn("digest", image_digest_udf()(F.col("image_path")))
    return listed.join(digests.select("image_path", "digest.image_sha256", "digest.reason"), "image_path")


def embed_photos(todo: DataFrame, settings: ImageSettings, partitions: int) -> DataFrame:
    """(image_sha256, image_path) -> image_sha256, embedding, reason; one path per photo is decoded."""
    one_path = todo.groupBy("image_sha256").agg(F.min("image_path").alias("image_path"))
    return (one_path.repartition(partitions)
            .withColumn("out", image_embedding_udf(settings)(F.col("image_path")))
            .select("image_sha256", "out.embedding", "out.reason"))


def image_stage(wh: Warehouse, cfg: ImagesConf, items: DataFrame, interactions: DataFrame, run_id: str,
                cleanup: ExitStack) -> tuple[DataFrame, ImageCounts]:
    """item_id, embedding for every item someone interacted with (``state_interactions`` tiles) whose photo has a
    vector. Photos not in ``image_cache`` are embedded and appended to it in one commit. The photos' hashes
    stay cached until ``cleanup`` closes.

    Only items in some user's interactions: profiles read no other photo, and a catalogue of ten million
    items is mostly items nobody touched.
    """
    spark = wh.spark
    model_id = cfg.resolved_model_id()
    touched = items.join(interactions.select("item_id").distinct(), "item_id", "left_semi")
    digests = image_digests(touched).cache()
    cleanup.callback(digests.unpersist)
    photos = digests.filter(F.col("image_sha256").isNotNull()).select("image_sha256", "image_path")
    cached = wh.read_or_empty("image_cache").filter(F.col("model_id") == model_id)
    todo = photos.join(cached.select("image_sha256"), "image_sha256", "left_anti").cache()
    needed = photos.select("image_sha256").distinct().count()
    to_embed = todo.select("image_sha256").distinct().count()
    partitions = max(1, spark.sparkContext.defaultParallelism * cfg.partitions_per_core)
    previous = spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch")
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(cfg.arrow_batch_size))
    try:
        if to_embed:
            embedded = embed_photos(todo, image_settings(cfg, spark), partitions).select(
                F.lit(model_id).alias("model_id"), "image_sha256", "embedding", "reason",
                F.lit(utc_now()).cast("timestamp").alias("created_at"))
            wh.append("image_cache", embedded, run_id=run_id)
    finally:
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", previous)
        todo.unpersist()
    # One row per photo by construction, as in embedding_cache (``jobs/embed.py``): read as it is.
    vectors = (wh.read_or_empty("image_cache").filter(F.col("model_id") == model_id)
               .select("image_sha256", "embedding", "reason"))
    per_item = digests.join(vectors, "image_sha256", "left").select(
        "item_id", "embedding", F.coalesce(digests["reason"], vectors["reason"]).alias("reason"))
    outcome = per_item.groupBy(F.col("reason")).count().collect()  # a handful of rows: one per reason
    failed = {r["reason"]: r["count"] for r in outcome if r["reason"] is not None}
    item_vectors = per_item.filter(F.col("embedding").isNotNull()).select("item_id", "embedding")
    return item_vectors, ImageCounts(items=sum(r["count"] for r in outcome), images=needed, embedded=to_embed,
                                      from_cache=needed - to_embed, failed=failed)


def failed_images_message(counts: ImageCounts) -> str:
    """``items: 2 of 120 rows have an image_path with no vector (column image_path): missing_image 1, ...``."""
    total = sum(counts.failed.values())
    reasons = ", ".join(f"{reason} {n:,}" for reason, n in sorted(counts.failed.items()))
    return (f"items: {total:,} of {counts.items:,} rows have an image_path with no vector (column image_path): {reasons}; "
            "their image vector is null")
