"""`make bench`: throughput, latency and memory of the running stack, each against its ceiling."""
