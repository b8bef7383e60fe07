"""Compose the generator: catalogue, population, behaviour, hidden truth, then bad rows."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from conf import GeneratorConf
from jobs.clock import local_day
from jobs.generator.behaviour import (browse_rows, events, follow_rows, intent_rows, interaction_rows, review_rows,
                                      sessions, transaction_rows)
from jobs.generator.catalogue import generate_items
from jobs.generator.corruption import with_bad_rows
from jobs.generator.population import generate_users
from schemas import INPUT_TABLES


@dataclass
class GeneratedTables:
    users: DataFrame
    items: DataFrame
    transactions: DataFrame
    browse: DataFrame
    social: DataFrame
    ground_truth: DataFrame

    def inputs(self) -> dict[str, DataFrame]:
        return {"users": self.users, "items": self.items, "transactions": self.transactions,
                "browse": self.browse, "social": self.social}


def ground_truth(users: DataFrame, tx: DataFrame, browse: DataFrame, social: DataFrame, items: DataFrame,
                 cutoff_ts) -> DataFrame:
    """Each user's archetype and what they did from the cutoff on (computed from the clean events)."""
    after = lambda df: df.filter(F.col("ts") >= F.lit(cutoff_ts))  # noqa: E731
    bought = (after(tx).join(items.select("item_id", "category"), "item_id").groupBy("user_id")
              .agg(F.sum("amount").alias("spend"), F.sort_array(F.collect_set("category")).alias("cats")))
    seen = (after(browse).select("user_id").unionByName(after(tx).select("user_id"))
            .unionByName(after(social).select("user_id")).distinct().withColumn("_seen", F.lit(True)))
    return (users.select("user_id", "archetype").join(bought, "user_id", "left").join(seen, "user_id", "left")
            .select("user_id", "archetype", F.lit(cutoff_ts).cast("timestamp").alias("cutoff_ts"),
                    F.col("spend").isNotNull().alias("bought_after_cutoff"),
                    F.col("_seen").isNull().alias("churned_after_cutoff"),
                    F.coalesce("spend", F.lit(0.0)).alias("spend_after_cutoff"),
                    F.coalesce("cats", F.array().cast("array<string>")).alias("categories_after_cutoff")))


def generate_tables(spark: SparkSession, cfg: GeneratorConf, zone: str = "UTC") -> GeneratedTables:
    """All five input tables (with injected bad rows) and the hidden ground truth.

    The simulated platform lives in UTC; the event tables are partitioned by the local date in ``zone``.
    """
    seed, start = cfg.seed, cfg.start_date
    end_ts = F.lit(start + timedelta(days=cfg.days)).cast("timestamp")
    cutoff_ts = start + timedelta(days=min(cfg.cutoff_day, cfg.days))
    items = generate_items(spark, cfg.items, seed).cache()
    population = generate_users(spark, cfg.users, cfg.days, cfg.cutoff_day, start, seed).cache()
    ev = events(sessions(population, cfg.days, start, seed), cfg.items, seed).cache()
    tx = transaction_rows(ev, items, seed).cache()
    browse = browse_rows(ev)
    social = (review_rows(tx, items, end_ts, seed).unionByName(interaction_rows(ev, items, seed))
              .unionByName(follow_rows(population, start, seed))
              .unionByName(intent_rows(population, items, cfg.items, start, seed))
              .withColumn("dt", F.to_date("ts")))
    tx_rows = tx.drop("review_prob", "positive_prob")
    truth = ground_truth(population, tx_rows, browse, social, items, cutoff_ts)

    def finish(table: str, df: DataFrame, key: list[str]) -> DataFrame:
        columns = INPUT_TABLES[table].schema.fieldNames()
        if "dt" in columns:
            df = df.withColumn("dt", local_day("ts", zone))
        return df.select(*columns).transform(with_bad_rows(table, cfg.bad_row_share, seed, key))

    share = cfg.bad_row_share
    return GeneratedTables(
        users=finish("users", population, ["user_id"]),
        items=items.select(*INPUT_TABLES["items"].schema.fieldNames()).transform(
            with_bad_rows("items", share, seed, ["item_id"])),
        transactions=finish("transactions", tx_rows, ["order_id", "item_id"]),
        browse=finish("browse", browse, ["session_id", "ts", "item_id"]),
        social=finish("social", social, ["user_id", "ts", "kind"]),
        ground_truth=truth,
    )
