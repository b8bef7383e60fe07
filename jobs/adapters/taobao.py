"""Alibaba's Taobao UserBehavior data: ``user_id,item_id,category_id,behavior_type,timestamp`` (no header).

pv/cart/fav become browse events (pv -> view), buy becomes a one-line order with no amount
(the dataset has no prices). Users and items are the distinct ids seen. There is no social data.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Mapping

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from conf import Config
from jobs.adapters.ingest import run_adapter
from jobs.adapters.parsing import as_digits, as_long, parse_columns, parse_failures, parsed_rows, read_raw_csv
from jobs.privacy import PseudonymKey
from schemas import INPUT_TABLES

COLUMNS = ["user_id", "item_id", "category_id", "behavior_type", "timestamp"]
EVENT_TYPES = {"pv": "view", "cart": "cart", "fav": "fav"}


def csv_files(path: str) -> list[str]:
    root = Path(path)
    files = sorted(str(p) for p in root.glob("*.csv")) if root.is_dir() else [str(root)]
    if not files:
        raise FileNotFoundError(f"taobao: no .csv files in {path}")
    return files


def parse_taobao(raw: DataFrame, key: PseudonymKey | None = None) -> DataFrame:
    """Typed columns ``_user_id``, ``_item_id``, ``_category_id``, ``_behavior_type``, ``_timestamp``."""
    return raw.transform(parse_columns({
        "user_id": as_digits("user_id"),
        "item_id": as_digits("item_id"),
        "category_id": as_digits("category_id"),
        "behavior_type": F.lower(F.trim("behavior_type")),
        "timestamp": F.timestamp_seconds(as_long("timestamp")),
    }, COLUMNS, id_columns=["user_id"], key=key))


def taobao_tables(parsed: DataFrame, spark: SparkSession) -> dict[str, DataFrame]:
    """Map parsed rows into the five input tables."""
    ok = parsed_rows(parsed).select(F.col("_user_id").alias("user_id"), F.col("_item_id").alias("item_id"),
                                    F.col("_category_id").alias("category"), F.col("_behavior_type").alias("behavior"),
                                    F.col("_timestamp").alias("ts"))
    ok = ok.withColumn("dt", F.to_date("ts"))
    mapped = F.create_map(*[x for k, v in EVENT_TYPES.items() for x in (F.lit(k), F.lit(v))])
    browse = ok.filter(F.col("behavior") != "buy").select(
        "user_id", "item_id", F.coalesce(mapped[F.col("behavior")], F.col("behavior")).alias("event_type"), "ts",
        F.lit(None).cast("long").alias("dwell_ms"), F.lit(None).cast("string").alias("session_id"), "dt")
    order_key = F.concat_ws("|", "user_id", "item_id", F.col("ts").cast("long"))
    transactions = ok.filter(F.col("behavior") == "buy").select(
        F.concat(F.lit("tb-"), F.substring(F.sha2(order_key, 256), 1, 20)).alias("order_id"), "user_id", "item_id",
        F.lit(1).alias("quantity"), F.lit(None).cast("double").alias("amount"), "ts", "dt")
    users = ok.select("user_id").distinct().select(
        "user_id", *[F.lit(None).cast(f.dataType).alias(f.name) for f in INPUT_TABLES["users"].schema.fields[1:]])
    items = ok.select("item_id", "category").distinct().select(
        "item_id", F.lit(None).cast("string").alias("title"), "category", F.lit(None).cast("string").alias("brand"),
        F.lit(None).cast("double").alias("price"))
    social = spark.createDataFrame([], INPUT_TABLES["social"].schema)
    return {"users": users, "items": items, "transactions": transactions, "browse": browse, "social": social}


def run_taobao_ingest(cfg: Config, spark: SparkSession, path: str, env: Mapping[str, str] | None = None):
    def build(run_id: str, at: datetime, key: PseudonymKey | None) -> tuple[dict[str, DataFrame], DataFrame, int]:
        parsed = parse_taobao(read_raw_csv(spark, csv_files(path), COLUMNS, header=False), key).cache()
        return taobao_tables(parsed, spark), parsed.transform(parse_failures("taobao:UserBehavior", run_id, at)), \
            parsed.count()
    return run_adapter(cfg, spark, "ingest-taobao", path, build, env)
