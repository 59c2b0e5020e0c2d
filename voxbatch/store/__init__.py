"""Every SQL statement and every Job write."""
