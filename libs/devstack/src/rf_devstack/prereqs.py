"""Checks that Java 17+ and Maven, which the local Kafka broker needs, are installed, with install hints."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping

MIN_JAVA = 17

JAVA_HINT = (
    "install a Java 17+ runtime, e.g. `sudo apt-get install -y openjdk-17-jre-headless` (Debian/Ubuntu), "
    "`sudo dnf install -y java-17-openjdk-headless` (Fedora) or `brew install openjdk@17` (macOS), "
    "then put `java` on PATH or set JAVA_HOME"
)
MAVEN_HINT = (
    "install Apache Maven, e.g. `sudo apt-get install -y maven` (Debian/Ubuntu), "
    "`sudo dnf install -y maven` (Fedora) or `brew install maven` (macOS), then put `mvn` on PATH"
)
ALTERNATIVES = "Alternatively start a Docker engine, or point RF_KAFKA_BOOTSTRAP at an existing broker."


class MissingPrerequisiteError(RuntimeError):
    """A tool the local infrastructure needs is absent; the message says what and how to install it."""


def find_java(env: Mapping[str, str] | None = None) -> str | None:
    """The java executable from JAVA_HOME, else from PATH."""
    env = os.environ if env is None else env
    home = env.get("JAVA_HOME")
    if home:
        candidate = os.path.join(home, "bin", "java")
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("java", path=env.get("PATH", ""))


def find_maven(env: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if env is None else env
    return shutil.which("mvn", path=env.get("PATH", ""))


def java_major_version(java: str) -> int | None:
    """The feature release of a java executable (17 for "17.0.15", 8 for "1.8.0_402"), None if unknown."""
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30, check=False).stderr
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def check_prerequisites(*, need_maven: bool = True, env: Mapping[str, str] | None = None) -> str:
    """Returns the java executable; raises MissingPrerequisiteError naming every missing tool."""
    problems = []
    java = find_java(env)
    if java is None:
        problems.append(f"Java (`java`) was not found: {JAVA_HINT}.")
    else:
        major = java_major_version(java)
        if major is not None and major < MIN_JAVA:
            problems.append(f"Java {major} at {java} is too old, Kafka 4 needs Java {MIN_JAVA}+: {JAVA_HINT}.")
    if need_maven and find_maven(env) is None:
        problems.append(f"Maven (`mvn`) was not found (it resolves the Kafka jars): {MAVEN_HINT}.")
    if problems:
        raise MissingPrerequisiteError(
            "The local Kafka broker cannot start:\n  - " + "\n  - ".join(problems) + "\n" + ALTERNATIVES
        )
    assert java is not None
    return java
