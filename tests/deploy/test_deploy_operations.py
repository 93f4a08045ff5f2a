"""Operating settings in the deployed forms: the alert rules watch metrics that exist, the proxy trust is valid."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

import rfkit.metrics  # noqa: F401  (registers the metrics the rules name)
from gateway.settings import Settings as GatewaySettings

from .conftest import OVERLAYS, REPO
from .test_deploy_k8s import container_env, server

RULES = REPO / "deploy" / "prometheus" / "alerts.yaml"
OPERATIONS = REPO / "docs" / "operations.md"
_DURATION = re.compile(r"^\d+[smhd]$")


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    assert groups and all(set(g) <= {"name", "interval", "rules"} for g in groups)
    return [rule for group in groups for rule in group["rules"]]


_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def _exported_names() -> set[str]:
    """The series names /metrics exports (a labelled metric has no sample before its first use)."""
    names = set()
    for family in REGISTRY.collect():
        names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
    return names


def test_every_alert_is_well_formed_names_exported_metrics_and_is_documented() -> None:
    rules = _rules()
    assert {"ResolutionFlowKafkaUnreachable", "ResolutionFlowKafkaOutageLong"} <= {r["alert"] for r in rules}
    exported = _exported_names()
    documented = OPERATIONS.read_text()
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        assert "for" not in rule or _DURATION.match(rule["for"])
        expr = str(rule["expr"])
        assert expr.count("(") == expr.count(")"), rule["alert"]
        used = set(re.findall(r"\brf_[a-z_]+\b", expr))
        assert used and used <= exported, f"{rule['alert']} names metrics nobody exports: {used - exported}"
        assert rule["alert"] in documented, f"{rule['alert']} is not explained in docs/operations.md"


def _proxies(value: str) -> list[str]:
    return [str(net) for net in GatewaySettings(env="test", trusted_proxies=value).trusted_proxies]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_trusts_a_proxy_network_and_not_everybody(rendered: dict[str, Any], overlay: str) -> None:
    (container,) = server(rendered[overlay], "gateway")["spec"]["template"]["spec"]["containers"]
    networks = _proxies(container_env(rendered[overlay], container)["RF_TRUSTED_PROXIES"])
    assert networks and not {"0.0.0.0/0", "::/0"} & set(networks)


def test_compose_trusts_only_private_networks_by_default() -> None:
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    value = compose["services"]["gateway"]["environment"]["RF_TRUSTED_PROXIES"]
    default = re.fullmatch(r"\$\{RF_TRUSTED_PROXIES:-(.*)\}", value)
    assert default, "the operator can override it"
    networks = [ipaddress.ip_network(n) for n in _proxies(default.group(1))]
    assert networks and all(n.is_private for n in networks)
