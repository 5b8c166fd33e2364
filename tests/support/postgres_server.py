"""A real PostgreSQL server for the tests, on a free 127.0.0.1 port.

Debian's `postgresql` package (`.ci/run` installs it) puts initdb and
postgres under /usr/lib/postgresql/<version>/bin. PostgreSQL refuses to run
as root, so when the tests do, the cluster belongs to the unprivileged user
`nobody` and its commands run through `runuser`. fsync is off: a crash of
the test machine loses nothing anyone needs. One server per test process
(`shared()`, stopped at exit); each test gets a database of its own
(`new_database()`), so tests never see each other's rows. A test that
takes the database away starts a `PostgresProc` of its own: `halt()` stops
the server and keeps its data directory, `start()` brings it back on the
same port with everything it had committed.
"""

from __future__ import annotations

import atexit
import glob
import itertools
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.procs import free_port

USER = "nobody"  # the cluster's owner when the tests run as root


def bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise RuntimeError("no initdb: install Debian's postgresql package (.ci/run does)")


def _as_owner(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", USER, "--", *cmd] if os.geteuid() == 0 else cmd


class PostgresProc:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="chatd-pg-"))
        self.data = self.dir / "data"
        self.proc: subprocess.Popen | None = None
        self._names = itertools.count(1)
        self.user = "chatd"
        if os.geteuid() == 0:
            shutil.chown(self.dir, USER)

    def url(self, db: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{db}"

    def start(self, timeout: float = 30.0) -> None:
        """Start the server (the cluster is created on the first start only)."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        bins = bin_dir()
        if not (self.data / "PG_VERSION").exists():
            subprocess.run(
                _as_owner(
                    [
                        str(bins / "initdb"),
                        "-D",
                        str(self.data),
                        "-U",
                        self.user,
                        "--auth=trust",
                        "--encoding=UTF8",
                        "--locale=C.UTF-8",
                        "--no-sync",
                    ]
                ),
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        with open(self.dir / "server.log", "ab") as log:
            self.proc = subprocess.Popen(
                _as_owner(
                    [
                        str(bins / "postgres"),
                        "-D",
                        str(self.data),
                        "-p",
                        str(self.port),
                        "-c",
                        "listen_addresses=127.0.0.1",
                        "-c",
                        f"unix_socket_directories={self.dir}",
                        "-c",
                        "fsync=off",
                        "-c",
                        "synchronous_commit=off",
                        "-c",
                        "full_page_writes=off",
                        "-c",
                        "max_connections=300",
                        "-c",
                        "shared_buffers=64MB",
                    ]
                ),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.proc.returncode}:\n{self.log()}")
            if self._psql("postgres", "SELECT 1", check=False).returncode == 0:
                return
            time.sleep(0.05)
        raise RuntimeError(f"postgres did not answer in time:\n{self.log()}")

    def log(self) -> str:
        try:
            return (self.dir / "server.log").read_text()
        except FileNotFoundError:
            return ""

    def _psql(self, db: str, sql: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                str(bin_dir() / "psql"),
                "-X",
                "-q",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                self.user,
                "-d",
                db,
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ],
            check=check,
            capture_output=True,
            env={**os.environ, "PGCONNECT_TIMEOUT": "2"},
        )

    def new_database(self) -> str:
        """A fresh, empty database: its URL."""
        name = f"test_{os.getpid()}_{next(self._names)}"
        self._psql("postgres", f"CREATE DATABASE {name}")
        return self.url(name)

    def halt(self, timeout: float = 20.0) -> None:
        """Stop the server (fast shutdown: open sessions are ended, committed
        data stays) and keep the data directory: `start()` brings it back."""
        if self.proc is None or self.proc.poll() is not None:
            return
        # pg_ctl signals the postmaster itself, not runuser (which would not pass SIGINT on)
        subprocess.run(
            _as_owner(
                [str(bin_dir() / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast", "-w", "-t", str(int(timeout))]
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        self.halt()
        shutil.rmtree(self.dir, ignore_errors=True)


_shared: PostgresProc | None = None


def shared() -> PostgresProc:
    """The test process's one server, started on first use."""
    global _shared
    if _shared is None:
        server = PostgresProc()
        server.start()
        atexit.register(server.stop)
        _shared = server
    return _shared


def new_database() -> str:
    return shared().new_database()


def store_url() -> str | None:
    """With CHATD_TEST_STORE=postgres (`make test-postgres`) the functional
    suite runs on PostgreSQL: each server a database of its own (servers
    meant to share one pass the same URL). Otherwise None: SQLite files."""
    backend = os.environ.get("CHATD_TEST_STORE", "sqlite")
    if backend not in ("sqlite", "postgres"):
        raise RuntimeError(f"CHATD_TEST_STORE={backend}: sqlite or postgres")
    return new_database() if backend == "postgres" else None


def sqlite_only(reason: str):
    """Skip a test that reads or breaks the SQLite file itself when the suite runs on PostgreSQL."""
    import pytest

    return pytest.mark.skipif(os.environ.get("CHATD_TEST_STORE") == "postgres", reason=f"SQLite only: {reason}")
