"""Kubernetes wiring by meaning: every peer address a service's settings declare is given and resolves to a
Service, and the rendered NetworkPolicies, evaluated (tests/deploy/netpol.py), admit exactly the calls the code
makes: no fewer (each required call passes the caller's egress and the callee's ingress), no more."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

from rfkit.settings import ServiceSettings

from .conftest import OVERLAYS, settings_classes
from .manifests import FROM_SECRET, Obj, container_env, named, of_kind, workloads
from .netpol import Cluster, Endpoint, External, Pod, Port, selector_matches

pytestmark = pytest.mark.timeout(900)

# What a cluster runs around the namespace: DNS, an ingress controller, Prometheus, KEDA.
KUBE_DNS = Pod("kube-system/kube-dns", "kube-system", {"k8s-app": "kube-dns"},
               (Port(53, "UDP", "dns"), Port(53, "TCP", "dns-tcp")))
INGRESS_CONTROLLER = Pod("ingress-nginx/controller", "ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"},
                         (Port(80, name="http"), Port(443, name="https")))
PROMETHEUS = Pod("monitoring/prometheus", "monitoring", {"app.kubernetes.io/name": "prometheus"},
                 (Port(9090, name="web"),))
KEDA = Pod("keda/keda-operator", "keda", {"app.kubernetes.io/name": "keda-operator"}, (Port(8080, name="metrics"),))
OUTSIDE_PODS = (KUBE_DNS, INGRESS_CONTROLLER, PROMETHEUS, KEDA)
CLIENT = External("a client on the internet", "198.51.100.20")
INTERNET = External("a host on the internet", "203.0.113.10")
DNS = ((KUBE_DNS, 53, "UDP"), (KUBE_DNS, 53, "TCP"))

Target = tuple[Endpoint, int, str]  # where a connection lands: endpoint, port, protocol
Call = tuple[str, str, int, str]  # source name, destination name, port, protocol


def peer_addresses(settings: type[ServiceSettings]) -> list[str]:
    """The environment variables naming another service this one calls: its settings' peer_url fields."""
    return [settings.env_name(f) for f in settings.peer_url_fields()]


def url_address(value: str, default_port: int | None = None) -> tuple[str, int]:
    """host and port of a URL; without a port, the default given or the scheme's."""
    parts = urlsplit(value)
    assert parts.hostname, f"no host in {value!r}"
    return parts.hostname, parts.port or default_port or (443 if parts.scheme == "https" else 80)


def bootstrap_addresses(value: str) -> list[tuple[str, int]]:
    out = []
    for address in value.split(","):
        host, _, port = address.strip().rpartition(":")
        out.append((host.strip("[]"), int(port)))
    return out


def _default_port(settings: type[ServiceSettings], field: str) -> int:
    port = urlsplit(str(settings.model_fields[field].default)).port
    assert port, f"{settings.__name__}.{field}: no port in the default"
    return port


