"""The whole job on the two real public samples, checked against counts computed straight from the CSVs."""
from __future__ import annotations

import csv
import datetime as dt
from collections import defaultdict
from pathlib import Path

import pytest

from typing import Callable

from conf import load_config, overlay_path
from jobs.privacy import load_key, pseudonym
from jobs.demo import land
from jobs.full import open_warehouse, run_full
from jobs.model.tracking import logged_losses
from tests.helpers import by_user

UTC = dt.timezone.utc


def run_on(spark, dataset: str, path: Path, warehouse: Path, model: bool = False):
    # With the model on, the baselines are skipped to keep CI short; benchmarks/model_eval.py compares them.
    cfg = load_config(overlay_path(dataset), overrides=["spark.shuffle_partitions=2", f"warehouse.path={warehouse}",
                                                        f"privacy.key_file={warehouse.parent / 'hmac.key'}",
                                                        f"model.enabled={str(model).lower()}", "model.baselines=false",
                                                        f"model.checkpoint_dir={warehouse.parent / 'checkpoints'}",
                                                        f"model.tracking_uri=file:{warehouse.parent / 'mlruns'}"])
    land(cfg, spark, dataset, str(path))
    run_full(cfg, spark)
    return cfg, open_warehouse(cfg, spark)


def pseudonyms(cfg) -> Callable[[str], str]:
    """Raw CSV id -> the pseudonym Portrait stores (ids are keyed-HMAC'd at ingest)."""
    key = load_key(cfg.privacy.key_file, False, {})
    return lambda raw: pseudonym(raw, key)


MODEL_TAGS = ("likely_buyer", "churn_risk", "predicted_high_spender", "segment:")


def tags_by_user(wh) -> dict[str, set[str]]:
    """Rule tags per user (the model's tags are checked on their own: the CSV cannot predict them)."""
    tags = defaultdict(set)
    for r in wh.read("labels").collect():
        if not r.tag.startswith(MODEL_TAGS):
            tags[r.user_id].add(r.tag)
    return tags


# ---------------------------------------------------------------- Taobao

TAOBAO_FROM = dt.datetime(2017, 11, 25, tzinfo=UTC)
TAOBAO_TO = dt.datetime(2017, 12, 4, tzinfo=UTC)  # also the profile date
WEIGHTS = {"pv": 1.0, "fav": 2.0, "cart": 3.0, "buy": 5.0}


@pytest.fixture(scope="module")
def taobao(spark, shared_data, tmp_path_factory):
    path = shared_data / "taobao-userbehavior-sample"
    # The whole pipeline, model included (train, evaluate, score, segment, tag), on real data.
    cfg, wh = run_on(spark, "taobao-sample", path, tmp_path_factory.mktemp("taobao") / "warehouse", model=True)
    with open(path / "UserBehavior.csv", newline="") as f:
        lines = [tuple(r) for r in csv.reader(f)]
    return cfg, wh, lines


def taobao_expected(lines):
    """Per user, from the CSV alone: in-range, exact duplicates counted once."""
    users = defaultdict(lambda: defaultdict(float))
    days, weights, last = defaultdict(set), defaultdict(lambda: defaultdict(float)), {}
    for user, item, category, kind, seconds in set(lines):
        when = dt.datetime.fromtimestamp(int(seconds), UTC)
        if not TAOBAO_FROM <= when < TAOBAO_TO:
            continue
        u = users[user]
        u[kind] += 1
        u["events_7d"] += when >= TAOBAO_TO - dt.timedelta(days=7)
        days[user].add(when.date())
        weights[user][category] += WEIGHTS[kind]
        last[user] = max(last.get(user, when), when)
    for user, u in users.items():
        u["active_days"] = len(days[user])
        u["idle_days"] = (TAOBAO_TO - last[user]).total_seconds() / 86400
        top = max(weights[user].items(), key=lambda kv: (kv[1], -int(kv[0])))
        u["top_category"], u["top_share"], u["top_weight"] = top[0], top[1] / sum(weights[user].values()), top[1]
    return users


def test_taobao_out_of_range_rows_land_in_quarantine(taobao):
    _, wh, lines = taobao
    outside = [r for r in lines if not TAOBAO_FROM <= dt.datetime.fromtimestamp(int(r[4]), UTC) < TAOBAO_TO]
    assert len(outside) == 53  # one on 2017-09-11 and 52 on 2017-11-24, as the data README says
    quarantined = [r for r in wh.read("quarantine").collect() if r.reason == "ts_out_of_range"]
    assert len(quarantined) == len(outside)
    assert {r.source_table for r in quarantined} <= {"browse", "transactions"}


