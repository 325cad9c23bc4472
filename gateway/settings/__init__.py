"""Settings of this project: base (from environment), dev, test and prod variants."""
