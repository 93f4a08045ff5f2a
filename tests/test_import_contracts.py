"""The import contracts of pyproject.toml catch wrong imports: tiny package trees that break each one, and one that
keeps them all, checked by import-linter with the repository's own configuration."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
CONFIG: dict[str, Any] = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]
CONTRACTS: list[dict[str, Any]] = CONFIG["contracts"]
ROOT_PACKAGES: list[str] = CONFIG["root_packages"]
SERVICES = ["gateway", "sessions", "handoffs", "analytics"]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def internal(module: str) -> bool:
    return module.split(".")[0] in ROOT_PACKAGES


@dataclass
class Tree:
    """Modules and what each imports, written out as packages under one folder."""

    imports: dict[str, set[str]] = field(default_factory=dict)
    packages: set[str] = field(default_factory=set)

    def add(self, module: str, *imported: str, package: bool = False) -> None:
        self.imports.setdefault(module, set()).update(imported)
        if package:
            self.packages.add(module)

    def write(self, folder: Path) -> None:
        modules = set(self.imports) | {m for m in (i for s in self.imports.values() for i in s) if internal(m)}
        # Every ancestor is a package; a module with children is one too.
        for module in list(modules):
            parts = module.split(".")
            for n in range(1, len(parts)):
                self.packages.add(".".join(parts[:n]))
        for module in modules | self.packages:
            parts = module.split(".")
            path = folder.joinpath(*parts, "__init__.py") if module in self.packages else \
                folder.joinpath(*parts[:-1], parts[-1] + ".py")
            path.parent.mkdir(parents=True, exist_ok=True)
            lines = [f'"""{module}."""'] + [f"import {i}" for i in sorted(self.imports.get(module, ()))]
            path.write_text("\n".join(lines) + "\n")


def compliant() -> Tree:
    """The service shape as it should be: every module a contract names, importing only what it may."""
    tree = Tree()
    for package in ROOT_PACKAGES:
        tree.add(package)
    for contract in CONTRACTS:
        for key in ("modules", "source_modules", "forbidden_modules"):
            for module in contract.get(key, []):
                if internal(module):
                    tree.add(module)
    tree.add("rf_contracts.events", "pydantic")
    tree.add("rfkit.errors")
    tree.add("rfkit.db", "sqlalchemy", "sqlalchemy.ext.asyncio", "asyncpg", "rf_contracts.events")
    tree.add("rfkit.web", "fastapi", "starlette.responses", "rfkit.errors")
    tree.add("rfkit.messaging", "faststream", "aiokafka")
    tree.add("rf_devstack.kafka", "aiokafka", "httpx")
    for svc in SERVICES:
        tree.add(f"{svc}.domain", "rfkit.errors", "rf_contracts.events", "dataclasses")
        tree.add(f"{svc}.repository", "sqlalchemy", f"{svc}.domain")
        tree.add(f"{svc}.ports", "typing")
        tree.add(f"{svc}.clients", "httpx", f"{svc}.ports")
        # Handlers work through the kit's unit of work, which is built on SQLAlchemy: an indirect import.
        tree.add(f"{svc}.handlers", f"{svc}.domain", f"{svc}.ports", "rfkit.db", f"{svc}.repository")
        tree.add(f"{svc}.api", "fastapi", f"{svc}.handlers", "rfkit.web", f"{svc}.clients")
        tree.add(f"{svc}.consumers", "faststream", f"{svc}.handlers", "rfkit.messaging")
        tree.add(f"{svc}.main", f"{svc}.api", f"{svc}.consumers", "rfkit.web")
    return tree


@dataclass
class Result:
    code: int
    output: str

    def status(self, contract: dict[str, Any]) -> str:
        match = re.search(rf"^{re.escape(contract['name'])} (KEPT|BROKEN)$", self.output, re.M)
        assert match, f"{contract['id']} not reported:\n{self.output}"
        return match.group(1)

    def says(self, importer: str, imported: str) -> bool:
        return f"{importer} is not allowed to import {imported}:" in self.output


def lint(tree: Tree, folder: Path) -> Result:
    tree.write(folder)
    # The tree comes first on the path, ahead of the workspace's packages of the same names.
    env = {**os.environ, "PYTHONPATH": str(folder), "COLUMNS": "500", "NO_COLOR": "1"}
    proc = subprocess.run(
        [str(LINT_IMPORTS), "--config", str(PYPROJECT), "--no-cache", "--no-logo"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=120,
    )
    return Result(proc.returncode, proc.stdout + proc.stderr)


def test_the_contracts_are_the_ones_the_shape_asks_for() -> None:
    by_id = {c["id"]: c for c in CONTRACTS}
    assert by_id["services-independent"]["type"] == "independence"
    assert set(by_id["services-independent"]["modules"]) == set(SERVICES)
    assert set(by_id["libs-not-services"]["forbidden_modules"]) == set(SERVICES)
    assert set(by_id["domain-plain"]["source_modules"]) == {f"{s}.domain" for s in SERVICES}
    assert set(by_id["domain-plain"]["forbidden_modules"]) >= {
        "fastapi", "starlette", "sqlalchemy", "faststream", "aiokafka", "httpx", "asyncpg",
    }
    assert set(by_id["handlers-no-web-sql"]["source_modules"]) == {f"{s}.handlers" for s in SERVICES}
    assert set(by_id["handlers-no-web-sql"]["forbidden_modules"]) >= {"fastapi", "starlette", "httpx", "sqlalchemy"}
    assert set(by_id["no-test-support-in-production"]["source_modules"]) == set(ROOT_PACKAGES)


def test_a_compliant_tree_keeps_every_contract(tmp_path: Path) -> None:
    result = lint(compliant(), tmp_path)
    assert result.code == 0, result.output
    assert [c["id"] for c in CONTRACTS if result.status(c) != "KEPT"] == []


def _forbidden(contract: dict[str, Any], tree: Tree) -> list[tuple[str, str]]:
    """Each source module imports each forbidden one; a service's handlers do it from a submodule (a handlers
    package split by subject is held to the same rule)."""
    pairs = []
    for source in contract["source_modules"]:
        importer = source
        if source.endswith(".handlers"):
            tree.add(source, package=True)
            importer = f"{source}.claims"
        tree.add(importer, *contract["forbidden_modules"])
        pairs += [(source, forbidden) for forbidden in contract["forbidden_modules"]]
    return pairs


def _independence(contract: dict[str, Any], tree: Tree) -> list[tuple[str, str]]:
    """Each service imports the next one's api."""
    modules = contract["modules"]
    pairs = []
    for importer, imported in zip(modules, modules[1:] + modules[:1], strict=True):
        tree.add(f"{importer}.handlers", f"{imported}.api")
        pairs.append((importer, imported))
    return pairs


