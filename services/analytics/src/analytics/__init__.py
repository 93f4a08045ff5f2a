"""ResolutionFlow analytics service."""
