"""The whole job on the real public samples, through their mapping files, checked user by user against
plain-Python computations over the same CSV files (``tests/real_expectations.py``), in each platform's zone."""
from __future__ import annotations

import csv
import datetime as dt
from collections import Counter, defaultdict
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Callable
from zoneinfo import ZoneInfo

import pytest

from conf import load_config, overlay_path
from jobs.demo import land
from jobs.full import open_warehouse, run_full
from jobs.incremental import run_incremental
from jobs.mapping.ingest import resolve, run_mapping_ingest
from jobs.model.tracking import logged_losses
from jobs.privacy import load_key, pseudonym
from tests.helpers import by_user
from tests.real_expectations import Event, assert_profile, expected_profiles, expected_tags

UTC = dt.timezone.utc
MODEL_TAGS = ("likely_buyer", "churn_risk", "predicted_high_spender", "segment:")


def approx(value):
    # Money is summed as an exact decimal of 6 places per line; everything else is a double.
    return pytest.approx(value, rel=1e-9, abs=1e-4)


# A fixed test key, not a fresh one per run: the held-out users are chosen by a hash of the pseudonym, so a new
# key each run would draw a new split of Taobao's 43 users, and some draws hold out only one class.
TEST_KEY = "portrait-real-samples-test-key"


def configured(dataset: str, warehouse: Path, model: bool):
    key_file = warehouse.parent / "hmac.key"
    if not key_file.exists():
        key_file.write_text(TEST_KEY)
    return load_config(overlay_path(dataset), overrides=[
        "spark.shuffle_partitions=2", f"warehouse.path={warehouse}", f"privacy.key_file={key_file}",
        f"model.enabled={str(model).lower()}", "model.baselines=false", f"embedding.enabled={str(model).lower()}",
        f"images.enabled={str(model).lower()}",  # photos: tests/test_images.py
        "model.segments_k_max=6",  # two KMeans fits, not six, for Taobao's 43 users
        f"model.checkpoint_dir={warehouse.parent / 'checkpoints'}",
        f"model.tracking_uri=file:{warehouse.parent / 'mlruns'}", f"model.serving_dir={warehouse.parent / 'models'}"])


def run_whole(spark, dataset: str, warehouse: Path, model: bool = False):
    """Land the dataset through its mapping and run the full job."""
    cfg = configured(dataset, warehouse, model)
    land(cfg, spark, dataset, None)
    run_full(cfg, spark)
    return cfg, open_warehouse(cfg, spark)


def run_in_two_slices(spark, dataset: str, warehouse: Path, start: dt.date, step: dt.date):
    """Land [start, step) and run the full job; then land [step, ...) and run the incremental job on it."""
    cfg = configured(dataset, warehouse, model=False)
    first = run_mapping_ingest(cfg, spark, *resolve(cfg, dataset), since=start, until=step)
    run_full(cfg, spark)
    run_mapping_ingest(cfg, spark, *resolve(cfg, dataset), since=step)
    run_incremental(cfg, spark)
    return cfg, open_warehouse(cfg, spark), first.run_id


def pseudonyms(cfg) -> Callable[[str], str]:
    """Raw CSV id -> the pseudonym Portrait stores (ids are keyed-HMAC'd at ingest)."""
    key = load_key(cfg.privacy.key_file, False, {})
    return lambda raw: pseudonym(raw, key)


def rule_tags_by_user(wh) -> dict[str, set[str]]:
    tags = defaultdict(set)
    for r in wh.read("labels").collect():
        if not r.tag.startswith(MODEL_TAGS):
            tags[r.user_id].add(r.tag)
    return tags


