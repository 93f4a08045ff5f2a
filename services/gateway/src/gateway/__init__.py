"""ResolutionFlow gateway service."""
