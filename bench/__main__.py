"""Runs every benchmark module under bench/ in its own process and prints their JSON result lines."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent


def main(argv: list[str]) -> int:
    names = argv or sorted(m.name for m in pkgutil.iter_modules([str(HERE)]) if not m.name.startswith("_"))
    results, failed = [], []
    for name in names:
        command = [sys.executable, "-m", f"bench.{name}"]
        print(f"== {name}: {' '.join(['uv run python -m', f'bench.{name}'])}", flush=True)
        started = time.monotonic()
        proc = subprocess.run(command, cwd=HERE.parent, stdout=subprocess.PIPE, text=True)
        sys.stdout.write(proc.stdout)
        lines = [line for line in proc.stdout.strip().splitlines() if line.strip()]
        try:
            result = json.loads(lines[-1])
        except (IndexError, json.JSONDecodeError):
            result = None
        if proc.returncode != 0 or not isinstance(result, dict):
            failed.append(name)
            print(f"!! {name} failed (exit {proc.returncode})", flush=True)
            continue
        result["seconds"] = round(time.monotonic() - started, 1)
        results.append(result)
    print("== summary")
    for result in results:
        print(json.dumps(result))
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
