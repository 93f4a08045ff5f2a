"""Public REST API models, shared by the owning services and the gateway's OpenAPI."""