def check_every_user(cfg, wh, events: list[Event], raw_users: list[str], browse: bool, social: bool) -> int:
    """Every user's profile and rule tags against the plain-Python ones; returns the users with events."""
    windows, recent = cfg.features.rfm_windows, cfg.tags.active_window_days
    expected = expected_profiles(events, cfg.time.zone, cfg.as_of, windows, recent)
    want_tags = expected_tags(raw_users, expected, cfg.tags, cfg.as_of, browse, social)
    profiles, tags, p_id = by_user(wh.read("profiles")), rule_tags_by_user(wh), pseudonyms(cfg)
    assert len(profiles) == len(raw_users)
    for user in raw_users:
        stored = profiles[p_id(user)]
        if user in expected:
            assert_profile(stored, expected[user], cfg.as_of, windows, recent, browse, approx,
                           cfg.features.session_gap_minutes)
        else:
            assert stored["frequency"] in (0, None) and stored["last_event_ts"] is None, user
        assert tags[p_id(user)] == want_tags[user], user
    return sum(1 for u in raw_users if u in expected)


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------- Taobao (China time)

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture(scope="module")
def taobao(spark, shared_data, tmp_path_factory):
    # The whole pipeline, model included (train, evaluate, score, segment, tag), on real data.
    cfg, wh = run_whole(spark, "taobao-sample", tmp_path_factory.mktemp("taobao") / "warehouse", model=True)
    with open(shared_data / "taobao-userbehavior-sample" / "UserBehavior.csv", newline="") as f:
        lines = [tuple(r) for r in csv.reader(f)]
    return cfg, wh, lines


def taobao_events(lines, cfg) -> list[Event]:
    """In the documented range in China time; exact duplicate lines once; pv is a view, buy a one-line order."""
    events = []
    for user, item, category, kind, seconds in set(lines):
        at = dt.datetime.fromtimestamp(int(seconds), UTC)
        if not cfg.validation.ts_min <= at < cfg.validation.ts_max:
            continue
        kind = {"pv": "view"}.get(kind, kind)
        events.append(Event(user, at, kind, category, order=f"{user}|{item}|{seconds}" if kind == "buy" else None,
                            quantity=1 if kind == "buy" else None))
    return events


def test_taobao_in_china_time_quarantines_exactly_the_one_row_outside_its_range(taobao):
    _, wh, lines = taobao
    local = [dt.datetime.fromtimestamp(int(r[4]), SHANGHAI) for r in lines]
    outside = [t for t in local if not dt.datetime(2017, 11, 25, tzinfo=SHANGHAI) <= t
               < dt.datetime(2017, 12, 4, tzinfo=SHANGHAI)]
    assert [t.date() for t in outside] == [dt.date(2017, 9, 11)]
    # The 52 events of 16:00-24:00 UTC on 24 November are 25 November in China: valid.
    assert sum(1 for t in local if t.astimezone(UTC).date() == dt.date(2017, 11, 24)) == 52
    assert [(r.source_table, r.reason) for r in wh.read("quarantine").collect()] == [("browse", "ts_out_of_range")]


def test_taobao_every_user_matches_the_csv_in_china_time(taobao):
    cfg, wh, lines = taobao
    users = sorted({r[0] for r in lines})
    assert len(users) == 43
    active = check_every_user(cfg, wh, taobao_events(lines, cfg), users, browse=True, social=False)
    assert active == 43


def test_taobao_model_trains_scores_segments_and_tags(taobao):
    cfg, wh, _ = taobao
    profiles = wh.read("profiles").collect()
    assert all(p.purchase_propensity is not None and p.segment_id is not None for p in profiles)
    rows = {(r.metric, r.method): r for r in wh.read("model_metrics").collect()}
    # Without challengers (model.baselines is false) the network is the published model, and the only candidate.
    assert {m for _, m in rows} == {"model", "network"}
    assert rows[("champion_propensity", "network")].value is None
    # The held-out AUC is reported, not asserted above chance: about 9 Taobao users are held out.
    auc = rows[("propensity_roc_auc", "model")]
    assert 0.0 <= auc.value <= 1.0 and 0 < auc.users < len(profiles)
    job = [r for r in wh.read("runs").collect() if r.job == "full"][0]
    losses = logged_losses(cfg.model, job.details["mlflow_run_id"])
    assert len(losses) == cfg.model.epochs and losses[-1] < losses[0], losses
    assert wh.count("segments") >= 2
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
    cfg = configured("taobao-sample", tmp_path / "warehouse", model=False)
    rec = run_mapping_ingest(cfg, spark, *resolve(cfg, "taobao-sample", str(extract)))
    wh = open_warehouse(cfg, spark)
    reasons = sorted(r.reason for r in wh.read("quarantine").collect() if r.source_table == "taobao:UserBehavior")
    assert reasons == ["malformed_row", "malformed_row", "unparseable_category_id", "unparseable_timestamp"]
    assert rec.rows_in["source:UserBehavior"] == 204 and rec.rows_quarantined["source:UserBehavior"] == 4


