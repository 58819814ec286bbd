"""The ``payout131`` command group and its server-side commands: init, serve.

The other commands live in modules of their own and are imported when they are run (or
listed by ``--help``): ``payout131 partner ...`` never loads the server's storage, and no
command pays for the imports of all the others.
"""

from __future__ import annotations

import importlib
import ipaddress
import os
import re
import signal
import socket
from typing import Any

import click

from payout131.cli.params import IntRange
from payout131.settings import Settings

__all__ = ["main"]

# command name -> "module:attribute"; the tools' commands are named, never imported, here
COMMANDS = {
    "project": "payout131.cli.project_commands:project",
    "account": "payout131.cli.ledger_commands:account",
    "wallet": "payout131.cli.ledger_commands:wallet",
    "ledger": "payout131.cli.ledger_commands:ledger_group",
    "payouts": "payout131.cli.payout_commands:payouts",  # an operator's view of payouts
    "bik": "payout131.cli.bik_commands:bik",
    "fps": "payout131.cli.fps_commands:fps",  # the SBP member directory
    "simulate": "payout131.cli.simulate_commands:simulate",
    "clock": "payout131.cli.clock_commands:clock",  # sandbox: test clocks
    "webhooks": "payout131.cli.webhook_commands:webhooks",
    "worker": "payout131.cli.worker_commands:worker",
    "vault": "payout131.cli.vault_commands:vault",
    "partner": "payout131.cli.partner_commands:partner",
    "purge": "payout131.cli.purge_commands:purge",
    "bank-key": "payout131.cli.bank_key_commands:bank_key",  # webhooks' signing key
    "operator": "payout131.cli.operator_commands:operator",  # the console's (docs/console.md)
    "audit": "payout131.cli.operator_commands:audit_group",
    "backup": "payout131.cli.backup_commands:backup_command",
    "restore": "payout131.cli.backup_commands:restore_command",
    "demo": "payout131.tools.demo.command:demo",
    "chaos": "payout131.tools.chaos.command:chaos",  # reliability: the crash test
    "bench": "payout131.tools.bench.command:bench",  # benchmarks (docs/benchmarks.md)
    "console-bench": "payout131.tools.console_bench:console_bench",  # docs/console.md
}


