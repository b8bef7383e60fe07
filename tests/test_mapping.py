"""Mapping files: bad ones fail at start with key and line; every format lands the same tables; no source row is lost."""
from __future__ import annotations

import csv
import datetime as dt
import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import write_deltalake
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conf import load_config
from jobs.mapping.ingest import mapping_path, resolve, run_mapping_ingest
from jobs.mapping.sources import parse_source, parsed_rows, read_source, source_files
from jobs.mapping.spec import MappingError, load_mapping, parse_mapping
from jobs.mapping.tables import build_tables
from jobs.storage import Warehouse
from jobs.validation import REASON, tag_inputs
from jobs.validation.validate import PARSE_ERROR
from tests.conftest import portrait_here

UTC = dt.timezone.utc
README = Path(__file__).resolve().parent.parent / "README.md"

EVENTS_MAPPING = """\
name: shop
zone: Asia/Shanghai
sources:
  events:
    format: {format}
    files: {files}
    columns:
      uid: {{pattern: "[0-9]+", user_id: true}}
      sku: {{pattern: "[A-Z][0-9]+"}}
      action: {{values: {{pv: view, buy: buy, cart: cart}}}}
      qty: {{type: int}}
      at: {{type: timestamp, format: "yyyy-MM-dd HH:mm:ss"}}
tables:
  browse:
    from: events
    where: "action <> 'buy'"
    columns: {{user_id: uid, item_id: sku, event_type: action, ts: at}}
  transactions:
    from: events
    where: "action = 'buy'"
    reject:
      - {{when: "qty = 0", reason: zero_quantity, column: qty}}
    columns:
      order_id: "concat('o-', uid, '-', cast(unix_timestamp(at) AS string))"
      user_id: uid
      item_id: sku
      quantity: qty
      ts: at
  users: {{from: events, distinct: true, columns: {{user_id: uid}}}}
  items: {{from: events, distinct: true, columns: {{item_id: sku}}}}
"""
FIELDS = ["uid", "sku", "action", "qty", "at"]
# Naive Shanghai times: a minute either side of midnight fall on two days.
ROWS = [("1", "A1", "pv", "1", "2025-01-10 23:59:00"), ("1", "A1", "buy", "2", "2025-01-11 00:01:00"),
        ("2", "B7", "cart", "1", "2025-01-11 12:00:00"), ("2", "B7", "buy", "0", "2025-01-11 12:05:00")]


