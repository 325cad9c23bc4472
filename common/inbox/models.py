"""Processed messages (idempotency keys) and dead letters (messages that exhausted their deliveries)."""

from __future__ import annotations

from django.db import models


class InboxMessage(models.Model):
    """Written in the same transaction as a message's effect: its presence means "already applied"."""

    message_id = models.CharField(max_length=100, primary_key=True)
    subject = models.CharField(max_length=200)
    processed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-processed_at"]

    def __str__(self) -> str:
        return f"{self.subject} {self.message_id}"


class DeadLetter(models.Model):
    message_id = models.CharField(max_length=100, db_index=True)
    subject = models.CharField(max_length=200)
    payload = models.TextField()
    headers = models.JSONField(default=dict)
    error = models.TextField()
    deliveries = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    retried_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.subject} {self.message_id}"
