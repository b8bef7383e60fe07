"""Percent ranks without a global window: ``Window.orderBy`` with no partition sends every row to one task."""
from __future__ import annotations

import math
from fractions import Fraction
from typing import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

# percentile_approx's accuracy: its rank error is at most n / ACCURACY, so below a million rows the order
# statistics are exact, and above it mergeable sketches are combined (never every value in one task).
ACCURACY = 1_000_000


def ranks_reached(column: str, name: str, thresholds: list[float], ascending: bool = True
                  ) -> Callable[[DataFrame], DataFrame]:
    """df -> df with ``name``: how many of ``thresholds`` the row's percent rank reaches (``many_ranks_reached``)."""
    return many_ranks_reached(column, {name: thresholds}, ascending)


def many_ranks_reached(column: str, thresholds_by_name: dict[str, list[float]], ascending: bool = True
                       ) -> Callable[[DataFrame], DataFrame]:
    """df -> df with a column per name: how many of its thresholds the row's percent rank reaches (>=), the
    percent rank being what ``F.percent_rank().over(Window.orderBy(column))`` gives (ties share the lowest
    rank; a lone row ranks 0). Null where ``column`` is null. One count and one sketch serve every name.

    With the values sorted s_0 <= ... <= s_{n-1}, a value x has percent rank L / (n - 1), L the count of
    values below it, and L >= m exactly when x > s_{m-1}. So reaching q means x > s_{m-1} for
    m = ceil(q (n - 1)) (always, when m is 0): a few order statistics, which ``percentile_approx`` gives
    from mergeable sketches. It runs one small job first: the count n, which the positions depend on.
    """
    def apply(df: DataFrame) -> DataFrame:
        value = F.col(column).cast("double")
        value = value if ascending else -value
        n = df.filter(value.isNotNull()).count()
        if n < 2:  # a lone value ranks 0
            return df.withColumns({name: F.when(value.isNotNull(), F.lit(sum(q <= 0 for q in qs)))
                                   for name, qs in thresholds_by_name.items()})
        # exact: 0.9 * 10 is 9, not 9.000...02
        needed = {name: [math.ceil(Fraction(repr(q)) * (n - 1)) for q in qs] for name, qs in thresholds_by_name.items()}
        positions = sorted({m - 1 for ms in needed.values() for m in ms if m > 0})
        if not positions:
            return df.withColumns({name: F.when(value.isNotNull(), F.lit(len(ms))) for name, ms in needed.items()})
        # percentile_approx(p) is the element of 1-based rank ceil(p n): p = (j + 0.5) / n gives s_j.
        cuts = df.agg(F.percentile_approx(value, [(j + 0.5) / n for j in positions], ACCURACY).alias("_cuts"))
        at = {j: i + 1 for i, j in enumerate(positions)}  # position -> 1-based index in _cuts

        def reached(ms: list[int]) -> Column:
            passed = [value > F.element_at("_cuts", at[m - 1]) for m in ms if m > 0]
            count = sum((p.cast("int") for p in passed), F.lit(sum(m <= 0 for m in ms)))
            return F.when(value.isNotNull(), count)
        return (df.crossJoin(cuts).withColumns({name: reached(ms) for name, ms in needed.items()})
                .drop("_cuts"))
    return apply
