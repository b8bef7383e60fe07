"""Every kind of bad row lands in quarantine with the right reason; counts reconcile exactly."""
from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from conf import load_config
from jobs.full import run_full
from jobs.privacy import load_key, pseudonym
from jobs.storage import SchemaMismatch, TableNotFound
from jobs.validation import REASON, tag_inputs
from jobs.validation.validate import PARSE_ERROR, ObservedTable, table_reason_counts
from schemas import INPUT_TABLES
from tests.helpers import padded, ts

# Embedding is off: these runs check validation and commits; the embed stage has its own tests.
CFG_SETTINGS = ["spark.shuffle_partitions=2", "model.enabled=false", "embedding.enabled=false",
                "as_of=2025-01-31T00:00:00Z", "validation.ts_min=2025-01-01T00:00:00Z",
                "validation.ts_max=2025-02-01T00:00:00Z"]
CFG = load_config(overrides=CFG_SETTINGS)
D = dt.date(2025, 1, 10)
T = ts(10)


def nullable(schema: StructType) -> StructType:
    """Input rows may break the schema's NOT NULL promises: that is what validation is for."""
    return StructType([f.__class__(f.name, f.dataType, True, f.metadata) for f in schema.fields])


def frame(spark, table, rows):
    return padded(spark, rows, nullable(INPUT_TABLES[table].schema))


GOOD_USER = ("u1", ts(1, year=2024), "f", 1990, "Hangzhou", "Ann", "+86", "a@x")
GOOD_ITEM = ("i1", "Nova lamp", "home", "Nova", 25.0)
GOOD_TX = ("o1", "u1", "i1", 1, 25.0, T, D)
GOOD_BROWSE = ("u1", "i1", "view", T, 1500, "s1", D)
GOOD_SOCIAL = ("u1", "i1", "review", "nice lamp", 5, T, D)


def replace(row, index, value):
    return tuple(value if i == index else v for i, v in enumerate(row))


BAD_ROWS = {
    "users": {
        "null_user_id": [replace(GOOD_USER, 0, None)],
        "duplicate_row": [GOOD_USER],
        "duplicate_user_id": [replace(GOOD_USER, 4, "Wuhan")],  # sorts after Hangzhou: the original wins
    },
    "items": {
        "null_item_id": [replace(GOOD_ITEM, 0, None)],
        "negative_price": [replace(GOOD_ITEM, 4, -1.0)],
        "duplicate_row": [GOOD_ITEM],
        "duplicate_item_id": [replace(GOOD_ITEM, 1, "Other lamp")],
    },
    "transactions": {
        "null_order_id": [replace(GOOD_TX, 0, None)],
        "null_user_id": [replace(GOOD_TX, 1, None)],
        "null_item_id": [replace(GOOD_TX, 2, None)],
        "null_ts": [replace(GOOD_TX, 5, None)],
        "null_dt": [replace(GOOD_TX, 6, None)],
        "unknown_user_id": [replace(GOOD_TX, 1, "ghost")],
        "negative_amount": [replace(GOOD_TX, 4, -5.0)],
        "absurd_amount": [replace(GOOD_TX, 4, 1e9)],
        "bad_quantity": [replace(GOOD_TX, 3, 0)],
        "ts_out_of_range": [replace(GOOD_TX, 5, ts(1, year=1999)), replace(GOOD_TX, 5, ts(1, month=3))],
        "ts_after_partition": [replace(GOOD_TX, 5, ts(12))],  # the 12th, filed under the 10th
        "duplicate_row": [GOOD_TX],
    },
    "browse": {
        "null_user_id": [replace(GOOD_BROWSE, 0, None)],
        "null_item_id": [replace(GOOD_BROWSE, 1, None)],
        "null_event_type": [replace(GOOD_BROWSE, 2, None)],
        "null_ts": [replace(GOOD_BROWSE, 3, None)],
        "null_dt": [replace(GOOD_BROWSE, 6, None)],
        "unknown_event_type": [replace(GOOD_BROWSE, 2, "hover")],
        "unknown_user_id": [replace(GOOD_BROWSE, 0, "ghost")],
        "unknown_item_id": [replace(GOOD_BROWSE, 1, "ghost")],
        "negative_dwell": [replace(GOOD_BROWSE, 4, -1)],
        "ts_out_of_range": [replace(GOOD_BROWSE, 3, ts(1, year=2031))],
        "ts_after_partition": [replace(GOOD_BROWSE, 3, ts(20))],
        "duplicate_row": [GOOD_BROWSE, GOOD_BROWSE],
    },
    "social": {
        "null_user_id": [replace(GOOD_SOCIAL, 0, None)],
        "null_kind": [replace(GOOD_SOCIAL, 2, None)],
        "null_ts": [replace(GOOD_SOCIAL, 5, None)],
        "null_dt": [replace(GOOD_SOCIAL, 6, None)],
        "unknown_kind": [replace(GOOD_SOCIAL, 2, "rate")],
        "unknown_user_id": [replace(GOOD_SOCIAL, 0, "ghost")],
        "unknown_item_id": [replace(GOOD_SOCIAL, 1, "ghost")],
        "rating_out_of_range": [replace(GOOD_SOCIAL, 4, 6)],
        "ts_out_of_range": [replace(GOOD_SOCIAL, 5, ts(31, month=12, year=2024))],
        "ts_after_partition": [replace(GOOD_SOCIAL, 5, ts(12))],
        "duplicate_row": [GOOD_SOCIAL],
    },
}
GOOD = {"users": [GOOD_USER, ("u2", None, None, None, None, None, None, None)], "items": [GOOD_ITEM],
        # A purchase of an item the catalogue does not list is kept (validation.unknown_items.transactions: keep).
        "transactions": [GOOD_TX, replace(GOOD_TX, 0, "o2"), replace(GOOD_TX, 2, "unlisted")], "browse": [GOOD_BROWSE],
        "social": [GOOD_SOCIAL, ("u2", None, "follow", None, None, T, D)]}


