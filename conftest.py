"""Root conftest: the shared fixtures for every project's test suite."""

pytest_plugins = ["devstack.testing.plugin"]
