"""Compare a stored Delta schema with the expected Spark schema, ignoring nullability."""
from __future__ import annotations

from typing import Any

import pyarrow as pa
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.types import StructType


def _strip(node: Any) -> Any:
    """A Spark/Delta JSON type with nullability and metadata removed."""
    if isinstance(node, dict):
        return {k: _strip(v) for k, v in node.items()
                if k not in ("nullable", "containsNull", "valueContainsNull", "metadata")}
    if isinstance(node, list):
        return [_strip(v) for v in node]
    return node


def schema_differences(expected: StructType, stored_json: dict[str, Any]) -> list[str]:
    """Human-readable differences between the expected schema and a stored one (Delta JSON).

    A nullable column that a newer Portrait added is not a difference: reads give null for it, and the
    next write of the table adds it (Delta schema evolution).
    """
    want = {f["name"]: _strip(f["type"]) for f in expected.jsonValue()["fields"]}
    have = {f["name"]: _strip(f["type"]) for f in stored_json["fields"]}
    added = {f.name for f in expected.fields if f.nullable and f.name not in have}
    problems = [f"missing column {name}" for name in want if name not in have and name not in added]
    problems += [f"unexpected column {name}" for name in have if name not in want]
    problems += [
        f"column {name} is {_describe(have[name])}, expected {_describe(want[name])}"
        for name in want if name in have and have[name] != want[name]
    ]
    return problems


def _describe(t: Any) -> str:
    return t if isinstance(t, str) else t.get("type", str(t))


def arrow_schema(schema: StructType) -> pa.Schema:
    """The Arrow schema Delta stores for a Spark schema: UTC microsecond timestamps, all nullable."""
    converted = to_arrow_schema(schema, timezone="UTC")
    return pa.schema([field.with_nullable(True) for field in converted])
