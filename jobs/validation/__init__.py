"""Validation: every input row ends up clean or in quarantine with a reason."""
from jobs.validation.checks import Check, table_checks
from jobs.validation.validate import (REASON, ValidationReport, clean_rows, quarantine_rows, quarantine_message,
                                      tag_inputs)

__all__ = ["Check", "table_checks", "REASON", "tag_inputs", "clean_rows", "quarantine_rows",
           "quarantine_message", "ValidationReport"]