def write_bad_inputs(spark, warehouse):
    for table in INPUT_TABLES:
        rows = GOOD[table] + [r for bad in BAD_ROWS[table].values() for r in bad]
        warehouse.overwrite(table, frame(spark, table, rows))
    return warehouse


def cfg_for(warehouse):
    return CFG.model_copy(update={"warehouse": CFG.warehouse.model_copy(update={"path": warehouse.root})})


@pytest.fixture
def bad_warehouse(spark, warehouse):
    return write_bad_inputs(spark, warehouse)


@pytest.fixture(scope="module")
def validated(spark, tmp_path_factory):
    """One full run over the bad inputs, shared by the tests that only read its outputs."""
    from jobs.storage import Warehouse

    wh = write_bad_inputs(spark, Warehouse(str(tmp_path_factory.mktemp("validated") / "warehouse"), spark,
                                           engine="delta-rs"))
    return wh, run_full(cfg_for(wh), spark)


def test_every_bad_row_is_quarantined_with_its_reason(validated):
    bad_warehouse, summary = validated
    cfg = cfg_for(bad_warehouse)
    quarantined = Counter((r.source_table, r.reason) for r in bad_warehouse.read("quarantine").collect())
    expected = Counter({(t, reason): len(rows) for t, by in BAD_ROWS.items() for reason, rows in by.items()})
    assert quarantined == expected
    # Counts reconcile exactly: every row is clean or quarantined, in the report and in `runs`.
    report = summary.report
    for table in INPUT_TABLES:
        n_bad = sum(len(r) for r in BAD_ROWS[table].values())
        assert report.rows_in[table] == len(GOOD[table]) + n_bad
        assert report.rows_clean[table] == len(GOOD[table])
        assert report.rows_quarantined[table] == n_bad
    run = [r for r in bad_warehouse.read("runs").collect() if r.run_id == summary.run_id][0]
    assert run.status == "succeeded"
    assert all(run.rows_in[t] == report.rows_clean[t] + run.rows_quarantined[t] for t in INPUT_TABLES)
    key = load_key(cfg.privacy.key_file, False, {})
    assert sorted(r.user_id for r in bad_warehouse.read("profiles").collect()) == sorted(
        pseudonym(u, key) for u in ("u1", "u2"))


def test_purchases_of_unlisted_items_are_kept_and_counted_in_runs(validated):
    bad_warehouse, summary = validated
    assert summary.report.unknown_items == {"transactions": 1}
    run = [r for r in bad_warehouse.read("runs").collect() if r.run_id == summary.run_id][0]
    assert run.rows_out["unknown_item_id:transactions"] == 1
    spend = {p.frequency: p.monetary for p in bad_warehouse.read("profiles").collect() if p.frequency}
    assert spend == {2: 75.0}  # u1: orders o1 and o2, three lines of 25.0, one of them on the unlisted item


def test_the_quarantine_policy_quarantines_events_on_unlisted_items(spark):
    strict = CFG.validation.model_copy(update={"unknown_items": {"transactions": "quarantine"}})
    raw = {"users": frame(spark, "users", GOOD["users"]), "items": frame(spark, "items", GOOD["items"]),
           "transactions": frame(spark, "transactions", GOOD["transactions"])}
    reasons = sorted(str(r[REASON]) for r in tag_inputs(raw, strict, CFG.time.zone)["transactions"].collect())
    assert reasons == ["None", "None", "unknown_item_id"]
    kept = sorted(str(r[REASON]) for r in tag_inputs(raw, CFG.validation, CFG.time.zone)["transactions"].collect())
    assert kept == ["None", "None", "None"]


