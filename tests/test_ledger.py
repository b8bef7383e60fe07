"""The processed-partition ledger and step commits on real Delta tables (the groundwork of issue 6)."""
from __future__ import annotations

import datetime as dt
import threading

import pytest

from jobs.ledger import (LEDGER, PartitionFiles, PendingPartition, already_committed, commit_step,
                         pending_partitions, plan_step, processed)
from jobs.storage import AppTxn, ConcurrentCommit
from tests.test_storage import tx_df

APP = "portrait-profiles"
AT = dt.datetime(2025, 2, 1, tzinfo=dt.timezone.utc)
D = lambda day: dt.date(2025, 1, day)  # noqa: E731


def part(table, day, fp):
    return PartitionFiles(table, None if day is None else D(day), fp, 1, 0)


def test_pending_partitions_are_the_new_and_the_changed_ones():
    current = [part("browse", 1, "a"), part("browse", 2, "b2"), part("browse", 3, "c"), part("users", None, "u")]
    done = {("browse", D(1)): "a", ("browse", D(2)): "b1", ("users", None): "u"}
    assert pending_partitions(current, done) == [PendingPartition(part("browse", 2, "b2"), "changed"),
                                                 PendingPartition(part("browse", 3, "c"), "new")]


def test_processed_keeps_each_partitions_latest_step_then_latest_row():
    later = AT + dt.timedelta(hours=1)
    row = lambda day, fp, step, at=AT: {"source_table": "browse", "dt": D(day), "files_fingerprint": fp,  # noqa: E731
                                        "step": step, "processed_at": at}
    # A forget re-records a partition it rewrote under the step that processed it, later.
    rows = [row(1, "old", 1), row(1, "new", 3), row(2, "erased", 2, later), row(2, "x", 2), row(3, "y", 4, later),
            row(3, "z", 3, later + dt.timedelta(hours=1))]
    assert processed(rows) == {("browse", D(1)): "new", ("browse", D(2)): "erased", ("browse", D(3)): "y"}


def _pending(plan):
    return [(p.partition.source_table, p.partition.dt, p.reason) for p in plan.pending]


def test_plans_find_new_days_and_late_data_by_files_not_dates(spark, warehouse):
    warehouse.overwrite("transactions", tx_df(spark, ("o1", "u1", 1.0, 1), ("o2", "u2", 2.0, 2)))
    first = plan_step(warehouse, APP, ["transactions", "users"])
    assert (first.step, _pending(first)) == (1, [("transactions", D(1), "new"), ("transactions", D(2), "new")])
    commit_step(warehouse, first, "run-1", AT)

    rerun = plan_step(warehouse, APP, ["transactions"])
    assert (rerun.step, rerun.is_empty()) == (2, True)  # nothing new: a rerun is a no-op

    # A late order for day 1 (already processed) and a new day 3.
    warehouse.append("transactions", tx_df(spark, ("o3", "u1", 3.0, 1), ("o4", "u3", 4.0, 3)))
    late = plan_step(warehouse, APP, ["transactions"])
    assert _pending(late) == [("transactions", D(1), "changed"), ("transactions", D(3), "new")]
    assert late.pending[0].partition.file_count == 2 and late.pending[0].partition.table_version == 1
    commit_step(warehouse, late, "run-2", AT)
    assert plan_step(warehouse, APP, ["transactions"]).is_empty()
    assert warehouse.committed_version(LEDGER, APP) == 2


def test_unpartitioned_inputs_are_one_partition_with_a_null_dt(spark, warehouse):
    users = spark.createDataFrame([("u1", None, None, None, None, None, None, None, None)], warehouse.spec("users").schema)
    warehouse.merge("users", users)
    plan = plan_step(warehouse, APP, ["users"])
    assert _pending(plan) == [("users", None, "new")]
    commit_step(warehouse, plan, "run-1", AT)
    warehouse.merge("users", users)  # rewritten, even with the same rows: its files changed
    assert _pending(plan_step(warehouse, APP, ["users"])) == [("users", None, "changed")]


