"""Built-in tools: terminals, the file manager and the engine view."""
