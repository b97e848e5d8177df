"""StackHub: a self-hosted app platform."""
