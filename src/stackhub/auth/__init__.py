"""Auth domain: API tokens now; users, sessions and 2FA later."""
