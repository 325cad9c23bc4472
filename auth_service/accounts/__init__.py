"""Accounts: users, roles, passwords, verification, recovery, sessions and signing keys."""
