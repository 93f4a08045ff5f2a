"""ResolutionFlow sessions service."""
