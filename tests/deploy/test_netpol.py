"""The NetworkPolicy evaluator itself, on tiny hand-made policies: it must deny as readily as it allows."""

from __future__ import annotations

from typing import Any

import pytest

from .netpol import Cluster, External, Pod, Port, policy_types, selector_matches

NS = "app"
WEB = Pod("web", NS, {"app": "web", "tier": "front"}, (Port(8080, name="http"),))
API = Pod("api", NS, {"app": "api", "tier": "back"}, (Port(9000, name="http"), Port(9001, "UDP", "stats")))
DB = Pod("db", NS, {"app": "db"}, (Port(5432, name="pg"),))
STRANGER = Pod("stranger", "other", {"app": "web", "tier": "front"}, (Port(8080, name="http"),))
PROMETHEUS = Pod("prometheus", "monitoring", {"app": "prometheus"})
INTERNET = External("example.org", "203.0.113.7")
INSIDE_BLOCK = External("partner", "10.1.2.3")


def policy(name: str, spec: dict[str, Any], namespace: str = NS) -> dict[str, Any]:
    return {"kind": "NetworkPolicy", "metadata": {"name": name, "namespace": namespace}, "spec": spec}


DENY_ALL = policy("deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})


def cluster(*policies: dict[str, Any]) -> Cluster:
    return Cluster(policies, {"monitoring": {"team": "ops"}, "other": {"team": "dev"}})


# ---- label selectors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ({}, {}, True),
        ({}, {"a": "1"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
        ({"matchLabels": {"a": "1"}}, {}, False),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]}, {"a": "2"}, True),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]}, {"a": "3"}, False),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}]}, {}, False),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {"a": "2"}, True),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {"a": "1"}, False),
        # NotIn holds for a pod without the key at all.
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""}, True),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"b": "1"}, False),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"b": "1"}, True),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"a": "1"}, False),
        # Every requirement must hold: labels and expressions together.
        (
            {"matchLabels": {"a": "1"}, "matchExpressions": [{"key": "b", "operator": "In", "values": ["2"]}]},
            {"a": "1", "b": "3"},
            False,
        ),
        (
            {
                "matchLabels": {"a": "1"},
                "matchExpressions": [
                    {"key": "b", "operator": "In", "values": ["2"]},
                    {"key": "c", "operator": "DoesNotExist"},
                ],
            },
            {"a": "1", "b": "2"},
            True,
        ),
    ],
)
def test_label_selectors(selector: dict[str, Any], labels: dict[str, str], expected: bool) -> None:
    assert selector_matches(selector, labels) is expected


def test_an_unknown_selector_operator_is_an_error_not_a_match() -> None:
    with pytest.raises(ValueError, match="Gt"):
        selector_matches({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}, {"a": "2"})


# ---- isolation and policy types --------------------------------------------------------------------------


def test_without_policies_everything_is_allowed() -> None:
    assert cluster().allows(WEB, API, 9000)


def test_default_deny_denies_both_ways_and_inside_the_namespace() -> None:
    c = cluster(DENY_ALL)
    assert not c.allows(WEB, API, 9000)
    assert not c.egress_allows(WEB, INTERNET, 443)
    assert not c.ingress_allows(PROMETHEUS, API, 9000)
    # Pods of other namespaces are not isolated by it.
    assert c.allows(STRANGER, INTERNET, 443)


