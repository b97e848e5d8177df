"""Command-line interface: a client of the HTTP API (plus ``serve``)."""
