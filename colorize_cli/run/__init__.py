"""A run: plan, session (lock, manifest, tally, exit code) and the executors that process files."""
