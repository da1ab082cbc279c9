"""nginx in front of real Quietcast server processes, for tests and benchmarks, from the committed site config.

`deploy/nginx/quietcast.conf` is what operators install; `site_config` turns that same file into one for a test:
loopback ports, a self-signed certificate, the static files of this run, and the upstream processes of this run.
A test that needs "this person's requests land on that process" sends `X-Quietcast-Process: <index>`; every other
request is balanced over all processes exactly as the committed config does. The replacements fail loudly when
the committed config no longer has what they replace, so the test keeps following it.
"""

import getpass
import os
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from quietcast import tls
from tests.live_server import (
    REPO,
    START_LIMIT_S,
    free_port,
    manage,
    prepare_database,
    running_like_make_run,
    server_environment,
    stop_process,
)

SITE_CONFIG = REPO / "deploy" / "nginx" / "quietcast.conf"
PROCESS_HEADER = "X-Quietcast-Process"  # which process (0, 1, ...) a test pins a client's requests to


def nginx_binary() -> str | None:
    return shutil.which("nginx", path=f"{os.environ.get('PATH', '')}:/usr/sbin")


def _replace(text: str, old: str, new: str) -> str:
    if old not in text:
        raise AssertionError(f"{SITE_CONFIG} no longer contains {old!r}: update tests/nginx_proxy.py with it")
    return text.replace(old, new)


def site_config(upstream_ports: list[int], https_port: int, http_port: int, certificate: tls.TlsFiles,
                static_root: Path) -> str:
    """The committed site config, serving on loopback ports with `certificate`, over the processes on
    `upstream_ports`, with the header that pins a client to one of them."""
    text = SITE_CONFIG.read_text()
    text = _replace(text, "    server 127.0.0.1:8001;  # change: one line per process\n    server 127.0.0.1:8002;\n",
                    "".join(f"    server 127.0.0.1:{port};\n" for port in upstream_ports))
    pinned = "".join(f"upstream quietcast_process_{index} {{ server 127.0.0.1:{port}; }}\n"
                     for index, port in enumerate(upstream_ports))
    choices = "".join(f"    {index} quietcast_process_{index};\n" for index in range(len(upstream_ports)))
    text = _replace(text, "# WebSockets ask for an upgrade;",
                    f"{pinned}map $http_{PROCESS_HEADER.lower().replace('-', '_')} $quietcast_pinned {{\n"
                    f"    default quietcast;\n{choices}}}\n\n# WebSockets ask for an upgrade;")
    text = _replace(text, "proxy_pass http://quietcast;", "proxy_pass http://$quietcast_pinned;")
    text = _replace(text, "    listen 80;\n    listen [::]:80;\n", f"    listen 127.0.0.1:{http_port};\n")
    text = _replace(text, "    listen 443 ssl http2;\n    listen [::]:443 ssl http2;\n",
                    f"    listen 127.0.0.1:{https_port} ssl http2;\n")
    text = _replace(text, "server_name quietcast.example.org;", "server_name 127.0.0.1 localhost;")
    text = _replace(text, "/etc/letsencrypt/live/quietcast.example.org/fullchain.pem", str(certificate.certificate))
    text = _replace(text, "/etc/letsencrypt/live/quietcast.example.org/privkey.pem", str(certificate.private_key))
    return _replace(text, "alias /srv/quietcast/var/static/;", f"alias {static_root}/;")