def test_a_step_is_written_to_a_table_at_most_once(spark, warehouse):
    warehouse.overwrite("transactions", tx_df(spark, ("o1", "u1", 1.0, 1)))
    plan = plan_step(warehouse, APP, ["transactions"])
    rows = tx_df(spark, ("o9", "u9", 9.0, 1))
    assert not already_committed(warehouse, "transactions", plan)
    warehouse.append("transactions", rows, txn=plan.txn)
    assert already_committed(warehouse, "transactions", plan)
    with pytest.raises(ConcurrentCommit, match="transactions: portrait-profiles step 1 is already committed"):
        warehouse.append("transactions", rows, txn=plan.txn)
    users = spark.createDataFrame([("u1", None, None, None, None, None, None, None, None)], warehouse.spec("users").schema)
    warehouse.merge("users", users, txn=AppTxn(APP, 1))
    with pytest.raises(ConcurrentCommit, match="users: portrait-profiles step 1 is already committed"):
        warehouse.merge("users", users, txn=AppTxn(APP, 1))
    warehouse.merge("users", users, txn=AppTxn(APP, 2))  # the next step goes through
    assert warehouse.count("transactions") == 2


def test_two_runs_of_the_same_step_cannot_both_commit(spark, warehouse):
    warehouse.overwrite("transactions", tx_df(spark, ("o1", "u1", 1.0, 1)))
    a, b = plan_step(warehouse, APP, ["transactions"]), plan_step(warehouse, APP, ["transactions"])
    commit_step(warehouse, a, "run-a", AT)
    with pytest.raises(ConcurrentCommit, match="step 1 was committed by run run-a while run run-b"):
        commit_step(warehouse, b, "run-b", AT)
    assert {r.run_id for r in warehouse.read(LEDGER).collect()} == {"run-a"}


def test_racing_commits_of_one_step_leave_exactly_one_winner(spark, warehouse):
    warehouse.overwrite("transactions", tx_df(spark, ("o1", "u1", 1.0, 1)))
    commit_step(warehouse, plan_step(warehouse, APP, ["transactions"]), "run-0", AT)  # the ledger exists
    warehouse.append("transactions", tx_df(spark, ("o2", "u2", 2.0, 2)))
    plans = {run: plan_step(warehouse, APP, ["transactions"]) for run in ("run-a", "run-b")}
    start, outcomes = threading.Barrier(2), {}

    def commit(run):
        start.wait()
        try:
            commit_step(warehouse, plans[run], run, AT)
            outcomes[run] = "committed"
        except ConcurrentCommit as error:
            outcomes[run] = str(error)

    threads = [threading.Thread(target=commit, args=(run,)) for run in plans]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [run for run, outcome in outcomes.items() if outcome == "committed"]
    assert len(winners) == 1, outcomes
    loser = next(run for run in plans if run not in winners)
    assert f"committed nothing to {LEDGER}" in outcomes[loser] or "already committed" in outcomes[loser]
    assert {r.run_id for r in warehouse.read(LEDGER).filter("step = 2").collect()} == set(winners)


def test_a_rerun_of_a_step_reads_the_versions_its_dead_attempt_read(spark, warehouse):
    warehouse.overwrite("transactions", tx_df(spark, ("o1", "u1", 1.0, 1)))
    first = plan_step(warehouse, APP, ["transactions"], outputs=["quarantine"])
    quarantine = spark.createDataFrame([], warehouse.spec("quarantine").schema)
    warehouse.append("quarantine", quarantine, txn=first.txn)  # ... and the attempt dies here
    warehouse.append("transactions", tx_df(spark, ("o2", "u1", 2.0, 1)))  # late data lands

    rerun = plan_step(warehouse, APP, ["transactions"], outputs=["quarantine"])
    assert (rerun.resumed, rerun.step, rerun.versions, rerun.pending) == (True, 1, {"transactions": 0}, first.pending)
    assert warehouse.history("quarantine")[0]["step_inputs"] == '{"transactions": 0}'
    commit_step(warehouse, rerun, "run-2", AT)
    after = plan_step(warehouse, APP, ["transactions"], outputs=["quarantine"])
    assert (after.resumed, after.versions, _pending(after)) == (False, {"transactions": 1},
                                                                [("transactions", D(1), "changed")])
