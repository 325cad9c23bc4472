"""The one NATS layer: a request/reply client usable from sync code, and the bridge that serves handlers."""