def test_a_user_over_the_rows_per_partition_cap_is_quarantined_there_and_named(spark):
    from jobs.validation import quarantine_message

    capped = CFG.validation.model_copy(update={"max_user_rows_per_partition": 2})
    other_day = D + dt.timedelta(days=1)
    rows = ([replace(replace(GOOD_BROWSE, 0, "u2"), 3, ts(10, minute=m)) for m in range(3)]      # 3 on D: over
            + [replace(GOOD_BROWSE, 3, ts(10, minute=m)) for m in range(2)]                       # 2 on D: at the cap
            + [replace(replace(replace(GOOD_BROWSE, 0, "u2"), 3, ts(11)), 6, other_day)])         # 1 the next day
    raw = {"users": frame(spark, "users", GOOD["users"]), "items": frame(spark, "items", GOOD["items"]),
           "browse": frame(spark, "browse", rows)}
    got = Counter((r.user_id, r.dt, r[REASON]) for r in tag_inputs(raw, capped, CFG.time.zone)["browse"].collect())
    assert got == Counter({("u2", D, "too_many_rows_for_user"): 3, ("u1", D, None): 2, ("u2", other_day, None): 1})
    assert quarantine_message("browse", "too_many_rows_for_user", 3, 6, capped) == (
        "browse: 3 of 6 rows belong to a user with more than 2 rows in one dt partition (a bot or a replay; "
        "validation.max_user_rows_per_partition) (column user_id); moved to quarantine with reason "
        "too_many_rows_for_user")


def test_a_row_filed_more_than_a_day_before_its_local_day_is_quarantined(spark):
    from jobs.validation import quarantine_message

    china = CFG.model_copy(update={"time": CFG.time.model_copy(update={"zone": "Asia/Shanghai"})})
    utc = dt.timezone.utc
    at = {  # all filed under D, the 10th; China is UTC+8
        "late": dt.datetime(2025, 1, 7, 12, tzinfo=utc),          # the 7th: late data, clean
        "next day": dt.datetime(2025, 1, 11, 15, 59, tzinfo=utc),  # 23:59 on the 11th in China: D + 1, clean
        "early": dt.datetime(2025, 1, 11, 16, tzinfo=utc),         # 00:00 on the 12th in China: D + 2
    }
    rows = [replace(replace(GOOD_BROWSE, 5, name), 3, when) for name, when in at.items()]
    raw = {"users": frame(spark, "users", GOOD["users"]), "items": frame(spark, "items", GOOD["items"]),
           "browse": frame(spark, "browse", rows)}
    got = {r.session_id: r[REASON] for r in tag_inputs(raw, china.validation, china.time.zone)["browse"].collect()}
    assert got == {"late": None, "next day": None, "early": "ts_after_partition"}
    # In UTC the same instant is on the 11th: D + 1, clean.
    assert {r[REASON] for r in tag_inputs(raw, CFG.validation, "UTC")["browse"].collect()} == {None}
    assert quarantine_message("browse", "ts_after_partition", 1, 3, china.validation) == (
        "browse: 1 of 3 rows have a local day more than 1 day after their dt partition (filed early; "
        "validation.max_days_after_partition) (column ts); moved to quarantine with reason ts_after_partition")


@pytest.mark.parametrize("code, in_the_same_pass", [("unparseable_amount", True), ("vendor_code_7", False)])
def test_reasons_are_counted_by_the_pass_that_reads_the_rows_unless_a_reader_gave_its_own(spark, code,
                                                                                         in_the_same_pass):
    """The quarantine write counts the rows by reason as it reads them; a code no check or reader of the
    table's columns gives (an adapter's own) is not among those counted, and the table is counted apart."""
    rows = GOOD["transactions"] + BAD_ROWS["transactions"]["negative_amount"] + [replace(GOOD_TX, 0, "o9")]
    raw = {"users": frame(spark, "users", GOOD["users"]), "items": frame(spark, "items", GOOD["items"]),
           "transactions": frame(spark, "transactions", rows).withColumn(
               PARSE_ERROR, F.when(F.col("order_id") == "o9", F.lit(code)))}
    tagged = tag_inputs(raw, CFG.validation, CFG.time.zone)["transactions"]
    observed = ObservedTable.of("transactions", tagged, CFG.validation)
    observed.rows.write.format("noop").mode("overwrite").save()
    # o1 and o2 clean, the unlisted item's line kept and counted, one negative amount, o9 failed to parse.
    expected = {(None, False): 2, (None, True): 1, ("negative_amount", False): 1, (code, False): 1}
    if in_the_same_pass:
        assert observed.counts() == expected
    else:
        assert observed.counts() is None
        assert table_reason_counts("transactions", tagged, CFG.validation) == expected


