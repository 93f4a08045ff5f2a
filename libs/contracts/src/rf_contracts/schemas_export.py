"""Writes the committed JSON Schema of every event: `python -m rf_contracts.schemas_export`."""

import json
from pathlib import Path

from rf_contracts.events import json_schemas

SCHEMA_DIR = Path(__file__).parent / "schemas"


def schema_path(topic: str) -> Path:
    return SCHEMA_DIR / f"{topic}.json"


def render(schema: dict) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main() -> None:
    SCHEMA_DIR.mkdir(exist_ok=True)
    for topic, schema in json_schemas().items():
        schema_path(topic).write_text(render(schema))
        print(schema_path(topic))


if __name__ == "__main__":
    main()
