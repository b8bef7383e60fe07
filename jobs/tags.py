"""Rule-based tags with human-readable reasons, from the profiles table."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import reduce
from typing import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from conf import TagsConf
from jobs.clock import add_days, local_date_text
from jobs.ranking import percent_rank


@dataclass(frozen=True)
class DataGaps:
    """Which inputs were absent or empty for this run, so the tags can say why features are null."""

    browse_missing: bool = False
    social_missing: bool = False


def _tag(profiles: DataFrame, condition: Column, tag: Column | str, score: Column, reason: Column) -> DataFrame:
    tag_col = F.lit(tag) if isinstance(tag, str) else tag
    return profiles.filter(condition).select("user_id", tag_col.alias("tag"), score.cast("double").alias("score"),
                                             reason.alias("reason"), "as_of")


def spender_tiers(cfg: TagsConf) -> Callable[[DataFrame], DataFrame]:
    """low/mid/high spender by the user's percentile among buyers of the spend window."""
    spend = F.col(f"spend_{cfg.spend_window_days}d")
    low_q, high_q = cfg.spender_quantiles

    def apply(profiles: DataFrame) -> DataFrame:
        buyers = profiles.filter(spend > 0).transform(percent_rank(f"spend_{cfg.spend_window_days}d", "_pct"))
        tier = F.when(F.col("_pct") < low_q, "low_spender").when(F.col("_pct") < high_q, "mid_spender").otherwise(
            "high_spender")
        reason = F.format_string("spent %s in the last %d days, more than %d%% of buyers",
                                 F.format_number(spend, 2), F.lit(cfg.spend_window_days),
                                 F.floor(F.col("_pct") * 100).cast("int"))
        return _tag(buyers, F.lit(True), tier, F.col("_pct"), reason)
    return apply


def rule_tags(cfg: TagsConf, as_of: datetime, zone: str, gaps: DataGaps = DataGaps()
              ) -> Callable[[DataFrame], DataFrame]:
    """All rule tags for every user in ``profiles``: user_id, tag, score, reason, as_of.

    Day windows are local days in ``zone``, and the dates in reasons are local dates.
    """
    def apply(p: DataFrame) -> DataFrame:
        days_since_signup = F.floor((F.lit(as_of).cast("double") - F.col("signup_ts").cast("double")) / 86_400)
        active_events = F.col(f"events_{cfg.active_window_days}d") if f"events_{cfg.active_window_days}d" in p.columns \
            else F.lit(None)
        loyal_orders = F.col(f"orders_{cfg.loyal_window_days}d")
        idle = F.col("days_since_last_event")
        tags = [
            _tag(p, F.col("signup_ts") >= F.lit(add_days(as_of, -cfg.new_user_days, zone)), "new_user",
                 F.lit(1.0), F.format_string("signed up %d days ago (%s)", days_since_signup, local_date_text("signup_ts", zone))),
            _tag(p, active_events >= cfg.active_min_events, "active", active_events,
                 F.format_string("%d events in the last %d days", active_events, F.lit(cfg.active_window_days))),
            _tag(p, loyal_orders >= cfg.loyal_min_orders, "loyal", loyal_orders,
                 F.format_string("%d orders in the last %d days", loyal_orders, F.lit(cfg.loyal_window_days))),
            _tag(p, idle >= cfg.dormant_days, "dormant", F.floor(idle),
                 F.format_string("no activity for %d days (last on %s)", F.floor(idle).cast("int"),
                                 local_date_text("last_event_ts", zone))),
            _tag(p, F.col("last_event_ts").isNull(), "dormant", F.lit(None),
                 F.lit("no recorded activity before the profile date")),
            _tag(p, (F.col("top_category_share") >= cfg.category_lover_min_share)
                 & (F.col("top_category_weight") >= cfg.category_lover_min_weight),
                 F.concat(F.lit("category_lover:"), F.col("top_category")), F.col("top_category_share"),
                 F.format_string("%d%% of weighted activity is in %s", F.round(F.col("top_category_share") * 100)
                                 .cast("int"), F.col("top_category"))),
            p.transform(spender_tiers(cfg)),
            _tag(p, (F.col("frequency") > 0) & F.col("monetary").isNull(), "spend_unknown", F.lit(None),
                 F.lit("orders carry no amounts in the source data, so no spender tier")),
        ]
        if gaps.browse_missing:
            tags.append(_tag(p, F.lit(True), "browse_unknown", F.lit(None), F.lit(
                "browse table is absent or empty for this run: views, carts, conversion and session features are null")))
        if gaps.social_missing:
            tags.append(_tag(p, F.lit(True), "social_unknown", F.lit(None), F.lit(
                "social table is absent or empty for this run: review, comment, like and share counts are null")))
        return reduce(DataFrame.unionByName, tags)
    return apply


def model_tags(propensity_min: float, churn_min: float, horizon_days: int) -> Callable[[DataFrame], DataFrame]:
    """Tags from the model's scores, each with its probability as score and in the reason."""
    def apply(p: DataFrame) -> DataFrame:
        prop, churn = F.col("purchase_propensity"), F.col("churn_risk")
        return reduce(DataFrame.unionByName, [
            _tag(p, prop >= propensity_min, "likely_buyer", prop,
                 F.format_string("likely to buy in %d days (p=%.2f)", F.lit(horizon_days), prop)),
            _tag(p, churn >= churn_min, "churn_risk", churn,
                 F.format_string("churn risk: no activity expected in the next %d days (p=%.2f)",
                                 F.lit(horizon_days), churn)),
            _tag(p, F.col("spend_tier") == "high", "predicted_high_spender", prop,
                 F.format_string("predicted to be in the top spend tier in the next %d days", F.lit(horizon_days))),
            _tag(p, F.col("segment_id").isNotNull(), F.format_string("segment:%d", F.col("segment_id")), F.lit(None),
                 F.format_string("nearest to segment %d's centre in embedding space", F.col("segment_id"))),
        ])
    return apply
