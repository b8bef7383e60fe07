"""The warehouse: every Portrait table, by name, under one directory.

It is the only object that knows whether delta-spark or delta-rs does the work. Both
produce the same tables (reader 1 / writer 2, no deletion vectors), so either engine
can read what the other wrote.
"""
from __future__ import annotations

import os
from typing import Literal

from pyspark.sql import DataFrame, SparkSession

from jobs.frames import conform
from jobs.spark import delta_on_classpath
from jobs.storage.delta_rs import DeltaRsStore
from jobs.storage.commits import AppTxn
from jobs.storage.errors import SchemaMismatch, TableNotFound
from jobs.storage.schema_compat import schema_differences
from schemas import TABLES, TableSpec

Engine = Literal["auto", "delta-rs", "delta-spark"]


class Warehouse:
    """Named Delta tables under ``root``, checked against their schemas on every read and write."""

    def __init__(self, root: str, spark: SparkSession, engine: Engine = "auto",
                 specs: dict[str, TableSpec] | None = None) -> None:
        self.root = root
        self.spark = spark
        self.specs = {**TABLES, **(specs or {})}
        use_spark = engine == "delta-spark" or (engine == "auto" and delta_on_classpath(spark))
        if use_spark:
            from jobs.storage.delta_spark import DeltaSparkStore
            self.store = DeltaSparkStore(spark)
        else:
            self.store = DeltaRsStore(spark)
        self.engine = "delta-spark" if use_spark else "delta-rs"

    def path(self, name: str) -> str:
        if "://" in self.root:
            return f"{self.root.rstrip('/')}/{name}"
        return os.path.abspath(os.path.join(self.root, name))

    def spec(self, name: str) -> TableSpec:
        if name not in self.specs:
            raise KeyError(f"unknown table {name!r}; known tables: {', '.join(sorted(self.specs))}")
        return self.specs[name]

    def exists(self, name: str) -> bool:
        return self.store.exists(self.path(name))

    def check_schema(self, name: str) -> None:
        """Raise SchemaMismatch (naming the columns) if the stored schema is not the expected one."""
        problems = schema_differences(self.spec(name).schema, self.store.stored_schema_json(self.path(name)))
        if problems:
            raise SchemaMismatch(f"{name}: table at {self.path(name)} does not match schemas/: " + "; ".join(problems))

    def read(self, name: str, version: int | None = None) -> DataFrame:
        if not self.exists(name):
            raise TableNotFound(
                f"{name}: table not found at {self.path(name)}; run 'portrait generate' or "
                f"'portrait demo', or point warehouse.path at your tables")
        self.check_schema(name)
        return self.store.read(self.path(name), self.spec(name).schema, version)

    def read_or_empty(self, name: str, version: int | None = None) -> DataFrame:
        """The table, or an empty frame with its schema when it does not exist."""
        if self.exists(name):
            return self.read(name, version)
        return self.spark.createDataFrame([], self.spec(name).schema)

    def count(self, name: str) -> int:
        return self.store.count(self.path(name)) if self.exists(name) else 0

    def files(self, name: str, version: int | None = None) -> list[str]:
        """The parquet files of the table's current (or given) version, for readers outside Spark."""
        return self.store.files(self.path(name), version)

    def version(self, name: str) -> int:
        return self.store.version(self.path(name))

    def committed_version(self, name: str, app_id: str, version: int | None = None) -> int | None:
        """The last version of ``app_id`` committed to the table (a Delta app transaction), or None;
        with ``version``, as of that table version."""
        return self.store.committed_version(self.path(name), app_id, version) if self.exists(name) else None

    def vacuum(self, name: str) -> list[str]:
        """Delete the files no current row lives in (after an erasure); returns them."""
        return self.store.vacuum(self.path(name))

    def history(self, name: str) -> list[dict]:
        """The table's commits, newest first: version, timestamp (ms), operation, Portrait's run_id and step_inputs."""
        return self.store.history(self.path(name))

    # ``txn``: commit an app transaction with the data. A table that already holds that version (or a
    # later one) of the app refuses the write with ConcurrentCommit: a step is applied at most once.

    def overwrite(self, name: str, df: DataFrame, run_id: str | None = None, txn: AppTxn | None = None) -> None:
        self._write(name, df, "overwrite", None, run_id, txn)

    def append(self, name: str, df: DataFrame, run_id: str | None = None, txn: AppTxn | None = None) -> None:
        self._write(name, df, "append", None, run_id, txn)

    def overwrite_partitions(self, name: str, df: DataFrame, partitions: list[str],
                             run_id: str | None = None, txn: AppTxn | None = None) -> None:
        """Replace exactly the given ``dt`` partitions with ``df``; other partitions stay."""
        if not self.spec(name).partition_by:
            raise ValueError(f"{name} is not partitioned")
        self._write(name, df, "overwrite", [str(p) for p in partitions], run_id, txn)

    def merge(self, name: str, df: DataFrame, run_id: str | None = None, txn: AppTxn | None = None,
              delete_missing: bool = False) -> None:
        """Upsert ``df`` on the table's keys: matching rows are replaced, new rows inserted; with
        ``delete_missing``, rows whose keys ``df`` lacks are deleted (``df`` is the whole new table)."""
        spec = self.spec(name)
        if not spec.keys:
            raise ValueError(f"{name} has no merge keys")
        self._check_existing(name)
        self.store.merge(self.path(name), df.transform(conform(spec.schema, name)), spec.schema, spec.keys,
                         run_id, txn, delete_missing)

    def _write(self, name: str, df: DataFrame, mode: str, replace: list[str] | None, run_id: str | None,
               txn: AppTxn | None) -> None:
        spec = self.spec(name)
        self._check_existing(name)
        df = df.transform(conform(spec.schema, name))
        if spec.partition_by:
            # Each partition value's rows go to one task, so a value is one file per write. The task count is
            # the session's shuffle partitions, fixed: left to AQE, a small write of many days (a sample's
            # 600, a step's late partitions) is coalesced into one task that writes every file in turn
            # (Olist's 600 daily files: 13.7 s in one task, 6 s in two).
            df = df.repartition(int(df.sparkSession.conf.get("spark.sql.shuffle.partitions")), *spec.partition_by)
        self.store.write(self.path(name), df, spec.schema, mode, replace, run_id, txn)

    def _check_existing(self, name: str) -> None:
        # (The store itself refuses a step the table already holds, on the snapshot it commits against.)
        if self.exists(name):
            self.check_schema(name)

