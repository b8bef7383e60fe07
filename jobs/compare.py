"""Compare two tables row by row: the incremental job's acceptance (tests and benchmark) rests on it."""
from __future__ import annotations

from pyspark.sql import DataFrame


def value_differences(actual, expected, tolerance: float, where: str = "") -> list[str]:
    """Where two collected values differ: floats by more than ``tolerance``, anything else at all."""
    if isinstance(actual, float) and isinstance(expected, float):
        return [] if abs(actual - expected) <= tolerance else [f"{where}: {actual!r} != {expected!r}"]
    if isinstance(actual, dict) and isinstance(expected, dict) and actual.keys() == expected.keys():
        return [m for k in actual for m in value_differences(actual[k], expected[k], tolerance, f"{where}.{k}")]
    if isinstance(actual, (list, tuple)) and isinstance(expected, (list, tuple)) and len(actual) == len(expected):
        return [m for i, (a, e) in enumerate(zip(actual, expected))
                for m in value_differences(a, e, tolerance, f"{where}[{i}]")]
    return [] if actual == expected else [f"{where}: {actual!r} != {expected!r}"]


def table_differences(actual: DataFrame, expected: DataFrame, keys: tuple[str, ...], tolerance: float = 1e-9,
                      ignore: tuple[str, ...] = ()) -> list[str]:
    """How two tables differ, matched by ``keys``: missing or extra keys, then values.

    Floating-point values (nested in arrays and structs too) may differ by ``tolerance``; everything
    else must be equal. Empty when they match.
    """
    def keyed(df: DataFrame) -> tuple[dict, int]:
        rows = df.collect()
        found = {tuple(r[k] for k in keys): {c: v for c, v in r.asDict(recursive=True).items() if c not in ignore}
                 for r in rows}
        return found, len(rows) - len(found)

    (a, a_dup), (e, e_dup) = keyed(actual), keyed(expected)
    problems = [f"{n} duplicate {keys} rows in {side}" for n, side in ((a_dup, "actual"), (e_dup, "expected")) if n]
    problems += [f"only in actual: {k}" for k in sorted(a.keys() - e.keys(), key=str)]
    problems += [f"only in expected: {k}" for k in sorted(e.keys() - a.keys(), key=str)]
    return problems + [m for k in sorted(a.keys() & e.keys(), key=str)
                       for m in value_differences(a[k], e[k], tolerance, str(k))]
