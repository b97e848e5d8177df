"""App updates: detection, the safe update flow with automatic rollback, rollback."""
