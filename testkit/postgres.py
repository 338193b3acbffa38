"""A throwaway PostgreSQL cluster from Debian's `postgresql` package, on a free local port."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from testkit.servers import free_port

BIN = Path("/usr/lib/postgresql/15/bin")


@dataclass
class PostgresServer:
    root: Path
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/airlock"

    def _as_postgres(self, command: str) -> None:
        subprocess.run(["su", "postgres", "-c", command], check=True, capture_output=True, timeout=120)

    def start(self) -> PostgresServer:
        data, run = self.root / "pg", self.root / "run"
        for folder in (data, run):
            folder.mkdir(parents=True, exist_ok=True)
            shutil.chown(folder, "postgres", "postgres")
        self.root.chmod(0o755)
        self._as_postgres(f"{BIN}/initdb -D {data} -U postgres --auth=trust")
        self._as_postgres(
            f"{BIN}/pg_ctl -D {data} -o '-p {self.port} -k {run} -c listen_addresses=127.0.0.1' -l {run}/pg.log -w start"
        )
        subprocess.run(
            ["psql", f"postgresql://postgres@127.0.0.1:{self.port}/postgres", "-c", "create database airlock"],
            check=True,
            capture_output=True,
        )
        return self

    def stop(self) -> None:
        self._as_postgres(f"{BIN}/pg_ctl -D {self.root / 'pg'} -m fast -w stop")

    def psql(self, sql: str) -> str:
        result = subprocess.run(
            ["psql", "-At", f"postgresql://postgres@127.0.0.1:{self.port}/airlock", "-c", sql],
            check=True,
            capture_output=True,
            text=True,
        )
        return result.stdout
