"""Delta tables through delta-spark, for sessions with Delta's jars on the classpath (clusters)."""
from __future__ import annotations

import json
from contextlib import contextmanager
from typing import Iterator

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StructType

from jobs.frames import conform
from jobs.storage.commits import STEP_INPUTS, AppTxn, commit_metadata, lost_race, refuse_if_committed
from jobs.storage.parquet_options import parquet_options

# Delta's idempotent-write settings: DataFrameWriter options, and session settings for MERGE.
TXN_SESSION_CONF = ("spark.databricks.delta.write.txnAppId", "spark.databricks.delta.write.txnVersion")
USER_METADATA_CONF = "spark.databricks.delta.commitInfo.userMetadata"


class DeltaSparkStore:
    """The same operations as :class:`DeltaRsStore`, done by Spark's Delta data source."""

    def __init__(self, spark: SparkSession) -> None:
        from delta.tables import DeltaTable  # imported here: clusters only

        self.spark = spark
        self._delta_table = DeltaTable

    def exists(self, path: str) -> bool:
        return self._delta_table.isDeltaTable(self.spark, path)

    def stored_schema_json(self, path: str) -> dict:
        return json.loads(self.spark.read.format("delta").load(path).schema.json())

    def version(self, path: str) -> int:
        return self._delta_table.forPath(self.spark, path).history(1).collect()[0]["version"]

    def files(self, path: str, version: int | None = None) -> list[str]:
        reader = self.spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        return list(reader.load(path).inputFiles())

    def committed_version(self, path: str, app_id: str, version: int | None = None) -> int | None:
        # The Python API has no reader for app transactions. The tables are reader 1 / writer 2, so delta-rs
        # reads the log (for object stores it takes the same credentials from the environment).
        from deltalake import DeltaTable

        return DeltaTable(path, version=version).transaction_version(app_id)

    def count(self, path: str) -> int:
        return self.spark.read.format("delta").load(path).count()

    def read(self, path: str, schema: StructType, version: int | None = None) -> DataFrame:
        reader = self.spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        # A nullable column added since the table was written reads as null (schema_differences allows it).
        return reader.load(path).transform(conform(schema, path, fill_missing=True))

    def write(self, path: str, df: DataFrame, schema: StructType, mode: str,
              replace_partitions: list[str] | None = None, run_id: str | None = None,
              txn: AppTxn | None = None) -> None:
        partition_by = [f.name for f in schema.fields if f.metadata.get("partition")]
        # Delta would skip an already-committed step silently; say so instead. A step committed after this
        # check fails Delta's own conflict check (ConcurrentTransactionException).
        if self.exists(path):
            self._refuse_if_committed(path, txn)
        # mergeSchema: a nullable column added since the table was written is added to it.
        writer = (df.select(*schema.fieldNames()).write.format("delta").mode(mode).option("mergeSchema", "true")
                  .options(**parquet_options(schema)))
        if run_id or (txn is not None and txn.inputs is not None):
            writer = writer.option("userMetadata", _user_metadata(run_id, txn))
        if txn is not None:
            writer = writer.option("txnAppId", txn.app_id).option("txnVersion", str(txn.version))
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        if replace_partitions is not None:
            if not replace_partitions:
                return
            values = ", ".join(f"'{v}'" for v in sorted(replace_partitions))
            writer = writer.mode("overwrite").option("replaceWhere", f"{partition_by[0]} IN ({values})")
        with _concurrent_commit(path, txn):
            writer.save(path)

    def vacuum(self, path: str) -> list[str]:
        """Delete every file the current version does not use (zero retention).

        delta-spark's API does not say which files went, so this returns an empty list.
        """
        self.spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
        self._delta_table.forPath(self.spark, path).vacuum(0.0)
        return []

    def history(self, path: str) -> list[dict]:
        rows = self._delta_table.forPath(self.spark, path).history().collect()
        meta = lambda r: json.loads(r["userMetadata"] or "{}")  # noqa: E731
        return [{"version": r["version"], "timestamp": int(r["timestamp"].timestamp() * 1000),
                 "operation": r["operation"], "run_id": meta(r).get("portrait.run_id"),
                 "step_inputs": meta(r).get(STEP_INPUTS)} for r in rows]

    def merge(self, path: str, df: DataFrame, schema: StructType, keys: tuple[str, ...],
              run_id: str | None = None, txn: AppTxn | None = None, delete_missing: bool = False) -> None:
        if not self.exists(path):
            self.write(path, df, schema, mode="overwrite", run_id=run_id, txn=txn)
            return
        self._refuse_if_committed(path, txn)
        condition = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
        merge = (self._delta_table.forPath(self.spark, path).alias("t")
                 .merge(df.select(*schema.fieldNames()).alias("s"), condition)
                 .whenMatchedUpdateAll().whenNotMatchedInsertAll())
        if delete_missing:
            merge = merge.whenNotMatchedBySourceDelete()
        with _concurrent_commit(path, txn), self._txn_session_conf(txn):
            merge.execute()

    def _refuse_if_committed(self, path: str, txn: AppTxn | None) -> None:
        if txn is not None:
            refuse_if_committed(path, txn, self.committed_version(path, txn.app_id))

    @contextmanager
    def _txn_session_conf(self, txn: AppTxn | None) -> Iterator[None]:
        if txn is None:
            yield
            return
        settings = dict(zip(TXN_SESSION_CONF, (txn.app_id, str(txn.version))))
        settings[USER_METADATA_CONF] = _user_metadata(None, txn)
        for key, value in settings.items():
            self.spark.conf.set(key, value)
        try:
            yield
        finally:
            for key in settings:
                self.spark.conf.unset(key)


def _user_metadata(run_id: str | None, txn: AppTxn | None) -> str:
    return json.dumps(commit_metadata(run_id, txn))


@contextmanager
def _concurrent_commit(path: str, txn: AppTxn | None) -> Iterator[None]:
    """Delta's ConcurrentTransactionException, for a step another run committed first, said plainly."""
    try:
        yield
    except Exception as error:
        if txn is None or "ConcurrentTransaction" not in type(error).__name__ + str(error):
            raise
        raise lost_race(path, txn, error) from error