@pytest.mark.parametrize("contract", CONTRACTS, ids=[c["id"] for c in CONTRACTS])
def test_a_wrong_import_breaks_the_contract(contract: dict[str, Any], tmp_path: Path) -> None:
    tree = compliant()
    pairs = _independence(contract, tree) if contract["type"] == "independence" else _forbidden(contract, tree)
    result = lint(tree, tmp_path)
    assert result.code != 0, result.output
    assert result.status(contract) == "BROKEN"
    missed = [pair for pair in pairs if not result.says(*pair)]
    assert missed == [], result.output
    # Only the contract broken on purpose: the others still hold.
    assert [c["id"] for c in CONTRACTS if c is not contract and result.status(c) != "KEPT"] == []


@pytest.mark.parametrize("contract", [c for c in CONTRACTS if c["type"] == "forbidden"],
                         ids=[c["id"] for c in CONTRACTS if c["type"] == "forbidden"])
def test_an_import_through_another_module_counts_unless_allowed(contract: dict[str, Any], tmp_path: Path) -> None:
    """A source module importing a library module that imports a forbidden one: broken for domain code (plain
    through and through), kept for handlers (the kit's unit of work is built on SQLAlchemy)."""
    tree = compliant()
    forbidden = contract["forbidden_modules"][0]
    # The in-between module sits in a package the source may import (never the source's own).
    via = "rf_contracts.via" if not contract["source_modules"][0].startswith("rf_contracts") else "rfkit.via"
    tree.add(via, forbidden)
    for source in contract["source_modules"]:
        tree.add(source, via)
    result = lint(tree, tmp_path)
    if contract.get("allow_indirect_imports"):
        assert result.status(contract) == "KEPT", result.output
    else:
        assert result.status(contract) == "BROKEN", result.output
        assert all(result.says(source, forbidden) for source in contract["source_modules"]), result.output
