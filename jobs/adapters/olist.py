"""Olist's Brazilian e-commerce tables mapped into Portrait's inputs.

- users: one per person (``customer_unique_id``); city from their latest order.
- items: products, category translated to English (Portuguese name where no translation),
  price = the mean price paid. Olist has no titles or brands.
- transactions: one row per (order, product), quantity = items, amount = sum of item prices,
  at the purchase time. Canceled and unavailable orders are not purchases: they go to quarantine.
- social: reviews (title and message joined), linked to the product when the order has one.
- browse: Olist has none, so the table is written empty and browse features are null.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Mapping

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from conf import Config
from jobs.adapters.ingest import run_adapter
from jobs.adapters.parsing import (as_double, as_hex_id, as_long, as_timestamp, parse_columns, parse_failures,
                                   parsed_rows, read_raw_csv, union_all)
from jobs.privacy import PseudonymKey
from jobs.validation.validate import PARSE_ERROR
from schemas import INPUT_TABLES

FILES = {
    "customers": ("olist_customers_dataset.csv",
                  ["customer_id", "customer_unique_id", "customer_zip_code_prefix", "customer_city", "customer_state"]),
    "orders": ("olist_orders_dataset.csv",
               ["order_id", "customer_id", "order_status", "order_purchase_timestamp", "order_approved_at",
                "order_delivered_carrier_date", "order_delivered_customer_date", "order_estimated_delivery_date"]),
    "order_items": ("olist_order_items_dataset.csv",
                    ["order_id", "order_item_id", "product_id", "seller_id", "shipping_limit_date", "price",
                     "freight_value"]),
    "reviews": ("olist_order_reviews_dataset.csv",
                ["review_id", "order_id", "review_score", "review_comment_title", "review_comment_message",
                 "review_creation_date", "review_answer_timestamp"]),
    "products": ("olist_products_dataset.csv",
                 ["product_id", "product_category_name", "product_name_lenght", "product_description_lenght",
                  "product_photos_qty", "product_weight_g", "product_length_cm", "product_height_cm",
                  "product_width_cm"]),
    "translation": ("product_category_name_translation.csv",
                    ["product_category_name", "product_category_name_english"]),
}

PARSERS = {
    "customers": {"customer_id": as_hex_id("customer_id"), "customer_unique_id": as_hex_id("customer_unique_id")},
    "orders": {"order_id": as_hex_id("order_id"), "customer_id": as_hex_id("customer_id"),
               "order_purchase_timestamp": as_timestamp("order_purchase_timestamp")},
    "order_items": {"order_id": as_hex_id("order_id"), "product_id": as_hex_id("product_id"),
                    "price": as_double("price")},
    "reviews": {"order_id": as_hex_id("order_id"), "review_score": as_long("review_score"),
                "review_creation_date": as_timestamp("review_creation_date")},
    "products": {"product_id": as_hex_id("product_id")},
    "translation": {},
}

NOT_PURCHASED = ("canceled", "unavailable")


ID_COLUMNS = ["customer_id", "customer_unique_id"]


def read_olist(spark: SparkSession, path: str, key: PseudonymKey | None = None) -> dict[str, DataFrame]:
    """Each CSV as parsed frames (typed ``_column`` plus the raw strings and ``_parse_error``)."""
    frames = {}
    for name, (file, columns) in FILES.items():
        location = Path(path) / file
        if not location.exists():
            raise FileNotFoundError(f"olist: {file} not found in {path}")
        raw = read_raw_csv(spark, [str(location)], columns, header=True)
        frames[name] = raw.transform(parse_columns(PARSERS[name], columns, ID_COLUMNS, key))
    return frames


def olist_tables(frames: dict[str, DataFrame], spark: SparkSession) -> dict[str, DataFrame]:
    ok = {name: parsed_rows(df) for name, df in frames.items()}
    customers = ok["customers"].select(F.col("_customer_id").alias("customer_id"),
                                       F.col("_customer_unique_id").alias("user_id"),
                                       F.trim("customer_city").alias("city"))
    orders = (ok["orders"].filter(~F.lower("order_status").isin(*NOT_PURCHASED))
              .select(F.col("_order_id").alias("order_id"), F.col("_customer_id").alias("customer_id"),
                      F.col("_order_purchase_timestamp").alias("ts"))
              .join(customers, "customer_id", "left"))
    all_orders = ok["orders"].select(F.col("_order_id").alias("order_id"), F.col("_customer_id").alias("customer_id"))
    lines = ok["order_items"].select(F.col("_order_id").alias("order_id"), F.col("_product_id").alias("item_id"),
                                     F.col("_price").alias("price"))

    users = (all_orders.join(ok["orders"].select(F.col("_order_id").alias("order_id"),
                                                 F.col("_order_purchase_timestamp").alias("ts")), "order_id")
             .join(customers, "customer_id").groupBy("user_id")
             .agg(F.max_by("city", "ts").alias("city"))
             .select("user_id", F.lit(None).cast("timestamp").alias("signup_ts"),
                     F.lit(None).cast("string").alias("gender"), F.lit(None).cast("int").alias("birth_year"),
                     "city", *[F.lit(None).cast("string").alias(c) for c in ("name", "phone", "email")]))
    translation = ok["translation"].select(F.trim("product_category_name").alias("pt"),
                                           F.trim("product_category_name_english").alias("en"))
    mean_price = lines.groupBy("item_id").agg(F.round(F.avg("price"), 2).alias("price"))
    items = (ok["products"].select(F.col("_product_id").alias("item_id"), F.trim("product_category_name").alias("pt"))
             .join(translation, "pt", "left").join(mean_price, "item_id", "left")
             .select("item_id", F.lit(None).cast("string").alias("title"), F.coalesce("en", "pt").alias("category"),
                     F.lit(None).cast("string").alias("brand"), "price"))
    transactions = (lines.join(orders, "order_id")
                    .groupBy("order_id", "user_id", "item_id", "ts")
                    .agg(F.count("*").cast("int").alias("quantity"), F.round(F.sum("price"), 2).alias("amount"))
                    .select("order_id", "user_id", "item_id", "quantity", "amount", "ts", F.to_date("ts").alias("dt")))
    single_product = (lines.groupBy("order_id").agg(F.count_distinct("item_id").alias("_n"),
                                                    F.first("item_id").alias("_item"))
                      .select("order_id", F.when(F.col("_n") == 1, F.col("_item")).alias("item_id")))
    text = F.trim(F.concat_ws(" ", F.trim("review_comment_title"), F.trim("review_comment_message")))
    reviews = ok["reviews"].select(F.col("_order_id").alias("order_id"), "review_comment_title",
                                   "review_comment_message", "_review_score", "_review_creation_date")
    social = (reviews.join(all_orders.join(customers, "customer_id"), "order_id")
              .join(single_product, "order_id", "left")
              .select("user_id", "item_id", F.lit("review").alias("kind"), F.when(text != "", text).alias("text"),
                      F.col("_review_score").cast("int").alias("rating"), F.col("_review_creation_date").alias("ts"))
              .withColumn("dt", F.to_date("ts")))
    browse = spark.createDataFrame([], INPUT_TABLES["browse"].schema)
    return {"users": users, "items": items, "transactions": transactions, "browse": browse, "social": social}


def canceled_lines(frames: dict[str, DataFrame]) -> DataFrame:
    """Order lines of canceled or unavailable orders: not purchases, kept in quarantine."""
    orders = parsed_rows(frames["orders"]).filter(F.lower("order_status").isin(*NOT_PURCHASED)).select(
        F.col("_order_id").alias("_canceled"))
    return (parsed_rows(frames["order_items"]).join(orders, F.col("_order_id") == F.col("_canceled"))
            .withColumn(PARSE_ERROR, F.lit("order_canceled")).drop("_canceled"))


def run_olist_ingest(cfg: Config, spark: SparkSession, path: str, env: Mapping[str, str] | None = None):
    def build(run_id: str, at: datetime, key: PseudonymKey | None) -> tuple[dict[str, DataFrame], DataFrame, int]:
        frames = {name: df.cache() for name, df in read_olist(spark, path, key).items()}
        failures = union_all([df.transform(parse_failures(f"olist:{name}", run_id, at)) for name, df in frames.items()]
                             + [canceled_lines(frames).transform(parse_failures("olist:order_items", run_id, at))])
        rows = sum(df.count() for df in frames.values())
        return olist_tables(frames, spark), failures, rows
    return run_adapter(cfg, spark, "ingest-olist", path, build, env)
