"""A replicated PostgreSQL on loopback: etcd, three Patroni nodes and HAProxy, for the
failover test (``payout131 chaos --scenario failover``, docs/reliability.md).

``PatroniCluster.start`` runs one etcd member, then a Patroni per node (each with its own
PostgreSQL, REST port and data directory under one root), waits for a leader with every
replica streaming and a synchronous standby named, and starts HAProxy in front of the
nodes: its port always leads to the primary (Patroni's ``/primary`` health check), and it
cuts the sessions of a node that stops being the primary. Two ways in, as a deployment has:
``url()`` (through HAProxy) and ``multi_host_url()`` (libpq's list of hosts with
``target_session_attrs=read-write``).

The replication settings are the ones docs/reliability.md recommends for money:
``synchronous_mode`` and ``synchronous_mode_strict`` (a commit returns only once the
synchronous standby has it on disk, and with no standby at all commits wait rather than go
unreplicated), ``primary_start_timeout: 0`` (a crashed primary fails over instead of
restarting in place), ``use_pg_rewind`` (an old primary rejoins as a replica).

The faults: ``kill_postmaster`` (SIGKILL of the primary's PostgreSQL), ``kill_patroni``
(SIGKILL of its Patroni, which leaves PostgreSQL running until the node's Patroni is
started again and demotes it), ``switchover`` (planned), and ``restart_patroni``.

PostgreSQL refuses to run as root, so when we are root every process runs as the
``postgres`` OS user, as ``pgcluster`` does.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psycopg

from payout131.tools.chaos.processes import answers_health, stop
from payout131.tools.pgcluster import (
    SUPERUSER,
    ClusterError,
    clean_environment,
    find_bindir,
    make_root,
    server_owner,
)

__all__ = ["APP_DATABASE", "APP_USER", "Member", "PatroniCluster", "missing_programs"]

SCOPE = "payout131"
APP_USER = APP_DATABASE = "payout131"
PROGRAMS = {"patroni": "patroni", "etcd": "etcd-server", "haproxy": "haproxy"}
# Patroni's timing: a leader key lives TTL seconds unless renewed; every node acts each
# LOOP_WAIT; DCS and PostgreSQL calls are retried for RETRY_TIMEOUT. TTL bounds how long a
# primary whose Patroni died keeps the lead (Patroni needs TTL > LOOP_WAIT + 2 x RETRY).
TTL, LOOP_WAIT, RETRY_TIMEOUT = 10, 1, 4
HEALTH_CHECK_MS = 500  # HAProxy asks every node's /primary this often (each answer may take
# up to 2 s: Patroni's REST API is slow on a busy machine); 2 misses: down
# libpq: give up on a node that does not answer in 3 s; notice a machine that vanished in
# ~11 s while waiting for an answer (keepalives), 10 s while sending (tcp_user_timeout)
CONNECT = (
    "connect_timeout=3&keepalives_idle=5&keepalives_interval=2&keepalives_count=3"
    "&tcp_user_timeout=10000"
)


SEARCH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])  # haproxy
PORTS = (20000, 32000)  # below Linux's ephemeral range: no outgoing connection takes them


def missing_programs() -> list[str]:
    """The Debian packages whose programs are not found (the test needs all three)."""
    return [package for program, package in PROGRAMS.items() if _program(program) is None]


def _program(name: str) -> str | None:
    return shutil.which(name, path=SEARCH)


def _ports(count: int) -> list[int]:
    """``count`` loopback ports free now, below the ephemeral range: a node's ports are
    bound again at each restart, and a port the kernel hands to some outgoing connection
    meanwhile would keep that node down."""
    rng = random.Random()  # noqa: S311 (a port number, not a secret)
    chosen: list[int] = []
    while len(chosen) < count:
        port = rng.randrange(*PORTS)
        if port in chosen:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        chosen.append(port)
    return chosen


@dataclass(frozen=True, slots=True)
class Member:
    """One node as Patroni's ``/cluster`` reports it."""

    name: str
    role: str  # leader | sync_standby | replica
    state: str  # running | streaming | stopped | starting | ...
    lag: int | None  # bytes behind the leader; None: unknown


