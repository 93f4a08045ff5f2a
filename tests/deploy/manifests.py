"""Reading rendered Kubernetes objects: lookups by kind and name, pod templates, a container's environment."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

Obj = dict[str, Any]
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "Job"}
FROM_SECRET = "<from a Secret>"


def of_kind(objs: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objs if o["kind"] == kind]


def named(objs: list[Obj], kind: str, name: str) -> Obj:
    found = [o for o in of_kind(objs, kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def workloads(objs: list[Obj]) -> Iterator[tuple[Obj, Obj]]:
    """(object, pod template) of every Deployment, StatefulSet and Job."""
    for o in objs:
        if o["kind"] in WORKLOAD_KINDS:
            yield o, o["spec"]["template"]


def config_maps(objs: list[Obj]) -> dict[str, dict[str, str]]:
    return {o["metadata"]["name"]: o.get("data", {}) for o in of_kind(objs, "ConfigMap")}


def secrets(objs: list[Obj]) -> dict[str, dict[str, str]]:
    """The Secrets the overlay itself carries (dev), decoded; prod's come from the secret store and are absent."""
    out = {}
    for o in of_kind(objs, "Secret"):
        data = {k: base64.b64decode(v).decode() for k, v in (o.get("data") or {}).items()}
        out[o["metadata"]["name"]] = {**data, **(o.get("stringData") or {})}
    return out


def container_env(objs: list[Obj], container: Obj, *, reveal_secrets: bool = False) -> dict[str, str]:
    """A container's environment as Kubernetes would assemble it.

    Values from Secrets are FROM_SECRET, unless reveal_secrets and the overlay carries that Secret.
    """
    cms = config_maps(objs)
    known_secrets = secrets(objs) if reveal_secrets else {}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef")
        assert ref, f"envFrom other than a ConfigMap in {container['name']}"
        assert ref["name"] in cms, f"{container['name']} refers to a missing ConfigMap {ref['name']}"
        env.update(cms[ref["name"]])
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        elif "configMapKeyRef" in var["valueFrom"]:
            ref = var["valueFrom"]["configMapKeyRef"]
            env[var["name"]] = cms[ref["name"]][ref["key"]]
        else:
            ref = var["valueFrom"].get("secretKeyRef", {})
            env[var["name"]] = known_secrets.get(ref.get("name"), {}).get(ref.get("key"), FROM_SECRET)
    return env


# ---- JSON schemas of the custom resources we write (their CRDs' fields that we use) ----------------------


def closed(properties: Obj, *, required: tuple[str, ...] = ()) -> Obj:
    """An object with only these properties: a misspelt field fails the check instead of being ignored."""
    schema: Obj = {"type": "object", "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    return {**schema, "properties": properties}


def list_of(item: Obj) -> Obj:
    """A non-empty array of `item`."""
    return {"type": "array", "minItems": 1, "items": item}


def custom_resource(api_version: str, kind: str, spec: Obj) -> Obj:
    """A named custom resource of this apiVersion and kind whose spec is `spec`."""
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": api_version},
            "kind": {"const": kind},
            "metadata": {"type": "object", "required": ["name"]},
            "spec": spec,
        },
    }
