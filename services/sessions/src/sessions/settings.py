"""Settings of the sessions service (environment variables with prefix RF_)."""

from rfkit.settings import DomainServiceSettings


class Settings(DomainServiceSettings):
    service_name: str = "sessions"
    port: int = 8001
