"""Delta application transactions: how a numbered job step is committed at most once per table."""
from __future__ import annotations

from dataclasses import dataclass

from jobs.storage.errors import ConcurrentCommit


@dataclass(frozen=True)
class AppTxn:
    """A Delta application transaction: ``version`` of ``app_id`` is committed with the data, atomically.

    A job that numbers its steps writes each output with the step's number. A rerun asks each table
    which number it last committed and skips what is there, so a retried step is never applied twice.
    """

    app_id: str
    version: int
    # What the step read, as JSON (table -> version), kept in each commit's metadata: a rerun of the
    # step re-reads exactly those versions, so the outputs it skips and the ones it writes agree.
    inputs: str | None = None


STEP_INPUTS = "portrait.step_inputs"


def commit_metadata(run_id: str | None, txn: AppTxn | None) -> dict[str, str]:
    """What Portrait writes into a commit's metadata: the run id, and the step's inputs when it has them."""
    metadata = {"portrait.run_id": run_id} if run_id else {}
    if txn is not None and txn.inputs is not None:
        metadata[STEP_INPUTS] = txn.inputs
    return metadata


def refuse_if_committed(path: str, txn: AppTxn | None, done: int | None) -> None:
    """Raise ConcurrentCommit if the table already holds ``txn``'s step (``done``: its last step of the app)."""
    if txn is not None and done is not None and done >= txn.version:
        raise ConcurrentCommit(
            f"{_table_name(path)}: {txn.app_id} step {txn.version} is already committed to {path} (the table "
            f"holds step {done}); another run got there first, so this one stops")


def lost_race(path: str, txn: AppTxn, cause: BaseException) -> ConcurrentCommit:
    """The error for a commit that Delta rejected because another run committed the same step first."""
    return ConcurrentCommit(
        f"{_table_name(path)}: another run committed {txn.app_id} step {txn.version} to {path} while this run "
        f"was writing it; this run stops without committing ({type(cause).__name__}: {cause})")


def _table_name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]
