"""A full run that dies between two writes, then reruns, ends in the tables of an uninterrupted run."""
from __future__ import annotations

from collections import Counter

import pytest
from chispa import assert_df_equality

from jobs.faults import FAULT_ENV, InjectedFault
from jobs.full import run_full
from jobs.ledger import LEDGER, PROFILES_APP
from jobs.storage import Warehouse
from schemas import INPUT_TABLES
from tests.test_validation import BAD_ROWS, CFG, bad_warehouse  # noqa: F401  (the fixture)

OUTPUTS = ("profiles", "labels", "quarantine")


def _cfg(wh: Warehouse):
    # Embedding is off: what is checked here is the commit sequence, and the cache is covered elsewhere.
    return CFG.model_copy(update={"warehouse": CFG.warehouse.model_copy(update={"path": wh.root}),
                                  "embedding": CFG.embedding.model_copy(update={"enabled": False})})


def _copy_inputs(source: Warehouse, root: str) -> Warehouse:
    copy = Warehouse(root, source.spark, engine="delta-rs")
    for table in INPUT_TABLES:
        copy.overwrite(table, source.read(table))
    return copy


def test_a_run_killed_after_a_write_resumes_to_the_uninterrupted_tables(spark, bad_warehouse, tmp_path,  # noqa: F811
                                                                         monkeypatch):
    reference = _copy_inputs(bad_warehouse, str(tmp_path / "reference"))
    run_full(_cfg(reference), spark)

    # Dies after its last output and before the ledger: the worst place, since quarantine is an append.
    monkeypatch.setenv(FAULT_ENV, "after_write:quarantine")
    with pytest.raises(InjectedFault):
        run_full(_cfg(bad_warehouse), spark)
    assert all(bad_warehouse.committed_version(t, PROFILES_APP) == 1 for t in OUTPUTS)
    assert not bad_warehouse.exists(LEDGER)

    monkeypatch.delenv(FAULT_ENV)
    run_full(_cfg(bad_warehouse), spark)  # the same step again: every output is there, only the ledger is not
    assert bad_warehouse.committed_version(LEDGER, PROFILES_APP) == 1
    quarantined = Counter((r.source_table, r.reason) for r in bad_warehouse.read("quarantine").collect())
    assert quarantined == Counter({(t, reason): len(rows) for t, by in BAD_ROWS.items() for reason, rows in by.items()})
    for table in ("profiles", "labels"):
        timeless = lambda df: df.drop("updated_at")  # noqa: E731  (the wall-clock time of the write)
        assert_df_equality(timeless(bad_warehouse.read(table)), timeless(reference.read(table)),
                           ignore_row_order=True, ignore_column_order=True)
    assert [r.status for r in bad_warehouse.read("runs").orderBy("started_at").collect()] == ["failed", "succeeded"]
    assert {(r.source_table, str(r.dt)) for r in bad_warehouse.read(LEDGER).collect()} == {
        (r.source_table, str(r.dt)) for r in reference.read(LEDGER).collect()}