# ---------------------------------------------------------------- H&M (Swedish days; an incomplete catalogue)

HM_START, HM_STEP = dt.date(2020, 5, 1), dt.date(2020, 6, 8)


@pytest.fixture(scope="module")
def hm(spark, shared_data, tmp_path_factory):
    cfg, wh, first = run_in_two_slices(spark, "hm-sample", tmp_path_factory.mktemp("hm") / "warehouse",
                                       HM_START, HM_STEP)
    return cfg, wh, shared_data / "hm-sample"


def hm_events(path: Path, cfg) -> list[Event]:
    """Purchases from HM_START on: a customer's day is one order, an article's units on it one line."""
    zone = ZoneInfo(cfg.time.zone)
    category = {a["article_id"]: a["product_type_name"].strip() for a in read_rows(path / "articles_train_sample.csv")}
    lines = defaultdict(list)
    for r in read_rows(path / "transactions_train_sample.csv"):
        day = dt.date.fromisoformat(r["t_dat"])
        if day >= HM_START:
            lines[(r["customer_id"], day, r["article_id"])].append(float(r["price"]))
    return [Event(customer, dt.datetime.combine(day, dt.time(0), zone), "buy", category.get(article),
                  order=f"{customer}|{day}", amount=sum(prices), quantity=len(prices))
            for (customer, day, article), prices in lines.items()]


def test_hm_every_customer_matches_the_csv_after_full_and_incremental(hm):
    cfg, wh, path = hm
    customers = [c["customer_id"] for c in read_rows(path / "customers_sample.csv")]
    active = check_every_user(cfg, wh, hm_events(path, cfg), customers, browse=False, social=False)
    assert active >= 200
    runs = {r.job: r for r in wh.read("runs").collect()}
    assert runs["incremental"].status == "succeeded" and runs["incremental"].partitions  # the later slice


def test_hm_keeps_purchases_of_unlisted_articles_and_counts_them(hm):
    cfg, wh, path = hm
    lines = hm_events(path, cfg)
    unlisted = sum(1 for e in lines if e.category is None)
    counted = sum(r.rows_out.get("unknown_item_id:transactions", 0) for r in wh.read("runs").collect())
    assert counted == unlisted > len(lines) / 3  # many purchases name an article the catalogue lacks
    assert wh.count("quarantine") == 0


def test_hm_customers_carry_their_age_and_articles_their_photo(hm):
    cfg, wh, path = hm
    # Input tables keep the source's ids; every job pseudonymises them as it reads.
    ages = {c["customer_id"]: int(float(c["age"])) if c["age"] else None
            for c in read_rows(path / "customers_sample.csv")}
    assert {r.user_id: r.age for r in wh.read("users").collect()} == ages
    photos = {p.stem for p in (path / "images").rglob("*.jpg")}
    items = wh.read("items").collect()
    with_photo = {r.item_id for r in items if r.image_path}
    assert with_photo == photos & {r.item_id for r in items} and len(with_photo) == 4116
    assert all(Path(r.image_path).is_file() for r in items if r.image_path)
    described = sum(1 for r in items if r.description)
    assert described == sum(1 for a in read_rows(path / "articles_train_sample.csv") if a["detail_desc"].strip())


# ---------------------------------------------------------------- UCI Online Retail (UK time)

OR_START, OR_STEP = dt.date(2011, 11, 1), dt.date(2011, 11, 25)