class _Commands(click.Group):
    """A group whose commands of ``COMMANDS`` are imported on first use, and whose every
    failure is one line: a command that fails for a reason it did not foresee says what
    and exits 1, with no traceback (``PAYOUT131_TRACEBACK=1`` shows it: the tests set it,
    so that such a failure fails them)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            known = _foreseen(exc)
            if known is None and os.environ.get("PAYOUT131_TRACEBACK") == "1":
                raise
            what = " ".join(str(exc).split())[:300] or type(exc).__name__
            raise click.ClickException(known or f"{type(exc).__name__}: {what}") from None

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})  # loaded ones are in both

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in COMMANDS and name not in self.commands:
            module, attribute = COMMANDS[name].split(":")
            command = getattr(importlib.import_module(module), attribute)
            if not isinstance(command, click.Command):
                raise TypeError(f"{module}.{attribute} is not a command")
            self.add_command(command, name)
        return super().get_command(ctx, name)


def _foreseen(exc: Exception) -> str | None:
    """A failure of the machine rather than of the command, in a line: a database that
    cannot be used, a schema newer than this version, a file that cannot be read or
    written. None for anything else: a defect, shown in full with PAYOUT131_TRACEBACK=1."""
    from sqlalchemy import exc as sa_exc  # loaded by then if a database was used

    from payout131.sandbox.clocks import ClocksInProduction
    from payout131.storage import NewerSchema

    # (a DisconnectionError: the connection broke mid-way, storage.outages.check)
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.DisconnectionError):
        lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        return f"the database cannot be used: {(lines or [type(exc).__name__])[0][:300]}"
    if isinstance(exc, NewerSchema | OSError | ClocksInProduction):
        return " ".join(str(exc).split())[:300] or type(exc).__name__
    return None


def settings() -> Settings:
    from payout131.cli.context import settings as current

    return current()


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="payout131")
@click.pass_context
def main(ctx: click.Context) -> None:
    """payout131: a self-hostable payout server speaking Bank 131's partner API.

    Configured by PAYOUT131_HOME (data directory, default ./.payout131) and
    PAYOUT131_DATABASE_URL (sqlite:///path, the default inside the home, or postgresql://...).
    """
    try:
        ctx.obj = Settings.from_env()
    except ValueError as exc:  # a bad PAYOUT131_* variable, named in the message
        raise click.ClickException(str(exc)) from None


@main.command()
@click.option("--demo", is_flag=True, help="Also register a ready-to-use demo project.")
def init(demo: bool) -> None:
    """Create the data directory, the database and the bank's RSA key pair."""
    from payout131.cli.setup import initialise

    initialise(settings(), demo=demo)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8131,
    show_default=True,
    type=IntRange(1, 65535),
    help="Port to listen on.",
)
@click.option(
    "--processes",
    default=1,
    show_default=True,
    type=IntRange(1, 64),
    help="Server processes sharing the port, each with its own background work (PostgreSQL).",
)
@click.option("--no-worker", is_flag=True, help="Serve the API only; run `payout131 worker` apart.")
@click.option("--no-access-log", is_flag=True, help="No log line per request (benchmarks).")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
@click.option(
    "--ssl-certfile",
    type=click.Path(exists=True, dir_okay=False),
    help="Serve HTTPS with this certificate (PEM; the chain after it); needs --ssl-keyfile.",
)
@click.option(
    "--ssl-keyfile", type=click.Path(exists=True, dir_okay=False), help="Its private key (PEM)."
)
@click.option(
    "--forwarded-allow-ips",
    default="",
    show_default=True,
    metavar="IPS",
    help="Reverse proxies (comma-separated addresses, * for any) whose X-Forwarded-For and "
    "X-Forwarded-Proto are believed; nobody's by default.",
)
@click.option(
    "--root-path",
    default="",
    metavar="PREFIX",
    help="The path prefix a reverse proxy serves the bank under (e.g. /bank) and strips.",
)
@click.option(
    "--console-port",
    type=IntRange(1, 65535),
    help="Serve the operator console (docs/console.md) on its own address with this port, "
    "and not on the API's.",
)
@click.option(
    "--console-host",
    default="127.0.0.1",
    show_default=True,
    help="With --console-port: the address the console listens on.",
)
def serve(
    host: str,
    port: int,
    processes: int,
    no_worker: bool,
    no_access_log: bool,
    log_level: str,
    ssl_certfile: str | None,
    ssl_keyfile: str | None,
    forwarded_allow_ips: str,
    root_path: str,
    console_port: int | None,
    console_host: str,
) -> None:
    """Serve the partner API and run the background work (in each process).

    Plain HTTP by default; HTTPS with --ssl-certfile and --ssl-keyfile. Behind a reverse
    proxy (docs/operations.md) name it with --forwarded-allow-ips, and give --root-path if it
    serves the bank under a path prefix. The operator console is at /console/ (on in sandbox
    mode; PAYOUT131_CONSOLE=1 in production), or on its own address with --console-port.
    """
    import uvicorn

    from payout131 import logs
    from payout131.runtime import Runtime
    from payout131.server.connections import PROTOCOL

    tls = _tls(ssl_certfile, ssl_keyfile)
    if root_path and not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", root_path):
        raise click.BadParameter(
            "a path like /bank: a leading /, no trailing one, letters, digits and . _ ~ -",
            param_hint="--root-path",
        )
    _check_proxies(forwarded_allow_ips)
    conf = settings()
    if processes > 1 and conf.database.startswith("sqlite"):
        raise click.UsageError(
            "--processes needs PostgreSQL (PAYOUT131_DATABASE_URL): SQLite has one writer "
            "at a time, so more processes would only wait for each other"
        )
    if console_port is not None and not conf.console_on:
        raise click.UsageError(
            "--console-port: the console is off (PAYOUT131_MODE=production): turn it on with "
            "PAYOUT131_CONSOLE=1"
        )
    if console_port == port:  # the app tells the console's address from the API's by port
        raise click.UsageError("--console-port: give the console a port of its own")
    logs.configure(log_level, conf.log_format)
    bank = Runtime.open(conf)  # migrates the store once, before any process serves
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "http": PROTOCOL,  # a deadline for each request's headers (server/connections.py)
        "server_header": False,
        "log_level": log_level,
        "log_config": None,  # uvicorn's lines go through ours (logs.py)
        "access_log": False,  # ours, with the partner's ids (server/request_log.py)
        "proxy_headers": bool(forwarded_allow_ips),
        "forwarded_allow_ips": forwarded_allow_ips or None,
        "root_path": root_path,
        **tls,
    }
    scheme = "https" if tls else "http"
    where = f"{scheme}://{host}:{port}{root_path} (mode: {conf.mode}, database: {bank.db.dialect}"
    extra = [] if console_port is None else [_listen(console_host, console_port, bank.close)]
    if conf.console_on:
        at = f"{scheme}://{console_host}:{console_port}" if extra else f"{scheme}://{host}:{port}"
        where += f", console: {at}{root_path}/console/"
    if processes == 1:
        click.echo(f"payout131 listening on {where})")
        # uvicorn stops on SIGTERM, then raises it again once stopped: here that ends the
        # command cleanly, through the close that writes what memory still holds (when
        # partner keys were last used)
        signal.signal(signal.SIGTERM, _stopped)
        try:
            app = bank.app(
                run_worker=not no_worker, access_log=not no_access_log, console_port=console_port
            )
            if not extra:
                uvicorn.run(app, **options)
            else:
                config = uvicorn.Config(app, **options)
                uvicorn.Server(config).run(sockets=[config.bind_socket(), *extra])
        finally:
            bank.close()
        return
    bank.close()
    os.environ["PAYOUT131_SERVE_WORKER"] = "0" if no_worker else "1"
    os.environ["PAYOUT131_SERVE_LOG_LEVEL"] = log_level
    os.environ["PAYOUT131_SERVE_ACCESS_LOG"] = "0" if no_access_log else "1"
    os.environ["PAYOUT131_SERVE_CONSOLE_PORT"] = str(console_port or "")
    click.echo(f"payout131 listening on {where}, {processes} processes)")
    if not extra:
        uvicorn.run("payout131.runtime:app_from_env", factory=True, workers=processes, **options)
        return
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config(
        "payout131.runtime:app_from_env", factory=True, workers=processes, **options
    )
    Multiprocess(config, sockets=[config.bind_socket(), *extra]).run()


