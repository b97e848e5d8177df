"""Adapters: the only code that talks to outside systems, one module per system."""
