"""Explicit Spark schemas for every Portrait table, and the registry of tables.

Each table family has its own module. A field's metadata carries what other code
needs to know: ``{"pii": True}`` on personal data, ``{"partition": True}`` on the
partition column. Validation, the generator, storage and the tests all read these.
"""
from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql.types import StructType

from schemas.embeddings import EMBEDDING_CACHE, IMAGE_CACHE
from schemas.events import BROWSE, TRANSACTIONS
from schemas.items import ITEMS
from schemas.model import BACKTESTS, MODEL_METRICS, SEGMENTS, TRAINING_SNAPSHOT
from schemas.operations import PROCESSED_PARTITIONS, QUARANTINE, RUNS
from schemas.profiles import LABELS, PROFILES, profiles_schema
from schemas.social import SOCIAL
from schemas.state import (BROWSE_DAY_STATE, EVENT_DAY_STATE, INTERACTION_DAY_STATE, ORDER_DAY_STATE,
                           PRICE_DAY_STATE, SETTLED_AFFINITY, SETTLED_BROWSE, SETTLED_EVENTS, SETTLED_INTEREST,
                           SETTLED_ORDERS, SETTLED_PRICES, SETTLED_SESSIONS, SETTLED_SOCIAL, SOCIAL_DAY_STATE,
                           TEXT_STATE)
from schemas.truth import GROUND_TRUTH
from schemas.users import USERS


@dataclass(frozen=True)
class TableSpec:
    """A table's name, schema and the keys an upsert matches on."""

    name: str
    schema: StructType
    keys: tuple[str, ...] = ()

    @property
    def partition_by(self) -> list[str]:
        return [f.name for f in self.schema.fields if f.metadata.get("partition")]

    @property
    def pii_columns(self) -> list[str]:
        return [f.name for f in self.schema.fields if f.metadata.get("pii")]


INPUT_TABLES: dict[str, TableSpec] = {
    "users": TableSpec("users", USERS, ("user_id",)),
    "items": TableSpec("items", ITEMS, ("item_id",)),
    "transactions": TableSpec("transactions", TRANSACTIONS),
    "browse": TableSpec("browse", BROWSE),
    "social": TableSpec("social", SOCIAL),
}

OUTPUT_TABLES: dict[str, TableSpec] = {
    "profiles": TableSpec("profiles", PROFILES, ("user_id",)),
    "labels": TableSpec("labels", LABELS, ("user_id", "tag")),
    "quarantine": TableSpec("quarantine", QUARANTINE),
    "runs": TableSpec("runs", RUNS, ("run_id",)),
    "processed_partitions": TableSpec("processed_partitions", PROCESSED_PARTITIONS),
    "ground_truth": TableSpec("ground_truth", GROUND_TRUTH, ("user_id",)),
    "training_snapshot": TableSpec("training_snapshot", TRAINING_SNAPSHOT, ("user_id",)),
    "backtest_snapshot": TableSpec("backtest_snapshot", TRAINING_SNAPSHOT, ("user_id",)),  # portrait backtest's
    # The full job's validation window (cutoff T - 2H), on which the published candidate is chosen.
    "validation_snapshot": TableSpec("validation_snapshot", TRAINING_SNAPSHOT, ("user_id",)),
    "backtests": TableSpec("backtests", BACKTESTS, ("run_id", "as_of", "target", "metric", "method")),
    "segments": TableSpec("segments", SEGMENTS, ("segment_id",)),
    "model_metrics": TableSpec("model_metrics", MODEL_METRICS, ("run_id", "metric", "method")),
    "embedding_cache": TableSpec("embedding_cache", EMBEDDING_CACHE, ("model_id", "text_sha256")),
    "image_cache": TableSpec("image_cache", IMAGE_CACHE, ("model_id", "image_sha256")),
}

# The incremental job's feature state (jobs/features/state_profiles.py); the full job writes it too.
STATE_TABLES: dict[str, TableSpec] = {spec.name: spec for spec in (
    TableSpec("state_orders", ORDER_DAY_STATE),
    TableSpec("state_prices", PRICE_DAY_STATE),
    TableSpec("state_browse", BROWSE_DAY_STATE),
    TableSpec("state_social", SOCIAL_DAY_STATE),
    TableSpec("state_texts", TEXT_STATE),
    TableSpec("state_events", EVENT_DAY_STATE),
    TableSpec("state_interactions", INTERACTION_DAY_STATE),
)}

# Tiles of the days before every window, merged per user (one row each; affinity: one per category and brand):
# what a step folds instead of them.
SETTLED_TABLES: dict[str, TableSpec] = {spec.name: spec for spec in (
    TableSpec("settled_events", SETTLED_EVENTS, ("user_id",)),
    TableSpec("settled_browse", SETTLED_BROWSE, ("user_id",)),
    TableSpec("settled_sessions", SETTLED_SESSIONS, ("user_id",)),
    TableSpec("settled_orders", SETTLED_ORDERS, ("user_id",)),
    TableSpec("settled_social", SETTLED_SOCIAL, ("user_id",)),
    TableSpec("settled_interest", SETTLED_INTEREST, ("user_id",)),
    TableSpec("settled_image_interest", SETTLED_INTEREST, ("user_id",)),  # the same sums over the items' photos
    TableSpec("settled_affinity", SETTLED_AFFINITY, ("user_id", "facet", "name")),
    TableSpec("settled_prices", SETTLED_PRICES, ("user_id", "unit_price")),
)}

TABLES: dict[str, TableSpec] = {**INPUT_TABLES, **OUTPUT_TABLES, **STATE_TABLES, **SETTLED_TABLES}

__all__ = ["TableSpec", "TABLES", "INPUT_TABLES", "OUTPUT_TABLES", "STATE_TABLES", "SETTLED_TABLES",
           "profiles_schema"]
