"""``portrait report``: one self-contained HTML page (charts inlined as PNG) about the warehouse's state.

Sections: data quality per table and reason, segments, tags, feature distributions per segment,
model metrics against the baselines, the latest out-of-time backtest, and the run history with per-stage
durations.
The numbers come from small Spark aggregates; charts are drawn with matplotlib.
"""
from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from datetime import datetime, timezone

import matplotlib

matplotlib.use("Agg")  # headless: no display on clusters or CI
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from pyspark.sql import Window  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from jobs.storage import Warehouse  # noqa: E402

DISTRIBUTION_FEATURES = ("purchase_propensity", "churn_risk", "monetary", "views", "days_since_last_event")


@dataclass
class ReportData:
    """The small tables the report is drawn from (each a pandas frame, possibly empty)."""

    quality: pd.DataFrame        # table, reason, rows
    segments: pd.DataFrame       # segment_id, size, share, description
    tags: pd.DataFrame           # tag, users
    distributions: pd.DataFrame  # segment_id and sampled feature values
    metrics: pd.DataFrame        # metric, method, value
    backtests: pd.DataFrame      # as_of, metric, method, value, ci_low, ci_high, users, published (latest backtest run)
    runs: pd.DataFrame           # run_id, job, status, started_at, stage, seconds
    profiles: int


def collect_report_data(wh: Warehouse, sample_per_segment: int = 400) -> ReportData:
    """Aggregate what the report shows; tables that do not exist yet give empty sections."""
    def frame(name, build, columns):
        return build(wh.read(name)).toPandas() if wh.exists(name) else pd.DataFrame(columns=columns)

    latest_full = None
    if wh.exists("runs"):
        found = (wh.read("runs").filter("job = 'full' and status = 'succeeded'").orderBy(F.desc("finished_at"))
                 .select("run_id").first())
        latest_full = found["run_id"] if found else None
    quality = frame("quarantine", lambda q: q.filter(F.col("run_id") == F.lit(latest_full))
                    .groupBy(F.col("source_table").alias("table"), "reason").agg(F.count("*").alias("rows"))
                    .orderBy("table", F.desc("rows")), ["table", "reason", "rows"])
    segments = frame("segments", lambda s: s.select("segment_id", "size", "share", "description").orderBy("segment_id"),
                     ["segment_id", "size", "share", "description"])
    tags = frame("labels", lambda lab: lab.withColumn("tag", F.regexp_replace("tag", r"^(category_lover|segment):.*",
                                                                              "$1:*"))
                 .groupBy("tag").agg(F.countDistinct("user_id").alias("users")).orderBy(F.desc("users")),
                 ["tag", "users"])
    present = [c for c in DISTRIBUTION_FEATURES if wh.exists("profiles") and c in wh.read("profiles").columns]
    distributions = frame("profiles", lambda p: p.filter(F.col("segment_id").isNotNull()).select(
        "segment_id", *present, F.row_number().over(
            Window.partitionBy("segment_id").orderBy("user_id")).alias("_n"))
        .filter(F.col("_n") <= sample_per_segment).drop("_n"), ["segment_id", *present])
    metrics = frame("model_metrics", lambda m: m.join(
        m.groupBy().agg(F.max("as_of").alias("as_of")), "as_of").orderBy("metric", "method")
        .select("metric", "method", "value", "users"), ["metric", "method", "value", "users"])
    backtests = frame("backtests", lambda b: b.join(b.groupBy().agg(F.max("run_id").alias("run_id")), "run_id")
                      .orderBy("as_of", "metric", "method")
                      .select(F.date_format("as_of", "yyyy-MM-dd").alias("as_of"), "metric", "method", "value",
                              "ci_low", "ci_high", "users", "published"),
                      ["as_of", "metric", "method", "value", "ci_low", "ci_high", "users", "published"])
    runs = frame("runs", lambda r: r.orderBy(F.desc("started_at")).limit(12).select(
        "run_id", "job", "status", "started_at", F.explode_outer("stage_seconds").alias("stage", "seconds")),
        ["run_id", "job", "status", "started_at", "stage", "seconds"])
    return ReportData(quality, segments, tags, distributions, metrics, backtests, runs, wh.count("profiles"))


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _chart(title: str, draw) -> str:
    fig, ax = plt.subplots(figsize=(8, 3.6))
    draw(ax)
    ax.set_title(title)
    return f'<figure class="chart"><img alt="{html.escape(title)}" src="data:image/png;base64,{_png(fig)}"></figure>'