@pytest.fixture(scope="module")
def retail(spark, shared_data, tmp_path_factory):
    cfg, wh, first = run_in_two_slices(spark, "online-retail-sample", tmp_path_factory.mktemp("retail") / "warehouse",
                                       OR_START, OR_STEP)
    return cfg, wh, shared_data / "online-retail-sample" / "OnlineRetail.csv", first


def cents(value: float) -> float:
    """Spark's round(x, 2): half up, on the double's exact value."""
    return float(Decimal(value).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def retail_lines(path: Path, cfg) -> tuple[list[Event], Counter, Counter]:
    """(clean purchase lines from OR_START on, validation reasons of lines from OR_START on, mapping rejections)."""
    zone, v = ZoneInfo(cfg.time.zone), cfg.validation
    rejected, reasons, seen, events = Counter(), Counter(), set(), []
    for r in read_rows(path):
        quantity, price = int(r["Quantity"]), float(r["UnitPrice"])
        if r["InvoiceNo"].startswith("C") or quantity < 0:
            rejected["cancellation"] += 1
            continue
        at = dt.datetime.strptime(r["InvoiceDate"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=zone)
        if at.date() < OR_START:
            continue
        user, amount = r["CustomerID"].split(".")[0] or None, cents(quantity * price)
        row = (r["InvoiceNo"], user, r["StockCode"], quantity, amount, at)
        reason = ("null_user_id" if user is None else "negative_amount" if amount < 0 else
                  "absurd_amount" if amount > v.max_amount else
                  "bad_quantity" if not 1 <= quantity <= v.max_quantity else
                  "duplicate_row" if row in seen else None)
        seen.add(row)
        if reason:
            reasons[reason] += 1
        else:
            events.append(Event(user, at, "buy", None, order=r["InvoiceNo"], amount=amount, quantity=quantity))
    return events, reasons, rejected


def test_retail_every_customer_matches_the_csv_after_full_and_incremental(retail):
    cfg, wh, path, _ = retail
    customers = sorted({r["CustomerID"].split(".")[0] for r in read_rows(path) if r["CustomerID"]})
    assert len(customers) == 3569
    events, _, _ = retail_lines(path, cfg)
    assert check_every_user(cfg, wh, events, customers, browse=False, social=False) >= 200


def test_retail_quarantine_counts_per_reason_match_the_csv(retail):
    cfg, wh, path, first_ingest = retail
    _, reasons, rejected = retail_lines(path, cfg)
    rows = wh.read("quarantine").collect()
    jobs = {r.run_id: r.job for r in wh.read("runs").collect()}
    # Each ingest reports the whole source's rejections; validation sees each line once, in full or incremental.
    mapped = Counter(r.reason for r in rows if r.run_id == first_ingest)
    validated = Counter(r.reason for r in rows if jobs[r.run_id] in ("full", "incremental")
                        and r.source_table == "transactions")
    assert mapped == rejected and rejected["cancellation"] == 633
    assert validated == reasons and reasons["null_user_id"] > 0
    assert {r.source_table for r in rows if jobs[r.run_id] in ("full", "incremental")} == {"transactions"}


# ---------------------------------------------------------------- Olist (Brazilian time)

SAO_PAULO = ZoneInfo("America/Sao_Paulo")
OLIST_AS_OF = dt.datetime(2018, 11, 1, tzinfo=SAO_PAULO)


@pytest.fixture(scope="module")
def olist(spark, shared_data, tmp_path_factory):
    cfg, wh = run_whole(spark, "olist-sample", tmp_path_factory.mktemp("olist") / "warehouse")
    return cfg, wh, shared_data / "olist-sample"


def olist_expected(path: Path):
    person = {c["customer_id"]: c["customer_unique_id"] for c in read_rows(path / "olist_customers_dataset.csv")}
    orders = {o["order_id"]: o for o in read_rows(path / "olist_orders_dataset.csv")}
    # Compared in UTC: Python compares two datetimes of one zone by wall clock, which DST makes ambiguous.
    parse = lambda s: dt.datetime.strptime(s, "%Y-%m-%d %H:%M:%S").replace(tzinfo=SAO_PAULO).astimezone(UTC)  # noqa: E731
    year_ago = dt.datetime(2017, 11, 1, tzinfo=SAO_PAULO).astimezone(UTC)  # 365 local days before as_of
    users = defaultdict(lambda: {"orders": set(), "orders_year": set(), "spend": 0.0, "spend_year": 0.0,
                                 "ratings": [], "last": None})
    for line in read_rows(path / "olist_order_items_dataset.csv"):
        order = orders[line["order_id"]]
        if order["order_status"] in ("canceled", "unavailable"):
            continue
        u, when = users[person[order["customer_id"]]], parse(order["order_purchase_timestamp"])
        u["orders"].add(line["order_id"])
        if when >= year_ago:
            u["orders_year"].add(line["order_id"])
            u["spend_year"] += float(line["price"])
        u["spend"] += float(line["price"])
        u["last"] = max(u["last"] or when, when)
    products = defaultdict(set)
    for line in read_rows(path / "olist_order_items_dataset.csv"):
        products[line["order_id"]].add(line["product_id"])
    reviews = set()  # as social rows: two reviews that become the same row are one row (duplicate_row)
    for review in read_rows(path / "olist_order_reviews_dataset.csv"):
        user = person[orders[review["order_id"]]["customer_id"]]
        only = products[review["order_id"]]
        text = " ".join(t for t in (review["review_comment_title"].strip(), review["review_comment_message"].strip())
                        if t).strip() or None
        reviews.add((user, min(only) if len(only) == 1 else None, text, int(review["review_score"]),
                     parse(review["review_creation_date"])))
    for user, _, _, rating, when in reviews:
        users[user]["ratings"].append(rating)
        users[user]["last"] = max(users[user]["last"] or when, when)
    return users


def test_olist_features_and_tags_match_the_csv_in_brazilian_time(olist):
    cfg, wh, path = olist
    assert cfg.as_of == OLIST_AS_OF
    expected, p_id = olist_expected(path), pseudonyms(cfg)
    profiles, stored = by_user(wh.read("profiles")), rule_tags_by_user(wh)
    repeat = sorted(u for u, e in expected.items() if len(e["orders"]) >= 2)
    assert len(repeat) >= 50
    for user in repeat:
        e, p, tags = expected[user], profiles[p_id(user)], stored[p_id(user)]
        assert p["frequency"] == len(e["orders"]) and p["orders_365d"] == len(e["orders_year"]), user
        assert p["monetary"] == approx(e["spend"]) and p["spend_365d"] == approx(e["spend_year"]), user
        assert p["review_count"] == len(e["ratings"]), user
        if e["ratings"]:
            assert p["mean_rating"] == approx(sum(e["ratings"]) / len(e["ratings"])), user
        # Olist has no browse data: those features are null, not zero, and the tag says why.
        assert (p["views"], p["sessions"], p["view_to_cart_rate"]) == (None, None, None), user
        idle = (OLIST_AS_OF.astimezone(UTC) - e["last"]).total_seconds() / 86400
        assert ("loyal" in tags) == (len(e["orders_year"]) >= cfg.tags.loyal_min_orders), user
        assert ("dormant" in tags) == (idle >= cfg.tags.dormant_days), user
        assert "browse_unknown" in tags and sum(t.endswith("_spender") for t in tags) == (e["spend_year"] > 0), user


def test_olist_canceled_orders_are_quarantined_not_dropped(olist):
    _, wh, path = olist
    canceled = {o["order_id"] for o in read_rows(path / "olist_orders_dataset.csv")
                if o["order_status"] in ("canceled", "unavailable")}
    lines = [i for i in read_rows(path / "olist_order_items_dataset.csv") if i["order_id"] in canceled]
    quarantined = [r for r in wh.read("quarantine").collect() if r.reason == "order_canceled"]
    assert len(quarantined) == len(lines) > 0
