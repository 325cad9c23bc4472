"""main_api: the business application; holds the users read model replicated from identity events."""
