"""``payout131 project``: register partners, show and change their settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from sqlalchemy.exc import IntegrityError

from payout131 import project_keys, projects
from payout131.cli.context import database, settings, write
from payout131.cli.money import KOPECKS_OPTION, amount_in_kopecks
from payout131.cli.params import IntRange
from payout131.cli.payout_sheet import format_rubles
from payout131.cli.project_key_commands import key, read_public_key
from payout131.sandbox import clocks
from payout131.tokens.vault import Vault, VaultError
from payout131.webhooks import standard

__all__ = ["project"]


@click.group()
def project() -> None:
    """Partner projects: who may call the API and with which key."""


project.add_command(key)


def _settings(
    webhook_url: str | None,
    legal_name: str | None,
    inn: str | None,
    kpp: str | None,
    idempotency: str | None,
    confirm_timeout: int | None,
    fee_bps: int | None,
    fee_fixed: str | None,
    kopecks: bool,
) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if inn is not None:
        fields["inn"] = inn
    if kpp is not None:
        fields["kpp"] = kpp
    if webhook_url is not None:
        fields["webhook_url"] = webhook_url or None
    if legal_name is not None:
        fields["legal_name"] = legal_name
    if idempotency is not None:
        fields["idempotency_mode"] = idempotency
    if confirm_timeout is not None:
        fields["confirm_timeout_s"] = confirm_timeout * 60
    if fee_bps is not None:  # rails: the bank's fee (docs/rails.md)
        fields["fee_bps"] = fee_bps
    if fee_fixed is not None:
        fields["fee_fixed"] = amount_in_kopecks(
            fee_fixed, kopecks, "--fee-fixed", projects.FEE_FIXED_MAX, zero=True
        )
    try:
        return projects.check_settings(fields)  # each setting named, with its bounds
    except ValueError as exc:
        raise click.UsageError(_as_option(str(exc))) from None


_OPTIONS = {
    "webhook_url": "--webhook-url",
    "legal_name": "--legal-name",
    "inn": "--inn",
    "kpp": "--kpp",
    "idempotency_mode": "--idempotency",
    "fee_bps": "--fee-bps",
    "fee_fixed": "--fee-fixed",
}


def _as_option(message: str) -> str:
    """A settings error as the option that set it: ``inn: …`` → ``--inn: …``."""
    field, colon, rest = message.partition(":")
    return f"{_OPTIONS[field]}:{rest}" if colon and field in _OPTIONS else message


CONFIRM_TIMEOUT_MIN = tuple(s // 60 for s in projects.CONFIRM_TIMEOUT_S)


_common = [
    click.option("--webhook-url", help="Where webhooks are sent (empty to clear)."),
    click.option("--legal-name", help="The partner's legal name, shown in confirm_information."),
    click.option("--inn", help="The partner's INN (10 or 12 digits)."),
    click.option("--kpp", help="The partner's KPP (9 characters)."),
    click.option(
        "--idempotency",
        type=click.Choice(["bank131", "replay"]),
        help="Repeated idempotency keys: refuse (bank131) or replay the first response.",
    ),
    click.option(
        "--confirm-timeout",
        type=IntRange(CONFIRM_TIMEOUT_MIN[0], CONFIRM_TIMEOUT_MIN[1]),
        help=f"Minutes a payout may wait for the confirm ({CONFIRM_TIMEOUT_MIN[0]} to "
        f"{CONFIRM_TIMEOUT_MIN[1]}, 30 days; default 240).",
    ),
    click.option(
        "--fee-bps",
        type=IntRange(0, 10_000),
        help="The bank's fee per payout in basis points of the amount (100 = 1 %).",
    ),
    click.option(
        "--fee-fixed",
        help="A fixed fee per payout, in rubles (e.g. 15.50; at most "
        f"{format_rubles(projects.FEE_FIXED_MAX)}), or kopecks with --kopecks.",
    ),
    KOPECKS_OPTION,
]


def _with_common(fn: Any) -> Any:
    for option in reversed(_common):
        fn = option(fn)
    return fn


@project.command("add")
@click.argument("project_id")
@click.option(
    "--public-key",
    "public_key",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The partner's RSA public key (PEM).",
)
@click.option("--single-request", is_flag=True, help="Payouts skip the confirm step.")
@click.option(
    "--test-clock", help="Run the project's time on this test clock (sandbox; docs/sandbox.md)."
)
@_with_common
def add(
    project_id: str,
    public_key: Path,
    single_request: bool,
    test_clock: str | None,
    **options: Any,
) -> None:
    """Register a partner project and its public key."""
    fields = _settings(**options)
    pem = read_public_key(public_key)
    clock_n = _clock_number(test_clock)
    with write() as (conn, now):
        try:
            projects.add_project(
                conn, project_id, pem, now, single_request=single_request, **fields
            )
            if clock_n is not None:
                clocks.bind(conn, project_id, clock_n)
        except IntegrityError:
            raise click.ClickException(f"project {project_id!r} already exists") from None
        except (ValueError, LookupError) as exc:  # an id a partner could never send; a clock
            raise click.ClickException(str(exc)) from None
    click.echo(f"project {project_id} registered")


def _clock_number(text: str | None) -> int | None:
    """The test clock ``--test-clock`` names (sandbox mode only), or None."""
    if text is None:
        return None
    from payout131.cli.clock_commands import require_sandbox

    require_sandbox()
    try:
        return clocks.parse_id(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--test-clock") from None


@project.command("set")
@click.argument("project_id")
@click.option(
    "--public-key",
    "public_key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Replace the partner's keys by this one at once (to rotate without downtime: "
    "`project key add`, then `project key retire`).",
)
@click.option("--single-request/--two-step", default=None, help="Switch single-request mode.")
@click.option("--disabled/--enabled", default=None, help="Refuse or allow the project's calls.")
@click.option(
    "--standard-webhooks/--no-standard-webhooks",
    default=None,
    help="Also sign webhooks per Standard Webhooks (webhook-signature) with a new secret, "
    "printed once; again to rotate it. --no-standard-webhooks stops it.",
)
@click.option(
    "--test-clock", help="Run the project's time on this test clock from now on (sandbox)."
)
@click.option("--no-test-clock", is_flag=True, help="Run the project on wall time again.")
@_with_common
def set_(
    project_id: str,
    public_key: Path | None,
    single_request: bool | None,
    disabled: bool | None,
    standard_webhooks: bool | None,
    test_clock: str | None,
    no_test_clock: bool,
    **options: Any,
) -> None:
    """Change a project's settings."""
    if test_clock is not None and no_test_clock:
        raise click.UsageError("give --test-clock or --no-test-clock, not both")
    clock_n = _clock_number(test_clock)
    fields = _settings(**options)
    secret = None
    if standard_webhooks:  # docs/webhooks.md
        secret = standard.new_secret()
    pem = None if public_key is None else read_public_key(public_key)
    if single_request is not None:
        fields["single_request"] = single_request
    if disabled is not None:
        fields["disabled"] = disabled
    rebind = clock_n is not None or no_test_clock
    if not fields and standard_webhooks is None and not rebind and pem is None:
        raise click.UsageError("nothing to change: give at least one option")
    changed = sorted(fields) + (["standard_webhooks"] if standard_webhooks is not None else [])
    changed += ["test_clock"] if rebind else []
    changed += ["public_key"] if pem is not None else []
    with write() as (conn, now):
        try:
            if fields:
                projects.update_project(conn, project_id, **fields)
            if pem is not None:
                project_keys.replace_keys(conn, project_id, pem, now)
            if rebind:
                clocks.bind(conn, project_id, clock_n)
            if standard_webhooks is not None:  # kept sealed by the vault, like accounts
                projects.set_webhook_secret(conn, _vault(), project_id, secret)
        except (LookupError, VaultError) as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"project {project_id} updated: {', '.join(changed)}")
    if secret:
        click.echo(f"Standard Webhooks secret (give it to the partner): {secret}")


