"""`make verify`: fault injection, API fuzzing, a soak and abuse tests against the whole running stack."""