def _empty(what: str) -> str:
    return f'<p class="empty">No {html.escape(what)} yet.</p>'


def _table(df: pd.DataFrame) -> str:
    return df.to_html(index=False, classes="data", border=0, float_format=lambda v: f"{v:,.3f}")


def quality_section(d: ReportData) -> str:
    if d.quality.empty:
        return _empty("quarantined rows in the latest full run")
    pivot = d.quality.pivot_table(index="table", columns="reason", values="rows", fill_value=0)
    return _chart("Quarantined rows per table and reason (latest full run)",
                  lambda ax: pivot.plot.barh(stacked=True, ax=ax, colormap="tab20").legend(fontsize=6, ncol=2)) + \
        _table(d.quality)


def segments_section(d: ReportData) -> str:
    if d.segments.empty:
        return _empty("segments (the model is disabled or has not run)")
    chart = _chart("Users per segment", lambda ax: ax.bar(d.segments["segment_id"].astype(str), d.segments["size"],
                                                          color="#4c78a8"))
    return chart + _table(d.segments)


def tags_section(d: ReportData) -> str:
    if d.tags.empty:
        return _empty("tags")
    top = d.tags.head(20).iloc[::-1]
    return _chart("Users per tag", lambda ax: ax.barh(top["tag"], top["users"], color="#f58518"))


def distributions_section(d: ReportData) -> str:
    features = [c for c in d.distributions.columns if c != "segment_id"]
    if d.distributions.empty or not features:
        return _empty("per-segment feature distributions")
    parts = []
    segment_ids = sorted(d.distributions["segment_id"].unique())
    for feature in features:
        series = [d.distributions.loc[d.distributions["segment_id"] == s, feature].dropna() for s in segment_ids]

        def draw(ax, series=series):
            ax.boxplot(series, tick_labels=[str(s) for s in segment_ids], showfliers=False)
            ax.set_xlabel("segment")
        parts.append(_chart(f"{feature} by segment", draw))
    return "".join(parts)


def _kind(metric: pd.Series) -> pd.Series:
    """held_out, validation, champion or reliability: what a ``model_metrics`` row measures."""
    return metric.str.extract(r"^(validation|champion|reliability)_", expand=False).fillna("held_out")


def champions_table(metrics: pd.DataFrame) -> str:
    """Which candidate each target publishes, and its lead on validation over the best other method."""
    won = metrics[_kind(metrics["metric"]) == "champion"]
    table = pd.DataFrame({"target": won["metric"].str.removeprefix("champion_"), "published": won["method"],
                          "validation lead over the best other method": won["value"]})
    return "<h3>Published candidate per target (chosen on the validation window)</h3>" + _table(table)


def reliability_chart(metrics: pd.DataFrame) -> str:
    """The published scores' reliability curves on the held-out users: predicted against observed rates."""
    rows = metrics[_kind(metrics["metric"]) == "reliability"]
    if rows.empty:
        return ""
    parts = rows["metric"].str.extract(r"^reliability_(\w+?)_(\d+)_(predicted|observed)$")
    curves = rows.assign(target=parts[0], bin=parts[1].astype(int), side=parts[2]).pivot_table(
        index=["target", "bin"], columns="side", values="value").reset_index()

    def draw(ax):
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly calibrated")
        for target, curve in curves.groupby("target"):
            ax.plot(curve["predicted"], curve["observed"], marker="o", label=target)
        ax.set_xlabel("predicted probability (mean per tenth)")
        ax.set_ylabel("observed rate")
        ax.legend(fontsize=8)
    return _chart("Reliability of the published scores on held-out users", draw)


