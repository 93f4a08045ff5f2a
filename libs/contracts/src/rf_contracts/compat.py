"""Compares a committed event schema with the current one: contracts may only grow."""

from typing import Any


def _shape(prop: dict[str, Any]) -> Any:
    """What a consumer relies on in a property: its JSON type(s), format, const and enum values."""
    if "anyOf" in prop:
        return sorted((_shape(p) for p in prop["anyOf"]), key=repr)
    return (prop.get("type"), prop.get("format"), prop.get("const"), tuple(prop.get("enum") or ()))


def breaking_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Every way `new` breaks a consumer written against `old` (empty when it only adds fields)."""
    problems: list[str] = []
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    for name, prop in old_props.items():
        if name not in new_props:
            problems.append(f"field {name!r} was removed or renamed")
            continue
        if _shape(prop) != _shape(new_props[name]):
            problems.append(f"field {name!r} changed type: {_shape(prop)} -> {_shape(new_props[name])}")
    for name in set(new.get("required", ())) - set(old.get("required", ())):
        if name in old_props:
            problems.append(f"field {name!r} became required")
        else:
            problems.append(f"new field {name!r} is required: producers of version 1 do not send it")
    for name in set(old.get("required", ())) - set(new.get("required", ())):
        problems.append(f"field {name!r} is no longer always present")
    return problems
