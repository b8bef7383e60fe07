"""Deterministic pseudo-randomness from hashes: the same seed gives the same data on any partitioning."""
from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

_SCALE = 1 << 30


def uniform(seed: int, salt: str, *columns: Column | str) -> Column:
    """A uniform double in [0, 1) that depends only on (seed, salt, columns)."""
    return F.pmod(F.xxhash64(F.lit(seed), F.lit(salt), *columns), F.lit(_SCALE)) / float(_SCALE)


def pick(options: list, index: Column) -> Column:
    """``options[index]`` for a 0-based integer column (literal options)."""
    return F.element_at(F.array(*[F.lit(o) for o in options]), index.cast("int") + 1)


def pick_uniform(options: list, u: Column) -> Column:
    """One of ``options`` chosen by a uniform column."""
    return pick(options, F.floor(u * len(options)))
