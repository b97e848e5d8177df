"""Apps domain: plans, instances, operations and their lifecycle flows."""
