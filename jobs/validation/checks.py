"""What makes an input row bad, per table, as data: a reason code, a column and a predicate.

Checks run in order and the first one that fails names the row's reason, so the order
puts structural problems (nulls, unparseable) before semantic ones, and duplicates last.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from conf import ValidationConf
from schemas import INPUT_TABLES

USER_KNOWN = "_user_known"
ITEM_KNOWN = "_item_known"
DUPLICATE = "_duplicate"
KEY_DUPLICATE = "_key_duplicate"
OVER_VOLUME = "_over_volume"
FILED_EARLY = "_filed_early"


@dataclass(frozen=True)
class Check:
    """A row fails when ``failed()`` is true; it goes to quarantine with ``reason``."""

    reason: str
    column: str
    description: str
    failed: Callable[[], Column]


def null_checks(schema: StructType) -> list[Check]:
    """One check per required (non-nullable) column."""
    return [Check(f"null_{f.name}", f.name, f"have a null {f.name}", lambda n=f.name: F.col(n).isNull())
            for f in schema.fields if not f.nullable]


def _in_range(cfg: ValidationConf) -> Check:
    lo, hi = cfg.ts_min, cfg.ts_max
    return Check("ts_out_of_range", "ts", f"have a timestamp outside [{_shown(lo)}, {_shown(hi)})",
                 lambda: (F.col("ts") < F.lit(lo)) | (F.col("ts") >= F.lit(hi)))


def _shown(at) -> str:
    """A bound as it was configured: local time with its zone's name, or with its UTC offset."""
    name = getattr(at.tzinfo, "key", None) or at.strftime("%z") or "UTC"
    return f"{at:%Y-%m-%d %H:%M} {name}"


def _known(flag: str, column: str, table: str) -> Check:
    return Check(f"unknown_{column}", column, f"reference an unknown {column} (not in {table})",
                 lambda: F.col(column).isNotNull() & ~F.col(flag))


def _one_of(reason: str, column: str, allowed: list[str]) -> Check:
    return Check(reason, column, f"have {column} outside {'/'.join(allowed)}",
                 lambda: ~F.col(column).isin(*allowed))


# Conflicting rows for one key (same id, different attributes). Resolved after every other
# check, among the rows that passed, so a broken copy can never knock out the good one.
KEY_CONFLICTS = {
    "users": Check("duplicate_user_id", "user_id", "repeat a user_id with different attributes",
                   lambda: F.col(KEY_DUPLICATE)),
    "items": Check("duplicate_item_id", "item_id", "repeat an item_id with different attributes",
                   lambda: F.col(KEY_DUPLICATE)),
}

DUPLICATE_ROW = Check("duplicate_row", "*", "are exact duplicates of an earlier row", lambda: F.col(DUPLICATE))


def quarantines_unknown_items(table: str, cfg: ValidationConf) -> bool:
    """The table's referential policy: quarantine rows on items not in the catalogue, or keep them."""
    return cfg.unknown_items.get(table, "quarantine") == "quarantine"


def unknown_item(table: str, cfg: ValidationConf) -> Column:
    """A row kept although its item_id is not in the clean catalogue (its item attributes will be null)."""
    if quarantines_unknown_items(table, cfg):
        return F.lit(False)
    return F.col("item_id").isNotNull() & ~F.col(ITEM_KNOWN)


def table_checks(table: str, cfg: ValidationConf) -> list[Check]:
    """The ordered checks for one input table."""
    schema = INPUT_TABLES[table].schema
    nulls = null_checks(schema)
    references = [_known(USER_KNOWN, "user_id", "users")]
    if quarantines_unknown_items(table, cfg):
        references.append(_known(ITEM_KNOWN, "item_id", "items"))
    if table == "users":
        specific = []
    elif table == "items":
        specific = [Check("negative_price", "price", "have a negative price", lambda: F.col("price") < 0)]
    elif table == "transactions":
        specific = references + [
            Check("negative_amount", "amount", "have a negative amount", lambda: F.col("amount") < 0),
            Check("absurd_amount", "amount", f"have an amount above {cfg.max_amount:,.0f}",
                  lambda: F.col("amount") > cfg.max_amount),
            Check("bad_quantity", "quantity", f"have a quantity outside 1..{cfg.max_quantity}",
                  lambda: (F.col("quantity") < 1) | (F.col("quantity") > cfg.max_quantity)),
            _in_range(cfg),
        ]
    elif table == "browse":
        specific = [
            _one_of("unknown_event_type", "event_type", cfg.event_types), *references,
            Check("negative_dwell", "dwell_ms", "have a negative dwell time", lambda: F.col("dwell_ms") < 0),
            _in_range(cfg),
        ]
    elif table == "social":
        specific = [
            _one_of("unknown_kind", "kind", cfg.social_kinds), *references,
            Check("rating_out_of_range", "rating", "have a rating outside 1..5",
                  lambda: (F.col("rating") < 1) | (F.col("rating") > 5)),
            _in_range(cfg),
        ]
    else:
        raise KeyError(f"no checks for table {table!r}")
    if table in EVENT_TABLES:
        specific += [_filed_early(cfg), _over_volume(cfg)]
    return nulls + specific + [DUPLICATE_ROW]


EVENT_TABLES = ("transactions", "browse", "social")


def _filed_early(cfg: ValidationConf) -> Check:
    lead = cfg.max_days_after_partition
    return Check("ts_after_partition", "ts",
                 f"have a local day more than {lead} day{'s' * (lead != 1)} after their dt partition (filed early; "
                 f"validation.max_days_after_partition)", lambda: F.col(FILED_EARLY))


def _over_volume(cfg: ValidationConf) -> Check:
    cap = cfg.max_user_rows_per_partition
    return Check("too_many_rows_for_user", "user_id",
                 f"belong to a user with more than {cap:,} rows in one dt partition (a bot or a replay; "
                 f"validation.max_user_rows_per_partition)", lambda: F.col(OVER_VOLUME))


def every_check(table: str, cfg: ValidationConf) -> list[Check]:
    """The table's checks and, for users and items, the key conflict that runs after them."""
    return table_checks(table, cfg) + ([KEY_CONFLICTS[table]] if table in KEY_CONFLICTS else [])


def describe(table: str, reason: str, cfg: ValidationConf) -> tuple[str, str]:
    """(column, description) for a reason code, for messages."""
    for check in every_check(table, cfg):
        if check.reason == reason:
            return check.column, check.description
    return parse_failure(reason)


# The reasons a reader gives a row it could not parse (a mapping's source, an adapter).
MALFORMED_ROW = "malformed_row"
UNPARSEABLE = "unparseable_"


def unparseable(column: str) -> str:
    return UNPARSEABLE + column


def known_reasons(table: str, cfg: ValidationConf) -> list[str]:
    """Every reason a row of ``table`` can get from its checks, its key, or a reader of its columns.

    A reader of a source with other column names can give others; ``validate`` counts those apart.
    """
    read = [MALFORMED_ROW, *[unparseable(c) for c in INPUT_TABLES[table].schema.fieldNames()]]
    return list(dict.fromkeys([c.reason for c in every_check(table, cfg)] + read))


def parse_failure(reason: str) -> tuple[str, str]:
    """(column, description) of a reason given while reading a source (a mapping's, or an adapter's)."""
    if reason.startswith(UNPARSEABLE):
        column = reason.removeprefix(UNPARSEABLE)
        return column, f"have a {column} that cannot be parsed"
    if reason == MALFORMED_ROW:
        return "*", "are malformed (wrong number of fields, or truncated)"
    return "*", f"failed check {reason}"
