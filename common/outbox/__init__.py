"""Transactional outbox: events written in the same transaction as the change, relayed to JetStream."""