def test_taobao_features_match_the_csv(taobao):
    cfg, wh, lines = taobao
    expected, p_id = taobao_expected(lines), pseudonyms(cfg)
    profiles = by_user(wh.read("profiles"))
    assert len(profiles) == len({r[0] for r in lines if TAOBAO_FROM <= dt.datetime.fromtimestamp(int(r[4]), UTC) < TAOBAO_TO})
    busiest = max(expected, key=lambda u: sum(expected[u][k] for k in WEIGHTS))
    buyer = max(expected, key=lambda u: (expected[u]["buy"], u))
    idle = max(expected, key=lambda u: (expected[u]["idle_days"], u))
    for user in {busiest, buyer, idle}:
        e, p = expected[user], profiles[p_id(user)]
        assert (p["views"], p["carts"], p["favs"]) == (e["pv"], e["cart"], e["fav"]), user
        assert p["frequency"] == e["buy"] and p["monetary"] is None, user
        assert p["active_days"] == e["active_days"] and p["events_7d"] == e["events_7d"], user
        assert p["days_since_last_event"] == pytest.approx(e["idle_days"]), user
        assert (p["top_category"], p["top_category_share"]) == (e["top_category"], pytest.approx(e["top_share"])), user


def test_taobao_tags_match_the_csv(taobao):
    cfg, wh, lines = taobao
    t = cfg.tags
    expected, p_id = taobao_expected(lines), pseudonyms(cfg)
    tags = tags_by_user(wh)
    checked = sorted(expected, key=lambda u: -sum(expected[u][k] for k in WEIGHTS))[:3]
    for user in checked:
        e = expected[user]
        want = {"social_unknown"}
        want |= {"active"} if e["events_7d"] >= t.active_min_events else set()
        want |= {"loyal"} if e["buy"] >= t.loyal_min_orders else set()
        want |= {"dormant"} if e["idle_days"] >= t.dormant_days else set()
        want |= {"spend_unknown"} if e["buy"] > 0 else set()
        if e["top_share"] >= t.category_lover_min_share and e["top_weight"] >= t.category_lover_min_weight:
            want.add(f"category_lover:{e['top_category']}")
        assert tags[p_id(user)] == want, user


def test_taobao_model_trains_scores_segments_and_tags(taobao):
    cfg, wh, _ = taobao
    profiles = wh.read("profiles").collect()
    assert all(p.purchase_propensity is not None and p.segment_id is not None for p in profiles)
    rows = {(r.metric, r.method): r for r in wh.read("model_metrics").collect()}
    assert {m for _, m in rows} == {"model"}
    # The held-out AUC is reported, not asserted above chance: about 9 Taobao users are held out, and
    # which ones depends on the run's HMAC key, so it swings between 0.4 and 0.9 from run to run.
    auc = rows[("propensity_roc_auc", "model")]
    assert 0.0 <= auc.value <= 1.0 and 0 < auc.users < len(profiles)
    # What must hold on real data is that the network learns its training snapshot.
    job = [r for r in wh.read("runs").collect() if r.job == "full"][0]
    losses = logged_losses(cfg.model, job.details["mlflow_run_id"])
    assert len(losses) == cfg.model.epochs and losses[-1] < losses[0], losses
    assert wh.count("segments") >= 2
    # The model's tags follow its scores exactly: which users pass a threshold depends on the trained
    # weights (43 users), so the test checks the rule, not a count.
    tags = defaultdict(set)
    for r in wh.read("labels").collect():
        tags[r.user_id].add(r.tag)
    m = cfg.model
    for p in profiles:
        assert ("likely_buyer" in tags[p.user_id]) == (p.purchase_propensity >= m.propensity_tag_min), p.user_id
        assert ("churn_risk" in tags[p.user_id]) == (p.churn_risk >= m.churn_tag_min), p.user_id
        assert f"segment:{p.segment_id}" in tags[p.user_id]


def test_taobao_truncated_and_malformed_lines_are_quarantined(spark, shared_data, tmp_path):
    extract = tmp_path / "extract"
    extract.mkdir()
    head = (shared_data / "taobao-userbehavior-sample" / "UserBehavior.csv").read_text().splitlines()[:200]
    bad = ["1,2268318,abc,pv,1511544070", "x,y", "1,2,3,pv,notatime", "1,2333346,25207"]  # last one truncated
    (extract / "UserBehavior.csv").write_text("\n".join(head + bad))
    _, wh = run_on(spark, "taobao-sample", extract, tmp_path / "warehouse")
    reasons = sorted(r.reason for r in wh.read("quarantine").collect() if r.source_table == "taobao:UserBehavior")
    assert reasons == ["malformed_row", "malformed_row", "unparseable_category_id", "unparseable_timestamp"]
    ingest = [r for r in wh.read("runs").collect() if r.job == "ingest-taobao"][0]
    assert ingest.rows_in["source"] == 204 and ingest.rows_quarantined["source"] == 4


