"""Storage errors whose messages say which table, where, and what to do."""


class StorageError(RuntimeError):
    """A table cannot be read or written as asked."""


class TableNotFound(StorageError):
    """No Delta table at the expected path."""


class SchemaMismatch(StorageError):
    """A table's stored schema differs from the schema in ``schemas/``."""


class ConcurrentCommit(StorageError):
    """Another run committed the same step of the same job first (Delta's optimistic concurrency)."""