def _listen(host: str, port: int, close: Any) -> socket.socket:
    """The console's own listening socket, or one line saying why it cannot be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family, backlog=128)
    except OSError as exc:
        close()
        raise click.ClickException(
            f"--console-host/--console-port {host}:{port}: {exc.strerror or exc}"
        ) from None
    sock.set_inheritable(True)
    return sock


def _stopped(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _check_proxies(given: str) -> None:
    """``--forwarded-allow-ips``: addresses or networks, or ``*``; a typo would otherwise
    trust nobody without a word."""
    for item in filter(None, (part.strip() for part in given.split(","))):
        if item == "*":
            continue
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise click.BadParameter(
                f"{item[:60]!r} is not an IP address or network (or *)",
                param_hint="--forwarded-allow-ips",
            ) from None


def _tls(certfile: str | None, keyfile: str | None) -> dict[str, str]:
    """uvicorn's TLS options, after the certificate and key were loaded once here, so a
    wrong pair is one line naming it rather than a traceback from the server."""
    if certfile is None and keyfile is None:
        return {}
    if certfile is None or keyfile is None:
        raise click.UsageError("HTTPS needs both --ssl-certfile and --ssl-keyfile")
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:  # an encrypted key would ask for its passphrase on the terminal: refused instead
        context.load_cert_chain(certfile, keyfile, password=lambda: b"")
    except (ssl.SSLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None)
        reason = reason or exc.__class__.__name__
        raise click.ClickException(
            f"--ssl-certfile {certfile} / --ssl-keyfile {keyfile}: not a certificate and its "
            f"private key in PEM ({reason})"
        ) from None
    return {"ssl_certfile": certfile, "ssl_keyfile": keyfile}