@dataclass
class Deployed:
    """One rendered overlay as the network sees it: one pod per workload, its Services and NetworkPolicies."""

    objs: list[Obj]
    namespace: str
    pods: dict[str, Pod]
    cluster: Cluster

    @classmethod
    def of(cls, objs: list[Obj]) -> Deployed:
        (namespace,) = of_kind(objs, "Namespace")
        name = namespace["metadata"]["name"]
        pods = {}
        for obj, template in workloads(objs):
            ports = tuple(
                Port(p["containerPort"], p.get("protocol", "TCP"), p.get("name"))
                for c in template["spec"]["containers"]
                for p in c.get("ports", [])
            )
            key = f"{obj['kind']}/{obj['metadata']['name']}"
            pods[key] = Pod(key, obj["metadata"]["namespace"], template["metadata"].get("labels", {}), ports)
        labels = {name: namespace["metadata"].get("labels", {})}
        return cls(objs, name, pods, Cluster(of_kind(objs, "NetworkPolicy"), labels))

    def env(self, workload: str) -> dict[str, str]:
        kind, name = workload.split("/")
        (container,) = named(self.objs, kind, name)["spec"]["template"]["spec"]["containers"]
        return container_env(self.objs, container, reveal_secrets=True)

    def resolve(self, host: str, port: int) -> list[Target]:
        """Where a connection to host:port lands: the pods behind a Service of this namespace, else outside."""
        labels = host.split(".")
        in_namespace = len(labels) == 1 or (
            labels[1] == self.namespace and labels[2:] in ([], ["svc"], ["svc", "cluster", "local"])
        )
        if not in_namespace:
            try:
                return [(External(host, str(ipaddress.ip_address(host))), port, "TCP")]
            except ValueError:
                return [(External(host), port, "TCP")]
        service = [s for s in of_kind(self.objs, "Service") if s["metadata"]["name"] == labels[0]]
        assert service, f"{host}: no Service {labels[0]} in {self.namespace}"
        entries = [p for p in service[0]["spec"]["ports"] if p["port"] == port]
        assert entries, f"{host}: Service {labels[0]} does not listen on {port}"
        target, protocol = entries[0].get("targetPort", port), entries[0].get("protocol", "TCP")
        selector = {"matchLabels": service[0]["spec"]["selector"]}
        backends = [
            pod
            for pod in self.pods.values()
            if pod.namespace == self.namespace and selector_matches(selector, pod.labels)
        ]
        assert backends, f"{host}: Service {labels[0]} selects no pod"
        out: list[Target] = []
        for pod in backends:
            numbers = [p.number for p in pod.ports if target in (p.name, p.number) and p.protocol == protocol]
            assert numbers, f"{host}:{port}: {pod.name} has no container port {target}"
            out.append((pod, numbers[0], protocol))
        return out

    def database(self, env: dict[str, str], settings: type[ServiceSettings]) -> list[Target]:
        value = env.get("RF_DATABASE_URL")
        assert value, "RF_DATABASE_URL is not given"
        if value == FROM_SECRET:
            # From the secret store (prod): the host is not known here, the port is the settings' default.
            return [(External("PostgreSQL (from the secret store)"), _default_port(settings, "database_url"), "TCP")]
        return self.resolve(*url_address(value, _default_port(settings, "database_url")))

    def kafka(self, value: str) -> list[Target]:
        return [t for host, port in bootstrap_addresses(value) for t in self.resolve(host, port)]


def required_calls(d: Deployed) -> dict[Call, str]:
    """Every connection some code or operator makes, with the reason (the setting it comes from)."""
    calls: dict[Call, str] = {}

    def need(source: Endpoint, targets: Iterable[Target], why: str) -> None:
        for endpoint, port, protocol in targets:
            calls.setdefault((source.name, endpoint.name, port, protocol), why)

    for service, settings in settings_classes().items():
        server = d.pods[f"Deployment/{service}"]
        env = d.env(server.name)
        for variable in peer_addresses(settings):
            assert env.get(variable), f"{service} is not given {variable}: it would call its loopback default"
            host, port = url_address(env[variable])
            need(server, d.resolve(host, port), f"{service} calls {variable}")
        # Every service's runtime opens the database, and the broker when its settings say it uses Kafka (the
        # gateway does not: rfkit.service.ServiceRuntime builds no Kafka client for it).
        if settings.uses_kafka:
            need(server, d.kafka(env["RF_KAFKA_BOOTSTRAP"]), f"{service}: RF_KAFKA_BOOTSTRAP")
        need(server, d.database(env, settings), f"{service}: RF_DATABASE_URL")
        need(server, DNS, "name resolution")
        # The migration Job runs `python -m rfkit.migrate`, which reads only RF_DATABASE_URL.
        migrate = d.pods[f"Job/{service}-migrate"]
        need(migrate, d.database(d.env(migrate.name), ServiceSettings), f"{service} migration: RF_DATABASE_URL")
        need(migrate, DNS, "name resolution")
        # Operators: Prometheus scrapes where the pod's annotation says.
        annotations = named(d.objs, "Deployment", service)["spec"]["template"]["metadata"].get("annotations", {})
        need(PROMETHEUS, [(server, int(annotations["prometheus.io/port"]), "TCP")], "Prometheus scrapes /metrics")
    topics = d.pods["Job/kafka-topics"]
    need(topics, d.kafka(d.env(topics.name)["BOOTSTRAP"]), "the topic Job: BOOTSTRAP")
    need(topics, DNS, "name resolution")
    # KEDA reads each consumer group's lag from the address its ScaledObject names.
    for scaled in of_kind(d.objs, "ScaledObject"):
        env = d.env(f"Deployment/{scaled['spec']['scaleTargetRef']['name']}")
        for trigger in scaled["spec"]["triggers"]:
            if trigger["type"] == "kafka":
                need(KEDA, d.kafka(env[trigger["metadata"]["bootstrapServersFromEnv"]]), "KEDA reads consumer lag")
    # The public entry: anyone outside the namespace reaches the gateway's port.
    gateway = d.pods["Deployment/gateway"]
    entry = d.resolve("gateway", int(d.env(gateway.name)["RF_PORT"]))
    for outside in (*OUTSIDE_PODS, CLIENT):
        need(outside, entry, "the gateway is the public entry")
    # The dev overlay's own Kafka and PostgreSQL only resolve names.
    for pod in d.pods.values():
        if pod.labels.get("app.kubernetes.io/part-of") == "resolutionflow-dev-infra":
            need(pod, DNS, "name resolution")
    return calls