class _Node:
    def __init__(self, cluster: PatroniCluster, n: int, ports: list[int]) -> None:
        self.name = f"node{n}"
        self.pg_port, self.rest_port = ports
        self.dir = cluster.root / self.name
        self.config = cluster.root / f"{self.name}.yml"
        self.log = cluster.root / f"{self.name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def rest(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def postmaster_pid(self) -> int | None:
        try:
            return int((self.dir / "data" / "postmaster.pid").read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None


class PatroniCluster:
    """etcd, ``nodes`` Patroni-managed PostgreSQL servers and HAProxy, under one root."""

    def __init__(self, nodes: int = 3, timeout: float = 90.0) -> None:
        missing = missing_programs()
        if missing:
            raise ClusterError(
                "the failover test needs etcd, Patroni and HAProxy; install them with "
                f"`apt-get install {' '.join(missing)}`"
            )
        self.bindir = find_bindir()
        self.owner = server_owner()
        self.timeout = timeout
        self.root = make_root(self.owner, "payout131-patroni-", in_ram=True)
        self.superuser_password = secrets.token_hex(16)
        self.app_password = secrets.token_hex(16)
        self.replication_password = secrets.token_hex(16)
        ports = _ports(3 + 2 * nodes)
        self.etcd_port, self.etcd_peer_port, self.proxy_port = ports[:3]
        self.nodes = [_Node(self, n, ports[1 + 2 * n : 3 + 2 * n]) for n in range(1, nodes + 1)]
        self._etcd: subprocess.Popen[bytes] | None = None
        self._proxy: subprocess.Popen[bytes] | None = None

    # -- life cycle

    def start(self) -> None:
        """Everything up, the application's role and database made. On failure what did
        start keeps running, with its logs, until ``destroy``."""
        self._start_etcd()
        for node in self.nodes:
            node.config.write_text(json.dumps(self._config(node), indent=1))
            self.restart_patroni(node.name)
        self.wait_healthy()
        self._start_proxy()
        self._create_database()

    def destroy(self) -> None:
        """Stop every process (PostgreSQL immediately: its data is about to go) and remove
        the root."""
        for process in [self._proxy] + [node.process for node in self.nodes]:
            stop(process, 10)
        for node in self.nodes:
            pid = node.postmaster_pid
            if pid is not None:
                _signal(pid, signal.SIGKILL)
        stop(self._etcd, 10)
        shutil.rmtree(self.root, ignore_errors=True)

    # -- where things are

    def url(self) -> str:
        """The application's SQLAlchemy URL through HAProxy (always the primary)."""
        return (
            f"postgresql+psycopg://{APP_USER}:{quote(self.app_password)}"
            f"@127.0.0.1:{self.proxy_port}"
            f"/{APP_DATABASE}?{CONNECT}"
        )

    def multi_host_url(self) -> str:
        """The application's URL naming every node; libpq takes the first that accepts
        writes (``target_session_attrs=read-write``)."""
        hosts = "&".join(f"host=127.0.0.1:{node.pg_port}" for node in self.nodes)
        return (
            f"postgresql+psycopg://{APP_USER}:{quote(self.app_password)}@/{APP_DATABASE}"
            f"?{hosts}&target_session_attrs=read-write&{CONNECT}"
        )

    # -- state

    def members(self) -> list[Member]:
        """The nodes as Patroni reports them (asked of any node that answers)."""
        for node in self.nodes:
            try:
                answer = httpx.get(f"{node.rest}/cluster", timeout=1)
            except httpx.TransportError:
                continue
            if answer.status_code == 200:
                return [
                    Member(m["name"], m["role"], m["state"], _lag(m.get("lag")))
                    for m in answer.json().get("members", [])
                ]
        return []

    def leader(self) -> str | None:
        return next((m.name for m in self.members() if m.role == "leader"), None)

    def healthy(self) -> bool:
        """A running leader, every other node replicating from it, one of them synchronous."""
        members = self.members()
        if len(members) != len(self.nodes):
            return False
        leaders = [m for m in members if m.role == "leader" and m.state == "running"]
        others = [m for m in members if m.role != "leader"]
        return (
            len(leaders) == 1
            # Patroni 3.0 says "running" of a replica, later versions "streaming"
            and all(m.state in ("running", "streaming") and m.lag is not None for m in others)
            and any(m.role == "sync_standby" for m in others)
        )

    def wait_healthy(self, timeout: float | None = None) -> float:
        """Wait until ``healthy``; the seconds it took."""
        started = time.monotonic()
        deadline = started + (timeout or self.timeout)
        while time.monotonic() < deadline:
            if self.healthy():
                return time.monotonic() - started
            for node in self.nodes:
                if node.process is None or node.process.poll() is not None:
                    raise ClusterError(f"{node.name}'s Patroni exited; see {node.log}")
            time.sleep(0.2)
        raise ClusterError(f"the cluster was not healthy within {timeout or self.timeout:g} s: "
                           f"{self.members()}; logs in {self.root}")  # fmt: skip

    def wait_new_leader(self, old: str, timeout: float | None = None) -> str:
        """Wait until a node other than ``old`` leads; its name."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while time.monotonic() < deadline:
            leader = self.leader()
            if leader is not None and leader != old:
                return leader
            time.sleep(0.1)
        raise ClusterError(f"no new leader after {old} within {timeout or self.timeout:g} s")

    # -- faults

    def kill_postmaster(self, name: str) -> None:
        """SIGKILL of the node's postmaster (its backends notice and exit)."""
        pid = self._node(name).postmaster_pid
        if pid is None:
            raise ClusterError(f"{name}: no postmaster.pid")
        _signal(pid, signal.SIGKILL)

    def kill_patroni(self, name: str) -> None:
        """SIGKILL of the node's Patroni; its PostgreSQL goes on running."""
        node = self._node(name)
        if node.process is not None and node.process.poll() is None:
            node.process.kill()
            node.process.wait()

    def restart_patroni(self, name: str) -> None:
        """Start the node's Patroni (again): it rejoins as whatever the cluster says."""
        node = self._node(name)
        if node.process is not None and node.process.poll() is None:
            return
        command = [_program("patroni") or "patroni", str(node.config)]
        node.process = self._spawn(command, node.log, _patroni_environment())

    def switchover(self, leader: str) -> str:
        """A planned switchover from ``leader`` to its synchronous standby (in synchronous
        mode Patroni hands the lead to no other node); the standby's name."""
        candidate = next((m.name for m in self.members() if m.role == "sync_standby"), None)
        if candidate is None:
            raise ClusterError("switchover: no synchronous standby to hand the lead to")
        body = {"leader": leader, "candidate": candidate}
        for node in self.nodes:
            try:
                answer = httpx.post(f"{node.rest}/switchover", json=body, timeout=30)
            except httpx.TimeoutException:  # asked, and still at it: the caller waits
                return candidate
            except httpx.TransportError:
                continue
            if answer.status_code == 200:
                return candidate
            raise ClusterError(f"switchover {leader} -> {candidate}: {answer.text.strip()}")
        raise ClusterError("switchover: no node's REST API answered")

    # -- internals

    def _node(self, name: str) -> _Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise ClusterError(f"no node {name}")

    def _config(self, node: _Node) -> dict[str, Any]:
        owner_password = {"username": SUPERUSER, "password": self.superuser_password}
        return {
            "scope": SCOPE,
            "name": node.name,
            "log": {"level": "INFO"},
            "restapi": {
                "listen": f"127.0.0.1:{node.rest_port}",
                "connect_address": f"127.0.0.1:{node.rest_port}",
            },
            "etcd3": {"hosts": [f"127.0.0.1:{self.etcd_port}"]},
            "bootstrap": {
                "dcs": {
                    "ttl": TTL,
                    "loop_wait": LOOP_WAIT,
                    "retry_timeout": RETRY_TIMEOUT,
                    "maximum_lag_on_failover": 1 << 20,
                    "synchronous_mode": True,
                    "synchronous_mode_strict": True,
                    "primary_start_timeout": 0,
                    "postgresql": {
                        "use_pg_rewind": True,
                        "use_slots": True,
                        "remove_data_directory_on_rewind_failure": True,
                        "remove_data_directory_on_diverged_timelines": True,
                        "parameters": {
                            "wal_level": "replica",
                            "hot_standby": "on",
                            "wal_log_hints": "on",
                            "max_wal_senders": 10,
                            "max_replication_slots": 10,
                            "max_connections": 200,
                            "fsync": "on",
                            "synchronous_commit": "on",
                            "full_page_writes": "on",
                            "wal_keep_size": "256MB",
                        },
                    },
                },
                "initdb": [{"encoding": "UTF8"}, {"locale": "C"}, "data-checksums"],
                "pg_hba": [
                    "local all all trust",
                    "host replication replicator 127.0.0.1/32 scram-sha-256",
                    "host all all 127.0.0.1/32 scram-sha-256",
                ],
            },
            "postgresql": {
                "listen": f"127.0.0.1:{node.pg_port}",
                "connect_address": f"127.0.0.1:{node.pg_port}",
                "data_dir": str(node.dir / "data"),
                "bin_dir": str(self.bindir),
                "pgpass": str(node.dir.with_suffix(".pgpass")),
                "authentication": {
                    "superuser": owner_password,
                    "replication": {
                        "username": "replicator",
                        "password": self.replication_password,
                    },
                    "rewind": owner_password,
                },
                "parameters": {"unix_socket_directories": str(self.root)},
            },
        }

    def _start_etcd(self) -> None:
        client = f"http://127.0.0.1:{self.etcd_port}"
        peer = f"http://127.0.0.1:{self.etcd_peer_port}"
        self._etcd = self._spawn(
            [_program("etcd") or "etcd", "--name", "etcd1",
             "--data-dir", str(self.root / "etcd"),
             "--listen-client-urls", client, "--advertise-client-urls", client,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", f"etcd1={peer}", "--initial-cluster-state", "new",
             "--unsafe-no-fsync"],
            self.root / "etcd.log",
            clean_environment(),
        )  # fmt: skip
        if answers_health(client, self._etcd, self.timeout):
            return
        raise ClusterError(f"etcd did not start; see {self.root / 'etcd.log'}")

    def _start_proxy(self) -> None:
        servers = "\n".join(
            f"    server {node.name} 127.0.0.1:{node.pg_port} check port {node.rest_port}"
            for node in self.nodes
        )
        config = self.root / "haproxy.cfg"
        config.write_text(
            "global\n    maxconn 1000\n"
            "defaults\n    mode tcp\n    timeout connect 3s\n    timeout check 2s\n"
            "    timeout client 1h\n    timeout server 1h\n    retries 1\n"
            f"listen primary\n    bind 127.0.0.1:{self.proxy_port}\n"
            "    option httpchk OPTIONS /primary\n    http-check expect status 200\n"
            f"    default-server inter {HEALTH_CHECK_MS}ms fall 2 rise 1"
            " on-marked-down shutdown-sessions\n"
            f"{servers}\n"
        )
        command = [_program("haproxy") or "haproxy", "-db", "-f", str(config)]
        self._proxy = self._spawn(command, self.root / "haproxy.log", clean_environment())
        # HAProxy counts a server up until its checks say otherwise: wait for them
        time.sleep(3 * HEALTH_CHECK_MS / 1000)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            try:
                with self._superuser(f"127.0.0.1:{self.proxy_port}") as conn:
                    row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
                    if row is not None and not row[0]:
                        return
            except psycopg.OperationalError:
                pass
            if self._proxy.poll() is not None:
                break
            time.sleep(0.2)
        raise ClusterError(f"HAProxy did not lead to the primary; see {self.root}/haproxy.log")

    def _spawn(self, command: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
        """``command`` in the root, as the server's owner, its output appended to ``log``."""
        owner = self.owner
        with log.open("ab") as out:
            return subprocess.Popen(
                command,
                cwd=self.root,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                user=owner.pw_uid if owner else None,
                group=owner.pw_gid if owner else None,
                extra_groups=[] if owner else None,
            )

    def _superuser(self, where: str) -> psycopg.Connection[Any]:
        host, port = where.split(":")
        return psycopg.connect(
            host=host, port=int(port), user=SUPERUSER, password=self.superuser_password,
            dbname="postgres", autocommit=True, connect_timeout=3,
        )  # fmt: skip

    def _create_database(self) -> None:
        leader = self._node(self.leader() or "")  # its own port: surely the primary
        with self._superuser(f"127.0.0.1:{leader.pg_port}") as conn:
            conn.execute(
                f"CREATE ROLE {APP_USER} LOGIN PASSWORD '{self.app_password}'"  # hex: no quotes
            )
            conn.execute(f"CREATE DATABASE {APP_DATABASE} OWNER {APP_USER}")


def _patroni_environment() -> dict[str, str]:
    """Patroni is Debian's, on the system's Python: none of our virtualenv's variables."""
    keep = {"PATH", "LANG", "LC_ALL", "HOME", "TZ"}
    env = {k: v for k, v in clean_environment().items() if k in keep}
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    return env


def _lag(value: Any) -> int | None:
    return value if isinstance(value, int) else None


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
