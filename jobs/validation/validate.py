"""Pure transformations that tag each input row with the reason it is bad (or null)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from pyspark.sql import Column, DataFrame, Observation, Window
from pyspark.sql import functions as F

from conf import ValidationConf
from jobs.clock import local_day
from jobs.privacy import redacted_struct
from jobs.validation.checks import (DUPLICATE, EVENT_TABLES, FILED_EARLY, ITEM_KNOWN, KEY_CONFLICTS, KEY_DUPLICATE,
                                    OVER_VOLUME, USER_KNOWN, describe, known_reasons, table_checks, unknown_item)
from schemas import INPUT_TABLES

REASON = "_reason"
# Adapters that parse raw text set these: the row as it arrived, and why it could not be parsed.
RAW_JSON = "_raw_json"
PARSE_ERROR = "_parse_error"


def with_duplicate_flags(columns: list[str]) -> Callable[[DataFrame], DataFrame]:
    """Flag every copy of an exact duplicate after the first."""
    def apply(df: DataFrame) -> DataFrame:
        return df.withColumn(DUPLICATE, F.row_number().over(Window.partitionBy(*columns).orderBy(F.lit(1))) > 1)
    return apply


def with_key_conflicts(table: str, key: str, columns: list[str]) -> Callable[[DataFrame], DataFrame]:
    """Among rows that passed every other check, keep one per key; the rest get ``duplicate_{key}``.

    The first row in full-row order wins, so the choice is deterministic.
    """
    conflict = KEY_CONFLICTS[table]

    def apply(df: DataFrame) -> DataFrame:
        passed = F.col(REASON).isNull()
        by_key = Window.partitionBy(key, passed).orderBy(*[F.col(c).asc_nulls_last() for c in columns])
        return (df.withColumn(KEY_DUPLICATE, passed & (F.row_number().over(by_key) > 1))
                .withColumn(REASON, F.coalesce(F.col(REASON), F.when(conflict.failed(), F.lit(conflict.reason)))))
    return apply


def with_volume_flags(cap: int) -> Callable[[DataFrame], DataFrame]:
    """Flag the rows of a user with more than ``cap`` rows in one ``dt`` partition.

    The counts are a ``groupBy`` (combined on the map side, so a bot's rows never meet in one task), and
    the users over the cap are few by construction (at most rows / cap), so they are broadcast.
    """
    def apply(df: DataFrame) -> DataFrame:
        over = (df.filter(F.col("user_id").isNotNull()).groupBy("user_id", "dt").count()
                .filter(F.col("count") > cap).select("user_id", "dt", F.lit(True).alias(OVER_VOLUME)))
        return df.join(F.broadcast(over), ["user_id", "dt"], "left").fillna({OVER_VOLUME: False})
    return apply


def with_filing_flags(lead: int, zone: str) -> Callable[[DataFrame], DataFrame]:
    """Flag the rows whose local day in ``zone`` lies more than ``lead`` days after their ``dt`` partition."""
    def apply(df: DataFrame) -> DataFrame:
        return df.withColumn(FILED_EARLY, F.coalesce(local_day("ts", zone) > F.date_add("dt", lead), F.lit(False)))
    return apply


def with_known_ids(users: DataFrame | None, items: DataFrame | None) -> Callable[[DataFrame], DataFrame]:
    """Add flags saying whether the row's user_id / item_id exist in the clean users / items."""
    def flag(df: DataFrame, ids: DataFrame | None, column: str, name: str) -> DataFrame:
        if ids is None or column not in df.columns:
            return df.withColumn(name, F.lit(True))
        known = ids.select(F.col(column).alias(f"{name}_id")).distinct().withColumn(name, F.lit(True))
        # No broadcast hint: 100 million users do not fit on every executor; Spark broadcasts small catalogues
        # by itself (spark.sql.autoBroadcastJoinThreshold) and sort-merges the rest.
        return (df.join(known, df[column] == known[f"{name}_id"], "left")
                .drop(f"{name}_id").fillna({name: False}))

    def apply(df: DataFrame) -> DataFrame:
        return flag(flag(df, users, "user_id", USER_KNOWN), items, "item_id", ITEM_KNOWN)
    return apply


def with_reasons(table: str, cfg: ValidationConf) -> Callable[[DataFrame], DataFrame]:
    """Add ``_reason``: the first failed check's code, or null for a clean row."""
    def apply(df: DataFrame) -> DataFrame:
        parse_error = F.col(PARSE_ERROR) if PARSE_ERROR in df.columns else F.lit(None).cast("string")
        reasons = [F.when(c.failed(), F.lit(c.reason)) for c in table_checks(table, cfg)]
        return df.withColumn(REASON, F.coalesce(parse_error, *reasons))
    return apply


def tag_table(table: str, cfg: ValidationConf, users: DataFrame | None = None,
              items: DataFrame | None = None, zone: str | None = None) -> Callable[[DataFrame], DataFrame]:
    """All of one table's checks: reference flags, duplicate flags, then reasons. ``zone`` (``time.zone``):
    what an event table's rows' local days are, against their partitions."""
    if table in EVENT_TABLES and zone is None:
        raise ValueError(f"{table}: an event table's checks need the time zone its rows' days are in")
    columns = INPUT_TABLES[table].schema.fieldNames()
    key = {"users": "user_id", "items": "item_id"}.get(table)

    def apply(df: DataFrame) -> DataFrame:
        if table in EVENT_TABLES:
            df = (df.transform(with_volume_flags(cfg.max_user_rows_per_partition))
                  .transform(with_filing_flags(cfg.max_days_after_partition, zone)))
        tagged = (df.transform(with_known_ids(users, items))
                  .transform(with_duplicate_flags(columns))
                  .transform(with_reasons(table, cfg)))
        if key:
            tagged = tagged.transform(with_key_conflicts(table, key, columns))
        # Only what later stages read: the job caches these rows and reads them once per tile table.
        kept = [c for c in (REASON, ITEM_KNOWN, RAW_JSON) if c in tagged.columns]
        return tagged.select(*columns, *kept)
    return apply


def clean_rows(table: str) -> Callable[[DataFrame], DataFrame]:
    """The rows that passed every check, with exactly the table's columns."""
    def apply(tagged: DataFrame) -> DataFrame:
        return tagged.filter(F.col(REASON).isNull()).select(*INPUT_TABLES[table].schema.fieldNames())
    return apply


def quarantine_rows(table: str, run_id: str, at: datetime) -> Callable[[DataFrame], DataFrame]:
    """The rows that failed, in the quarantine table's shape.

    ``raw_row`` is the row as the source gave it where a reader kept that (``_raw_json``), else the row's
    columns as JSON, built here for the failed rows only. Quarantine is an output: PII columns are redacted.
    """
    def apply(tagged: DataFrame) -> DataFrame:
        if RAW_JSON in tagged.columns:
            raw = F.col(RAW_JSON)
        else:
            spec = INPUT_TABLES[table]
            raw = F.to_json(redacted_struct(spec.schema.fieldNames(), spec.pii_columns), {"ignoreNullFields": "false"})
        return tagged.filter(F.col(REASON).isNotNull()).select(
            F.lit(table).alias("source_table"), raw.alias("raw_row"), F.col(REASON).alias("reason"),
            F.lit(run_id).alias("run_id"), F.lit(at).cast("timestamp").alias("quarantined_at"))
    return apply


def tag_inputs(raw: dict[str, DataFrame], cfg: ValidationConf, zone: str) -> dict[str, DataFrame]:
    """Tag every input table. Event tables are checked against the *clean* users and items, and their rows'
    local days in ``zone`` against their partitions."""
    users = raw["users"].transform(tag_table("users", cfg))
    items = raw["items"].transform(tag_table("items", cfg))
    clean_users, clean_items = users.transform(clean_rows("users")), items.transform(clean_rows("items"))
    tagged = {"users": users, "items": items}
    for table in ("transactions", "browse", "social"):
        if table in raw:
            tagged[table] = raw[table].transform(tag_table(table, cfg, clean_users, clean_items, zone))
    return tagged


Counts = dict[tuple[str | None, bool], int]  # rows by (reason or None, kept although its item is unknown)


def _kept_unknown(table: str, tagged: DataFrame, cfg: ValidationConf) -> Column:
    return F.col(REASON).isNull() & (unknown_item(table, cfg) if "item_id" in tagged.columns else F.lit(False))


def table_reason_counts(table: str, tagged: DataFrame, cfg: ValidationConf) -> Counts:
    """One table's rows by reason, in a pass of their own."""
    rows = tagged.groupBy(REASON, _kept_unknown(table, tagged, cfg).alias("_unknown")).count().collect()
    return {(r[REASON], r["_unknown"]): r["count"] for r in rows}


@dataclass(frozen=True)
class ObservedTable:
    """A tagged table whose counts by reason Spark gathers while an action reads ``rows`` (an ``Observation``):
    the quarantine write, which reads every row anyway, counts them, and no pass of their own is needed."""

    rows: DataFrame
    observation: Observation
    reasons: tuple[str, ...]

    @classmethod
    def of(cls, table: str, tagged: DataFrame, cfg: ValidationConf) -> "ObservedTable":
        reasons, reason, observation = tuple(known_reasons(table, cfg)), F.col(REASON), Observation()
        counts = [F.count_if(reason == F.lit(r)).alias(f"reason_{i}") for i, r in enumerate(reasons)]
        rows = tagged.observe(observation, F.count(F.lit(1)).alias("rows"),
                              F.count_if(_kept_unknown(table, tagged, cfg)).alias("unknown"),
                              F.count_if(reason.isNotNull() & ~reason.isin(*reasons)).alias("unforeseen"), *counts)
        return cls(rows, observation, reasons)

    def counts(self) -> Counts | None:
        """The counts, once an action has read ``rows``; None if a reason outside ``known_reasons`` occurred
        (a reader's own codes): then the table needs a pass of its own."""
        got = self.observation.get
        if got["unforeseen"]:
            return None
        failed = {(r, False): got[f"reason_{i}"] for i, r in enumerate(self.reasons) if got[f"reason_{i}"]}
        clean = got["rows"] - sum(failed.values())
        return {**failed, (None, False): clean - got["unknown"], (None, True): got["unknown"]}


@dataclass
class ValidationReport:
    """Row counts per table: in, clean, and quarantined by reason. ``in == clean + quarantined``.

    ``unknown_items`` counts clean rows (already in ``rows_clean``) whose item_id is not in the catalogue,
    kept by the table's referential policy (``validation.unknown_items``).
    """

    rows_in: dict[str, int] = field(default_factory=dict)
    rows_clean: dict[str, int] = field(default_factory=dict)
    by_reason: dict[str, dict[str, int]] = field(default_factory=dict)
    unknown_items: dict[str, int] = field(default_factory=dict)

    @property
    def rows_quarantined(self) -> dict[str, int]:
        return {t: sum(r.values()) for t, r in self.by_reason.items()}

    def reconciles(self) -> bool:
        return all(self.rows_in[t] == self.rows_clean[t] + self.rows_quarantined.get(t, 0) for t in self.rows_in)

    @classmethod
    def from_counts(cls, counts: dict[str, Counts]) -> "ValidationReport":
        """From per-table ``{(reason or None, unknown item kept): rows}`` counts."""
        report = cls()
        for table, by in counts.items():
            by_reason: dict[str | None, int] = {}
            for (reason, _), n in by.items():
                by_reason[reason] = by_reason.get(reason, 0) + n
            report.rows_in[table] = sum(by_reason.values())
            report.rows_clean[table] = by_reason.get(None, 0)
            report.by_reason[table] = {r: n for r, n in sorted(by_reason.items(), key=lambda kv: str(kv[0]))
                                       if r is not None}
            unknown = sum(n for (_, kept_unknown), n in by.items() if kept_unknown)
            if unknown:
                report.unknown_items[table] = unknown
        return report


def unknown_items_message(table: str, rows: int, total: int) -> str:
    return (f"{table}: {rows:,} of {total:,} rows reference an item_id that is not in items (column item_id); "
            f"kept with null item attributes (validation.unknown_items.{table}: keep)")


def quarantine_message(table: str, reason: str, rows: int, total: int, cfg: ValidationConf) -> str:
    column, description = describe(table, reason, cfg)
    where = "" if column == "*" else f" (column {column})"
    return f"{table}: {rows:,} of {total:,} rows {description}{where}; moved to quarantine with reason {reason}"