def test_policy_types_default_to_ingress_plus_egress_when_there_is_an_egress_section() -> None:
    assert policy_types({"podSelector": {}}) == {"Ingress"}
    assert policy_types({"podSelector": {}, "ingress": []}) == {"Ingress"}
    assert policy_types({"podSelector": {}, "egress": []}) == {"Ingress", "Egress"}
    assert policy_types({"podSelector": {}, "egress": [], "policyTypes": ["Egress"]}) == {"Egress"}
    # An ingress-only policy (policyTypes absent) leaves egress open and closes ingress.
    only_ingress = cluster(policy("in", {"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]}))
    assert only_ingress.egress_allows(WEB, INTERNET, 443)
    assert not only_ingress.ingress_allows(INTERNET, WEB, 8080)
    # An empty egress section, policyTypes absent: both directions are isolated and nothing is allowed.
    empty_egress = cluster(policy("out", {"podSelector": {"matchLabels": {"app": "web"}}, "egress": []}))
    assert not empty_egress.egress_allows(WEB, API, 9000)
    assert not empty_egress.ingress_allows(API, WEB, 8080)
    assert empty_egress.allows(API, DB, 5432), "pods it does not select are not isolated"


def test_both_ends_must_agree() -> None:
    egress = policy("web-out", {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"],
                                "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "api"}}}]}]})
    ingress = policy("api-in", {"podSelector": {"matchLabels": {"app": "api"}}, "policyTypes": ["Ingress"],
                                "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}]})
    assert not cluster(DENY_ALL, egress).allows(WEB, API, 9000), "the callee still denies"
    assert not cluster(DENY_ALL, ingress).allows(WEB, API, 9000), "the caller still denies"
    assert cluster(DENY_ALL, egress, ingress).allows(WEB, API, 9000)
    assert not cluster(DENY_ALL, egress, ingress).allows(API, WEB, 8080), "one way only"


def test_policies_add_up() -> None:
    to_api = policy("a", {"podSelector": {}, "policyTypes": ["Egress"],
                          "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "api"}}}]}]})
    to_db = policy("b", {"podSelector": {"matchLabels": {"tier": "front"}}, "policyTypes": ["Egress"],
                         "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}]}]})
    c = cluster(to_api, to_db)
    assert c.egress_allows(WEB, API, 9000) and c.egress_allows(WEB, DB, 5432)
    assert c.egress_allows(API, API, 9000) and not c.egress_allows(API, DB, 5432)


def test_a_policy_selects_only_pods_of_its_own_namespace() -> None:
    c = cluster(policy("deny", {"podSelector": {}, "policyTypes": ["Ingress"]}, namespace="other"))
    assert c.ingress_allows(API, WEB, 8080)
    assert not c.ingress_allows(API, STRANGER, 8080)


# ---- peers ----------------------------------------------------------------------------------------------


def ingress_from(*peers: dict[str, Any]) -> Cluster:
    web = {"matchLabels": {"app": "web"}}
    return cluster(policy("web-in", {"podSelector": web, "ingress": [{"from": list(peers)}]}))


def test_a_pod_selector_alone_means_the_policy_namespace() -> None:
    c = ingress_from({"podSelector": {"matchLabels": {"tier": "back"}}})
    assert c.ingress_allows(API, WEB, 8080)
    twin = Pod("api", "other", API.labels)
    assert not c.ingress_allows(twin, WEB, 8080), "same labels, another namespace"
    assert not c.ingress_allows(DB, WEB, 8080)


def test_a_namespace_selector_alone_means_every_pod_there() -> None:
    c = ingress_from({"namespaceSelector": {"matchLabels": {"team": "ops"}}})
    assert c.ingress_allows(PROMETHEUS, WEB, 8080)
    assert c.ingress_allows(Pod("any", "monitoring", {}), WEB, 8080)
    assert not c.ingress_allows(API, WEB, 8080), "its own namespace does not have the label"
    by_name = ingress_from({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}})
    assert by_name.ingress_allows(PROMETHEUS, WEB, 8080), "the API server's automatic namespace label"


def test_namespace_and_pod_selector_in_one_peer_must_both_hold() -> None:
    c = ingress_from({"namespaceSelector": {"matchLabels": {"team": "ops"}},
                      "podSelector": {"matchLabels": {"app": "prometheus"}}})
    assert c.ingress_allows(PROMETHEUS, WEB, 8080)
    assert not c.ingress_allows(Pod("grafana", "monitoring", {"app": "grafana"}), WEB, 8080)
    assert not c.ingress_allows(Pod("prometheus", NS, {"app": "prometheus"}), WEB, 8080)


def test_separate_peers_are_alternatives() -> None:
    c = ingress_from({"namespaceSelector": {"matchLabels": {"team": "ops"}}},
                     {"podSelector": {"matchLabels": {"app": "api"}}})
    assert c.ingress_allows(Pod("grafana", "monitoring", {"app": "grafana"}), WEB, 8080)
    assert c.ingress_allows(API, WEB, 8080)
    assert not c.ingress_allows(DB, WEB, 8080)


def test_empty_selectors_match_everything_in_their_scope() -> None:
    same_namespace = ingress_from({"podSelector": {}})
    assert same_namespace.ingress_allows(DB, WEB, 8080)
    assert not same_namespace.ingress_allows(PROMETHEUS, WEB, 8080)
    anywhere = ingress_from({"namespaceSelector": {}})
    assert anywhere.ingress_allows(PROMETHEUS, WEB, 8080) and anywhere.ingress_allows(DB, WEB, 8080)
    assert not anywhere.ingress_allows(INTERNET, WEB, 8080), "pods of every namespace, not the outside"


def test_a_rule_without_peers_admits_anyone_and_no_rule_admits_no_one() -> None:
    open_rule = cluster(policy("in", {"podSelector": {}, "ingress": [{"ports": [{"port": 8080}]}]}))
    assert open_rule.ingress_allows(INTERNET, WEB, 8080) and open_rule.ingress_allows(PROMETHEUS, WEB, 8080)
    empty_from = cluster(policy("in", {"podSelector": {}, "ingress": [{"from": []}]}))
    assert empty_from.ingress_allows(INTERNET, WEB, 8080)
    no_rules = cluster(policy("in", {"podSelector": {}, "ingress": []}))
    assert not no_rules.ingress_allows(API, WEB, 8080)


def test_ip_blocks_with_exceptions_match_outside_addresses_only() -> None:
    c = cluster(policy("out", {"podSelector": {}, "policyTypes": ["Egress"],
                               "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.9.0.0/16"]}}]}]}))
    assert c.egress_allows(WEB, INSIDE_BLOCK, 5432)
    assert not c.egress_allows(WEB, External("excluded", "10.9.1.1"), 5432)
    assert not c.egress_allows(WEB, INTERNET, 5432)
    assert not c.egress_allows(WEB, External("unknown address"), 5432)
    assert not c.egress_allows(WEB, API, 9000), "pod addresses are not matched by ipBlock"


def test_a_peer_without_any_selector_is_refused() -> None:
    with pytest.raises(ValueError, match="peer"):
        ingress_from({}).ingress_allows(API, WEB, 8080)


# ---- ports ----------------------------------------------------------------------------------------------


def egress_ports(*ports: dict[str, Any]) -> Cluster:
    return cluster(policy("out", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"ports": list(ports)}]}))


def test_numbered_ports_protocols_and_ranges() -> None:
    c = egress_ports({"port": 9000}, {"port": 53, "protocol": "UDP"}, {"port": 6000, "endPort": 6010})
    assert c.egress_allows(WEB, API, 9000)
    assert not c.egress_allows(WEB, API, 9001)
    assert not c.egress_allows(WEB, API, 9000, "UDP"), "TCP when no protocol is given"
    assert c.egress_allows(WEB, INTERNET, 53, "UDP") and not c.egress_allows(WEB, INTERNET, 53, "TCP")
    assert c.egress_allows(WEB, INTERNET, 6000) and c.egress_allows(WEB, INTERNET, 6010)
    assert not c.egress_allows(WEB, INTERNET, 6011)


def test_a_protocol_without_a_port_admits_every_port_of_that_protocol() -> None:
    c = egress_ports({"protocol": "UDP"})
    assert c.egress_allows(WEB, INTERNET, 12345, "UDP")
    assert not c.egress_allows(WEB, INTERNET, 12345, "TCP")


def test_named_ports_resolve_on_the_destination_pod() -> None:
    c = egress_ports({"port": "http"})
    assert c.egress_allows(DB, API, 9000), "api's http is 9000"
    assert c.egress_allows(DB, WEB, 8080), "web's http is 8080"
    assert not c.egress_allows(DB, API, 8080), "8080 is http on web, not on api"
    assert not c.egress_allows(WEB, DB, 5432), "db has no port called http"
    assert not c.egress_allows(WEB, INTERNET, 9000), "outside the cluster a name means nothing"
    udp = egress_ports({"port": "stats", "protocol": "UDP"})
    assert udp.egress_allows(WEB, API, 9001, "UDP")
    assert not egress_ports({"port": "stats"}).egress_allows(WEB, API, 9001, "UDP"), "the name's protocol counts"


def test_named_ports_in_ingress_rules() -> None:
    c = cluster(policy("api-in", {"podSelector": {"matchLabels": {"app": "api"}},
                                  "ingress": [{"from": [{"podSelector": {}}], "ports": [{"port": "http"}]}]}))
    assert c.ingress_allows(WEB, API, 9000)
    assert not c.ingress_allows(WEB, API, 9001)
