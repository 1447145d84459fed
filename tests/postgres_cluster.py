"""A throwaway PostgreSQL server for the farm tests: Debian's own binaries, a temp dir, a free port.

Used two ways, so the recipe exists once:

- ``.ci/run`` starts one for the whole run (``python tests/postgres_cluster.py start DIR``
  prints its URL; ``... stop DIR`` stops it) and exports the URL as
  ``EDGESMITH_TEST_POSTGRES_URL`` with ``EDGESMITH_REQUIRE_POSTGRES=1``;
- the ``postgres_url`` fixture uses that URL, or else starts a server itself when the
  binaries are installed (``apt-get install postgresql``), or else fails when
  ``EDGESMITH_REQUIRE_POSTGRES=1`` (CI) and skips, saying why, elsewhere.

PostgreSQL refuses to run as root; as root the server runs as the ``postgres`` user that
Debian's package creates. Each test gets its own database (``postgres_db``), dropped after.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

URL_VAR = "EDGESMITH_TEST_POSTGRES_URL"
REQUIRE_VAR = "EDGESMITH_REQUIRE_POSTGRES"
ROLE = "edgesmith"


def bin_dir() -> Path | None:
    """Where ``initdb`` and ``pg_ctl`` are: PATH first, then Debian's /usr/lib/postgresql/<version>/bin."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def _as_owner(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(directory: str | Path) -> str:
    """Creates a cluster in ``directory`` (empty or new), starts it, returns its URL."""
    bins = bin_dir()
    if bins is None:
        raise RuntimeError("PostgreSQL's initdb/pg_ctl not found (on PATH or in /usr/lib/postgresql/*/bin); "
                           "install Debian's package: apt-get install postgresql")
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    data, port = directory / "data", _free_port()
    run = {"check": True, "stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}
    try:
        subprocess.run(_as_owner([str(bins / "initdb"), "-D", str(data), "-U", ROLE, "--auth=trust",
                                  "-E", "UTF8", "--no-instructions"]), **run)
        # Durability is pointless for a throwaway server; the farm tests only need it fast.
        options = (f"-p {port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off")
        subprocess.run(_as_owner([str(bins / "pg_ctl"), "-D", str(data), "-o", options,
                                  "-l", str(directory / "server.log"), "-w", "start"]), **run)
    except subprocess.CalledProcessError as exc:
        log = directory / "server.log"
        raise RuntimeError(f"starting PostgreSQL in {directory} failed: {exc.stdout}"
                           + (f"\nserver log:\n{log.read_text()}" if log.exists() else "")) from exc
    url = f"postgresql://{ROLE}@127.0.0.1:{port}/postgres"
    return url


def stop(directory: str | Path) -> None:
    """Stops the cluster in ``directory`` (if it runs) and deletes it."""
    directory = Path(directory)
    bins = bin_dir()
    if bins is not None and (directory / "data" / "postmaster.pid").exists():
        subprocess.run(_as_owner([str(bins / "pg_ctl"), "-D", str(directory / "data"), "-m", "immediate",
                                  "-w", "stop"]), check=False, stdout=subprocess.DEVNULL)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory):
    """The URL of a running PostgreSQL server (superuser role, trust auth on 127.0.0.1)."""
    url = os.environ.get(URL_VAR)
    if url:
        yield url
        return
    if bin_dir() is None:
        message = (f"no PostgreSQL server: {URL_VAR} is unset and initdb/pg_ctl are not installed "
                   "(apt-get install postgresql; scripts/setup.sh does it as root)")
        if os.environ.get(REQUIRE_VAR) == "1":
            pytest.fail(f"{REQUIRE_VAR}=1 but {message}", pytrace=False)
        pytest.skip(message)
    import tempfile

    # Not under pytest's tmp dir: as root, the postgres user must be able to reach it.
    directory = Path(tempfile.mkdtemp(prefix="edgesmith-pg-"))
    try:
        yield start(directory)
    finally:
        stop(directory)


@pytest.fixture
def postgres_db(postgres_url):
    """A fresh database on the server for one test: its SQLAlchemy URL; dropped afterwards."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"edgesmith_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
        finally:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


if __name__ == "__main__":
    usage = "usage: python tests/postgres_cluster.py start|stop DIR"
    if len(sys.argv) != 3 or sys.argv[1] not in ("start", "stop"):
        sys.exit(usage)
    if sys.argv[1] == "start":
        print(start(sys.argv[2]))
    else:
        stop(sys.argv[2])
