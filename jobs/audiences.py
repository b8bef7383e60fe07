"""Audience jobs: lookalikes from seed users, and segment exports, both behind the k-anonymity floor."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Mapping

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from conf import Config
from jobs.full import open_warehouse
from jobs.model.lookalike import AudienceRefused, check_audience_size, lookalikes
from jobs.privacy import load_key, pseudonym


def read_seed_ids(path: Path, raw_ids: bool, cfg: Config, env: Mapping[str, str]) -> list[str]:
    """One user id per line (blank lines and # comments skipped); raw source ids are pseudonymised first."""
    ids = [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    if not ids:
        raise AudienceRefused(f"{path}: no seed user ids (one per line)")
    if raw_ids and cfg.privacy.pseudonymize:
        key = load_key(cfg.privacy.key_file, True, env)  # the job's own key, never a new one
        ids = [pseudonym(i, key) for i in ids]
    return ids


def lookalike_audience(cfg: Config, spark: SparkSession, seeds: list[str], n: int) -> DataFrame:
    """The ``n`` users most like the seeds (refused below the k-anonymity floor)."""
    profiles = open_warehouse(cfg, spark).read("profiles")
    return profiles.transform(lookalikes(seeds, n, cfg.privacy.k_anonymity_floor))


def segment_members(cfg: Config, spark: SparkSession, segment_id: int) -> DataFrame:
    """Every user of one segment; refused when the segment is smaller than the k-anonymity floor."""
    wh = open_warehouse(cfg, spark)
    found = wh.read("segments").filter(F.col("segment_id") == segment_id).select("size").first()
    if found is None:
        raise AudienceRefused(f"segments: no segment {segment_id}; see 'portrait sql \"select * from segments\"'")
    check_audience_size(found["size"], cfg.privacy.k_anonymity_floor, f"segment {segment_id}")
    return wh.read("profiles").filter(F.col("segment_id") == segment_id).select("user_id").orderBy("user_id")


def write_csv(df: DataFrame, path: Path) -> int:
    rows = df.collect()
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(df.columns)
        writer.writerows([list(r) for r in rows])
    return len(rows)
