"""Settings of the analytics service (environment variables with prefix RF_)."""

from rfkit.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "analytics"
    port: int = 8003