# ---------------------------------------------------------------- Olist

OLIST_AS_OF = dt.datetime(2018, 11, 1, tzinfo=UTC)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def olist(spark, shared_data, tmp_path_factory):
    path = shared_data / "olist-sample"
    cfg, wh = run_on(spark, "olist-sample", path, tmp_path_factory.mktemp("olist") / "warehouse")
    return cfg, wh, path


def olist_expected(path: Path):
    person = {c["customer_id"]: c["customer_unique_id"] for c in read_csv(path / "olist_customers_dataset.csv")}
    orders = {o["order_id"]: o for o in read_csv(path / "olist_orders_dataset.csv")}
    parse = lambda s: dt.datetime.strptime(s, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)  # noqa: E731
    users = defaultdict(lambda: {"orders": set(), "orders_year": set(), "spend": 0.0, "spend_year": 0.0,
                                 "ratings": [], "last": None})
    for line in read_csv(path / "olist_order_items_dataset.csv"):
        order = orders[line["order_id"]]
        if order["order_status"] in ("canceled", "unavailable"):
            continue
        u, when = users[person[order["customer_id"]]], parse(order["order_purchase_timestamp"])
        u["orders"].add(line["order_id"])
        if when >= OLIST_AS_OF - dt.timedelta(days=365):
            u["orders_year"].add(line["order_id"])
            u["spend_year"] += float(line["price"])
        u["spend"] += float(line["price"])
        u["last"] = max(u["last"] or when, when)
    for review in read_csv(path / "olist_order_reviews_dataset.csv"):
        u = users[person[orders[review["order_id"]]["customer_id"]]]
        u["ratings"].append(int(review["review_score"]))
        when = parse(review["review_creation_date"])
        u["last"] = max(u["last"] or when, when)
    return users


def test_olist_features_match_the_csv(olist):
    cfg, wh, path = olist
    expected, p_id = olist_expected(path), pseudonyms(cfg)
    profiles = by_user(wh.read("profiles"))
    repeat = sorted((u for u, e in expected.items() if len(e["orders"]) >= 2 and e["ratings"]),
                    key=lambda u: (-len(expected[u]["orders"]), u))[:3]
    assert len(repeat) == 3
    for user in repeat:
        e, p = expected[user], profiles[p_id(user)]
        assert p["frequency"] == len(e["orders"]), user
        assert p["monetary"] == pytest.approx(e["spend"]), user
        assert p["review_count"] == len(e["ratings"]), user
        assert p["mean_rating"] == pytest.approx(sum(e["ratings"]) / len(e["ratings"])), user
        # Olist has no browse data: those features are null, not zero.
        assert (p["views"], p["sessions"], p["view_to_cart_rate"]) == (None, None, None), user


def test_olist_tags_match_the_csv_and_explain_missing_browse(olist):
    cfg, wh, path = olist
    expected, p_id = olist_expected(path), pseudonyms(cfg)
    stored = tags_by_user(wh)
    tags = {raw: stored[p_id(raw)] for raw in expected}
    assert cfg.tags.loyal_window_days == cfg.tags.spend_window_days == 365  # what the CSV side computes
    for user in sorted((u for u, e in expected.items() if len(e["orders"]) >= 2), key=lambda u: u)[:3]:
        e = expected[user]
        idle = (OLIST_AS_OF - e["last"]).total_seconds() / 86400
        assert ("loyal" in tags[user]) == (len(e["orders_year"]) >= cfg.tags.loyal_min_orders), user
        assert ("dormant" in tags[user]) == (idle >= cfg.tags.dormant_days), user
        assert "browse_unknown" in tags[user], user
        assert sum(t.endswith("_spender") for t in tags[user]) == (1 if e["spend_year"] > 0 else 0), user


def test_olist_canceled_orders_are_quarantined_not_dropped(olist):
    _, wh, path = olist
    canceled = {o["order_id"] for o in read_csv(path / "olist_orders_dataset.csv")
                if o["order_status"] in ("canceled", "unavailable")}
    lines = [i for i in read_csv(path / "olist_order_items_dataset.csv") if i["order_id"] in canceled]
    quarantined = [r for r in wh.read("quarantine").collect() if r.reason == "order_canceled"]
    assert len(quarantined) == len(lines) > 0
