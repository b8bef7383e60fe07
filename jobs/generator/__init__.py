"""Synthetic inputs with planted structure, generated on Spark and deterministic by seed."""
from jobs.generator.generate import GeneratedTables, generate_tables

__all__ = ["GeneratedTables", "generate_tables"]
