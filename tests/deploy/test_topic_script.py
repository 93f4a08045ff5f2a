"""The topic script, run as the Kubernetes Job and the compose service run it: every contract topic and its DLQ
come out with the contract's partitions and retention, a second run changes nothing, a wrong layout fails.

Kafka's command-line tools are stood in for by a small recorder (below) that keeps the topics in a JSON file:
what is checked here is the script's logic; `make compose-test` runs it against a real broker.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rf_contracts import topics

from .conftest import OVERLAYS, REPO
from .manifests import Obj, config_maps, container_env, named

# Understands the few forms of kafka-topics.sh and kafka-configs.sh the script uses; anything else fails loudly.
FAKE_CLI = r'''
import json, os, sys
tool, args = sys.argv[1], sys.argv[2:]
state_file = os.environ["FAKE_KAFKA_STATE"]
state = json.load(open(state_file))
def value(flag):
    return args[args.index(flag) + 1]
state["bootstraps"].append(value("--bootstrap-server"))
if "--list" not in args and state.get("fail_next", 0) > 0:
    # As Kafka's tools fail when the broker's name stops resolving for a moment after it first did.
    state["fail_next"] -= 1
    json.dump(state, open(state_file, "w"))
    sys.exit("No resolvable bootstrap urls given in bootstrap.servers")
topics = state["topics"]
if tool == "topics" and "--list" in args:
    print("\n".join(topics))
elif tool == "topics" and "--create" in args:
    name = value("--topic")
    configs = dict(args[i + 1].split("=", 1) for i, a in enumerate(args) if a == "--config")
    topics.setdefault(name, {"partitions": int(value("--partitions")),
                             "replication": int(value("--replication-factor")), "configs": configs})
elif tool == "topics" and "--describe" in args:
    for name, t in topics.items():
        print(f"Topic: {name}\tTopicId: x\tPartitionCount: {t['partitions']}\tReplicationFactor: {t['replication']}")
        for p in range(t["partitions"]):
            print(f"\tTopic: {name}\tPartition: {p}\tLeader: 1")
elif tool == "configs" and "--alter" in args and value("--entity-type") == "topics":
    topics[value("--entity-name")]["configs"].update(dict(c.split("=", 1) for c in value("--add-config").split(",")))
else:
    sys.exit(f"unexpected call: {tool} {args}")
json.dump(state, open(state_file, "w"))
'''


def fake_kafka_bin(directory: Path) -> Path:
    directory.mkdir()
    (directory / "fake_cli.py").write_text(FAKE_CLI)
    for script, tool in (("kafka-topics.sh", "topics"), ("kafka-configs.sh", "configs")):
        path = directory / script
        path.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{directory / "fake_cli.py"}" {tool} "$@"\n')
        path.chmod(0o755)
    return directory


def run_script(
    script: Path, env: dict[str, str], tmp_path: Path, existing: dict[str, Any] | None = None, *, failing_calls: int = 0
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """Runs the script against the recorder; `failing_calls` calls after the first list fail as a lost name would."""
    state_file = tmp_path / "state.json"
    if existing is not None or not state_file.exists():
        state_file.write_text(json.dumps({"topics": existing or {}, "bootstraps": [], "fail_next": failing_calls}))
    kafka_bin = tmp_path / "bin"
    if not kafka_bin.exists():
        fake_kafka_bin(kafka_bin)
    result = subprocess.run(
        ["sh", str(script)],
        env={"PATH": "/usr/bin:/bin", "KAFKA_BIN": str(kafka_bin), "FAKE_KAFKA_STATE": str(state_file), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result, json.loads(state_file.read_text())


def job_script_and_env(objs: list[Obj], tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The script as the Job mounts it (from its ConfigMap) and the Job container's environment."""
    job = named(objs, "Job", "kafka-topics")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    (volume,) = [v for v in job["spec"]["template"]["spec"]["volumes"] if "configMap" in v]
    script = tmp_path / "create-topics.sh"
    script.write_text(config_maps(objs)[volume["configMap"]["name"]]["create-topics.sh"])
    return script, container_env(objs, container)


