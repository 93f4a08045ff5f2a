"""Settings of the handoffs service (environment variables with prefix RF_)."""

from rfkit.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "handoffs"
    port: int = 8002
