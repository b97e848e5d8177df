"""Notifications: the console's bell (kind + params, rendered in each language), deduplicated
by key and resolved when the condition clears, and optional delivery by webhook and e-mail."""
