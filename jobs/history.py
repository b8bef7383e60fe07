"""Profile history from Delta time travel: a user's profile as each run left it, and what changed between runs.

Every job commits ``profiles`` and ``labels`` with its run id, so table version, run and profile date
line up; ``Warehouse.history`` lists them. Vacuuming (``portrait forget``) removes the files older
versions need, so history starts again after an erasure.
"""
from __future__ import annotations

from datetime import datetime, timezone
from functools import reduce

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.storage import Warehouse

WRITES = ("WRITE", "CREATE TABLE", "MERGE", "DELETE", "UPDATE", "CREATE OR REPLACE TABLE")


def table_versions(wh: Warehouse, name: str) -> list[dict]:
    """The versions of ``name`` that changed data, oldest first: version, committed_at, run_id."""
    out = []
    for h in wh.history(name):
        if h["operation"] in WRITES:
            at = datetime.fromtimestamp(h["timestamp"] / 1000, timezone.utc)
            out.append({"version": h["version"], "committed_at": at, "run_id": h["run_id"]})
    return sorted(out, key=lambda h: h["version"])


def _at_version(wh: Warehouse, name: str, version: dict) -> DataFrame:
    return wh.read(name, version=version["version"]).select(
        F.lit(version["version"]).alias("version"), F.lit(version["committed_at"]).alias("committed_at"),
        F.lit(version["run_id"]).alias("run_id"), "*")


def profile_history(wh: Warehouse, user_id: str, columns: list[str]) -> DataFrame:
    """One row per ``profiles`` version that held the user: version, committed_at, run_id, as_of, ``columns``."""
    versions = table_versions(wh, "profiles")
    frames = [_at_version(wh, "profiles", v).filter(F.col("user_id") == user_id) for v in versions]
    if not frames:
        raise FileNotFoundError(f"profiles: no versions under {wh.path('profiles')}")
    keep = ["version", "committed_at", "run_id", "as_of", *columns]
    return reduce(DataFrame.unionByName, frames).select(*keep).orderBy("version")


def profile_on(wh: Warehouse, user_id: str, when: datetime) -> DataFrame:
    """The user's profile as it stood at ``when``: from the last ``profiles`` version committed by then."""
    versions = [v for v in table_versions(wh, "profiles") if v["committed_at"] <= when]
    if not versions:
        raise FileNotFoundError(f"profiles: no version committed by {when.isoformat()}")
    return _at_version(wh, "profiles", versions[-1]).filter(F.col("user_id") == user_id)


def tag_changes(wh: Warehouse, from_version: int, to_version: int) -> DataFrame:
    """user_id, tag, change ('added' or 'removed'), reason: how ``labels`` differ between two versions."""
    old = wh.read("labels", version=from_version).select("user_id", "tag", "reason")
    new = wh.read("labels", version=to_version).select("user_id", "tag", "reason")
    added = new.join(old.select("user_id", "tag"), ["user_id", "tag"], "left_anti").withColumn("change", F.lit("added"))
    removed = old.join(new.select("user_id", "tag"), ["user_id", "tag"], "left_anti").withColumn(
        "change", F.lit("removed"))
    return added.unionByName(removed).select("user_id", "tag", "change", "reason").orderBy("user_id", "tag")
