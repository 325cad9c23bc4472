"""Identity writes, one module per domain; callers import from the module that owns a function.

Every identity change runs in one transaction with its outbox event(s); mail and session clean-up happen after
commit. Client-visible failures are ServiceErrors; a failed write leaves nothing behind (no row, no event).
"""
