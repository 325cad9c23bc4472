#!/usr/bin/env python
"""Entry point of the gateway: sets its default settings module, nothing else."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway.settings.dev")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
