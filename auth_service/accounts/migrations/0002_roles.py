"""Reference data: the four roles, so the admin lists them from the first migration on."""

from django.db import migrations

# Frozen on purpose: a migration replays the data of its day. The roles are defined in common/contracts/roles.py
# (the seed's roles_ensure inserts whatever is missing from there).
ROLES = [
    ("guest", 0, "Read-only access"),
    ("user", 1, "Manages their own account"),
    ("admin", 2, "Manages users who are neither admin nor sys_admin"),
    ("sys_admin", 3, "Manages everyone and everything"),
]


def add_roles(apps, schema_editor):
    Role = apps.get_model("accounts", "Role")
    for name, rank, description in ROLES:
        Role.objects.get_or_create(name=name, defaults={"rank": rank, "description": description})


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]

    # Never removes roles on the way back: users may still reference them.
    operations = [migrations.RunPython(add_roles, migrations.RunPython.noop)]
