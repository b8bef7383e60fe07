"""Shaping DataFrames to a table's schema."""
from __future__ import annotations

from typing import Callable

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
