"""The users read model, replicated from the auth service's identity events."""
