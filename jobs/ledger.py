"""The processed-partition ledger: which input partitions a job has already turned into outputs.

A partition is named by its table and ``dt`` (``None`` for the unpartitioned users and items tables)
and identified by the set of data files the Delta version a step reads holds for it. A new
``dt`` has no ledger row. A partition that got late rows, or was rewritten (an erasure, a backfill),
has a different file set than the one recorded, whatever its date says. Both are pending.

The ledger is appended in the same step as the outputs it produced: each write of the step carries
the step number as a Delta app transaction (:class:`jobs.storage.AppTxn`), and the ledger commit comes
last. A step pins the input versions it reads and records them in each commit's metadata. A rerun after
a crash finds the step's ledger commit missing, redoes the step on the versions the dead attempt read,
and skips each output that already holds the step. Two runs that plan the same step cannot both commit it: Delta
rejects the second ledger commit, and :func:`commit_step` says which run got there first.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Iterable, Literal

from pyspark.sql import DataFrame, Row
from pyspark.sql import functions as F

from jobs.storage import AppTxn, ConcurrentCommit, Warehouse

LEDGER = "processed_partitions"
PROFILES_APP = "portrait-profiles"  # the app id of every job that writes profiles and labels
PARTITION_PREFIX = "dt="

Key = tuple[str, "date | None"]


@dataclass(frozen=True)
class PartitionFiles:
    """One input partition as one version of the input table holds it."""

    source_table: str
    dt: date | None
    files_fingerprint: str
    file_count: int
    table_version: int

    @property
    def key(self) -> Key:
        return self.source_table, self.dt


@dataclass(frozen=True)
class PendingPartition:
    partition: PartitionFiles
    # changed: late rows, a rewrite or an erasure since it was processed; recomputed: a full recompute
    # takes every partition again.
    reason: Literal["new", "changed", "recomputed"]


def fingerprint(files: Iterable[str]) -> str:
    """SHA-256 of the sorted file names: Delta never rewrites a data file in place, so a new name is new data."""
    return hashlib.sha256("\n".join(sorted(files)).encode()).hexdigest()


def _dt_of(file: str) -> date | None:
    for part in file.split("/")[:-1]:
        if part.startswith(PARTITION_PREFIX) and part != PARTITION_PREFIX + "__HIVE_DEFAULT_PARTITION__":
            return date.fromisoformat(part[len(PARTITION_PREFIX):])
    return None


def partitions_of(wh: Warehouse, table: str, version: int | None = None) -> list[PartitionFiles]:
    """The table's partitions in its current (or given) Delta version, each with its file-set fingerprint."""
    if not wh.exists(table):
        return []
    version = wh.version(table) if version is None else version
    by_dt: dict[date | None, list[str]] = {}
    for file in wh.files(table, version):
        by_dt.setdefault(_dt_of(file), []).append(file.rsplit("/", 1)[-1])
    return [PartitionFiles(table, dt, fingerprint(files), len(files), version)
            for dt, files in sorted(by_dt.items(), key=lambda kv: (kv[0] is not None, kv[0] or date.min))]


def _latest(ledger_rows: Iterable) -> dict[Key, Row]:
    """Each partition's current ledger row: the highest step, then the latest ``processed_at`` (a
    ``forget`` re-records a partition it rewrote under the step that had processed it)."""
    latest: dict[Key, Row] = {}
    for row in ledger_rows:
        key = (row["source_table"], row["dt"])
        if key not in latest or (row["step"], row["processed_at"]) > (latest[key]["step"], latest[key]["processed_at"]):
            latest[key] = row
    return latest


def processed(ledger_rows: Iterable) -> dict[Key, str]:
    """The fingerprint each partition was last processed at."""
    return {key: row["files_fingerprint"] for key, row in _latest(ledger_rows).items()}


def processed_version(wh: Warehouse, table: str, dt: date | None = None) -> int | None:
    """The version of ``table`` at which the ledger last processed its partition ``dt`` (None: never)."""
    if not wh.exists(LEDGER):
        return None
    row = _latest(wh.read(LEDGER).filter(F.col("source_table") == table).collect()).get((table, dt))
    return row["table_version"] if row else None


def pending_partitions(current: Iterable[PartitionFiles], done: dict[Key, str]) -> list[PendingPartition]:
    """The partitions never processed, and those whose files changed since they were."""
    pending = []
    for part in current:
        if part.key not in done:
            pending.append(PendingPartition(part, "new"))
        elif done[part.key] != part.files_fingerprint:
            pending.append(PendingPartition(part, "changed"))
    return pending


@dataclass(frozen=True)
class StepPlan:
    """What one step of a job will process: the step number and the partitions pending when it was planned."""

    app_id: str
    step: int
    pending: list[PendingPartition]
    versions: dict[str, int] = field(default_factory=dict)  # the input tables' versions the step reads
    resumed: bool = False  # an earlier attempt of this step wrote some outputs: same step, same versions

    @property
    def txn(self) -> AppTxn:
        return AppTxn(self.app_id, self.step, json.dumps(self.versions, sort_keys=True))

    def is_empty(self) -> bool:
        return not self.pending


