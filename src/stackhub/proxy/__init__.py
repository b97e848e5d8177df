"""The proxy domain: the gateway (Caddy), automatic names, custom domains and HTTPS."""
