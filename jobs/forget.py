"""Erasure: remove users from every table, the embedding cache and the training checkpoints, then vacuum.

A Delta delete would leave the old files on disk until a vacuum and, in delta-rs, would write the
predicate (the ids themselves) into the table's log. So each table that holds a subject is
rewritten without them (only the ``dt`` partitions that hold them, for partitioned tables), and
then vacuumed with zero retention, so no parquet file anywhere still holds their rows. Time travel
to versions before the erasure stops working for those tables; that is the point.
"""
from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from conf import Config
from jobs.features.text_vectors import TEXT_KINDS, texts_to_embed, with_text_keys
from jobs.incremental import profiles_fold_key
from jobs.ledger import partitions_of, reprocessed_in_place
from jobs.privacy import privacy_key, pseudonym
from jobs.runs import RunRecorder, write_run
from jobs.storage import Warehouse
from schemas import SETTLED_TABLES, STATE_TABLES

INPUT_TABLES = ("users", "transactions", "browse", "social")   # raw source ids
# Pseudonyms (raw ids when pseudonymisation is off), including the incremental job's feature state.
DERIVED_TABLES = ("profiles", "labels", "training_snapshot", "validation_snapshot", "backtest_snapshot", "ground_truth",
                  *STATE_TABLES, *SETTLED_TABLES)


@dataclass(frozen=True)
class Erasure:
    """What one ``forget`` removed: rows per table, cache entries, checkpoint manifest entries."""

    run_id: str
    subjects: int
    rows_removed: dict[str, int]


def subject_hashes(raw_ids: list[str], salt: str) -> list[str]:
    """Salted SHA-256 of each id: the erasure record proves who was erased to whoever holds an id, no more."""
    return sorted(hashlib.sha256(f"{salt}:{raw}".encode()).hexdigest() for raw in raw_ids)


def subject_ids(raw_ids: list[str], key) -> list[str]:
    """Every form the ids take in the warehouse: raw in the inputs, pseudonyms everywhere after ingest."""
    return sorted(set(raw_ids) | ({pseudonym(r, key) for r in raw_ids} if key is not None else set()))


def is_subject(table: str, ids: list[str]) -> Column:
    """Rows of ``table`` that belong to a subject (quarantine rows by the user_id inside their raw JSON)."""
    if table == "quarantine":
        return F.coalesce(F.get_json_object("raw_row", "$.user_id").isin(ids), F.lit(False))
    return F.col("user_id").isin(ids)


def texts_only_they_wrote(social: DataFrame, items: DataFrame, ids: list[str], item_text: str = "title") -> DataFrame:
    """text_sha256 of the subjects' reviews and comments that no one else wrote and no item's text equals."""
    theirs = (social.filter(F.col("user_id").isin(ids) & F.col("kind").isin(*TEXT_KINDS))
              .transform(with_text_keys()).select("text_sha256").dropna().distinct())
    others = texts_to_embed(social.filter(~F.col("user_id").isin(ids)), items, item_text).select("text_sha256")
    return theirs.join(others, "text_sha256", "left_anti")


def rewrite_without(wh: Warehouse, table: str, drop: Column, run_id: str) -> int:
    """Rewrite ``table`` without the rows matching ``drop``; returns how many went. Untouched if none."""
    drop = F.coalesce(drop, F.lit(False))  # rows with a null id are not the subject's: they stay
    df = wh.read(table)
    spec = wh.spec(table)
    if spec.partition_by:
        # One scan finds both the partitions to rewrite and how many rows leave them.
        per_partition = df.filter(drop).groupBy(spec.partition_by[0]).count().collect()
        if not per_partition:
            return 0
        hit = [r[0] for r in per_partition]
        wh.overwrite_partitions(table, df.filter(F.col(spec.partition_by[0]).isin(hit) & ~drop).localCheckpoint(),
                                hit, run_id=run_id)
        return sum(r[1] for r in per_partition)
    removed = df.filter(drop).count()
    if removed:
        wh.overwrite(table, df.filter(~drop).localCheckpoint(), run_id=run_id)
    return removed


def scrub_shard_manifests(checkpoint_dir: str, ids: list[str]) -> int:
    """Remove the ids from the training ranks' shard manifests (the checkpoints hold weights, not ids)."""
    removed, wanted = 0, set(ids)
    for manifest in Path(checkpoint_dir).glob("*/shard-rank*.json"):
        listed = json.loads(manifest.read_text())
        kept = [u for u in listed if u not in wanted]
        if len(kept) != len(listed):
            removed += len(listed) - len(kept)
            manifest.write_text(json.dumps(kept))
    return removed


def run_forget(cfg: Config, wh: Warehouse, raw_ids: list[str], env: Mapping[str, str] | None = None,
               recorder: RunRecorder | None = None) -> Erasure:
    """Erase ``raw_ids`` (ids as the source systems know them) from the warehouse and vacuum it."""
    if not raw_ids:
        raise ValueError("forget: give at least one user id")
    rec = recorder or RunRecorder("forget")
    try:
        ids = subject_ids(raw_ids, privacy_key(cfg.privacy, env, None))
        removed: dict[str, int] = {}
        touched = []
        with rec.stage("embedding_cache") as st:
            # Before the social rows go: which cached vectors are of texts only the subjects wrote.
            if wh.exists("embedding_cache") and wh.exists("social"):
                own = texts_only_they_wrote(wh.read("social"), wh.read_or_empty("items"), ids, cfg.embedding.item_text)
                drop = F.col("text_sha256").isin([r[0] for r in own.collect()])
                removed["embedding_cache"] = st.rows_out = rewrite_without(wh, "embedding_cache", drop, rec.run_id)
        # As found: a partition the last step had processed is processed again once its subjects are gone.
        inputs_before = {t: partitions_of(wh, t) for t in INPUT_TABLES}
        # The profiles stay folded as they were, less some users: the next step may keep the others' columns.
        fold = profiles_fold_key(wh) if wh.exists("profiles") else None
        with rec.stage("tables") as st:
            for table in INPUT_TABLES + DERIVED_TABLES + ("quarantine",):
                if wh.exists(table):
                    removed[table] = rewrite_without(wh, table, is_subject(table, ids), rec.run_id)
            touched = [t for t, n in removed.items() if n]
            st.rows_out = sum(removed.values())
        with rec.stage("checkpoints") as st:
            removed["checkpoint_manifests"] = st.rows_out = scrub_shard_manifests(cfg.model.checkpoint_dir, ids)
        with rec.stage("ledger") as st:
            # Every output was rewritten alike, so what forget rewrote is not pending for the next step.
            st.rows_out = reprocessed_in_place(wh, inputs_before, rec.run_id, rec.started_at)
        if fold is not None:
            rec.details["fold"] = fold
        with rec.stage("vacuum") as st:
            st.rows_out = sum(len(wh.vacuum(t)) for t in touched)  # files deleted (delta-rs says which)
        salt = secrets.token_hex(16)
        rec.rows_out.update(removed)
        rec.details.update({"subjects": str(len(raw_ids)), "salt": salt,
                            "subject_sha256": ",".join(subject_hashes(raw_ids, salt))})
        write_run(wh, rec, "succeeded")
        rec.console.print(rec.summary())
        return Erasure(rec.run_id, len(raw_ids), removed)
    except Exception as error:
        # The message may quote the ids (a query plan, a predicate): the runs row gets only its type;
        # the full error still reaches the operator's console.
        write_run(wh, rec, "failed", RuntimeError(f"{type(error).__name__}; message withheld, see the job's log"))
        raise
