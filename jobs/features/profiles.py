"""Assemble the per-user feature frames into the profiles table's shape."""
from __future__ import annotations

from datetime import datetime
from typing import Callable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from conf import Config
from jobs.frames import conform
from jobs.features.intent import short_window_columns
from schemas.profiles import profiles_schema


def fill_zero(columns: list[str]) -> Callable[[DataFrame], DataFrame]:
    """Counts of things that did not happen are 0, not null (only where the source was present)."""
    def apply(df: DataFrame) -> DataFrame:
        present = [c for c in columns if c in df.columns]
        return df.fillna(0, subset=present) if present else df
    return apply


def assemble_profiles(schema: StructType, as_of: datetime, updated_at: datetime, zone: str,
                      features: list[DataFrame]) -> Callable[[DataFrame], DataFrame]:
    """One row per user in ``users``, left-joined with each per-user feature frame.

    A column no feature frame produced (its source table is absent) is null.
    """
    def apply(users: DataFrame) -> DataFrame:
        local_year = F.year(F.from_utc_timestamp(F.lit(as_of).cast("timestamp"), zone))
        age = F.coalesce(F.col("age"), local_year - F.col("birth_year")).cast("int").alias("age")
        out = users.select("user_id", "signup_ts", age)
        for frame in features:
            out = out.join(frame, "user_id", "left")
        out = out.withColumn("as_of", F.lit(as_of).cast("timestamp")).withColumn(
            "updated_at", F.lit(updated_at).cast("timestamp"))
        return out.transform(conform(schema, "profiles", fill_missing=True))
    return apply


COUNT_COLUMNS = {
    "transactions": ["frequency"],  # the per-window order counts are added from the configured windows
    "browse": ["views", "clicks", "carts", "favs", "sessions"],
    "social": ["review_count", "comment_count", "like_count", "share_count", "follow_count"],
    "events": ["active_days"],
}


def profiles_from_features(cfg: Config, as_of: datetime, updated_at: datetime, present: set[str],
                           features: list[DataFrame]) -> Callable[[DataFrame], DataFrame]:
    """users -> profiles: the per-user feature frames joined on, and counts of absent things set to 0."""
    f = cfg.features
    recent = cfg.tags.active_window_days
    zero = [c for table in present for c in COUNT_COLUMNS.get(table, [])] + COUNT_COLUMNS["events"]
    if "transactions" in present:
        zero += [f"orders_{w}d" for w in f.rfm_windows]
    if present & {"transactions", "browse"}:
        zero += short_window_columns(f.short_windows) + ["open_intent_items"]
    zero.append(f"events_{recent}d")
    schema = profiles_schema(f.rfm_windows, f.short_windows)

    def apply(users: DataFrame) -> DataFrame:
        return (users.transform(assemble_profiles(schema, as_of, updated_at, cfg.time.zone, features))
                .transform(fill_zero(zero)))
    return apply
