"""HAProxy in front of several `kb serve` nodes on loopback, for the scale-out tests and by hand.

Debian's haproxy (`make balancer` installs it). `Balancer.start()` writes `haproxy.cfg` into its
folder and runs `haproxy -f haproxy.cfg -db` (foreground, no daemon) as the current user, keeping
its PID; `stop()` signals that PID. What the configuration asks of HAProxy:

- a frontend on 127.0.0.1 at a free port, each request balanced on its own, round robin;
- a health check `GET /healthz` every 300 ms: a node is up while it answers 200, or 503 (its
  database is unreachable, which every node shares, so its clear 503 beats HAProxy's own);
- a request whose connection fails, or whose node dies before answering (empty response), or
  which gets a 503, is sent again to another node (`retries`, `option redispatch 1`,
  `retry-on`); only GET and HEAD are sent again after reaching a node, since an upload might
  already have been taken;
- every answer says which node gave it in `X-Served-By`.

    with Balancer(folder, {"a": 5001, "b": 5002}) as balancer:
        requests.get(balancer.url + "/api/search?q=grants")
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from support.postgres import free_port
from support.processes import stop_process

CONFIG = """\
# written by tests/support/balancer.py
global
    maxconn 512

defaults
    mode http
    timeout connect 1s
    timeout client 60s
    timeout server 60s
    timeout check 2s
    retries 3
    option redispatch 1
    # reached a node, got nothing back or a 503: ask another one (reads only, below)
    retry-on conn-failure empty-response junk-response response-timeout 503

frontend kb
    bind 127.0.0.1:{port}
    default_backend nodes

backend nodes
    balance roundrobin
    http-request disable-l7-retry unless METH_GET
    option httpchk GET /healthz
    http-check expect rstatus ^(200|503)$
    default-server inter 300ms fastinter 100ms downinter 300ms rise 1 fall 1
    http-response set-header X-Served-By %[srv_name]
{servers}"""


def haproxy() -> str | None:
    """Debian's haproxy, if installed."""
    return shutil.which("haproxy") or (os.access("/usr/sbin/haproxy", os.X_OK) and "/usr/sbin/haproxy") or None


class Balancer:
    """One HAProxy on 127.0.0.1 balancing over `nodes` (name -> port on 127.0.0.1)."""

    def __init__(self, folder: str | os.PathLike, nodes: dict[str, int], start_timeout: float = 10.0):
        self.folder = Path(folder)
        self.nodes = dict(nodes)
        self.start_timeout = start_timeout
        self.port: int | None = None
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.folder / "haproxy.cfg"

    @property
    def log_path(self) -> Path:
        return self.folder / "haproxy.log"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def config(self) -> str:
        servers = "".join(f"    server {name} 127.0.0.1:{port} check\n" for name, port in self.nodes.items())
        return CONFIG.format(port=self.port, servers=servers)

    def __enter__(self) -> Balancer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> Balancer:
        binary = haproxy()
        if binary is None:
            raise RuntimeError("haproxy is not installed (make balancer installs Debian's)")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.config_path.write_text(self.config())
        check = subprocess.run([binary, "-c", "-q", "-f", str(self.config_path)], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"haproxy refuses {self.config_path}:\n{check.stdout}{check.stderr}")
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([binary, "-f", str(self.config_path), "-db"], stdin=subprocess.DEVNULL,
                                            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.process.poll() is not None:
                code, self.process = self.process.returncode, None
                raise RuntimeError(f"haproxy exited with {code}; log {self.log_path}:\n{self.log_path.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"haproxy did not listen on {self.port} in {self.start_timeout:.0f} s") from None
                time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM by PID (HAProxy's hard stop), SIGKILL if it has not gone."""
        process, self.process = self.process, None
        stop_process(process, signal.SIGTERM, timeout)


TLS_CONFIG = """\
# written by tests/support/balancer.py
global
    maxconn 64

defaults
    mode http
    timeout connect 1s
    timeout client 60s
    timeout server 60s
    timeout check 2s

frontend kb
    bind 127.0.0.1:{port} ssl crt {pem}
    # what kb trusts from its proxy: the client's address appended, the scheme set
    option forwardfor
    http-request set-header X-Forwarded-Proto https
    default_backend nodes

backend nodes
    option httpchk GET /healthz
    default-server inter 300ms fastinter 100ms downinter 300ms rise 1 fall 1
{servers}"""


class TlsBalancer(Balancer):
    """HAProxy terminating TLS on 127.0.0.1 with the certificate and key in `pem` (one file), adding
    X-Forwarded-For and X-Forwarded-Proto: https, as a site's front proxy does."""

    def __init__(self, folder: str | os.PathLike, nodes: dict[str, int], pem: str | os.PathLike, **kwargs):
        super().__init__(folder, nodes, **kwargs)
        self.pem = Path(pem)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def config(self) -> str:
        servers = "".join(f"    server {name} 127.0.0.1:{port} check\n" for name, port in self.nodes.items())
        return TLS_CONFIG.format(port=self.port, pem=self.pem, servers=servers)


def self_signed(folder: str | os.PathLike, name: str = "kb.test") -> Path:
    """A self-signed certificate for `name` and 127.0.0.1, made with the openssl binary, with its
    key in the same PEM file (as HAProxy's `crt` takes it); the file's path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
                    "-addext", f"subjectAltName=DNS:{name},IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    both = folder / "site.pem"
    both.write_text(cert.read_text() + key.read_text())
    return both
