"""Image throughput: the bare CNN vs the Spark UDF, on the same photos and cores, in one run.

    python benchmarks/image_throughput.py [--images 256] [--model packaged]

(a) the bare model in one process using all cores: read, decode and preprocess each photo, then
    forward in batches of ``images.batch_size`` (``udfs.images.embed_images``, no Spark);
(b) the Spark UDF on local[*]: the same photos as a column of paths, one partition per core, one torch
    thread per Python worker (``jobs.images.embed_photos``).
It also checks that the vectors mean something: how often a photo's nearest neighbour (cosine) has the
same H&M product type, against chance (the sum of squared type shares).
The photos are H&M product photos from ../shared/data/hm-sample. On a machine with CUDA, both run on
the GPU too. Writes benchmarks/results/image_throughput.json.
"""
from __future__ import annotations

import csv
import json
import os
import platform
import sys
import time
from pathlib import Path

import typer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from conf import load_config  # noqa: E402
from jobs.images import embed_photos, image_settings  # noqa: E402
from jobs.spark import spark_session  # noqa: E402
from udfs.images import embed_images, load_image_model  # noqa: E402

RESULT = ROOT / "benchmarks" / "results" / "image_throughput.json"
PHOTOS = ROOT.parent / "shared" / "data" / "hm-sample" / "images"
ARTICLES = PHOTOS.parent / "articles_train_sample.csv"


def neighbours_share_type(paths: list[str], vectors) -> dict:
    """Nearest-neighbour product-type agreement against chance."""
    import numpy as np

    with open(ARTICLES, newline="") as f:
        kind = {r["article_id"]: r["product_type_name"] for r in csv.DictReader(f)}
    types = [kind.get(Path(p).stem) for p in paths]
    v = np.stack(vectors).astype(np.float64)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    similarity = v @ v.T
    np.fill_diagonal(similarity, -np.inf)
    nearest = similarity.argmax(axis=1)
    agree = float(np.mean([types[i] == types[j] for i, j in enumerate(nearest)]))
    shares = np.unique(np.array(types, dtype=object), return_counts=True)[1] / len(types)
    return {"nearest_neighbour_same_type": round(agree, 3), "same_type_by_chance": round(float((shares ** 2).sum()), 3),
            "product_types": int(len(shares))}


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(images: int = typer.Option(256, help="photos to embed"),
         model: str = typer.Option("packaged", help="images.model: packaged (EfficientNet-Lite0) or a HF name")) -> None:
    import torch

    paths = sorted(str(p) for p in PHOTOS.rglob("*.jpg"))[:images]
    if len(paths) < images:
        raise SystemExit(f"only {len(paths)} photos under {PHOTOS}")
    cfg = load_config(overrides=["spark.master=local[*]", f"images.model={model}"])
    spark = spark_session(cfg.spark)
    cores = spark.sparkContext.defaultParallelism
    settings = image_settings(cfg.images, spark)   # one torch thread per UDF worker
    result: dict = {"images": len(paths), "cores": cores, "model": cfg.images.resolved_model_id(),
                    "batch_size": settings.batch_size, "udf_threads_per_worker": settings.threads,
                    "machine": f"{platform.machine()}, {os.cpu_count()} cpus, torch {torch.__version__}"}

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        bare = settings.__class__(**{**settings.__dict__, "threads": cores, "use_gpu": device == "cuda"})
        torch.set_num_threads(cores)
        load_image_model(bare.model, device)
        embed_images(paths[:8], bare, device)  # warm-up
        out = {}
        bare_s = timed(lambda: out.setdefault("bare", embed_images(paths, bare, device)))
        if device == "cpu":
            result |= neighbours_share_type(paths, out["bare"].vectors)
        print(f"[{device}] (a) bare model: {bare_s:.1f}s", flush=True)

        on = settings.__class__(**{**settings.__dict__, "use_gpu": device == "cuda"})
        photos = spark.createDataFrame([(f"sha{i}", p) for i, p in enumerate(paths)], "image_sha256 string, image_path string")
        photos = photos.cache()
        photos.count()
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(cfg.images.arrow_batch_size))
        # Warm the Python workers (they are reused) so both sides are timed at steady state.
        embed_photos(photos.limit(2 * cores), on, cores).write.format("noop").mode("overwrite").save()
        udf_s = timed(lambda: embed_photos(photos, on, cores).write.format("noop").mode("overwrite").save())
        print(f"[{device}] (b) Spark UDF: {udf_s:.1f}s", flush=True)
        suffix = "" if device == "cpu" else "_gpu"
        result |= {f"bare_images_per_s{suffix}": round(len(paths) / bare_s, 2),
                   f"udf_images_per_s{suffix}": round(len(paths) / udf_s, 2),
                   f"ratio_udf_vs_bare{suffix}": round(bare_s / udf_s, 3)}
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    spark.stop()


if __name__ == "__main__":
    typer.run(main)
