"""Delta tables under one warehouse directory, through delta-spark or delta-rs."""
from jobs.storage.errors import AppTxn, ConcurrentCommit, SchemaMismatch, StorageError, TableNotFound
from jobs.storage.warehouse import Warehouse

__all__ = ["Warehouse", "AppTxn", "StorageError", "TableNotFound", "SchemaMismatch", "ConcurrentCommit"]
