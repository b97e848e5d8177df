"""Format readers: each turns one store format into AppDefinition records."""
