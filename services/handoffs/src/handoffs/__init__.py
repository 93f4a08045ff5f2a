"""ResolutionFlow handoffs service."""