def main_config(workdir: Path, site: Path) -> str:
    """nginx.conf for a private nginx run by this user: pid, logs and temporary files under `workdir`."""
    # Workers of an nginx started by root run as `nobody` unless told otherwise, and could not read the test's files.
    user = f"user {getpass.getuser()};\n" if os.geteuid() == 0 else ""
    temp_paths = "".join(f"    {kind}_temp_path {workdir / kind};\n" for kind in
                         ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return (
        f"{user}worker_processes 1;\npid {workdir / 'nginx.pid'};\nerror_log {workdir / 'error.log'} warn;\n"
        "events { worker_connections 256; }\n"
        "http {\n    include /etc/nginx/mime.types;\n"
        f"    access_log {workdir / 'access.log'};\n{temp_paths}    include {site};\n}}\n"
    )


@dataclass(frozen=True)
class NginxProxy:
    url: str  # https://127.0.0.1:<port>
    http_url: str  # the plain-http port, which redirects
    ssl_context: ssl.SSLContext  # trusts the proxy's self-signed certificate
    access_log: Path


@contextmanager
def running_nginx(workdir: Path, upstream_ports: list[int], static_root: Path) -> Iterator[NginxProxy]:
    """nginx (not daemonized) on free loopback ports, terminating TLS with a self-signed certificate made by the
    same code as `make run`'s, in front of the processes on `upstream_ports`; stopped afterwards."""
    binary = nginx_binary()
    if binary is None:
        raise RuntimeError("nginx is not installed: `make test` installs Debian's nginx package")
    workdir.mkdir(parents=True, exist_ok=True)
    certificate = tls.self_signed_certificate(workdir / "tls")
    https_port, http_port = free_port(), free_port()
    site = workdir / "quietcast.conf"
    site.write_text(site_config(upstream_ports, https_port, http_port, certificate, static_root))
    conf = workdir / "nginx.conf"
    conf.write_text(main_config(workdir, site))
    command = [binary, "-p", str(workdir), "-c", str(conf), "-e", str(workdir / "error.log"), "-g", "daemon off;"]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True)
    if checked.returncode != 0:
        raise RuntimeError(f"nginx refused the generated config:\n{checked.stderr}\n{site.read_text()}")
    log = (workdir / "nginx.out").open("w")
    nginx = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    context = ssl.create_default_context(cafile=str(certificate.certificate))
    try:
        _wait_for_tls(https_port, nginx, context, workdir / "error.log")
        yield NginxProxy(f"https://127.0.0.1:{https_port}", f"http://127.0.0.1:{http_port}", context,
                         workdir / "access.log")
    finally:
        stop_process(nginx)
        log.close()


def _wait_for_tls(port: int, nginx: subprocess.Popen, context: ssl.SSLContext, error_log: Path) -> None:
    deadline = time.monotonic() + START_LIMIT_S
    while time.monotonic() < deadline:
        if nginx.poll() is not None:
            raise RuntimeError(f"nginx exited with {nginx.returncode}:\n{error_log.read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as raw:
                with context.wrap_socket(raw, server_hostname="127.0.0.1"):
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nginx did not serve TLS on port {port} within {START_LIMIT_S} s")


class Site:
    """Quietcast as deployed behind nginx: N server processes (as `make run` starts them, each its own PORT and
    MEDIA_HOST_ID `process-<i>`) sharing a database, Redis and RECORDINGS_DIR, and one nginx in front."""

    def __init__(self, workdir: Path, env: dict[str, str], ports: list[int], stack: ExitStack) -> None:
        self.workdir, self.env, self.ports, self._stack = workdir, env, ports, stack
        self.processes: list[subprocess.Popen | None] = [None] * len(ports)
        self.proxy: NginxProxy | None = None
        self._starts = 0

    def env_of(self, index: int) -> dict[str, str]:
        return {**self.env, "MEDIA_HOST_ID": f"process-{index}"}

    def start(self, index: int) -> None:
        """Start process `index` on its port as `make run` does: streams it left live are recovered first."""
        self._starts += 1
        manage(self.env_of(index), "recover_streams")
        log = self.workdir / f"process-{index}.{self._starts}.log"
        server = self._stack.enter_context(running_like_make_run(self.env_of(index), log, port=self.ports[index]))
        self.processes[index] = server.process

    def kill(self, index: int) -> None:
        """SIGKILL: no shutdown code runs, as when the machine or the process dies."""
        process = self.processes[index]
        assert process is not None
        process.kill()
        process.wait(timeout=10)
        self.processes[index] = None

    def client(self, process: int | None = None) -> aiohttp.ClientSession:
        """An HTTP client of the site through nginx over TLS, pinned to one process (or balanced: None)."""
        assert self.proxy is not None
        headers = {} if process is None else {PROCESS_HEADER: str(process)}
        return aiohttp.ClientSession(
            headers=headers,
            connector=aiohttp.TCPConnector(ssl=self.proxy.ssl_context),
            cookie_jar=aiohttp.CookieJar(unsafe=True),  # the site is reached by IP address (127.0.0.1)
        )


@contextmanager
def running_site(workdir: Path, *, processes: int, seed: str, database_url: str, redis_url: str,
                 **settings: str) -> Iterator[Site]:
    env = server_environment(
        workdir, DATABASE_URL=database_url, REDIS_URL=redis_url, HTTPS="true", TRUSTED_PROXY="true", **settings
    )
    prepare_database(env, seed)
    manage(env, "collectstatic", "--no-input", "-v", "0")
    with ExitStack() as stack:
        site = Site(workdir, env, [free_port() for _ in range(processes)], stack)
        for index in range(processes):
            site.start(index)
        site.proxy = stack.enter_context(running_nginx(workdir / "nginx", site.ports, workdir / "var" / "static"))
        yield site
