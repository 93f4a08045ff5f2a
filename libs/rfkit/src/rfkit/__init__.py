"""ResolutionFlow service kit: what every service needs to talk to PostgreSQL, Kafka and its callers."""
