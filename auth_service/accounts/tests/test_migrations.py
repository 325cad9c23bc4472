"""The auth database's migrations are complete, and an enum's values live in code, not in migrations."""

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command

from auth_service.audit.models import SecurityEvent


@pytest.mark.django_db
def test_the_models_need_no_new_migration() -> None:
    # --check exits non-zero when a model change has no migration yet.
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def test_choices_kept_out_of_migrations_still_validate() -> None:
    event = SecurityEvent(kind="no_such_kind", outcome=SecurityEvent.Outcome.SUCCESS)
    with pytest.raises(ValidationError) as refused:
        event.full_clean()
    assert set(refused.value.message_dict) == {"kind"}
    assert SecurityEvent._meta.get_field("kind").deconstruct()[1] == "django.db.models.CharField"
    assert "choices" not in SecurityEvent._meta.get_field("kind").deconstruct()[3]
