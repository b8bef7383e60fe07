"""Small column helpers shared by the feature functions."""
from __future__ import annotations

from datetime import date, datetime, timedelta

from pyspark.sql import Column
from pyspark.sql import functions as F

from jobs.clock import add_days

SECONDS_PER_DAY = 86_400.0


def before(as_of: datetime, column: str = "ts") -> Column:
    """Point in time: only events strictly before ``as_of`` count."""
    return F.col(column) < F.lit(as_of)


def within_days(as_of: datetime, days: int, zone: str, column: str = "ts") -> Column:
    """The window [as_of - days, as_of), ``days`` counted as local days in ``zone``."""
    return (F.col(column) >= F.lit(add_days(as_of, -days, zone))) & before(as_of, column)


def from_partition(day: date, lead: int) -> Column:
    """Tiles in the ``dt`` partitions that can hold a row of local day ``day`` or later: validation quarantines a
    row more than ``lead`` days after its partition (``validation.max_days_after_partition``). A filter on the
    partition column, so Spark reads those partitions only, not all history."""
    return F.col("dt") >= F.lit(day - timedelta(days=lead))


def days_between(as_of: datetime | Column, column: Column) -> Column:
    """Days (fractional) from ``column`` to ``as_of`` (a time, or a timestamp column)."""
    end = as_of if isinstance(as_of, Column) else F.lit(as_of)
    return (end.cast("double") - column.cast("double")) / SECONDS_PER_DAY


def ratio(numerator: Column, denominator: Column) -> Column:
    """numerator / denominator, null when the denominator is zero or null."""
    return F.when(denominator > 0, numerator.cast("double") / denominator)


def count_where(condition: Column) -> Column:
    return F.count(F.when(condition, 1))


# Money is summed as a decimal to the micro-unit: exact, so a sum does not depend on the order rows
# arrive in (a full recompute and the incremental fold add the same amounts in different orders).
MONEY = "decimal(38,6)"


def money(column: Column) -> Column:
    return column.cast(MONEY)


def money_sum(column: Column) -> Column:
    """The exact sum of a money column (nulls skipped), as a double."""
    return F.sum(money(column)).cast("double")