def _inside(d: Deployed, endpoint: Endpoint) -> bool:
    return isinstance(endpoint, Pod) and endpoint.namespace == d.namespace


def allowed_calls(d: Deployed, required: dict[Call, str]) -> dict[str, set[Call]]:
    """The connections the policies let through ("both"), and those each end alone admits ("egress" at the
    caller, "ingress" at the callee), probing each pod's ports and some addresses outside."""
    endpoints: dict[str, Endpoint] = {p.name: p for p in (*d.pods.values(), *OUTSIDE_PODS)}
    externals = {INTERNET.name: INTERNET}
    externals.update({name: External(name) for _, name, _, _ in required if name not in endpoints})
    pod_ports = [(pod, p.number, p.protocol) for pod in endpoints.values() if isinstance(pod, Pod) for p in pod.ports]
    probe_ports = {(port, protocol) for _, port, protocol in pod_ports} | {(p, pr) for _, _, p, pr in required}
    probe_ports |= {(443, "TCP"), (80, "TCP")}
    destinations: list[Target] = [
        *pod_ports,
        *((ext, port, protocol) for ext in externals.values() for port, protocol in probe_ports),
    ]
    allowed: dict[str, set[Call]] = {"both": set(), "egress": set(), "ingress": set()}
    for source in (*d.pods.values(), *OUTSIDE_PODS, CLIENT):
        for destination, port, protocol in destinations:
            if destination is source or not (_inside(d, source) or _inside(d, destination)):
                continue  # a pod's calls to itself, and traffic between outsiders, are not ours to police
            call = (source.name, destination.name, port, protocol)
            egress = d.cluster.egress_allows(source, destination, port, protocol)
            ingress = d.cluster.ingress_allows(source, destination, port, protocol)
            if egress and ingress:
                allowed["both"].add(call)
            if egress and _inside(d, source):
                allowed["egress"].add(call)
            if ingress and _inside(d, destination):
                allowed["ingress"].add(call)
    return allowed


def unexpected(d: Deployed, allowed: set[Call], required: dict[Call, str]) -> list[str]:
    """Allowed calls no code makes. Kafka and PostgreSQL may live anywhere outside (managed services), so
    egress to them is by port: an address outside may be reached on a port the caller needs, never another."""
    ports_needed = {(c[0], c[2], c[3]) for c in required}
    return sorted(
        f"{c[0]} -> {c[1]}:{c[2]}/{c[3]}"
        for c in allowed - required.keys()
        if isinstance(_endpoint(d, c[1]), Pod) or (c[0], c[2], c[3]) not in ports_needed
    )


@pytest.fixture(scope="module")
def deployed(rendered: dict[str, list[Obj]]) -> dict[str, Deployed]:
    return {overlay: Deployed.of(objs) for overlay, objs in rendered.items()}


def by_overlay() -> pytest.MarkDecorator:
    return pytest.mark.parametrize("overlay", OVERLAYS)


def test_some_service_calls_another() -> None:
    """The peer declarations exist (else the tests below would have nothing to check)."""
    callers = {s: peer_addresses(settings) for s, settings in settings_classes().items()}
    assert sorted(callers["handoffs"]) == ["RF_GATEWAY_URL", "RF_SESSIONS_URL"]
    assert {"RF_SESSIONS_URL", "RF_HANDOFFS_URL", "RF_ANALYTICS_URL"} <= set(callers["gateway"])
    # Every service behind the gateway follows its token denials.
    assert all("RF_GATEWAY_URL" in callers[s] for s in ("sessions", "handoffs", "analytics"))


@by_overlay()
def test_every_peer_address_is_given_and_names_the_service_that_listens_there(
    deployed: dict[str, Deployed], overlay: str
) -> None:
    d = deployed[overlay]
    for service, settings in settings_classes().items():
        env = d.env(f"Deployment/{service}")
        for variable in peer_addresses(settings):
            assert variable in env, f"{overlay}: {service} is not given {variable}"
            host, port = url_address(env[variable])
            targets = d.resolve(host, port)
            assert all(_inside(d, endpoint) for endpoint, _, _ in targets), f"{variable}={env[variable]} leaves"
            # The pods behind it are a service's server, and that service listens on the port the URL names.
            for endpoint, number, _ in targets:
                assert endpoint.name.startswith("Deployment/"), f"{variable} reaches {endpoint.name}"
                callee = endpoint.name.removeprefix("Deployment/")
                assert callee in settings_classes() and callee != service, f"{variable} reaches {callee}"
                assert d.env(endpoint.name)["RF_PORT"] == str(number), f"{callee} does not listen on {number}"


