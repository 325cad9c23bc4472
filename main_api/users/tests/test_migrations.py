"""The main database's migrations are complete."""

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_the_models_need_no_new_migration() -> None:
    # --check exits non-zero when a model change has no migration yet.
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)