def plan_step(wh: Warehouse, app_id: str, tables: Iterable[str], recompute: bool = False,
              outputs: Iterable[str] = ()) -> StepPlan:
    """The next step of ``app_id``: one past the last step the ledger committed, with what is pending.

    The plan pins each input table's version; the step reads those versions (``plan.versions``).
    If an earlier attempt of the step died after writing some of ``outputs``, the plan pins the
    versions that attempt read (from its commits' metadata), so files that landed since wait for the
    next step. With ``recompute`` (the full job), every partition is pending, not only new ones.
    """
    step = (wh.committed_version(LEDGER, app_id) or 0) + 1
    earlier = _inputs_of_earlier_attempt(wh, app_id, step, outputs)
    tables = [t for t in tables if wh.exists(t) and (earlier is None or t in earlier)]
    versions = earlier if earlier is not None else {t: wh.version(t) for t in tables}
    current = [p for t in tables for p in partitions_of(wh, t, versions[t])]
    if recompute:
        pending = [PendingPartition(p, "recomputed") for p in current]
    else:
        pending = pending_partitions(current, processed(wh.read(LEDGER).collect() if wh.exists(LEDGER) else []))
    return StepPlan(app_id, step, pending, dict(versions), resumed=earlier is not None)


def _inputs_of_earlier_attempt(wh: Warehouse, app_id: str, step: int, outputs: Iterable[str]) -> dict[str, int] | None:
    for table in outputs:
        done = wh.committed_version(table, app_id)
        if done is not None and done >= step:
            recorded = next((h["step_inputs"] for h in wh.history(table) if h.get("step_inputs")), None)
            if recorded:
                return {t: int(v) for t, v in json.loads(recorded).items()}
    return None


def already_committed(wh: Warehouse, table: str, plan: StepPlan) -> bool:
    """Whether ``table`` already holds this step (a rerun after a crash skips it)."""
    done = wh.committed_version(table, plan.app_id)
    return done is not None and done >= plan.step


def version_before_step(wh: Warehouse, table: str, plan: StepPlan) -> int:
    """The table's version before this step wrote it: the current one, or the one before the commit of an
    earlier attempt of the step that died later."""
    version = wh.version(table)
    while version > 0 and (wh.committed_version(table, plan.app_id, version) or 0) >= plan.step:
        version -= 1
    return version


def _ledger_row(p: PartitionFiles, step: int, run_id: str, at: datetime) -> tuple:
    return p.source_table, p.dt, p.files_fingerprint, p.file_count, p.table_version, step, run_id, at


def ledger_rows(plan: StepPlan, run_id: str, at: datetime) -> list[tuple]:
    return [_ledger_row(p.partition, plan.step, run_id, at) for p in plan.pending]


def reprocessed_in_place(wh: Warehouse, before: dict[str, list[PartitionFiles]], run_id: str, at: datetime) -> int:
    """Record input partitions that a job rewrote together with every output that depends on them
    (``forget`` removes a user's rows from the inputs and from the state, profiles and labels alike)
    as processed at their new files, so the next step does not take them again.

    ``before``: each input table's partitions as the job found them. Only a partition the ledger had
    processed at exactly those files is re-recorded, under the step that processed it; one that was
    pending (late rows not yet processed) stays pending. Returns how many partitions were re-recorded.
    """
    if not wh.exists(LEDGER):
        return 0
    latest = _latest(wh.read(LEDGER).collect())
    rows = []
    for table, partitions in before.items():
        found = {p.key: p for p in partitions}
        for now in partitions_of(wh, table):
            was, done = found.get(now.key), latest.get(now.key)
            if (was is not None and done is not None and done["files_fingerprint"] == was.files_fingerprint
                    and now.files_fingerprint != was.files_fingerprint):
                rows.append(_ledger_row(now, done["step"], run_id, at))
    if rows:
        wh.append(LEDGER, wh.spark.createDataFrame(rows, wh.spec(LEDGER).schema), run_id=run_id)
    return len(rows)


def commit_step(wh: Warehouse, plan: StepPlan, run_id: str, at: datetime) -> None:
    """Append the step's partitions to the ledger, atomically with its app transaction: the step is done.

    Raises :class:`ConcurrentCommit`, naming the run that committed the step, when another run did first.
    """
    rows: DataFrame = wh.spark.createDataFrame(ledger_rows(plan, run_id, at), wh.spec(LEDGER).schema)
    try:
        wh.append(LEDGER, rows, run_id=run_id, txn=plan.txn)
    except ConcurrentCommit as error:
        winner = _run_that_committed(wh, plan)
        raise ConcurrentCommit(
            f"{plan.app_id}: step {plan.step} was committed by run {winner or '(unknown)'} while run {run_id} "
            f"was working on it; run {run_id} committed nothing to {LEDGER}. Rerun to process what is still "
            f"pending.") from error


def _run_that_committed(wh: Warehouse, plan: StepPlan) -> str | None:
    if not wh.exists(LEDGER):
        return None
    winners = wh.read(LEDGER).filter(f"step = {plan.step}").select("run_id").distinct().collect()
    return winners[0]["run_id"] if winners else None
