"""Rule-based tags with human-readable reasons, from the profiles table."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from conf import TagsConf
from jobs.clock import add_days, local_date_text
from jobs.ranking import many_ranks_reached


@dataclass(frozen=True)
class DataGaps:
    """Which inputs were absent or empty for this run, so the tags can say why features are null."""

    browse_missing: bool = False
    social_missing: bool = False


Rule = tuple[Column, "Column | str", Column, Column]  # (condition, tag, score, reason)


def tagged(rules: list[Rule]) -> Callable[[DataFrame], DataFrame]:
    """profiles -> user_id, tag, score, reason, as_of: one row per rule a profile meets, in one pass over the
    profiles (not one filter and union per rule, each reading every profile)."""
    def apply(profiles: DataFrame) -> DataFrame:
        found = F.array(*[
            F.when(condition, F.struct((F.lit(tag) if isinstance(tag, str) else tag).cast("string").alias("tag"),
                                       score.cast("double").alias("score"), reason.cast("string").alias("reason")))
            for condition, tag, score, reason in rules])
        return (profiles.select("user_id", "as_of", F.explode(F.filter(found, lambda t: t.isNotNull())).alias("_t"))
                .select("user_id", "_t.tag", "_t.score", "_t.reason", "as_of"))
    return apply


PERCENTS = [k / 100 for k in range(1, 101)]


def with_spend_percentile(cfg: TagsConf) -> Callable[[DataFrame], DataFrame]:
    """Adds, for buyers of the spend window (null for the rest), their percent rank among buyers: ``_tier`` (how
    many of ``spender_quantiles`` it reaches) and ``_percent`` (in whole percents, rounded down)."""
    column = f"spend_{cfg.spend_window_days}d"

    def apply(profiles: DataFrame) -> DataFrame:
        buyers = (profiles.filter(F.col(column) > 0).select("user_id", column)
                  .transform(many_ranks_reached(column, {"_tier": list(cfg.spender_quantiles), "_percent": PERCENTS}))
                  .select("user_id", "_tier", "_percent"))
        return profiles.join(buyers, "user_id", "left")
    return apply


def spender_tiers(cfg: TagsConf) -> Rule:
    """low/mid/high spender by the user's percent rank among buyers of the spend window (``with_spend_percentile``)."""
    spend, tier_index, percent = F.col(f"spend_{cfg.spend_window_days}d"), F.col("_tier"), F.col("_percent")
    tier = F.element_at(F.array(F.lit("low_spender"), F.lit("mid_spender"), F.lit("high_spender")), tier_index + 1)
    reason = F.format_string("spent %s in the last %d days, more than %d%% of buyers",
                             F.format_number(spend, 2), F.lit(cfg.spend_window_days), percent.cast("int"))
    return (tier_index.isNotNull(), tier, percent / 100.0, reason)


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
        rules: list[Rule] = [
            (F.col("signup_ts") >= F.lit(add_days(as_of, -cfg.new_user_days, zone)), "new_user",
             F.lit(1.0), F.format_string("signed up %d days ago (%s)", days_since_signup, local_date_text("signup_ts", zone))),
            (active_events >= cfg.active_min_events, "active", active_events,
             F.format_string("%d events in the last %d days", active_events, F.lit(cfg.active_window_days))),
            (loyal_orders >= cfg.loyal_min_orders, "loyal", loyal_orders,
             F.format_string("%d orders in the last %d days", loyal_orders, F.lit(cfg.loyal_window_days))),
            (idle >= cfg.dormant_days, "dormant", F.floor(idle),
             F.format_string("no activity for %d days (last on %s)", F.floor(idle).cast("int"),
                             local_date_text("last_event_ts", zone))),
            (F.col("last_event_ts").isNull(), "dormant", F.lit(None), F.lit("no recorded activity before the profile date")),
            ((F.col("top_category_share") >= cfg.category_lover_min_share)
             & (F.col("top_category_weight") >= cfg.category_lover_min_weight),
             F.concat(F.lit("category_lover:"), F.col("top_category")), F.col("top_category_share"),
             F.format_string("%d%% of weighted activity is in %s", F.round(F.col("top_category_share") * 100)
                             .cast("int"), F.col("top_category"))),
            spender_tiers(cfg),
            ((F.col("frequency") > 0) & F.col("monetary").isNull(), "spend_unknown", F.lit(None),
             F.lit("orders carry no amounts in the source data, so no spender tier")),
        ]
        if gaps.browse_missing:
            rules.append((F.lit(True), "browse_unknown", F.lit(None), F.lit(
                "browse table is absent or empty for this run: views, carts, conversion and session features are null")))
        if gaps.social_missing:
            rules.append((F.lit(True), "social_unknown", F.lit(None), F.lit(
                "social table is absent or empty for this run: review, comment, like and share counts are null")))
        return p.transform(with_spend_percentile(cfg)).transform(tagged(rules))
    return apply


