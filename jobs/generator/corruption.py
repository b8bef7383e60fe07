"""Bad rows, injected on purpose, so validation always has real work to do.

Each corruption copies a sampled good row and breaks it in one way; the original stays.
"""
from __future__ import annotations

from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from jobs.generator.random import uniform


def corruptions() -> dict[str, dict[str, dict[str, Column]]]:
    """table -> {reason the validator must give: {column: broken value}} (built inside a session)."""
    ten_years = F.make_interval(years=F.lit(10))
    return {
        "transactions": {
            "null_user_id": {"user_id": F.lit(None).cast("string")},
            "unknown_user_id": {"user_id": F.lit("U-ghost")},
            "negative_amount": {"amount": -F.col("amount") - 1},
            "absurd_amount": {"amount": F.col("amount") * 1e6 + 1e6},
            "bad_quantity": {"quantity": F.lit(0)},
            "ts_out_of_range": {"ts": F.col("ts") - ten_years},
            "duplicate_row": {},
        },
        "browse": {
            "null_item_id": {"item_id": F.lit(None).cast("string")},
            "unknown_user_id": {"user_id": F.lit("U-ghost")},
            "unknown_event_type": {"event_type": F.lit("hover")},
            "negative_dwell": {"dwell_ms": F.lit(-5).cast("long")},
            "ts_out_of_range": {"ts": F.col("ts") + ten_years},
            "duplicate_row": {},
        },
        "social": {
            "null_user_id": {"user_id": F.lit(None).cast("string")},
            "unknown_kind": {"kind": F.lit("rate")},
            "unknown_item_id": {"item_id": F.lit("I-ghost")},
            "rating_out_of_range": {"rating": F.lit(9)},
            "ts_out_of_range": {"ts": F.col("ts") - ten_years},
            "duplicate_row": {},
        },
        "users": {"null_user_id": {"user_id": F.lit(None).cast("string")}, "duplicate_row": {},
                  "duplicate_user_id": {"city": F.lit("Atlantis")}},
        "items": {"negative_price": {"price": -F.col("price")}, "duplicate_row": {},
                  "duplicate_item_id": {"title": F.lit("Counterfeit listing")}},
    }


def with_bad_rows(table: str, share: float, seed: int, key: list[str]) -> callable:
    """The table plus ``share`` of extra rows, each broken in one of the table's ways (round robin by hash)."""
    kinds = corruptions()[table]

    def apply(df: DataFrame) -> DataFrame:
        if share <= 0:
            return df
        u = uniform(seed, f"bad-{table}", *key)
        sampled = df.filter(u < share).withColumn(
            "_kind", F.floor(uniform(seed, f"bad-kind-{table}", *key) * len(kinds)).cast("int"))
        broken = [sampled.filter(F.col("_kind") == i).withColumns(changes).drop("_kind")
                  for i, changes in enumerate(kinds.values())]
        return reduce(DataFrame.unionByName, broken, df)
    return apply
