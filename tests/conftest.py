"""Fixtures shared by the system tests in tests/."""

# --- Infra fixtures -------------------------------------------------------------------------------------------
# infra, kafka_bootstrap, pg_server_url, make_database and make_session_database come from
# rf_devstack.pytest_plugin, which the root conftest.py loads for every test directory (pytest only honours
# `pytest_plugins` in the root conftest).