def metrics_section(d: ReportData) -> str:
    if d.metrics.empty:
        return _empty("model metrics")
    kind = _kind(d.metrics["metric"])
    pivot = d.metrics[kind == "held_out"].pivot_table(index="metric", columns="method", values="value")
    chart = _chart("Held-out metrics: the published model, every candidate and the RFM rule",
                   lambda ax: pivot.clip(upper=1).plot.bar(ax=ax, rot=20, ylim=(0, 1)).legend(fontsize=8))
    validation = d.metrics[kind == "validation"].pivot_table(index="metric", columns="method", values="value")
    return (champions_table(d.metrics) + chart + _table(pivot.reset_index()) + reliability_chart(d.metrics)
            + "<h3>Validation window (out of time, inside the training window)</h3>" + _table(validation.reset_index()))


def backtests_section(d: ReportData) -> str:
    """The latest ``portrait backtest``: propensity ROC-AUC per method and as-of date, with 95% intervals, and the
    candidate each origin published."""
    if d.backtests.empty:
        return _empty("backtests (portrait backtest)")
    champion = d.backtests["metric"].str.startswith("champion_")
    scored = d.backtests[~champion]
    auc = scored[scored["metric"] == "propensity_roc_auc"]

    def draw(ax):
        for i, (method, rows) in enumerate(auc.groupby("method")):
            x = [j + i * 0.15 for j in range(len(rows))]
            low, high = rows["value"] - rows["ci_low"], rows["ci_high"] - rows["value"]
            ax.errorbar(x, rows["value"], yerr=[low.fillna(0), high.fillna(0)], fmt="o", capsize=3, label=method)
        ax.set_xticks(range(len(auc["as_of"].unique())), sorted(auc["as_of"].unique()))
        ax.set_ylabel("propensity ROC-AUC")
        ax.legend(fontsize=8)
    best = (scored.dropna(subset=["value"]).sort_values("value", ascending=False)
            .groupby(["as_of", "metric"], as_index=False).first()[["as_of", "metric", "method", "value"]])
    published = d.backtests[champion][["as_of", "metric", "method", "value"]].rename(
        columns={"method": "published", "value": "its validation figure"})
    return (_chart("Out of time: scored at T against [T, T + horizon), 95% bootstrap intervals", draw)
            + "<h3>Published candidate per origin (chosen on the origin before)</h3>" + _table(published)
            + "<h3>Best method per date and metric</h3>" + _table(best) + _table(scored))


def runs_section(d: ReportData) -> str:
    if d.runs.empty:
        return _empty("runs")
    stages = d.runs.dropna(subset=["stage"]).pivot_table(index="run_id", columns="stage", values="seconds",
                                                           fill_value=0)
    chart = _chart("Seconds per stage, latest runs", lambda ax: stages.plot.barh(stacked=True, ax=ax)
                   .legend(fontsize=6, ncol=3)) if not stages.empty else ""
    summary = d.runs.groupby(["run_id", "job", "status", "started_at"], as_index=False)["seconds"].sum()
    return chart + _table(summary.sort_values("started_at", ascending=False).rename(columns={"seconds": "total_s"}))


STYLE = """body{font-family:sans-serif;margin:2em;max-width:1100px;color:#222}h1{margin-bottom:0}
.meta{color:#666}section{margin-top:2em}figure.chart{margin:0.5em 0}figure.chart img{max-width:100%}
table.data{border-collapse:collapse;font-size:12px}table.data td,table.data th{padding:2px 8px;
border-bottom:1px solid #ddd;text-align:left}.empty{color:#999}"""


def render_report(d: ReportData, warehouse: str) -> str:
    """The whole page as one HTML string, with every chart inlined."""
    sections = [("Data quality", quality_section), ("Segments", segments_section), ("Tags", tags_section),
                ("Feature distributions per segment", distributions_section),
                ("Model metrics", metrics_section), ("Backtests", backtests_section), ("Run history", runs_section)]
    body = "".join(f'<section id="{title.lower().replace(" ", "-")}"><h2>{title}</h2>{fn(d)}</section>'
                   for title, fn in sections)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Portrait report</title>"
            f"<style>{STYLE}</style></head><body><h1>Portrait report</h1>"
            f"<p class='meta'>{d.profiles:,} profiles in {html.escape(warehouse)}; generated {when}</p>"
            f"{body}</body></html>")
