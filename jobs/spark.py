"""The one place a SparkSession is built from config."""
from __future__ import annotations

import logging
import os
import sys
import time

from pyspark.sql import SparkSession

from conf import SparkConf

# Reader 1 / writer 2 and no deletion vectors, so delta-rs can read what delta-spark wrote.
DELTA_TABLE_DEFAULTS = {
    "spark.databricks.delta.properties.defaults.minReaderVersion": "1",
    "spark.databricks.delta.properties.defaults.minWriterVersion": "2",
    "spark.databricks.delta.properties.defaults.enableDeletionVectors": "false",
}


def spark_session(conf: SparkConf) -> SparkSession:
    """Get or create the session. Under spark-submit, the submitted settings win."""
    # Python workers must run the same interpreter (and venv) as the driver.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    # PySpark turns timestamps into naive datetimes in the process's zone: make that UTC everywhere.
    os.environ["TZ"] = "UTC"
    time.tzset()
    builder = (
        SparkSession.builder.appName(conf.app_name)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(conf.shuffle_partitions))
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(conf.arrow_batch_size))
        # Delta stores timestamps as INT64 microseconds; Spark's INT96 default is not portable.
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .config("spark.sql.sources.partitionOverwriteMode", "dynamic")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.maxResultSize", "4g")
        .config("spark.executorEnv.TZ", "UTC")
        # PySpark 4 records the Python call site of every DataFrame and Column call (four more JVM round trips
        # each) for its error context. The product builds plans of thousands of calls, so that was a tenth of
        # a small full run; its errors name the table and the column themselves (docs/incremental-design.md,
        # "Fixed costs").
        .config("spark.python.sql.dataFrameDebugging.enabled", "false")
    )
    # Under spark-submit the JVM already runs with the submitted master and memory.
    if "PYSPARK_GATEWAY_PORT" not in os.environ:
        builder = builder.master(conf.master).config("spark.driver.memory", conf.driver_memory)
        builder = builder.config("spark.ui.enabled", "false")
        if conf.master.startswith("local"):
            # A table read names every file (delta-rs lists them from the log). Above 32 paths Spark stats them
            # in a job of its own, whose tasks would run on the driver's cores anyway: 2.5 s for a daily-tiled
            # table of 600 days, against milliseconds for the driver to stat them itself.
            builder = builder.config("spark.sql.sources.parallelPartitionDiscovery.threshold", "100000")
        # The profiles fold joins a dozen feature families in one stage, and each sort and aggregation in a task
        # holds a memory page of its own: 64 MB each by default here, about 1.5 GB a task whatever its rows. At
        # 80,000 users over 180 days a full run's profiles write failed for want of memory. (spark.extra wins.)
        builder = builder.config("spark.buffer.pageSize", "16m")
    for key, value in {**DELTA_TABLE_DEFAULTS, **conf.extra}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    if conf.checkpoint_dir:
        spark.sparkContext.setCheckpointDir(conf.checkpoint_dir)
    # PySpark logs every failed query's whole plan as JSON; the raised error already says what failed.
    for name in ("DataFrameQueryContextLogger", "SQLQueryContextLogger"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    return spark


def delta_on_classpath(spark: SparkSession) -> bool:
    """True when the session can use delta-spark (its jars are loaded)."""
    try:
        spark.sparkContext._jvm.java.lang.Class.forName("io.delta.tables.DeltaTable")  # type: ignore[union-attr]
        return True
    except Exception:  # noqa: BLE001 - py4j raises its own error types; any failure means "absent"
        return False
