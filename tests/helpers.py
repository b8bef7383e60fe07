"""Small builders for hand-written test rows."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow.parquet as pq
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


def strings_in(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings_in(v)]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in strings_in(v)]
    return []


def scan_for_leaks(secrets_: set[str], roots: list[Path]) -> int:
    """Fail if any parquet value, JSON/YAML/text file or pickle under ``roots`` contains a secret; return files scanned."""
    scanned = 0
    for root in roots:
        for file in root.rglob("*"):
            if file.suffix == ".parquet":
                values = set(strings_in(pq.read_table(file).to_pylist()))
            elif file.is_file() and file.suffix in (".json", ".crc", ".yaml", ".txt", ".pt", ".pkl", ".pth", ""):
                values = {file.read_bytes().decode("utf-8", errors="replace")}
            else:
                continue
            scanned += 1
            leaked = [s for s in secrets_ if any(s in v for v in values)]
            assert not leaked, f"{file} holds {leaked[:3]}"
    return scanned


def assert_same_rows(actual: DataFrame, expected: DataFrame, keys: tuple[str, ...], tolerance: float = 1e-9,
                     ignore: tuple[str, ...] = ()) -> None:
    """The same rows by ``keys``; floating-point values (nested too) within ``tolerance``, everything else equal."""
    from jobs.compare import table_differences

    problems = table_differences(actual, expected, keys, tolerance, ignore)
    assert not problems, f"{len(problems)} differences, first: {problems[:5]}"


def padded(spark, rows: list[tuple], schema) -> DataFrame:
    """A frame of hand-written rows that leave the schema's trailing (nullable) columns out, as null."""
    width = len(schema.fields)
    return spark.createDataFrame([tuple(r) + (None,) * (width - len(r)) for r in rows], schema)


def tiles_of(clean: dict[str, DataFrame], zone: str = "UTC") -> dict[str, DataFrame]:
    """The daily tiles of clean tables, with their users and items: what the jobs fold profiles and labels from."""
    from jobs.features.state_profiles import day_states

    return {**day_states(clean, zone), "users": clean["users"], "items": clean["items"]}


def fold_inputs(cfg, as_of: dt.datetime, clean: dict[str, DataFrame], vectors=None) -> dict[str, DataFrame]:
    """``tiles_of`` the clean tables with the settled tables as of ``as_of``: what ``profiles_from_state`` folds
    with ``vectors`` (default: none)."""
    from jobs.features.state_profiles import NO_VECTORS, settled_tables

    tiles = tiles_of(clean, cfg.time.zone)
    return {**tiles, **settled_tables(cfg, as_of, vectors or NO_VECTORS)(tiles)}


def settled_fold(fold_of, *args, before: dt.date | None, summarize=None, appended_from: dt.date | None = None):
    """tiles -> the fold ``fold_of(*args, before)`` over them, with the tiles of the partitions before ``before``
    settled into one summary per user (``summarize``; default: the ``state_events`` one), as the jobs keep them.
    ``before`` None: nothing settled, every tile read (as the model's snapshots fold).
    With ``appended_from``: settled as a step that appended leaves them (``crossed``), the summaries of the partitions
    before ``appended_from`` beside those of the partitions from it to ``before``: up to two rows per user."""
    from jobs.features.activity import event_summaries
    from jobs.features.state import crossed, settled

    fold, summarize = fold_of(*args, before), summarize or event_summaries

    def summaries(tiles):
        if appended_from is None:
            return tiles.transform(settled(before, summarize))
        return tiles.transform(settled(appended_from, summarize)).unionByName(
            crossed(tiles, appended_from, before, summarize))
    return lambda tiles: fold(tiles, summaries(tiles))


def between(start: dt.date, end: dt.date, share: float) -> dt.date:
    """The date ``share`` of the way from ``start`` to ``end``, in whole days (``start`` when ``end`` is not after it):
    where a settled boundary stood before appending steps moved it on to ``end`` (``settled_fold``'s
    ``appended_from``). At 1 the settled rows are one per user; below it, up to two."""
    return start + dt.timedelta(days=int(max((end - start).days, 0) * share))