def _vault() -> Vault:
    conf = settings()
    return Vault(conf.vault_key_path, conf.vault_key)


@project.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_(as_json: bool) -> None:
    """Every project: its mode, state, webhook URL and active keys."""
    with database() as db, db.read() as conn:
        found = projects.list_projects(conn)
    rows: list[dict[str, Any]] = [
        {
            "id": p.id,
            "single_request": p.single_request,
            "disabled": p.disabled,
            "webhook_url": p.webhook_url,
            "keys": [k.fingerprint for k in p.keys],
            "test_clock": None if p.test_clock is None else clocks.clock_id(p.test_clock),
        }
        for p in found
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        mode = "single-request" if row["single_request"] else "two-step"
        state = "disabled" if row["disabled"] else "enabled"
        click.echo(
            f"{row['id']:<24} {state:<8} {mode:<14} keys {len(row['keys'])}  "
            f"webhooks {row['webhook_url'] or '-'}"
        )


@project.command("show")
@click.argument("project_id")
def show(project_id: str) -> None:
    """Print a project's settings as JSON."""
    with write() as (conn, _):
        found = projects.get_project(conn, project_id)
    if found is None:
        raise click.ClickException(f"no project {project_id!r}")
    hidden = ("keys", "webhook_secret_sealed", "webhook_secret_key_id")
    data = {name: getattr(found, name) for name in found.__slots__ if name not in hidden}
    data["standard_webhooks"] = found.standard_webhooks
    data["test_clock"] = None if found.test_clock is None else clocks.clock_id(found.test_clock)
    data["keys"] = [  # active ones; `project key list` shows the retired too
        {"fingerprint": k.fingerprint, "public_key": k.public_key_pem} for k in found.keys
    ]
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))
