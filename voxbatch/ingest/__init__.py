"""Inbox to work/: scanning, watching, folders and moves."""