def write_source(kind: str, folder: Path) -> str:
    """ROWS as a source of ``kind``; returns the ``files`` entry of the mapping."""
    folder.mkdir(parents=True)
    records = [dict(zip(FIELDS, r)) for r in ROWS]
    if kind == "csv":
        with open(folder / "events.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(FIELDS)
            writer.writerows(ROWS)
        return "events.csv"
    if kind == "jsonl":
        (folder / "events.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        return "events.jsonl"
    table = pa.Table.from_pylist([{**r, "qty": int(r["qty"])} for r in records])  # typed: qty is an integer
    if kind == "parquet":
        pq.write_table(table, folder / "events.parquet")
        return "events.parquet"
    write_deltalake(str(folder / "events"), table)
    return "events"


def test_a_csv_source_lands_the_tables_in_local_days_with_its_quarantine(spark, tmp_path):
    files = write_source("csv", tmp_path / "source")
    (tmp_path / "shop.yaml").write_text(EVENTS_MAPPING.format(format="csv", files=files))
    cfg = load_config(overrides=[f"warehouse.path={tmp_path / 'warehouse'}", "time.zone=Asia/Shanghai",
                                 f"privacy.key_file={tmp_path / 'key'}", "spark.shuffle_partitions=2"])
    rec = run_mapping_ingest(cfg, spark, *resolve(cfg, str(tmp_path / "shop.yaml"), str(tmp_path / "source")))
    wh = Warehouse(cfg.warehouse.path, spark, "delta-rs")
    browse = sorted((r.user_id, r.item_id, r.event_type, r.ts, r.dt) for r in wh.read("browse").collect())
    assert browse == [("1", "A1", "view", dt.datetime(2025, 1, 10, 15, 59), dt.date(2025, 1, 10)),
                      ("2", "B7", "cart", dt.datetime(2025, 1, 11, 4, 0), dt.date(2025, 1, 11))]
    tx = [(r.user_id, r.quantity, r.ts, r.dt) for r in wh.read("transactions").collect()]
    # 00:01 in Shanghai is 16:01 UTC the day before: the partition is the local date.
    assert tx == [("1", 2, dt.datetime(2025, 1, 10, 16, 1), dt.date(2025, 1, 11))]
    assert (wh.count("users"), wh.count("items"), wh.count("social")) == (2, 2, 0)
    rejected = [(r.source_table, r.reason) for r in wh.read("quarantine").collect()]
    assert rejected == [("shop:transactions", "zero_quantity")]
    assert rec.rows_in == {"source:events": 4} and rec.rows_quarantined["shop:transactions"] == 1


def built(spark, folder: Path, kind: str, files: str) -> dict[str, list[tuple]]:
    """The input tables a mapping builds from a source (no warehouse), as sorted rows."""
    mapping = parse_mapping(EVENTS_MAPPING.format(format=kind, files=files))
    source = mapping.sources["events"]
    parsed = read_source(spark, source, source_files(folder, source, "events")).transform(
        parse_source(source, "Asia/Shanghai", None))
    tables, _ = build_tables(spark, mapping, {"events": parsed_rows(parsed)}, "Asia/Shanghai", None, "run",
                             dt.datetime.now(UTC))
    return {t: sorted(tuple(r) for r in df.collect()) for t, df in tables.items()}


def test_json_lines_parquet_and_delta_build_the_same_tables_as_csv(spark, tmp_path):
    want = built(spark, tmp_path / "csv", "csv", write_source("csv", tmp_path / "csv"))
    assert len(want["browse"]) == 2 and len(want["transactions"]) == 1
    for kind in ("jsonl", "parquet", "delta"):  # parquet and delta hold qty as an integer column
        assert built(spark, tmp_path / kind, kind, write_source(kind, tmp_path / kind)) == want, kind


def bad(text: str) -> str:
    with pytest.raises(MappingError) as err:
        parse_mapping(text, "bad.yaml")
    return str(err.value)


GOOD = EVENTS_MAPPING.format(format="csv", files="events.csv")


def test_the_example_mapping_is_good():
    assert parse_mapping(GOOD).tables["transactions"].reject[0].reason == "zero_quantity"


@pytest.mark.parametrize("change, line, says", [
    (("      qty: {type: int}", "      qty: {typ: int}"), 11, r"sources\.events\.columns\.qty\.typ: Extra inputs"),
    (("      qty: {type: int}", "      qty: {type: integer}"), 11, r"sources\.events\.columns\.qty\.type: Input should be"),
    (("    format: csv", "    format: xlsx"), 5, r"sources\.events\.format: Input should be"),
    (("    columns: {user_id: uid, item_id: sku, event_type: action, ts: at}",
      "    columns: {user_id: uid, item: sku, event_type: action, ts: at}"), 17, r"tables\.browse\.columns\.item: browse has no such column"),
    (("  items: {from: events,", "  items: {from: evnts,"), 30, r"tables\.items\.from: unknown source 'evnts'"),
    (("      ts: at\n  users", "  users"), 23, r"tables\.transactions\.columns: ts is required"),
    (("zone: Asia/Shanghai", "zone: Asia/Shanghia"), 2, r"zone: Value error, 'Asia/Shanghia' is not an IANA"),
    (("      sku: {pattern: \"[A-Z][0-9]+\"}", "      sku: {pattern: \"[A-Z\"}"), 9, r"sources\.events\.columns\.sku\.pattern: .*regular expression"),
    (("reason: zero_quantity", "reason: Zero Quantity"), 22, r"reject\.0\.reason: .*lower-case code"),
    (("  users: {from: events, distinct: true, columns: {user_id: uid}}\n", ""), None, r"tables\.users is missing"),
    (("    where: \"action <> 'buy'\"", "    where: \"action <> 'buy'\"\n   oops: 1"), 17, r"not valid YAML"),
])
def test_a_bad_mapping_fails_at_start_naming_the_key_and_the_line(change, line, says):
    old, new = change
    assert old in GOOD
    message = bad(GOOD.replace(old, new))
    assert message.startswith("mapping bad.yaml: ")
    assert re.search(says, message), message
    if line is not None:
        assert f"line {line}:" in message, message


def test_a_mapping_whose_sql_does_not_run_names_the_table_and_its_line(spark, tmp_path):
    files = write_source("csv", tmp_path / "source")
    text = EVENTS_MAPPING.format(format="csv", files=files).replace("quantity: qty", "quantity: qtty")
    (tmp_path / "shop.yaml").write_text(text)
    cfg = load_config(overrides=[f"warehouse.path={tmp_path / 'warehouse'}", f"privacy.key_file={tmp_path / 'key'}"])
    with pytest.raises(MappingError, match=r"line 18: tables\.transactions: its SQL does not run: .*qtty"):
        run_mapping_ingest(cfg, spark, *resolve(cfg, str(tmp_path / "shop.yaml"), str(tmp_path / "source")))


def test_the_readme_shows_a_packaged_mapping_file_whole():
    shown = re.search(r"```yaml\n(# UCI Online Retail.*?)```", README.read_text(), re.S)
    assert shown is not None, "the README's mapping example is missing"
    packaged = Path(str(mapping_path("online-retail-sample"))).read_text()
    assert shown.group(1) == packaged
    load_mapping(mapping_path("online-retail-sample"))


# Source lines as a user's export might hold them: good, truncated, garbage, quoted, empty fields.
FIELD_TEXT = st.one_of(st.sampled_from(["1", "22", "A1", "B7", "pv", "buy", "cart", "fav", "0", "2", "-1", "",
                                        "2025-01-11 00:01:00", "2025-13-40 99:99:99", "2025-01-10 23:59:00"]),
                       st.text(alphabet='ab,"\\ 9\n', max_size=6))
LINES = st.lists(st.lists(FIELD_TEXT, min_size=0, max_size=7), min_size=1, max_size=25)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=LINES)
def test_fuzzed_source_rows_are_never_lost(spark, tmp_path_factory, lines):
    folder = tmp_path_factory.mktemp("fuzz")
    with open(folder / "events.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(FIELDS)
        writer.writerows(lines)
    # Quoted fields may hold line breaks, as Python's csv module writes and reads them.
    mapping = parse_mapping(EVENTS_MAPPING.format(format="csv", files="events.csv\n    multiline: true"))
    source = mapping.sources["events"]
    parsed = read_source(spark, source, source_files(folder, source, "events")).transform(
        parse_source(source, "Asia/Shanghai", None)).cache()
    rows_in = parsed.count()
    with open(folder / "events.csv", newline="") as f:
        records = [r for r in csv.reader(f) if r]  # a blank line is no record, for Spark as for csv
    assert rows_in == len(records) - 1
    unparsed = parsed.filter(parsed[PARSE_ERROR].isNotNull()).count()
    tables, rejected = build_tables(spark, mapping, {"events": parsed_rows(parsed)}, "Asia/Shanghai", None, "run",
                                    dt.datetime.now(UTC))
    n_rejected = rejected.count() if rejected is not None else 0
    # Every parsed row goes to exactly one of browse or transactions (buy or not), or is rejected.
    assert rows_in == unparsed + n_rejected + tables["browse"].count() + tables["transactions"].count()
    china = load_config(overrides=["time.zone=Asia/Shanghai"])
    tagged = tag_inputs(tables, china.validation, china.time.zone)
    for name in ("browse", "transactions"):
        reasons = [r[REASON] for r in tagged[name].collect()]
        assert len(reasons) == tables[name].count()  # validation: every row clean or quarantined, none dropped


def test_the_cli_refuses_a_bad_mapping_before_starting_spark(spark, tmp_path):
    (tmp_path / "bad.yaml").write_text(GOOD.replace("qty: {type: int}", "qty: {type: integer}"))
    result = portrait_here("ingest", "--mapping", str(tmp_path / "bad.yaml"), cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    message = " ".join(result.stderr.split())  # rich wraps long lines
    assert "line 11: sources.events.columns.qty.type: Input should be" in message
    assert "Spark" not in result.stderr and not (tmp_path / "warehouse").exists()
