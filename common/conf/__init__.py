"""Settings helpers: one reader of the environment and builders shared by the three projects."""
