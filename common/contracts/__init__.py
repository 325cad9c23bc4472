"""Plain, stdlib-only contracts between the services: envelope, subjects, errors, events."""
