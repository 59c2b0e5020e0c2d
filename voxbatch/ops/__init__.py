"""For operators: read-only views (status, why, reports) and the upkeep of retention (prune)."""
