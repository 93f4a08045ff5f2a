"""Alembic environment of the analytics service (the shared runner lives in rfkit.migrate)."""

from rfkit.migrate import run_env

run_env()
