"""Comparing answers that carry sums of floats: equal but for the last bits the order of a SQL sum leaves."""

from __future__ import annotations

import math
from typing import Any


def differences(got: Any, want: Any, *, rel: float = 1e-9, path: str = "$") -> list[str]:
    """Where `got` and `want` differ: same keys, lengths, types and values, floats within `rel` of each other
    (an `avg` over the same rows read in another order can differ in its last bits). Empty when they agree."""
    if isinstance(got, float) or isinstance(want, float):
        if isinstance(got, int | float) and isinstance(want, int | float) and not isinstance(got, bool):
            return [] if math.isclose(got, want, rel_tol=rel, abs_tol=1e-9) else [f"{path}: {got!r} != {want!r}"]
        return [f"{path}: {got!r} != {want!r}"]
    if isinstance(got, dict) and isinstance(want, dict):
        if got.keys() != want.keys():
            return [f"{path}: keys {sorted(got)} != {sorted(want)}"]
        return [d for k in got for d in differences(got[k], want[k], rel=rel, path=f"{path}.{k}")]
    if isinstance(got, list | tuple) and isinstance(want, list | tuple):
        if len(got) != len(want) or type(got) is not type(want):
            return [f"{path}: {len(got)} items != {len(want)}"]
        pairs = enumerate(zip(got, want, strict=True))
        return [d for i, (g, w) in pairs for d in differences(g, w, rel=rel, path=f"{path}[{i}]")]
    return [] if got == want else [f"{path}: {got!r} != {want!r}"]


def assert_same_answers(got: Any, want: Any, *, rel: float = 1e-9) -> None:
    found = differences(got, want, rel=rel)
    assert not found, "answers differ:\n" + "\n".join(found[:20])
