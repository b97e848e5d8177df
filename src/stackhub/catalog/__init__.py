"""Catalog domain: stores, format readers and the app index."""
