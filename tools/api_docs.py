"""Writes the committed API documents from the code: `python -m tools.api_docs` (`make api-docs`).

A tool, not part of rf_devstack: it imports the gateway, and libraries never import services.

docs/openapi.json is the gateway's public OpenAPI document (every route of /api/v1); docs/asyncapi.yaml is the
AsyncAPI 3.0 document of the Kafka events (rf_contracts.asyncapi). `--check` writes nothing and fails when a
committed document differs from what the code produces.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

COMMAND = "make api-docs"


def openapi() -> dict[str, Any]:
    """The gateway's public document, as /openapi.json serves it (it depends on no setting)."""
    from gateway.main import create_app
    from gateway.settings import Settings

    return create_app(Settings(env="test")).openapi()


def render_openapi(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


class _Dumper(yaml.SafeDumper):
    """Multi-line text as a literal block, so that descriptions read as written."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _text)


def render_asyncapi(document: dict[str, Any]) -> str:
    header = "# Generated from rf_contracts by `make api-docs` (python -m tools.api_docs): do not edit.\n"
    return header + yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)


def documents() -> dict[str, str]:
    """Each committed document's path in the repository and its text as the code produces it now."""
    from rf_contracts.asyncapi import document

    return {"docs/openapi.json": render_openapi(openapi()), "docs/asyncapi.yaml": render_asyncapi(document())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.api_docs", description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 when a document is stale")
    args = parser.parse_args(argv)
    root = Path(__file__).resolve().parents[1]
    stale = []
    for relative, text in documents().items():
        path = root / relative
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(relative)
            continue
        path.write_text(text)
        print(f"wrote {relative}")
    if stale:
        print(f"stale: {', '.join(stale)}; regenerate with `{COMMAND}`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
