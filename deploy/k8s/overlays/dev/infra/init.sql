-- Dev-only: one database per service, each owned by its own role: a service cannot read another's tables.
-- Runs once, on an empty data directory. Read by the dev overlay (a ConfigMap) and by compose.yaml (kustomize reads
-- no file outside its folder, so this one serves both). The passwords match the dev overlay's Secrets and compose's
-- service URLs: local development only.
CREATE ROLE rf_gateway LOGIN PASSWORD 'rf_gateway';
CREATE ROLE rf_sessions LOGIN PASSWORD 'rf_sessions';
CREATE ROLE rf_handoffs LOGIN PASSWORD 'rf_handoffs';
CREATE ROLE rf_analytics LOGIN PASSWORD 'rf_analytics';
CREATE DATABASE rf_gateway OWNER rf_gateway;
CREATE DATABASE rf_sessions OWNER rf_sessions;
CREATE DATABASE rf_handoffs OWNER rf_handoffs;
CREATE DATABASE rf_analytics OWNER rf_analytics;
REVOKE CONNECT, TEMPORARY ON DATABASE rf_gateway, rf_sessions, rf_handoffs, rf_analytics FROM PUBLIC;
GRANT CONNECT ON DATABASE rf_gateway TO rf_gateway;
GRANT CONNECT ON DATABASE rf_sessions TO rf_sessions;
GRANT CONNECT ON DATABASE rf_handoffs TO rf_handoffs;
GRANT CONNECT ON DATABASE rf_analytics TO rf_analytics;
