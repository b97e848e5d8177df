"""Auth domain: users, sessions, API tokens, two-factor auth, rate limits and the audit log."""
