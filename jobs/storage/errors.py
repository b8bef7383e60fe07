"""Storage errors whose messages say which table, where, and what to do."""


from dataclasses import dataclass


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


class StorageError(RuntimeError):
    """A table cannot be read or written as asked."""


class TableNotFound(StorageError):
    """No Delta table at the expected path."""


class SchemaMismatch(StorageError):
    """A table's stored schema differs from the schema in ``schemas/``."""


class ConcurrentCommit(StorageError):
    """Another run committed the same step of the same job first (Delta's optimistic concurrency)."""


def refuse_if_committed(name: str, location: str, txn: AppTxn | None, done: int | None) -> None:
    """Raise ConcurrentCommit if the table already holds ``txn``'s step (``done``: its last step of the app)."""
    if txn is not None and done is not None and done >= txn.version:
        raise ConcurrentCommit(
            f"{name}: {txn.app_id} step {txn.version} is already committed to {location} (the table holds step "
            f"{done}); another run got there first, so this one stops")
