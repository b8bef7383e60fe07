"""A partition's rows through pandas code that hands back vectors, with the vectors returned to Spark as Arrow lists
built from one matrix per batch.

``mapInPandas`` converts an array column of its output row by row: a Python call per row and per element type
(pyspark's ``_create_converter_from_pandas`` runs ``Series.apply`` over the column), then ``pa.array`` over a
list of numpy arrays. Settling ``settled_interest`` for 80,000 users spent over half of its Python time there
(py-spy, 1,417 of 2,511 samples of the workers' output stream). Here an array column is one offsets array and
one values buffer per batch: ``ListArray.from_arrays`` over the matrix the code already has.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.types import StructType


@dataclass(frozen=True)
class NullableRows:
    """An array column with null rows: the matrix (one row per output row) and which rows are present."""

    matrix: np.ndarray
    present: np.ndarray


# A batch of output: per column, a 1-D array of values, or for an array column a 2-D matrix (one row per
# output row) or ``NullableRows``.
Columns = Mapping[str, object]


def list_array(rows: np.ndarray | NullableRows, type_: pa.DataType) -> pa.Array:
    """A [n, dim] matrix -> an Arrow list (or large list) array of n rows of dim elements (absent rows null),
    without a Python step per row."""
    matrix, present = (rows.matrix, rows.present) if isinstance(rows, NullableRows) else (rows, None)
    n, dim = matrix.shape
    large = pa.types.is_large_list(type_)
    offsets = pa.array(np.arange(n + 1, dtype=np.int64 if large else np.int32) * dim)
    values = pa.array(np.ascontiguousarray(matrix).reshape(-1), type=type_.value_type)
    mask = None if present is None else pa.array(~np.asarray(present, dtype=bool))
    return (pa.LargeListArray if large else pa.ListArray).from_arrays(offsets, values, type=type_, mask=mask)


def record_batch(columns: Columns, schema: pa.Schema) -> pa.RecordBatch:
    """Columns by name -> a record batch of ``schema``'s fields, in its order and with its types."""
    def arrow(value: object, type_: pa.DataType) -> pa.Array:
        matrix = isinstance(value, NullableRows) or getattr(value, "ndim", 1) == 2
        return list_array(value, type_) if matrix else pa.array(value, type=type_)
    return pa.RecordBatch.from_arrays([arrow(columns[f.name], f.type) for f in schema], schema=schema)


def map_vector_batches(compute: Callable[[Iterator[pd.DataFrame]], Iterator[Columns]],
                       schema: StructType) -> Callable[[DataFrame], DataFrame]:
    """df -> ``schema``'s rows: ``compute`` reads the partition as pandas frames (each Arrow batch through
    ``RecordBatch.to_pandas``: array columns as numpy arrays, timestamps time-zone aware, where ``mapInPandas``
    gives them naive in the session's zone) and yields ``Columns``, which go back as Arrow."""
    def apply(df: DataFrame) -> DataFrame:
        large = df.sparkSession.conf.get("spark.sql.execution.arrow.useLargeVarTypes", "false") == "true"
        arrow_schema = to_arrow_schema(schema, timezone="UTC", prefers_large_types=large)

        def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            for columns in compute(batch.to_pandas() for batch in batches):
                yield record_batch(columns, arrow_schema)
        return df.mapInArrow(run, schema)
    return apply
