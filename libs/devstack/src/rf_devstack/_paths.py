"""Locates the repository (for deploy/kafka/pom.xml and the .run directory) from the cwd or this package."""

from __future__ import annotations

from functools import cache
from pathlib import Path

POM_RELATIVE = Path("deploy/kafka/pom.xml")


@cache
def repo_root() -> Path:
    """The checkout that holds deploy/kafka/pom.xml: searched upwards from the cwd, then from this file."""
    for start in (Path.cwd(), Path(__file__).resolve()):
        for candidate in (start, *start.parents):
            if (candidate / POM_RELATIVE).is_file():
                return candidate
    raise FileNotFoundError(
        f"cannot find {POM_RELATIVE} above {Path.cwd()} or {Path(__file__).parent}: "
        "run from inside the ResolutionFlow checkout"
    )


def default_pom() -> Path:
    return repo_root() / POM_RELATIVE


def run_dir(name: str) -> Path:
    """The run directory of one environment (`dev`, `test`): pid files, data and logs, ignored by git."""
    return repo_root() / ".run" / name