def test_quarantine_keeps_the_raw_row(validated):
    bad_warehouse, _ = validated
    cfg = cfg_for(bad_warehouse)
    quarantine = bad_warehouse.read("quarantine").collect()
    raw = [r.raw_row for r in quarantine if r.reason == "negative_amount"]
    user = pseudonym("u1", load_key(cfg.privacy.key_file, False, {}))
    assert raw == ['{"order_id":"o1","user_id":"' + user + '","item_id":"i1","quantity":1,"amount":-5.0,'
                   '"ts":"2025-01-10T12:00:00.000Z","dt":"2025-01-10"}']
    # PII columns of a quarantined user row are redacted: quarantine is an output table.
    conflict = [r.raw_row for r in quarantine if r.reason == "duplicate_user_id"][0]
    assert '"name":"<redacted>"' in conflict and "Ann" not in conflict and '"city":"Wuhan"' in conflict


def test_missing_required_table_stops_before_any_output(spark, warehouse):
    warehouse.overwrite("users", frame(spark, "users", [GOOD_USER]))
    warehouse.overwrite("items", frame(spark, "items", [GOOD_ITEM]))
    cfg = cfg_for(warehouse)
    with pytest.raises(TableNotFound, match=r"transactions: table not found at .*transactions"):
        run_full(cfg, spark)
    assert not any(warehouse.exists(t) for t in ("profiles", "labels", "quarantine"))
    failed = warehouse.read("runs").collect()
    assert [r.status for r in failed] == ["failed"] and "transactions: table not found" in failed[0].error


def test_wrong_schema_stops_before_any_output(spark, bad_warehouse):
    import pyarrow as pa
    from deltalake import write_deltalake

    write_deltalake(bad_warehouse.path("items"), pa.table({"item_id": ["i1"], "price": ["cheap"]}), mode="overwrite",
                    schema_mode="overwrite")
    cfg = cfg_for(bad_warehouse)
    with pytest.raises(SchemaMismatch, match="items: .*column price is string, expected double"):
        run_full(cfg, spark)
    assert not any(bad_warehouse.exists(t) for t in ("profiles", "labels", "quarantine"))


AMOUNTS = st.one_of(st.none(), st.floats(-1e3, 1e10, allow_nan=False), st.just(-0.0))
TIMES = st.one_of(st.none(), st.datetimes(dt.datetime(1990, 1, 1), dt.datetime(2040, 1, 1), timezones=st.just(dt.timezone.utc)))
TX_ROWS = st.lists(st.tuples(st.sampled_from(["o1", "o2", None]), st.sampled_from(["u1", "u2", "ghost", None]),
                             st.sampled_from(["i1", "ghost", None]), st.one_of(st.none(), st.integers(-5, 500)),
                             AMOUNTS, TIMES), min_size=1, max_size=30)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=TX_ROWS)
def test_fuzzed_transactions_reconcile_and_clean_rows_are_valid(spark, rows):
    raw = {"users": frame(spark, "users", GOOD["users"]), "items": frame(spark, "items", GOOD["items"]),
           "transactions": frame(spark, "transactions", [(*r, r[5].date() if r[5] else D) for r in rows])}
    tagged = tag_inputs(raw, CFG.validation, CFG.time.zone)["transactions"].collect()
    assert len(tagged) == len(rows)  # nothing dropped, nothing invented
    v = CFG.validation
    for r in tagged:
        if r[REASON] is None:
            assert None not in (r.order_id, r.user_id, r.item_id, r.ts) and r.user_id in ("u1", "u2")
            # "ghost" is not in the catalogue: kept, as the default policy keeps purchases of unlisted items.
            assert r.item_id in ("i1", "ghost") and (r.amount is None or 0 <= r.amount <= v.max_amount)
            assert r.quantity is None or 1 <= r.quantity <= v.max_quantity
            assert v.ts_min <= r.ts.replace(tzinfo=dt.timezone.utc) < v.ts_max
    clean = [tuple(r[c] for c in INPUT_TABLES["transactions"].schema.fieldNames()) for r in tagged if r[REASON] is None]
    assert len(clean) == len(set(clean))  # exact duplicates never survive
