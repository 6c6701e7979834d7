"""A throw-away PostgreSQL server for tests and benchmarks (Debian's ``postgresql`` package).

``initdb`` a cluster in a temporary folder, run it as an unprivileged user (root may not run
postgres: ``nobody`` when we are root, else ourselves) on a free loopback port, with its
socket in the same folder; stop it by the PID in ``postmaster.pid``. No pytest in here::

    with Postgres() as pg:
        url = pg.create_database("t1")   # postgresql+psycopg://psoc@127.0.0.1:PORT/t1
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.broker import free_port


def bin_dir() -> Path | None:
    """The newest installed PostgreSQL's bin folder (Debian keeps them versioned)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    return Path(found[-1]).parent if found else None


class Postgres:
    """One PostgreSQL cluster on 127.0.0.1 (see the module doc)."""

    user = "psoc"

    def __init__(self, *, durable: bool = False) -> None:
        binaries = bin_dir()
        if binaries is None:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
        self.bin = binaries
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="lan-guard-pg-"))
        self.data = self.dir / "data"
        self.durable = durable  # False: fsync off, fine for throw-away test data
        self._run_as: dict[str, Any] = {}
        if os.geteuid() == 0:
            self._run_as = {"user": "nobody", "group": "nogroup"}
            shutil.chown(self.dir, "nobody", "nogroup")
        self.dir.chmod(0o700)

    def _run(self, *args: str) -> None:
        done = subprocess.run(
            args,
            capture_output=True,
            text=True,
            check=False,
            env={"LANG": "C", "PATH": "/usr/bin:/bin"},
            cwd=self.dir,
            **self._run_as,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stdout}\n{done.stderr}")

    def start(self) -> Postgres:
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            self.user,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-instructions",
        )
        options = [
            f"-p {self.port}",
            f"-k {self.dir}",
            "-c listen_addresses=127.0.0.1",
            "-c max_connections=60",
        ]
        if not self.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.dir / "log"),
            "-w",
            "-t",
            "30",
            "-o",
            " ".join(options),
            "start",
        )
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        import psycopg

        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user={self.user} dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def stop(self, timeout: float = 20.0) -> None:
        """Fast shutdown (SIGINT to the postmaster by its PID), then wait for it to go."""
        pid = self.pid()
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGINT)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Postgres:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
