"""Read-only views for operators: status, why, reports."""