def check_contract_layout(state: dict[str, Any], env: dict[str, str]) -> None:
    expected = {t: topics.RETENTION_MS for t in topics.ALL_TOPICS}
    expected |= {f"{t}{topics.DLQ_SUFFIX}": topics.DLQ_RETENTION_MS for t in topics.ALL_TOPICS}
    assert set(state["topics"]) == set(expected)
    for name, retention in expected.items():
        topic = state["topics"][name]
        assert topic["partitions"] == topics.PARTITIONS, name
        assert topic["configs"]["retention.ms"] == str(retention), name
        assert topic["replication"] == int(env.get("REPLICATION_FACTOR", "1")), name
        if "MIN_INSYNC_REPLICAS" in env:
            assert topic["configs"]["min.insync.replicas"] == env["MIN_INSYNC_REPLICAS"], name
    assert set(state["bootstraps"]) == {env["BOOTSTRAP"]}, "every call goes to the configured broker"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_job_creates_the_contract_layout_and_a_rerun_changes_nothing(
    rendered: dict[str, list[Obj]], overlay: str, tmp_path: Path
) -> None:
    script, env = job_script_and_env(rendered[overlay], tmp_path)
    first, state = run_script(script, env, tmp_path)
    assert first.returncode == 0, first.stderr
    check_contract_layout(state, env)
    again, state_after = run_script(script, env, tmp_path)
    assert again.returncode == 0, again.stderr
    assert state_after["topics"] == state["topics"]


def test_compose_runs_the_same_script_to_the_same_layout(tmp_path: Path) -> None:
    import yaml

    service = yaml.safe_load((REPO / "compose.yaml").read_text())["services"]["kafka-topics"]
    (mount,) = service["volumes"]
    source, target, _ = mount.split(":")
    assert service["entrypoint"] == ["/bin/sh", target], "compose runs the mounted script"
    env = {k: str(v) for k, v in service["environment"].items()}
    result, state = run_script(REPO / source, env, tmp_path)
    assert result.returncode == 0, result.stderr
    check_contract_layout(state, env)


def test_a_topic_with_the_wrong_partition_count_fails_and_is_left_alone(
    rendered: dict[str, list[Obj]], tmp_path: Path
) -> None:
    script, env = job_script_and_env(rendered["dev"], tmp_path)
    wrong = topics.ALL_TOPICS[0]
    existing = {wrong: {"partitions": topics.PARTITIONS - 1, "replication": 1, "configs": {}}}
    result, state = run_script(script, env, tmp_path, existing)
    assert result.returncode != 0
    assert f"topic {wrong} has {topics.PARTITIONS - 1} partitions" in result.stderr
    assert state["topics"][wrong]["partitions"] == topics.PARTITIONS - 1, "never altered silently"
    assert state["topics"][wrong]["configs"]["retention.ms"] == str(topics.RETENTION_MS), "its configs re-applied"


def test_calls_failing_for_a_moment_after_the_broker_answered_are_tried_again(
    rendered: dict[str, list[Obj]], tmp_path: Path
) -> None:
    # Seen in compose on Podman: the broker's name resolved for the first list, then not for the first create.
    script, env = job_script_and_env(rendered["dev"], tmp_path)
    result, state = run_script(script, {**env, "CALL_ATTEMPTS": "3"}, tmp_path, failing_calls=2)
    assert result.returncode == 0, result.stderr
    assert state["fail_next"] == 0, "both failures were met"
    assert "attempt 3 of 3" in result.stderr and "gave up" not in result.stderr, result.stderr
    check_contract_layout(state, env)


def test_a_call_failing_every_attempt_fails_the_run(rendered: dict[str, list[Obj]], tmp_path: Path) -> None:
    script, env = job_script_and_env(rendered["dev"], tmp_path)
    result, state = run_script(script, {**env, "CALL_ATTEMPTS": "2"}, tmp_path, failing_calls=2)
    assert result.returncode != 0
    assert "gave up after 2 attempts" in result.stderr
    assert state["topics"] == {}, "nothing created"
