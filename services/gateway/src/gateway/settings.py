"""Settings of the gateway service (environment variables with prefix RF_)."""

from rfkit.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "gateway"
    port: int = 8000
