"""Sources that validate at the edge and publish events to the bus."""
