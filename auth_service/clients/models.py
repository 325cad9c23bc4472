"""Service accounts: OAuth 2.0 clients that obtain access tokens with the client credentials grant."""

from __future__ import annotations

from datetime import datetime

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone


class ServiceClient(models.Model):
    """One service account. Only a digest of its secret is stored; the secret is shown once, when it is made."""

    id: models.BigAutoField[int, int] = models.BigAutoField(primary_key=True)
    client_id: models.CharField[str, str] = models.CharField(max_length=64, unique=True, editable=False)
    name: models.CharField[str, str] = models.CharField(max_length=100)
    secret_digest: models.CharField[str, str] = models.CharField(max_length=64, editable=False)
    scopes: ArrayField[list[str], list[str]] = ArrayField(
        models.CharField(max_length=64), default=list, help_text="What its tokens may be used for."
    )
    is_active: models.BooleanField[bool, bool] = models.BooleanField(default=True)
    epoch: models.PositiveIntegerField[int, int] = models.PositiveIntegerField(
        default=1,
        editable=False,
        help_text="Bumped by every rotation and disabling: tokens of an older epoch are refused at once.",
    )
    created_at: models.DateTimeField[datetime, datetime] = models.DateTimeField(default=timezone.now, editable=False)
    secret_rotated_at: models.DateTimeField[datetime, datetime] = models.DateTimeField(
        default=timezone.now, editable=False
    )

    class Meta:
        ordering = ["name", "id"]
        verbose_name = "service account"

    def __str__(self) -> str:
        return f"{self.name} ({self.client_id})"
