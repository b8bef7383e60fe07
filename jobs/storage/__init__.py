"""Delta tables under one warehouse directory, through delta-spark or delta-rs."""
from jobs.storage.commits import AppTxn
from jobs.storage.errors import ConcurrentCommit, SchemaMismatch, StorageError, TableNotFound
from jobs.storage.warehouse import Warehouse

__all__ = ["Warehouse", "AppTxn", "StorageError", "TableNotFound", "SchemaMismatch", "ConcurrentCommit"]
