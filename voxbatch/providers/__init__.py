"""Mistral through the SDK: no database, no prices."""
