"""Model fields the services share."""

from __future__ import annotations

from typing import Any

from django.db import models


class CodeChoicesField(models.CharField):  # type: ignore[type-arg]
    """A CharField whose choices live in code only: a new value of the enum needs no migration.

    Django writes a field's choices into every migration of it although they change nothing in the database, so each
    new security event kind or role took an `AlterField` of its own. This field keeps its choices for forms, the admin
    and `full_clean()`, and deconstructs as a plain `CharField` without them.
    """

    def deconstruct(self) -> Any:
        name, _path, args, kwargs = super().deconstruct()
        kwargs.pop("choices", None)
        return name, "django.db.models.CharField", args, kwargs