@by_overlay()
def test_network_policies_admit_exactly_the_calls_the_code_makes(deployed: dict[str, Deployed], overlay: str) -> None:
    d = deployed[overlay]
    required = required_calls(d)
    allowed = allowed_calls(d, required)["both"]
    in_scope = {c for c in required if _inside(d, _endpoint(d, c[0])) or _inside(d, _endpoint(d, c[1]))}
    denied = sorted(f"{c[0]} -> {c[1]}:{c[2]}/{c[3]} ({required[c]})" for c in in_scope - allowed)
    extra = unexpected(d, allowed, required)
    assert not denied and not extra, (
        f"{overlay}: calls the code makes but the policies deny:\n  "
        + "\n  ".join(denied)
        + "\ncalls no code makes but the policies allow:\n  "
        + "\n  ".join(extra)
    )


@by_overlay()
def test_each_end_alone_admits_only_the_calls_the_code_makes(deployed: dict[str, Deployed], overlay: str) -> None:
    """Both ends are tight, so that one loose policy is not hidden by the other end's."""
    d = deployed[overlay]
    required = required_calls(d)
    allowed = allowed_calls(d, required)
    loose_egress = unexpected(d, allowed["egress"], required)
    assert not loose_egress, f"{overlay}: egress admits calls no code makes:\n  " + "\n  ".join(loose_egress)
    # The gateway's port is the public entry: it admits anyone (the ingress controller is not known here).
    public = {(c[1], c[2], c[3]) for c in required if c[0] == CLIENT.name}
    loose_ingress = unexpected(d, {c for c in allowed["ingress"] if (c[1], c[2], c[3]) not in public}, required)
    assert not loose_ingress, f"{overlay}: ingress admits calls no code makes:\n  " + "\n  ".join(loose_ingress)


def _endpoint(d: Deployed, name: str) -> Endpoint:
    for endpoint in (*d.pods.values(), *OUTSIDE_PODS):
        if endpoint.name == name:
            return endpoint
    return External(name)


@by_overlay()
def test_calls_no_code_makes_are_denied(deployed: dict[str, Deployed], overlay: str) -> None:
    """A few named ones, readable on their own (the test above checks them all)."""
    d = deployed[overlay]
    pods = d.pods

    def allows(source: str, callee: str) -> bool:
        port = int(d.env(f"Deployment/{callee}")["RF_PORT"])
        return d.cluster.allows(pods[source], pods[f"Deployment/{callee}"], port)

    assert not allows("Deployment/analytics", "sessions")
    assert not allows("Deployment/sessions", "handoffs")
    assert not allows("Deployment/handoffs", "analytics")
    assert not allows("Job/sessions-migrate", "sessions")
    assert not allows("Job/sessions-migrate", "gateway"), "only the servers follow the token denials"
    for endpoint, port, _ in d.kafka(d.env("Deployment/gateway")["RF_KAFKA_BOOTSTRAP"]):
        assert not d.cluster.allows(pods["Deployment/gateway"], endpoint, port), "the gateway uses no Kafka"
    assert not d.cluster.allows(INGRESS_CONTROLLER, pods["Deployment/sessions"], 8001), "only the gateway is public"
    assert not d.cluster.allows(pods["Deployment/sessions"], INTERNET, 443), "no way out but Kafka, PostgreSQL, DNS"
    assert allows("Deployment/handoffs", "sessions"), "escalation checks the session"
    assert allows("Deployment/analytics", "gateway"), "services follow the gateway's token denials"
    # Default deny: a pod no policy was written for can neither be reached nor reach anything.
    newcomer = Pod("Deployment/newcomer", d.namespace, {"app.kubernetes.io/name": "newcomer"}, (Port(8080),))
    assert not d.cluster.allows(INGRESS_CONTROLLER, newcomer, 8080)
    assert not d.cluster.allows(pods["Deployment/gateway"], newcomer, 8080)
    assert not d.cluster.allows(newcomer, KUBE_DNS, 53, "UDP")
    assert not d.cluster.allows(newcomer, INTERNET, 443)
