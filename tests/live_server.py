"""Real Quietcast servers for tests and benchmarks: Daphne subprocesses on free loopback ports.

Used by the browser tests, the two-process Redis test and the benchmarks, so each runs the app exactly as
`make run` does instead of a test double.
"""

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

REPO = Path(__file__).resolve().parents[1]
START_LIMIT_S = 30
PASSWORD = "correct-horse-battery-staple"  # everyone's, in tests and benchmarks


def seed_code(usernames: tuple[str, ...], friends: tuple[tuple[str, str], ...] = (), pending=()) -> str:
    """Python for `prepare_database`: users (password PASSWORD), accepted friendships and pending requests."""
    return f"""
from django.contrib.auth import get_user_model
from friends import services
User = get_user_model()
for name in {usernames!r}:
    User.objects.create_user(username=name, password={PASSWORD!r})
for sender, receiver in {friends!r}:
    services.send_request(User.objects.get(username=sender), receiver)
    services.accept_request(User.objects.get(username=receiver), sender)
for sender, receiver in {tuple(pending)!r}:
    services.send_request(User.objects.get(username=sender), receiver)
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_environment(workdir: Path, **overrides: str) -> dict[str, str]:
    """A private database, recordings directory and var/ under `workdir`; in-memory layer unless overridden."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "quietcast.settings",
        "QUIETCAST_VAR_DIR": str(workdir / "var"),
        "DATABASE_URL": f"sqlite:///{workdir / 'db.sqlite3'}",
        "RECORDINGS_DIR": str(workdir / "recordings"),
        "REDIS_URL": "",
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        # Every simulated person logs in from 127.0.0.1: the per-address guessing limit is for real clients.
        "LOGIN_RATE": "100000/min",
        **overrides,
    }


def redis_test_database(number: int) -> str:
    """The URL of database `number` in the redis-server `make test` starts (REDIS_TEST_URL): a test's own, so no
    heartbeat or message of another test is read there. Skips the test when there is none."""
    redis_url = os.environ.get("REDIS_TEST_URL")
    if not redis_url:
        pytest.skip("REDIS_TEST_URL is not set: run the suite with `make test`, which starts redis-server")
    return f"{redis_url.rsplit('/', 1)[0]}/{number}"


def fresh_postgres_database(name: str) -> str:
    """A new, empty PostgreSQL database in the cluster `make test` starts (POSTGRES_TEST_URL); returns its URL.
    Skips the test when there is none (running pytest by hand without PostgreSQL)."""
    cluster_url = os.environ.get("POSTGRES_TEST_URL")
    if not cluster_url:
        pytest.skip("POSTGRES_TEST_URL is not set: run the suite with `make test`, which starts PostgreSQL")
    database = f"{name}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(cluster_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{database}"')
    return cluster_url.rsplit("/", 1)[0] + "/" + database


def manage(env: dict[str, str], *args: str) -> str:
    """Run a management command against the server's database; returns what it printed."""
    completed = subprocess.run(
        [sys.executable, str(REPO / "manage.py"), *args], cwd=REPO, env=env, check=True, capture_output=True, text=True
    )
    return completed.stdout


def prepare_database(env: dict[str, str], seed_code: str = "") -> None:
    """Migrate the server's database and run `seed_code` (Python, Django set up) inside it."""
    manage(env, "migrate", "--no-input", "-v", "0")
    if seed_code:
        manage(env, "shell", "-c", seed_code)


def _wait_for_port(port: int, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_LIMIT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"Daphne exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"Daphne did not listen on port {port} within {START_LIMIT_S} s:\n{log.read_text()}")


@dataclass(frozen=True)
class DaphneServer:
    url: str
    process: subprocess.Popen


@contextmanager
def running_daphne(env: dict[str, str], log: Path, port: int | None = None) -> Iterator[DaphneServer]:
    """Serve quietcast.asgi on `port` (default: a free one); stops the server afterwards (if a test has not killed
    it). A given port lets a test restart the server where its pages expect it."""
    port = port or free_port()
    command = ["-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "quietcast.asgi:application"]
    with _running(command, env, log, port, url=f"http://127.0.0.1:{port}") as server:
        yield server


@contextmanager
def running_like_make_run(
    env: dict[str, str], log: Path, url_host: str = "127.0.0.1", port: int | None = None
) -> Iterator[DaphneServer]:
    """The server as `make run` starts it (`python -m quietcast.serve`, which reads HTTPS, TLS_CERT, …), on `port`
    (default: a free loopback port). Its URL names `url_host` (a name the browser maps to loopback) and the scheme
    the settings ask."""
    port = port or free_port()
    scheme = "https" if env.get("HTTPS", "").lower() in ("true", "1", "yes", "on") else "http"
    env = {**env, "HOST": "127.0.0.1", "PORT": str(port)}
    with _running(["-m", "quietcast.serve"], env, log, port, url=f"{scheme}://{url_host}:{port}") as server:
        yield server


@contextmanager
def _running(arguments: list[str], env: dict[str, str], log: Path, port: int, url: str) -> Iterator[DaphneServer]:
    with log.open("a") as log_file:
        server = subprocess.Popen(
            [sys.executable, *arguments],
            cwd=REPO,
            env={**env, "PORT": str(port)},  # each server its own media host id (MEDIA_HOST_ID's default)
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_port(port, server, log)
        yield DaphneServer(url=url, process=server)
    finally:
        stop_process(server)


def stop_process(process: subprocess.Popen) -> None:
    """SIGTERM, and SIGKILL if it has not exited 10 s later (nothing when it is gone already)."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
