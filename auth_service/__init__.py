"""The auth service: the single writer of identity (users, passwords, roles, sessions, signing keys).

The Celery app (auth_service.celery) is not imported here, unlike Celery's Django template: the tasks are declared
on it explicitly (`@app.task`), and `celery -A auth_service` finds `auth_service.celery` on its own. So only a
process that enqueues or runs a task loads Celery, kombu and their dependencies (about 8 MiB resident): the admin's
HTTP process seldom does, and the bridge not before its first mail or outbox kick.
"""
