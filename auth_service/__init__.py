"""The auth service: the single writer of identity (users, passwords, roles, sessions, signing keys)."""

from auth_service.celery import app as celery_app

__all__ = ["celery_app"]
