"""Test support shared by the three projects: a pytest plugin with real-NATS fixtures."""
