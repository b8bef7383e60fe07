"""Delta tables through delta-rs, for sessions without Delta's jars (the embedded default).

Spark's executors write the parquet files; delta-rs commits them. Reads go the other way:
delta-rs names the table's active files and Spark's executors read them. Only the
commit itself and ``merge`` (whose source is collected to the driver) run on the driver.
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote

import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, Transaction
from deltalake import Schema as DeltaSchema
from deltalake.exceptions import CommitFailedError
from deltalake.transaction import AddAction, create_table_with_add_actions
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StructType

from jobs.storage.commits import STEP_INPUTS, AppTxn, commit_metadata, lost_race, refuse_if_committed
from jobs.storage.parquet_options import parquet_options
from jobs.storage.schema_compat import arrow_schema

STAGING_DIR = "_staging"  # Delta readers ignore paths that start with "_"


class DeltaRsStore:
    """Read, overwrite, append, replace partitions and merge with delta-rs commits."""

    def __init__(self, spark: SparkSession) -> None:
        self.spark = spark

    def exists(self, path: str) -> bool:
        return DeltaTable.is_deltatable(path)

    def stored_schema_json(self, path: str) -> dict:
        return json.loads(DeltaTable(path).schema().to_json())

    def version(self, path: str) -> int:
        return DeltaTable(path).version()

    def files(self, path: str, version: int | None = None) -> list[str]:
        return list(DeltaTable(path, version=version).file_uris())

    def committed_version(self, path: str, app_id: str, version: int | None = None) -> int | None:
        return DeltaTable(path, version=version).transaction_version(app_id)

    def count(self, path: str) -> int:
        return DeltaTable(path).count()  # from the log's per-file record counts

    def read(self, path: str, schema: StructType, version: int | None = None) -> DataFrame:
        table = DeltaTable(path, version=version)
        files = table.file_uris()
        if not files:
            return self.spark.createDataFrame([], schema)
        reader = self.spark.read.schema(schema)
        if _partition_columns(schema):
            reader = reader.option("basePath", path)  # partition values come from the dt=... directories
        return reader.parquet(*files).select(*schema.fieldNames())

    def write(self, path: str, df: DataFrame, schema: StructType, mode: str,
              replace_partitions: list[str] | None = None, run_id: str | None = None,
              txn: AppTxn | None = None) -> None:
        """mode: 'overwrite' or 'append'. With replace_partitions, only those dt values are replaced."""
        partition_by = _partition_columns(schema)
        if replace_partitions is not None and not replace_partitions:
            return  # nothing to replace
        # The snapshot the commit is checked against is taken before the executors write, so a run that
        # commits the same step meanwhile is a concurrent winner that Delta's conflict check sees.
        table = _snapshot_refusing(path, txn)
        actions = self._stage_files(path, df.select(*schema.fieldNames()), partition_by)
        properties = _commit_properties(run_id, txn)
        delta_schema = DeltaSchema.from_arrow(arrow_schema(schema))
        if table is None:
            Path(path).mkdir(parents=True, exist_ok=True)
            create_table_with_add_actions(path, delta_schema, actions, mode="append",
                                          partition_by=partition_by or None, commit_properties=properties)
            return
        filters = None
        if replace_partitions is not None:
            mode, filters = "overwrite", [(partition_by[0], "in", sorted(replace_partitions))]
        with _concurrent_commit(path, txn):
            table.create_write_transaction(actions, mode=mode, schema=delta_schema,
                                           partition_by=partition_by or None, partition_filters=filters,
                                           commit_properties=properties)

    def merge(self, path: str, df: DataFrame, schema: StructType, keys: tuple[str, ...],
              run_id: str | None = None, txn: AppTxn | None = None, delete_missing: bool = False) -> None:
        if not self.exists(path):
            self.write(path, df, schema, mode="overwrite", run_id=run_id, txn=txn)
            return
        table = _snapshot_refusing(path, txn)
        source = df.select(*schema.fieldNames()).toArrow().cast(arrow_schema(schema))
        predicate = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
        with _concurrent_commit(path, txn):
            merge = (table.merge(source, predicate, source_alias="s", target_alias="t",
                                 commit_properties=_commit_properties(run_id, txn))
                     .when_matched_update_all().when_not_matched_insert_all())
            if delete_missing:
                merge = merge.when_not_matched_by_source_delete()
            merge.execute()

    def vacuum(self, path: str) -> list[str]:
        """Delete every file the current version does not use (zero retention; ``full`` also takes strays)."""
        return DeltaTable(path).vacuum(retention_hours=0, dry_run=False, enforce_retention_duration=False, full=True)

    def history(self, path: str) -> list[dict]:
        return [{"version": h.get("version"), "timestamp": h.get("timestamp"), "operation": h.get("operation"),
                 "run_id": h.get("portrait.run_id"), "step_inputs": h.get(STEP_INPUTS)}
                for h in DeltaTable(path).history()]

    def _stage_files(self, path: str, df: DataFrame, partition_by: list[str]) -> list[AddAction]:
        """Executors write parquet into a staging dir; move the files into the table and describe them."""
        staging = os.path.join(path, STAGING_DIR, uuid.uuid4().hex)
        writer = df.write.mode("errorifexists").options(**parquet_options(df.schema))
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        writer.parquet(staging)
        actions = []
        for file in sorted(Path(staging).rglob("*.parquet")):
            relative = file.relative_to(staging).as_posix()
            target = Path(path) / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(file, target)
            stat = target.stat()
            actions.append(AddAction(
                path=relative,
                size=stat.st_size,
                partition_values=_partition_values(relative),
                modification_time=int(stat.st_mtime * 1000),
                data_change=True,
                stats=json.dumps({"numRecords": pq.ParquetFile(target).metadata.num_rows}),
            ))
        shutil.rmtree(staging, ignore_errors=True)
        return actions


def _partition_columns(schema: StructType) -> list[str]:
    return [f.name for f in schema.fields if f.metadata.get("partition")]


def _partition_values(relative_path: str) -> dict[str, str | None]:
    values: dict[str, str | None] = {}
    for part in relative_path.split("/")[:-1]:
        key, _, value = part.partition("=")
        values[key] = None if value == "__HIVE_DEFAULT_PARTITION__" else unquote(value)
    return values


def _commit_properties(run_id: str | None, txn: AppTxn | None = None) -> CommitProperties | None:
    if not run_id and txn is None:
        return None
    return CommitProperties(custom_metadata=commit_metadata(run_id, txn) or None,
                            app_transactions=[Transaction(txn.app_id, txn.version)] if txn else None)


def _snapshot_refusing(path: str, txn: AppTxn | None) -> DeltaTable | None:
    """The table's current snapshot (None if there is no table yet), refusing a step it already holds."""
    if not DeltaTable.is_deltatable(path):
        return None
    table = DeltaTable(path)
    refuse_if_committed(path, txn, table.transaction_version(txn.app_id) if txn else None)
    return table


@contextmanager
def _concurrent_commit(path: str, txn: AppTxn | None) -> Iterator[None]:
    """delta-rs rejects a commit whose app transaction a concurrent winner also wrote: say so plainly."""
    try:
        yield
    except CommitFailedError as error:
        if txn is None or "concurrent" not in str(error).lower():
            raise
        raise lost_race(path, txn, error) from error
