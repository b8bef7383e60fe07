"""Small builders for hand-written test rows."""
from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame

UTC = dt.timezone.utc
AS_OF = dt.datetime(2025, 1, 31, tzinfo=UTC)


def ts(day: int, hour: int = 12, minute: int = 0, month: int = 1, year: int = 2025) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=UTC)


def naive(value: dt.datetime) -> dt.datetime:
    """How Spark hands a UTC timestamp back to Python (the session and process run in UTC)."""
    return value.astimezone(UTC).replace(tzinfo=None)


def rows(df: DataFrame, key: str = "user_id") -> list[dict]:
    """Collected rows as dicts, sorted by ``key``."""
    return sorted((r.asDict(recursive=True) for r in df.collect()), key=lambda r: str(r[key]))


def by_user(df: DataFrame) -> dict[str, dict]:
    return {r["user_id"]: r for r in rows(df)}
