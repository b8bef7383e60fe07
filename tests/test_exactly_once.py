"""A full run that dies between two writes, then reruns, ends in the tables of an uninterrupted run."""
from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

import pytest
from chispa import assert_df_equality

from conftest import portrait

from jobs.faults import FAULT_ENV, InjectedFault
from jobs.features.state_profiles import spanned_tables
from jobs.full import STEP_OUTPUTS, run_full, split_settled
from jobs.ledger import LEDGER, PROFILES_APP, plan_step
from jobs.storage import Warehouse
from schemas import INPUT_TABLES
from tests.test_validation import (BAD_ROWS, CFG_SETTINGS, GOOD_TX, bad_warehouse, cfg_for,  # noqa: F401
                                   frame, replace)

OUTPUTS = ("quarantine", "profiles", "labels")  # in write order


def _copy_inputs(source: Warehouse, root: str) -> Warehouse:
    copy = Warehouse(root, source.spark, engine="delta-rs")
    for table in INPUT_TABLES:
        copy.overwrite(table, source.read(table))
    return copy


def test_runs_killed_between_writes_resume_to_the_uninterrupted_tables(spark, bad_warehouse, tmp_path,  # noqa: F811
                                                                         monkeypatch):
    reference = _copy_inputs(bad_warehouse, str(tmp_path / "reference"))
    run_full(cfg_for(reference), spark)
    cfg = cfg_for(bad_warehouse)

    # 1. The real command, SIGKILLed after the quarantine: no handler runs, no `runs` row is written.
    monkeypatch.setenv(FAULT_ENV, "after_write:quarantine:kill")
    settings = [x for s in CFG_SETTINGS + [f"warehouse.path={bad_warehouse.root}",
                                            f"privacy.key_file={Path(cfg.privacy.key_file).resolve()}"]
                for x in ("--set", s)]
    killed = portrait("full", *settings, cwd=tmp_path)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert [bad_warehouse.committed_version(t, PROFILES_APP) for t in OUTPUTS] == [1, None, None]

    # 2. The rerun skips the quarantine, writes profiles and labels, then dies before the ledger.
    monkeypatch.setenv(FAULT_ENV, "after_write:labels")
    with pytest.raises(InjectedFault):
        run_full(cfg, spark)
    assert all(bad_warehouse.committed_version(t, PROFILES_APP) == 1 for t in OUTPUTS)
    assert not bad_warehouse.exists(LEDGER)

    # Meanwhile a late order lands in an input partition the dead attempts read.
    read_version = bad_warehouse.version("transactions")
    bad_warehouse.append("transactions", frame(spark, "transactions", [replace(GOOD_TX, 0, "o-late")]))

    # 3. The same step once more: every output is there, only the ledger commit is missing. It reads
    # the input versions the first attempt read, so the late order waits for the next step.
    monkeypatch.delenv(FAULT_ENV)
    summary = run_full(cfg, spark)
    assert bad_warehouse.committed_version(LEDGER, PROFILES_APP) == 1
    # The quarantine was written by the first attempt, so this one counted the reasons in a pass of its own.
    assert {t: r for t, r in summary.report.by_reason.items() if r} == {
        t: {reason: len(rows) for reason, rows in by.items()} for t, by in BAD_ROWS.items()}
    assert {r.table_version for r in bad_warehouse.read(LEDGER).filter("source_table = 'transactions'").collect()} \
        == {read_version}
    late = plan_step(bad_warehouse, PROFILES_APP, ["transactions"])
    assert (late.step, [(p.partition.dt, p.reason) for p in late.pending]) == (2, [(GOOD_TX[-1], "changed")])
    quarantined = Counter((r.source_table, r.reason) for r in bad_warehouse.read("quarantine").collect())
    assert quarantined == Counter({(t, reason): len(rows) for t, by in BAD_ROWS.items() for reason, rows in by.items()})
    for table in ("profiles", "labels"):
        timeless = lambda df: df.drop("updated_at")  # noqa: E731  (the wall-clock time of the write)
        assert_df_equality(timeless(bad_warehouse.read(table)), timeless(reference.read(table)),
                           ignore_row_order=True, ignore_column_order=True)
    assert [r.status for r in bad_warehouse.read("runs").orderBy("started_at").collect()] == ["failed", "succeeded"]
    assert {(r.source_table, str(r.dt)) for r in bad_warehouse.read(LEDGER).collect()} == {
        (r.source_table, str(r.dt)) for r in reference.read(LEDGER).collect()}


def test_a_resumed_run_trusts_no_split_of_a_settled_table_an_earlier_attempt_wrote(spark, bad_warehouse,  # noqa: F811
                                                                                     monkeypatch):
    cfg = cfg_for(bad_warehouse)
    monkeypatch.setenv(FAULT_ENV, "after_write:settled_interest")
    with pytest.raises(InjectedFault):
        run_full(cfg, spark)

    plan = plan_step(bad_warehouse, PROFILES_APP, INPUT_TABLES, recompute=True, outputs=STEP_OUTPUTS)
    assert plan.resumed
    # The attempt wrote the settled tables up to settled_interest (that attempt's code may have split them
    # otherwise, or not at all); the rerun writes, and splits, the rest. The sessions are never split.
    assert split_settled(cfg, bad_warehouse, plan) == {"settled_image_interest", "settled_affinity", "settled_prices"}
    assert "settled_sessions" not in spanned_tables(cfg)
