"""Profile history through Delta time travel, and erasure with ``portrait forget``, on a copy of the demo."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from conf import load_config
from jobs.features.text_vectors import with_text_keys
from jobs.forget import run_forget
from jobs.full import open_warehouse
from jobs.history import profile_history, profile_on, table_versions, tag_changes
from jobs.privacy import load_key, pseudonym
from tests.conftest import portrait_here
from tests.helpers import scan_for_leaks
from tests.test_real_samples import MODEL_TAGS


@pytest.fixture(scope="module")
def rerun(spark, demo_run, tmp_path_factory):
    """A copy of the demo directory, recomputed once more without the model: two versions of every output."""
    directory = tmp_path_factory.mktemp("history") / "demo"
    shutil.copytree(demo_run.directory, directory)
    result = portrait_here("full", "--set", "spark.shuffle_partitions=2", "--set", "model.enabled=false", cwd=directory)
    assert result.returncode == 0, result.stderr[-3000:]
    return directory


def _warehouse(directory: Path, spark):
    cfg = load_config(overrides=[f"warehouse.path={directory / 'warehouse'}",
                                 f"privacy.key_file={directory / '.portrait' / 'hmac.key'}",
                                 f"model.checkpoint_dir={directory / '.portrait' / 'checkpoints'}"])
    return cfg, open_warehouse(cfg, spark)


def test_profile_history_and_tag_changes_follow_the_runs(rerun, spark):
    _, wh = _warehouse(rerun, spark)
    runs = [r.run_id for r in wh.read("runs").orderBy("started_at").collect() if r.job in ("full", "demo")]
    versions = table_versions(wh, "profiles")
    assert [v["run_id"] for v in versions] == runs[-2:]
    user = wh.read("profiles").orderBy(F.desc("purchase_propensity")).first().user_id
    history = profile_history(wh, user, ["frequency", "purchase_propensity"]).collect()
    assert [h.version for h in history] == [v["version"] for v in versions]
    assert history[0].purchase_propensity is not None and history[1].purchase_propensity is None  # model off
    assert history[0].frequency == history[1].frequency  # same inputs, same behaviour
    assert profile_on(wh, user, versions[0]["committed_at"]).first().run_id == runs[-2]
    # The second run had no model, so exactly the first run's model tags went away.
    labels = table_versions(wh, "labels")
    changes = tag_changes(wh, labels[-2]["version"], labels[-1]["version"]).collect()
    model_tags = {(r.user_id, r.tag) for r in wh.read("labels", version=labels[-2]["version"]).collect()
                  if r.tag.startswith(MODEL_TAGS)}
    assert model_tags and {(c.user_id, c.tag) for c in changes} == model_tags
    assert {c.change for c in changes} == {"removed"}


def test_the_rerun_embeds_nothing_and_fills_every_vector_from_the_cache(rerun, spark):
    _, wh = _warehouse(rerun, spark)
    demo, again = [r for r in wh.read("runs").orderBy("started_at").collect() if r.job in ("full", "demo")][-2:]
    a, b = demo.rows_out, again.rows_out
    assert a["texts_embedded"] > 0 and a["texts_from_cache"] == 0
    assert b["texts_embedded"] == 0 and b["texts_from_cache"] == a["texts_embedded"]
    assert wh.count("embedding_cache") == a["texts_embedded"]  # one row per text: nothing appended twice
    profiles = wh.read("profiles")
    written = F.col("review_count") + F.col("comment_count") > 0
    assert profiles.filter(written).count() > 0
    assert profiles.filter(written & F.col("text_vector").isNull()).count() == 0
    assert profiles.filter(~written & F.col("text_vector").isNotNull()).count() == 0
    assert profiles.filter(F.size("interest_vector") == 384).count() > 0.9 * profiles.count()


def test_sql_time_travel_registers_older_versions(rerun):
    summary = "select concat('v{v}: rows=', count(*), ' scored=', count(purchase_propensity)) as s from profiles_v{v}"
    query = " union all ".join(summary.format(v=v) for v in (0, 1))
    result = portrait_here("sql", "--at", "profiles=0", "--at", "profiles=1", query, cwd=rerun)
    assert result.returncode == 0, result.stderr[-2000:]
    # The demo's run had the model, the rerun did not.
    assert "v0: rows=400 scored=400" in result.stdout and "v1: rows=400 scored=0" in result.stdout
    bad = portrait_here("sql", "--at", "profiles", "select 1", cwd=rerun)
    assert bad.returncode == 2 and "expected TABLE=VERSION" in bad.stderr


def _subject(wh, spark):
    """A demo user with a profile, rows in every event table and at least one text nobody else wrote."""
    social = wh.read("social").transform(with_text_keys())
    counts = social.filter(F.col("text_sha256").isNotNull()).groupBy("text_sha256").agg(
        F.countDistinct("user_id").alias("writers"), F.first("user_id").alias("user_id"), F.first("text").alias("text"))
    titles = wh.read("items").transform(with_text_keys("title")).select("text_sha256")
    unique = counts.filter("writers = 1").join(titles, "text_sha256", "left_anti")
    buyers = wh.read("transactions").select("user_id").distinct()
    row = unique.join(buyers, "user_id").orderBy("user_id").first()
    assert row is not None
    texts = [r.text for r in unique.filter(F.col("user_id") == row.user_id).collect()]
    return row.user_id, texts, [r.text_sha256 for r in unique.filter(F.col("user_id") == row.user_id).collect()]


def test_forget_erases_the_user_everywhere_on_disk(rerun, spark):
    cfg, wh = _warehouse(rerun, spark)
    raw, texts, shas = _subject(wh, spark)
    alias = pseudonym(raw, load_key(cfg.privacy.key_file, True, {}))
    before = {t: wh.count(t) for t in ("users", "transactions", "browse", "social", "profiles", "labels",
                                        "embedding_cache", "training_snapshot")}
    theirs = {t: wh.read(t).filter(F.col("user_id").isin(raw, alias)).count()
              for t in ("users", "transactions", "browse", "social", "profiles", "labels", "training_snapshot")}
    assert all(theirs.values()), theirs
    cached = wh.read("embedding_cache").filter(F.col("text_sha256").isin(shas)).count()
    assert cached == len(shas) > 0

    result = portrait_here("forget", "--user", raw, cwd=rerun)
    assert result.returncode == 0, result.stderr[-3000:]

    after = {t: wh.count(t) for t in before}
    assert {t: before[t] - after[t] for t in theirs} == theirs  # their rows, and only theirs
    assert before["embedding_cache"] - after["embedding_cache"] == cached
    # Every file on disk: tables (parquet and Delta logs), checkpoints and manifests, MLflow.
    assert scan_for_leaks({raw, alias, *texts, *shas}, [rerun]) > 100
    erasure = [r for r in wh.read("runs").collect() if r.job == "forget"]
    assert len(erasure) == 1 and erasure[0].status == "succeeded"
    details = erasure[0].details
    assert details["subject_sha256"] == hashlib.sha256(f"{details['salt']}:{raw}".encode()).hexdigest()
    assert raw not in json.dumps(erasure[0].asDict(recursive=True), default=str)
    # The others' profiles are untouched and still readable; a second forget finds nothing.
    assert wh.read("profiles").count() == before["profiles"] - 1
    again = run_forget(cfg, wh, [raw])
    assert set(again.rows_removed.values()) == {0}
