"""HTTP and websocket interface: thin routers over the domain services."""
