"""Small column helpers shared by the feature functions."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from jobs.clock import add_days, local_midnight_date

SECONDS_PER_DAY = 86_400.0


def before(as_of: datetime, column: str = "ts") -> Column:
    """Point in time: only events strictly before ``as_of`` count."""
    return F.col(column) < F.lit(as_of)


def within_days(as_of: datetime, days: int, zone: str, column: str = "ts") -> Column:
    """The window [as_of - days, as_of), ``days`` counted as local days in ``zone``."""
    return (F.col(column) >= F.lit(add_days(as_of, -days, zone))) & before(as_of, column)


def first_partition(day: date, lead: int) -> date:
    """The first ``dt`` partition that can hold a row of local day ``day`` or later: validation quarantines a row
    more than ``lead`` days after its partition (``validation.max_days_after_partition``)."""
    return day - timedelta(days=lead)


def from_partition(day: date, lead: int) -> Column:
    """Tiles in the partitions that can hold a row of local day ``day`` or later (``first_partition``). A filter on
    the partition column, so Spark reads those partitions only, not all history."""
    return F.col("dt") >= F.lit(first_partition(day, lead))


def unsettled(as_of: datetime, zone: str, settled_before: date | None) -> Callable[[DataFrame], DataFrame]:
    """tiles -> those a fold reads beside a summary settled before ``settled_before``: the tiles of the partitions
    from it on (the summary stands for the others), of days before ``as_of``'s. None: nothing is settled, so every
    partition."""
    today = local_midnight_date(as_of, zone)
    before_today = F.col("day") < F.lit(today)
    return lambda tiles: tiles.filter(before_today if settled_before is None
                                      else (F.col("dt") >= F.lit(settled_before)) & before_today)


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


# Weighted sums that must not depend on the order rows are added in (a step's settled rows plus its recent tiles,
# against a full fold of all the tiles) are kept as whole numbers: a weight, or a weight times a vector component,
# times FIXED_POINT, rounded once. Integer sums are exact in any order; the rounding moves a weight by at most 2**-31.
FIXED_POINT = 2.0 ** 30
