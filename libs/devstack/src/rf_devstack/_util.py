"""Process, port, file and event-loop helpers shared by the local Kafka, PostgreSQL and service runners."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def pid_alive(pid: int) -> bool:
    """True when the process exists and is not a zombie."""
    try:
        # Reaps our own exited children, which would otherwise look alive to kill(pid, 0) as zombies.
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    # The state letter follows the parenthesised command name, which may itself contain spaces.
    return stat.rpartition(")")[2].split()[0] != "Z"


def cmdline(pid: int) -> str:
    """The command line of a process, arguments joined by spaces ('' if unknown)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def find_pids(marker: str) -> list[int]:
    """Pids of live processes whose command line contains `marker` (Linux /proc; [] elsewhere)."""
    me = os.getpid()
    found = []
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    for entry in proc.iterdir():
        if entry.name.isdigit() and int(entry.name) != me and marker in cmdline(int(entry.name)):
            pid = int(entry.name)
            if pid_alive(pid):
                found.append(pid)
    return found


def read_pid(path: Path) -> int | None:
    """The pid on the first line of a pid file (postmaster.pid has more lines after it)."""
    try:
        return int(path.read_text().split("\n", 1)[0].strip())
    except (OSError, ValueError):
        return None


def live_pid(path: Path, marker: str) -> int | None:
    """The pid recorded in `path` if that process lives and is still ours (pids get reused)."""
    pid = read_pid(path)
    if pid is None or not pid_alive(pid) or marker not in cmdline(pid):
        return None
    return pid


def tcp_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            return not self_connected(sock)
    except OSError:
        return False


def self_connected(sock: socket.socket) -> bool:
    """True for TCP's simultaneous open onto itself: probing a free port inside the ephemeral range can pick that
    very port as the probe's own source port, and then "connects" with nobody listening (holding the port)."""
    return bool(sock.getsockname() == sock.getpeername())


def terminate_group(pid: int, timeout: float = 30.0) -> bool:
    """SIGTERMs the process group led by `pid` (started with start_new_session), SIGKILLs it after `timeout`.

    Returns True when the process exited on SIGTERM alone.
    """
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return sig == signal.SIGTERM
        except PermissionError:
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                return sig == signal.SIGTERM
            time.sleep(0.05)
    return False


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive inter-process lock, so that concurrent test sessions or CLIs do not start twice."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_sync(factory: Callable[[], Awaitable[T]]) -> T:
    """Runs a coroutine to completion from sync code, even when the calling thread already runs a loop."""

    async def main() -> T:
        return await factory()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    result: list[T] = []
    error: list[BaseException] = []

    def worker() -> None:
        try:
            result.append(asyncio.run(main()))
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=worker, name="rf-devstack-sync")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def atomic_write(path: Path, text: str, mode: int = 0o644) -> None:
    """Writes via a temporary file and a rename, so readers never see half a file; `mode` applies from the start."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    tmp.chmod(mode)
    tmp.replace(path)
