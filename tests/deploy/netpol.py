"""Would Kubernetes let this connection through? NetworkPolicy (networking.k8s.io/v1) evaluated as the API defines it.

A connection from a source to a destination pod's port passes when the source's egress and the destination's
ingress both admit it. A pod is isolated in a direction once any policy of its namespace selects it for that
direction; an isolated pod is allowed exactly what the union of those policies' rules allows, an unselected one
everything. Named ports are looked up in the destination pod's containers. Endpoints outside the cluster
(`External`) are matched only by `ipBlock` and by rules without peers; no policy isolates them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class Port:
    """One container port: its number, protocol and (optional) name."""

    number: int
    protocol: str = "TCP"
    name: str | None = None


@dataclass(frozen=True)
class Pod:
    name: str
    namespace: str
    labels: Mapping[str, str] = field(default_factory=dict)
    ports: tuple[Port, ...] = ()


@dataclass(frozen=True)
class External:
    """Something outside the cluster (a managed database, the internet), known by name and maybe by address."""

    name: str
    ip: str | None = None


Endpoint = Pod | External


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A metav1.LabelSelector: matchLabels and every matchExpression must hold; an empty selector matches all."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        if operator == "In":
            ok = key in labels and labels[key] in values
        elif operator == "NotIn":
            ok = key not in labels or labels[key] not in values
        elif operator == "Exists":
            ok = key in labels
        elif operator == "DoesNotExist":
            ok = key not in labels
        else:
            raise ValueError(f"unknown label selector operator {operator!r}")
        if not ok:
            return False
    return True


def policy_types(spec: Mapping[str, Any]) -> set[str]:
    """policyTypes, or its default: Ingress always, Egress when the policy has an egress section."""
    if spec.get("policyTypes"):
        return set(spec["policyTypes"])
    return {"Ingress", "Egress"} if "egress" in spec else {"Ingress"}


def port_matches(entry: Mapping[str, Any], destination: Endpoint, port: int, protocol: str) -> bool:
    """A NetworkPolicyPort: protocol (TCP by default), then a number (with endPort a range), a name, or any."""
    if entry.get("protocol", "TCP") != protocol:
        return False
    wanted = entry.get("port")
    if wanted is None:
        return True
    if isinstance(wanted, int):
        return wanted <= port <= entry.get("endPort", wanted)
    # A named port means the destination pod's container port of that name and protocol.
    if not isinstance(destination, Pod):
        return False
    return any(p.name == wanted and p.protocol == protocol and p.number == port for p in destination.ports)


class Cluster:
    """The policies of some namespaces, and the labels of the namespaces pods live in."""

    def __init__(self, policies: Iterable[Obj], namespace_labels: Mapping[str, Mapping[str, str]] | None = None):
        self.policies = list(policies)
        self._namespace_labels = dict(namespace_labels or {})
        for policy in self.policies:
            assert policy["metadata"].get("namespace"), f"policy {policy['metadata']['name']} has no namespace"

    def namespace_labels(self, namespace: str) -> dict[str, str]:
        # The API server sets kubernetes.io/metadata.name on every namespace.
        return {**self._namespace_labels.get(namespace, {}), NAMESPACE_NAME_LABEL: namespace}

    def allows(self, source: Endpoint, destination: Endpoint, port: int, protocol: str = "TCP") -> bool:
        return self.egress_allows(source, destination, port, protocol) and self.ingress_allows(
            source, destination, port, protocol
        )

    def egress_allows(self, source: Endpoint, destination: Endpoint, port: int, protocol: str = "TCP") -> bool:
        return self._side_allows("Egress", source, destination, destination, port, protocol)

    def ingress_allows(self, source: Endpoint, destination: Endpoint, port: int, protocol: str = "TCP") -> bool:
        return self._side_allows("Ingress", destination, source, destination, port, protocol)

    def _side_allows(
        self, direction: str, pod: Endpoint, peer: Endpoint, destination: Endpoint, port: int, protocol: str
    ) -> bool:
        """Whether the `direction` policies selecting `pod` let it talk with `peer` (none selecting it: they do)."""
        if not isinstance(pod, Pod):
            return True
        selecting = self._selecting(pod, direction)
        if not selecting:
            return True
        key, rules = ("to", "egress") if direction == "Egress" else ("from", "ingress")
        return any(
            self._rule_matches(rule, key, policy, peer, destination, port, protocol)
            for policy in selecting
            for rule in policy["spec"].get(rules) or []
        )

    def _selecting(self, pod: Pod, direction: str) -> list[Obj]:
        return [
            p
            for p in self.policies
            if p["metadata"]["namespace"] == pod.namespace
            # podSelector is not a pointer in the API: null is the empty selector, every pod.
            and selector_matches(p["spec"].get("podSelector") or {}, pod.labels)
            and direction in policy_types(p["spec"])
        ]

    def _rule_matches(
        self, rule: Obj, peers_key: str, policy: Obj, other: Endpoint, destination: Endpoint, port: int, protocol: str
    ) -> bool:
        # An absent or empty list of peers or ports means every peer or every port.
        peers = rule.get(peers_key) or []
        if peers and not any(self._peer_matches(peer, policy["metadata"]["namespace"], other) for peer in peers):
            return False
        ports = rule.get("ports") or []
        return not ports or any(port_matches(entry, destination, port, protocol) for entry in ports)

    def _peer_matches(self, peer: Obj, policy_namespace: str, other: Endpoint) -> bool:
        if "ipBlock" in peer:
            # Pod addresses are not modelled: ipBlock is for what lives outside the cluster.
            if not isinstance(other, External) or other.ip is None:
                return False
            address = ipaddress.ip_address(other.ip)
            block = peer["ipBlock"]
            return address in ipaddress.ip_network(block["cidr"]) and not any(
                address in ipaddress.ip_network(excluded) for excluded in block.get("except") or []
            )
        pods, namespaces = peer.get("podSelector"), peer.get("namespaceSelector")
        if pods is None and namespaces is None:
            raise ValueError(f"a peer needs podSelector, namespaceSelector or ipBlock: {peer}")
        if not isinstance(other, Pod):
            return False
        # Without a namespaceSelector the peer is in the policy's own namespace.
        if namespaces is not None:
            if not selector_matches(namespaces, self.namespace_labels(other.namespace)):
                return False
        elif other.namespace != policy_namespace:
            return False
        return pods is None or selector_matches(pods, other.labels)
