"""Shaping DataFrames to a table's schema, and materialising them once."""
from __future__ import annotations

from contextlib import ExitStack
from typing import Callable

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StructType


def conform(schema: StructType, name: str, fill_missing: bool = False) -> Callable[[DataFrame], DataFrame]:
    """Select the schema's columns in order, cast to its types.

    A missing column is an error naming it, unless ``fill_missing``: then it is null.
    Only columns whose type differs are cast (Spark refuses casts that merely tighten nullability).
    """
    def apply(df: DataFrame) -> DataFrame:
        missing = [f.name for f in schema.fields if f.name not in df.columns]
        if missing and not fill_missing:
            raise ValueError(f"{name}: the data lacks column(s) {', '.join(missing)}")
        current = {f.name: f.dataType.simpleString() for f in df.schema.fields}
        columns = []
        for f in schema.fields:
            if f.name not in current:
                columns.append(F.lit(None).cast(f.dataType).alias(f.name))
            elif current[f.name] == f.dataType.simpleString():
                columns.append(F.col(f.name))
            else:
                columns.append(F.col(f.name).cast(f.dataType).alias(f.name))
        return df.select(*columns)
    return apply


def checkpointed(df: DataFrame, cleanup: ExitStack) -> DataFrame:
    """``df`` computed once now, its plan cut to a scan of the result; the blocks go when ``cleanup`` closes.

    Cutting the plan matters as much as the cache: every DataFrame derived from a persisted frame is
    analysed together with the frame's whole plan, and a profile's plan joins a dozen folds, so the
    scoring and segment stages spent most of their time planning. With ``spark.checkpoint_dir`` set
    (a cluster), the checkpoint is written there and survives a lost executor; without it (local runs),
    it stays on the executors, in memory, spilling to disk.
    """
    if df.sparkSession.sparkContext.getCheckpointDir():
        out = df.checkpoint(eager=True)
    else:
        out = df.localCheckpoint(eager=True, storageLevel=StorageLevel.MEMORY_AND_DISK)
    blocks = out._jdf.logicalPlan().rdd()  # the LogicalRDD's RDD: what holds the blocks
    cleanup.callback(lambda: blocks.unpersist(False))
    return out
