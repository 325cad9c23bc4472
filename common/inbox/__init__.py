"""Inbox: idempotent consumption (one row per processed message) and a dead-letter table."""