def _driven(reason: Column, drivers: str) -> Column:
    """A model reason followed by the inputs that pushed the score most: "...: carts_1d=3, orders_30d=1"."""
    named = F.array_join(F.coalesce(F.col(drivers), F.array().cast("array<string>")), ", ")
    return F.when(named != "", F.concat(reason, F.lit(": "), named)).otherwise(reason)


def _value(name: str) -> Column:
    """A profile input as "name=value" (whole numbers without decimals), or "name unknown"; tenure_days from
    signup_ts."""
    column = (F.col("as_of").cast("double") - F.col("signup_ts").cast("double")) / 86_400 if name == "tenure_days" \
        else F.col(name).cast("double")
    shown = F.when(column == F.floor(column), F.format_string("%d", column.cast("long"))).otherwise(
        F.format_string("%.2f", column))
    return F.when(column.isNotNull(), F.concat(F.lit(f"{name}="), shown)).otherwise(F.lit(f"{name} unknown"))


def segment_reason(marks: dict[int, tuple[str, ...]]) -> Column:
    """Which segment, and the user's own values of the inputs that set it apart."""
    base = F.format_string("nearest to segment %d's centre in embedding space", F.col("segment_id"))
    quoted = F.lit("")
    for segment, names in sorted(marks.items()):
        values = F.concat_ws(", ", *[_value(n) for n in names])
        quoted = F.when(F.col("segment_id") == segment, values).otherwise(quoted)
    return F.when(quoted != "", F.concat(base, F.lit("; what sets it apart, here: "), quoted)).otherwise(base)


def model_tags(propensity_min: float, churn_min: float, horizon_days: int,
               marks: dict[int, tuple[str, ...]] | None = None) -> Callable[[DataFrame], DataFrame]:
    """Tags from the model's scores, each with its probability as score, and in the reason with the inputs
    that drove it; segment tags quote the user's values of the inputs that set the segment apart (``marks``)."""
    def apply(p: DataFrame) -> DataFrame:
        prop, churn = F.col("purchase_propensity"), F.col("churn_risk")
        return p.transform(tagged([
            (prop >= propensity_min, "likely_buyer", prop,
             _driven(F.format_string("likely to buy in %d days (p=%.2f)", F.lit(horizon_days), prop),
                     "propensity_drivers")),
            (churn >= churn_min, "churn_risk", churn,
             _driven(F.format_string("churn risk: no activity expected in the next %d days (p=%.2f)",
                                     F.lit(horizon_days), churn), "churn_drivers")),
            (F.col("spend_tier") == "high", "predicted_high_spender", prop,
             _driven(F.format_string("predicted to be in the top spend tier in the next %d days",
                                     F.lit(horizon_days)), "propensity_drivers")),
            (F.col("segment_id").isNotNull(), F.format_string("segment:%d", F.col("segment_id")), F.lit(None),
             segment_reason(marks or {})),
        ]))
    return apply
