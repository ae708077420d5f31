"""Hardware profiles: op signatures, latency lookup tables, profiling and prediction."""
