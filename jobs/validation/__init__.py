"""Validation: every input row ends up clean or in quarantine with a reason."""
from jobs.validation.checks import Check, table_checks
from jobs.validation.validate import (REASON, ValidationReport, clean_rows, quarantine_message, quarantine_rows,
                                      tag_inputs, unknown_items_message)

__all__ = ["Check", "table_checks", "REASON", "tag_inputs", "clean_rows", "quarantine_rows",
           "quarantine_message", "ValidationReport", "unknown_items_message"]
