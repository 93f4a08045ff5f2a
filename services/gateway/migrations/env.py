"""Alembic environment of the gateway service (the shared runner lives in rfkit.migrate)."""

from rfkit.migrate import run_env

run_env()
