"""portrait backtest: train before T, score at T, compare with [T, T + H); nothing at or after T reaches training."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from zoneinfo import ZoneInfo
from pyspark.sql import functions as F

from jobs.backtest import NotEnoughHistory, backtest_origins, check_origins, run_backtest
from jobs.full import run_full
from jobs.report import collect_report_data, render_report
from jobs.storage import Warehouse

UTC = timezone.utc
START = date(2025, 1, 1)
T = datetime(2025, 1, 9, tzinfo=UTC)  # two origins of 2 days: scored at Jan 9 and Jan 7, trained before
GENERATOR = ["generator.users=120", "generator.days=11", "generator.items=60", "generator.seed=5",
             "generator.bad_row_share=0", "generator.cutoff_day=9"]
SETTINGS = ["spark.shuffle_partitions=2", "embedding.enabled=false", "images.enabled=false", "model.enabled=false",
            "model.epochs=2", "model.hidden_dim=16", "model.embedding_dim=8", "model.horizon_days=2"]


def test_origins_step_back_by_the_horizon_in_local_days():
    got = backtest_origins(datetime(2025, 3, 31, tzinfo=ZoneInfo("Europe/London")), 7, 3, "Europe/London")
    # London changes to summer time on March 30: the origins stay local midnights.
    assert [o.as_of.isoformat() for o in got] == ["2025-03-31T00:00:00+01:00", "2025-03-24T00:00:00+00:00",
                                                  "2025-03-17T00:00:00+00:00"]
    assert [o.cutoff.isoformat() for o in got][0] == "2025-03-24T00:00:00+00:00"
    assert got[0].outcome_end.isoformat() == "2025-04-07T00:00:00+01:00"


def test_origins_outside_the_data_are_refused_with_the_dates():
    origins = backtest_origins(T, 2, 2, "UTC")
    check_origins(origins, datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 11, tzinfo=UTC))
    with pytest.raises(NotEnoughHistory, match="2025-01-11T00:00:00\\+00:00, after the data"):
        check_origins(origins, datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 10, tzinfo=UTC))
    with pytest.raises(NotEnoughHistory, match="trains on features before 2025-01-05"):
        check_origins(origins, datetime(2025, 1, 5, tzinfo=UTC), datetime(2025, 1, 11, tzinfo=UTC))


def config(root, *more: str):
    from conf import load_config

    return load_config(overrides=[*SETTINGS, f"warehouse.path={root / 'warehouse'}",
                                  f"privacy.key_file={root.parent / 'hmac.key'}",
                                  f"model.checkpoint_dir={root / 'checkpoints'}",
                                  f"model.tracking_uri=file:{root / 'mlruns'}", *more])


@pytest.fixture(scope="module")
def inputs(spark):
    from conf import load_config
    from jobs.generator import generate_tables

    generated = generate_tables(spark, load_config(overrides=GENERATOR).generator).inputs()
    return {t: df.localCheckpoint(eager=True) for t, df in generated.items()}


def after_t_changed(tables: dict) -> dict:
    """Every event at or after T altered: amounts, a share of browse rows dropped, purchases added, texts."""
    later = F.col("ts") >= F.lit(T)
    tx = tables["transactions"]
    more = tx.filter(later).withColumn("order_id", F.concat("order_id", F.lit("-again")))
    return {**tables,
            "transactions": tx.withColumn("amount", F.when(later, F.col("amount") * 3 + 1).otherwise(F.col("amount")))
            .unionByName(more),
            "browse": tables["browse"].filter(~later | (F.abs(F.hash("user_id", "ts")) % 3 == 0)),
            "social": tables["social"].withColumn("text", F.when(later, F.lit("changed")).otherwise(F.col("text")))}


def backtested(spark, tables: dict, root, origins: int, *more: str) -> tuple[Warehouse, list[tuple]]:
    wh = Warehouse(str(root / "warehouse"), spark, engine="delta-rs")
    for table, df in tables.items():
        wh.overwrite(table, df)
    run_full(config(root), spark)
    rows = run_backtest(config(root, *more), spark, T, origins_count=origins, bootstrap_draws=50)
    return wh, rows


def test_backtest_scores_every_method_at_each_origin_and_ignores_everything_from_t_on(spark, inputs, tmp_path):
    wh, rows = backtested(spark, inputs, tmp_path / "original", origins=2)
    table = wh.read("backtests").collect()
    assert len(table) == len(rows)
    origins = {r.as_of.replace(tzinfo=UTC) for r in table}
    assert origins == {T, T - timedelta(days=2)}
    for origin in origins:
        at = [r for r in table if r.as_of.replace(tzinfo=UTC) == origin]
        assert {r.cutoff.replace(tzinfo=UTC) for r in at} == {origin - timedelta(days=2)}
        assert {r.method for r in at if r.published} == {"model"}
        auc = {r.method: r for r in at if r.metric == "propensity_roc_auc"}
        assert set(auc) == {"model", "network", "rfm_rule", "mllib", "gbt"}  # no stack: model.stack is off
        for r in auc.values():
            assert 0.0 <= r.ci_low <= r.value <= r.ci_high <= 1.0, r
        # The published scores are the candidate chosen on the origin before (T - H, itself scored against
        # [T - H, T)): the same ranking, so the same ROC-AUC; calibrated there, so their own Brier score.
        champion = {r.metric: r for r in at if r.metric.startswith("champion_")}
        winner = champion["champion_propensity"].method
        assert auc["model"].value == pytest.approx(auc[winner].value, abs=1e-12)
        validation = [r for r in table if r.as_of.replace(tzinfo=UTC) == origin - timedelta(days=2)
                      and r.metric == "propensity_roc_auc" and r.method in ("network", "mllib", "gbt", "rfm_rule")]
        if validation:  # the earliest origin's validation round is not reported; the later one's is the earlier
            # The stack's figure there is its out-of-fold one on the same users: no row of its own.
            best = max(r.value for r in validation)
            assert champion["champion_propensity"].value >= best
            assert winner == "stack" or champion["champion_propensity"].value == best
    # Profiles, labels and the full job's training snapshot are not the backtest's to write.
    assert not wh.exists("training_snapshot")
    # The report draws the latest backtest.
    page = render_report(collect_report_data(wh), str(wh.root))
    section = page.split('<section id="backtests">')[1].split("</section>")[0]
    assert "<img" in section and "propensity_roc_auc" in section and "gbt" in section

    changed, again = backtested(spark, after_t_changed(inputs), tmp_path / "changed", 1, "model.baselines=false")
    # Origin T trained on exactly the same rows: features before T - H, labels in [T - H, T).
    snapshot = lambda w: sorted((r.user_id, tuple(r.behaviour), r.bought, r.churned, tuple(r.categories))  # noqa: E731
                                for r in w.read("backtest_snapshot").collect())
    assert snapshot(changed) == snapshot(wh)
    # What users did from T on did change, so the comparison above is not vacuous.
    value = lambda rs: {(r[4], r[5]): r[6] for r in rs if r[1] == T and r[5] == "model"}  # noqa: E731
    assert value(again) != value(rows)
