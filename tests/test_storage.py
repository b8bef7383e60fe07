"""The storage layer through delta-rs, read back through Spark and through delta-rs itself."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from chispa import assert_df_equality
from deltalake import DeltaTable

from jobs.storage import SchemaMismatch, TableNotFound
from schemas.events import TRANSACTIONS
from schemas.items import ITEMS
from tests.helpers import padded

UTC = dt.timezone.utc


def tx_rows(*specs):
    """(order_id, user_id, amount, day) -> full transaction rows."""
    return [(o, u, "i1", 1, amt, dt.datetime(2025, 1, d, 12, tzinfo=UTC), dt.date(2025, 1, d))
            for o, u, amt, d in specs]


def tx_df(spark, *specs):
    return spark.createDataFrame(tx_rows(*specs), TRANSACTIONS)


def test_overwrite_then_read_back_identically_through_spark(spark, warehouse):
    df = tx_df(spark, ("o1", "u1", 10.0, 1), ("o2", "u2", 20.5, 2), ("o3", "u1", None, 2))
    warehouse.overwrite("transactions", df)
    back = warehouse.read("transactions")
    assert_df_equality(back, df, ignore_row_order=True, ignore_nullable=True, ignore_metadata=True)


def test_tables_are_reader1_writer2_without_deletion_vectors(spark, warehouse):
    warehouse.overwrite("transactions", tx_df(spark, ("o1", "u1", 1.0, 1)))
    warehouse.merge("users", spark.createDataFrame([("u1", None, None, None, None, None, None, None, None)],
                                                   warehouse.spec("users").schema))
    for name in ("transactions", "users"):
        table = DeltaTable(warehouse.path(name))
        protocol = table.protocol()
        assert (protocol.min_reader_version, protocol.min_writer_version) == (1, 2)
        assert table.metadata().configuration.get("delta.enableDeletionVectors") in (None, "false")


def test_delta_rs_reads_what_the_warehouse_wrote(spark, warehouse):
    warehouse.overwrite("transactions", tx_df(spark, ("o1", "u1", 10.0, 1), ("o2", "u2", 20.5, 3)))
    table = DeltaTable(warehouse.path("transactions")).to_pyarrow_table().sort_by("order_id")
    assert table.column("order_id").to_pylist() == ["o1", "o2"]
    assert table.column("dt").to_pylist() == [dt.date(2025, 1, 1), dt.date(2025, 1, 3)]
    assert sorted(DeltaTable(warehouse.path("transactions")).partitions(), key=str) == [
        {"dt": "2025-01-01"}, {"dt": "2025-01-03"}]


def test_append_adds_rows(spark, warehouse):
    warehouse.overwrite("transactions", tx_df(spark, ("o1", "u1", 10.0, 1)))
    warehouse.append("transactions", tx_df(spark, ("o2", "u2", 5.0, 2)))
    assert sorted(r.order_id for r in warehouse.read("transactions").collect()) == ["o1", "o2"]


def test_overwrite_replaces_everything(spark, warehouse):
    warehouse.overwrite("transactions", tx_df(spark, ("o1", "u1", 10.0, 1)))
    warehouse.overwrite("transactions", tx_df(spark, ("o9", "u9", 9.0, 5)))
    assert [r.order_id for r in warehouse.read("transactions").collect()] == ["o9"]


def test_partition_overwrite_replaces_only_named_partitions(spark, warehouse):
    warehouse.overwrite("transactions", tx_df(spark, ("o1", "u1", 1.0, 1), ("o2", "u1", 2.0, 2), ("o3", "u1", 3.0, 3)))
    warehouse.overwrite_partitions("transactions", tx_df(spark, ("o2b", "u1", 20.0, 2)), ["2025-01-02"])
    assert sorted(r.order_id for r in warehouse.read("transactions").collect()) == ["o1", "o2b", "o3"]


def test_merge_updates_matches_and_inserts_new_keys(spark, warehouse):
    schema = warehouse.spec("users").schema
    warehouse.merge("users", padded(
        spark, [("u1", None, "f", 1990, "Paris"), ("u2", None, "m", 1980, "Lyon")], schema))
    warehouse.merge("users", padded(
        spark, [("u2", None, "m", 1980, "Nice"), ("u3", None, None, None, "Rome")], schema))
    rows = sorted((r.user_id, r.city) for r in warehouse.read("users").collect())
    assert rows == [("u1", "Paris"), ("u2", "Nice"), ("u3", "Rome")]


def test_empty_write_creates_a_readable_empty_table(spark, warehouse):
    warehouse.overwrite("transactions", spark.createDataFrame([], TRANSACTIONS))
    assert warehouse.exists("transactions")
    assert warehouse.read("transactions").count() == 0


def test_missing_table_names_table_and_path(warehouse):
    with pytest.raises(TableNotFound, match=r"browse: table not found at .*warehouse/browse"):
        warehouse.read("browse")


def test_wrong_schema_names_the_column(spark, warehouse, tmp_path):
    from deltalake import write_deltalake
    import pyarrow as pa

    write_deltalake(warehouse.path("items"), pa.table({"item_id": ["a"], "title": ["t"], "category": ["c"],
                                                       "brand": ["b"], "price": ["cheap"]}))
    with pytest.raises(SchemaMismatch, match="items: .*column price is string, expected double"):
        warehouse.read("items")


def test_commits_record_the_run_id(spark, warehouse):
    warehouse.overwrite("transactions", tx_df(spark, ("o1", "u1", 1.0, 1)), run_id="run-123")
    log = sorted(Path(warehouse.path("transactions"), "_delta_log").glob("*.json"))[-1]
    assert "run-123" in log.read_text()


def test_a_table_written_before_a_nullable_column_was_added_reads_it_as_null_and_gains_it_on_overwrite(
        spark, warehouse):
    import pyarrow as pa
    from deltalake import write_deltalake

    # items as an earlier Portrait wrote it: no description, no image_path (both nullable now).
    write_deltalake(warehouse.path("items"), pa.table({"item_id": ["a"], "title": ["t"], "category": ["c"],
                                                       "brand": ["b"], "price": [2.5]}))
    read = warehouse.read("items").collect()
    assert [(r.item_id, r.price, r.description, r.image_path) for r in read] == [("a", 2.5, None, None)]
    warehouse.overwrite("items", padded(spark, [("b", "u", "c", "b", 1.0, "a dress", "/p/b.jpg")], ITEMS))
    stored = [f.name for f in DeltaTable(warehouse.path("items")).schema().fields]
    assert stored == ITEMS.fieldNames()
    assert [(r.item_id, r.image_path) for r in warehouse.read("items").collect()] == [("b", "/p/b.jpg")]


def test_float_vectors_are_written_without_a_dictionary_and_other_columns_keep_theirs(spark, warehouse):
    import pyarrow.parquet as pq

    when = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
    rows = [("m", f"sha{i % 3}", [float(i), 0.5, -1.25], when) for i in range(30)]
    warehouse.overwrite("embedding_cache", spark.createDataFrame(rows, warehouse.spec("embedding_cache").schema))
    files = [uri.removeprefix("file://") for uri in DeltaTable(warehouse.path("embedding_cache")).file_uris()]
    assert files
    for file in files:
        meta = pq.ParquetFile(file).metadata
        columns = {meta.row_group(0).column(i).path_in_schema: meta.row_group(0).column(i)
                   for i in range(meta.num_columns)}
        assert not columns["embedding.list.element"].has_dictionary_page
        assert columns["text_sha256"].has_dictionary_page and columns["model_id"].has_dictionary_page
    back = warehouse.read("embedding_cache").orderBy("created_at", "text_sha256").collect()
    assert sorted(r["embedding"] for r in back) == sorted(r[2] for r in rows)
