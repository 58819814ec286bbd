"""What a hostile partner, a careless operator and a new user broke, each fixed as a class.

One section per finding (numbered as in the note on the issue); every test runs on both
engines unless it touches no storage.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import rsa

from banking import Onboard, available, event_bodies
from liveserver import serve
from partner import INDIVIDUAL, ORGANISATION, payout_body
from payout131 import projects
from payout131.clock import ManualClock
from payout131.errors import InvalidRequest
from payout131.ledger import accounts, book
from payout131.ledger.accounts import wallet_code
from payout131.protocol import validation
from payout131.protocol.requests import MAX_DEPTH, parse_body
from payout131.protocol.validation import MAX_KOPECKS
from payout131.runtime import Runtime
from payout131.settings import VARIABLES, Settings
from payout131.storage import refusals
from payout131.storage import schema as t
from payout131.webhooks.urls import check_webhook_url

# -- 1. money stays an exact integer within 64 bits ----------------------------------------


def test_a_payout_whose_amount_and_fee_pass_64_bits_is_refused_before_writing(
    bank: Runtime, onboard: Onboard
) -> None:
    partner = onboard(wallet=1_000_000, fee_fixed=100_000)  # a 1,000-ruble fixed fee
    for amount in (MAX_KOPECKS, MAX_KOPECKS - 50_000):  # the amount is valid; with the fee
        partner.error(  # it is more than any account could hold
            "session/init/payout", payout_body(amount), 400, "insufficient_wallet_balance"
        )
    session = partner.ok("session/create")["session"]["id"]
    partner.error(
        "session/start/payout",
        {"session_id": session, **payout_body(MAX_KOPECKS)},
        400,
        "insufficient_wallet_balance",
    )
    assert available(bank, wallet_code("acme")) == 1_000_000


def test_a_top_up_beyond_64_bits_is_refused_and_writes_nothing(bank: Runtime) -> None:
    now = bank.clock.now()
    with bank.db.write() as conn:
        projects.add_project(conn, "big", _pem(), now)
        wallet = accounts.account_id(conn, wallet_code("big"))
        assert wallet is not None
        book.topup(conn, wallet, MAX_KOPECKS, now)  # as much as 64 bits hold: fine
    for amount in (1, MAX_KOPECKS):
        with (
            pytest.raises(book.BeyondRange, match="beyond 9223372036854775807"),
            bank.db.write() as conn,
        ):
            book.topup(conn, wallet, amount, now)
    with (
        pytest.raises(book.BeyondRange, match="1 to 9223372036854775807"),
        bank.db.write() as conn,
    ):
        book.topup(conn, wallet, MAX_KOPECKS + 1, now)
    assert available(bank, wallet_code("big")) == MAX_KOPECKS  # exact, and still an integer


def test_the_database_itself_refuses_a_balance_beyond_64_bits(bank: Runtime) -> None:
    now = bank.clock.now()
    with bank.db.write() as conn:
        projects.add_project(conn, "big", _pem(), now)
        book.topup_wallet(conn, "big", MAX_KOPECKS, now)
    a = t.ledger_accounts
    with pytest.raises(refusals.REFUSED) as refused, bank.db.write() as conn:
        conn.execute(
            sa.update(a).where(a.c.code == wallet_code("big")).values(balance=a.c.balance + 1)
        )
    assert refusals.out_of_range(refused.value)
    with bank.db.read() as conn:
        kind = conn.execute(sa.select(a.c.balance).where(a.c.code == wallet_code("big"))).scalar()
    assert kind == MAX_KOPECKS
    assert isinstance(kind, int)


def _pem() -> str:
    from payout131.client import signing

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return signing.public_key_pem(key).decode()


# -- 2. settings are bounded -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"confirm_timeout_s": 200_000_000_000 * 60}, "confirm_timeout_s"),
        ({"confirm_timeout_s": 59}, "confirm_timeout_s"),
        ({"fee_fixed": projects.FEE_FIXED_MAX + 1}, "fee_fixed"),
        ({"fee_fixed": -1}, "fee"),
        ({"fee_bps": 10_001}, "fee"),
        ({"idempotency_mode": "never"}, "idempotency_mode"),
        ({"inn": "7707083894"}, "inn"),
        ({"kpp": "7736010"}, "kpp"),
        ({"legal_name": "ООО\u2028Ромашка"}, "legal_name"),
        ({"webhook_url": "http://example.com:99999/hook"}, "webhook_url"),
        ({"webhook_secret": "whsec_clear"}, "webhook_secret"),
    ],
)
def test_every_project_setting_is_bounded(fields: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        projects.check_settings(fields)


def test_the_longest_confirm_timeout_still_lets_a_payout_be_cancelled(
    bank: Runtime, onboard: Onboard, clock: ManualClock
) -> None:
    high = projects.CONFIRM_TIMEOUT_S[1]
    partner = onboard(wallet=100_000, confirm_timeout_s=high)
    session = partner.ok("session/init/payout", payout_body(1_000))["session"]["id"]
    bank.worker.drain()
    shown = partner.ok("session/status", {"session_id": session})["session"]
    assert shown["next_action"] == "confirm"
    partner.ok("session/cancel", {"session_id": session})
    bank.worker.drain()
    assert available(bank, wallet_code("acme")) == 100_000
    clock.advance(high + 1)  # and the timeout itself lands, once, on a finished payout
    bank.worker.drain()
    assert available(bank, wallet_code("acme")) == 100_000


FREE_TEXT = ("PAYOUT131_HOME", "PAYOUT131_VAULT_KEY", "PAYOUT131_WIDGET_DEMO_PROJECT")


@pytest.mark.parametrize("variable", [v.name for v in VARIABLES if v.name not in FREE_TEXT])
def test_every_variable_refuses_a_bad_value_by_name(variable: str) -> None:
    for value in ("abc", "-1", "99999999999999999999d", "１０"):
        if variable == "PAYOUT131_DATABASE_URL" and value == "-1":
            continue  # not a URL either way: refused below with the others
        with pytest.raises(ValueError, match=variable):
            Settings.from_env({variable: value})


# -- 3. webhook URLs -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("http://example.com:99999/hook", "out of range"),
        ("http://example.com:abc/hook", "not a URL"),
        ("http://example.com:0/hook", "port 0"),
        ("http://[::1/hook", "not a URL"),
        ("https://example.com/путь", "ASCII"),
        ("https://пример.рф/hook", "ASCII"),
        ("http:///hook", "no host"),
        ("example.com/hook", "http:// or https://"),
        ("ftp://example.com/hook", "http:// or https://"),
        ("https://user:secret@example.com/hook", "user name or password"),
        ("https://example.com/hook#part", "fragment"),
        ("https://example.com/ho ok", "without spaces"),
        ("https://example.com/\nhook", "ASCII"),
        ("https://example.com/" + "a" * 2000, "at most 2000"),
    ],
)
def test_a_url_no_webhook_can_be_sent_to_is_refused(url: str, rule: str) -> None:
    with pytest.raises(ValueError, match=rule):
        check_webhook_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "https://partner.example/bank131/webhook/",
        "https://xn--e1afmkfd.xn--p1ai/hook?x=1",
        "http://[::1]:9000/",
        "https://example.com/%D0%BF",
    ],
)
def test_a_url_webhooks_can_be_sent_to_is_kept(url: str) -> None:
    assert check_webhook_url(url) == url


# -- 5. parse failures are 400s --------------------------------------------------------------

DEEP = ("[" * 1000 + "]" * 1000).encode()
DEEP_OBJECT = ('{"a":' * 1000 + "1" + "}" * 1000).encode()


def test_parse_body_refuses_deep_nesting_by_rule() -> None:
    for raw in (DEEP, DEEP_OBJECT):
        with pytest.raises(InvalidRequest, match="nested more than 32 deep"):
            parse_body(raw)
    level = {"a": 1}
    for _ in range(MAX_DEPTH - 1):
        level = {"a": level}
    assert parse_body(json.dumps(level).encode()) == level  # 32 deep: fine


@pytest.mark.parametrize(
    "method",
    [
        "session/create",
        "session/init/payout",
        "session/init/payout/rko",
        "session/start/payout",
        "session/confirm",
        "session/cancel",
        "session/status",
        "wallet/balance",
        "token",
        "tokenize",
        "token/info",
    ],
)
def test_a_deeply_nested_signed_body_is_a_400_on_every_method(
    onboard: Onboard, method: str
) -> None:
    partner = onboard(wallet=1_000)
    for raw in (DEEP, DEEP_OBJECT):
        answer = partner.post(method, raw=raw)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["code"] == "invalid_request"


def test_the_widget_answers_a_deeply_nested_body_with_a_400(http: httpx.Client) -> None:
    for raw in (DEEP[:4000], DEEP_OBJECT[:4000]):
        answer = http.post("/widget/api/tokenize", content=raw)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["code"] == "invalid_request"


# -- 6. ids are ASCII ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "session_id", ["ps_¹", "ps_２２", "ps_٢٢", "ps_𝟐", "ps_2\u200b", "ps_", "ps_022", "ps_0"]
)
def test_an_id_with_other_digits_names_no_session(onboard: Onboard, session_id: str) -> None:
    partner = onboard(wallet=10_000)
    for _ in range(22):  # ps_22 exists
        partner.ok("session/create")
    message = partner.error("session/status", {"session_id": session_id}, 404, "invalid_request")
    assert "session" in message


@pytest.mark.parametrize(
    ("text", "value"),
    [("22", 22), ("０", None), ("٢٢", None), ("¹", None), ("+1", None), (" 1", None), ("", None)],
)
def test_whole_numbers_are_ascii_digits(text: str, value: int | None) -> None:
    assert validation.whole_number(text) == value


# -- 7 and 8. slow and large requests --------------------------------------------------------


@pytest.fixture
def quick_bank(bank_settings: Settings, clock: ManualClock) -> Any:
    from dataclasses import replace

    quick = replace(bank_settings, header_timeout_s=0.5, body_timeout_s=0.5)
    opened = Runtime.open(quick, clock=clock)
    yield opened
    opened.close()


def _address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def _read_all(sock: socket.socket, within: float) -> bytes:
    sock.settimeout(within)
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except TimeoutError:
        pass
    return b"".join(chunks)


def test_a_request_whose_headers_stop_coming_is_answered_408_and_closed(quick_bank: Any) -> None:
    with serve(quick_bank.app(run_worker=False)) as url:
        idle = socket.create_connection(_address(url))
        half = socket.create_connection(_address(url))
        half.sendall(b"POST /api/v1/session/create HTTP/1.1\r\nHost: x\r\nX-PARTNER-")
        began = time.monotonic()
        for sock in (idle, half):
            answer = _read_all(sock, 5)
            assert answer.startswith(b"HTTP/1.1 408"), answer
            sock.close()
        assert time.monotonic() - began < 4
        assert httpx.get(f"{url}/health").status_code == 200  # and the server serves on


def test_a_body_that_stops_coming_is_refused_in_time(quick_bank: Any) -> None:
    with serve(quick_bank.app(run_worker=False)) as url:
        for path in ("/api/v1/session/create", "/widget/api/tokenize"):
            sock = socket.create_connection(_address(url))
            sock.sendall(
                f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "X-PARTNER-PROJECT: acme\r\nX-PARTNER-SIGN: x\r\nContent-Length: 100\r\n\r\n"
                '{"a":'.encode()
            )
            answer = _read_all(sock, 5)  # to the end: the server closes the connection
            sock.close()
            assert answer.startswith(b"HTTP/1.1 400"), answer
            assert b"not received within 0.5 seconds" in answer
            assert b"connection: close" in answer.lower()


def test_a_body_trickled_to_a_route_that_does_not_read_it_is_cut_off(quick_bank: Any) -> None:
    with serve(quick_bank.app(run_worker=False)) as url:
        sock = socket.create_connection(_address(url))
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
        began = time.monotonic()
        sock.settimeout(0.2)
        closed = False
        while time.monotonic() - began < 5 and not closed:
            try:
                sock.sendall(b"x")
                if sock.recv(65536) == b"":
                    closed = True
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                closed = True
        sock.close()
        assert closed, "the connection was held open by a trickled body"
        assert time.monotonic() - began < 4  # 0.5 s and the second of grace


def test_a_large_body_is_refused_while_it_is_read(http: httpx.Client) -> None:
    """Chunked, so no Content-Length warns the server: it stops at the cap, answers, and
    the rest of the 48 MiB is never read."""
    host, port = _address(str(http.base_url).rstrip("/"))
    for path, limit in (("/widget/api/tokenize", 4096), ("/api/v1/session/create", 256 * 1024)):
        sock = socket.create_connection((host, port))
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            "X-PARTNER-PROJECT: acme\r\nX-PARTNER-SIGN: x\r\n\r\n".encode()
        )
        chunk = b"x" * 65536
        sent = 0
        answer = b""
        try:
            while sent < 48 * 1024 * 1024 and not answer:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
                sock.settimeout(0.001)
                with contextlib.suppress(TimeoutError):
                    answer = sock.recv(65536)
                sock.settimeout(None)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer += _read_all(sock, 2)
        sock.close()
        assert answer.startswith((b"HTTP/1.1 400", b"HTTP/1.1 413")), answer[:200]
        assert f"larger than the limit of {limit} bytes".encode() in answer
        assert sent < 8 * 1024 * 1024, f"{sent} bytes were taken before the answer"


# -- 9. a key belongs to one method ----------------------------------------------------------


def test_a_replayed_key_answers_only_the_method_it_was_used_for(onboard: Onboard) -> None:
    partner = onboard(wallet=100_000, idempotency_mode="replay")
    key = {"X-PARTNER-IDEMPOTENCY-KEY": "k-1"}
    body = payout_body(1_000)
    first = partner.ok("session/init/payout", body, headers=key)
    again = partner.ok("session/init/payout", body, headers=key)
    assert again == first
    message = partner.error(
        "session/create", body, 400, "idempotency_key_already_exists", headers=key
    )
    assert "used for /api/v1/session/init/payout" in message
    message = partner.error(  # nor does the same method of the other version
        "session/init/payout",
        body,
        400,
        "idempotency_key_already_exists",
        headers=key,
        version="v2",
    )
    assert "one method of one API version" in message


# -- 10. the echoed confirm_information is checked on both sides -----------------------------


def test_confirm_checks_the_echoed_sender_account_too(bank: Runtime, onboard: Onboard) -> None:
    partner = onboard(account=100_000)
    session = partner.ok("session/init/payout/rko", partner.rko_body(1_000, ORGANISATION))
    session_id = session["session"]["id"]
    bank.worker.drain()
    info = event_bodies(bank, session_id)[0]["confirm_information"]
    assert info["account_details"]["sender"]["account_number"] == partner.account
    other = validation.generate_account("049205131", "40702810", sequence=77)
    info["account_details"]["sender"]["account_number"] = other
    message = partner.error(
        "session/confirm",
        {"session_id": session_id, "confirm_information": info},
        400,
        "invalid_request",
    )
    assert message == (
        "confirm_information.account_details.sender.account_number: does not match the "
        "payout's settlement account it is paid from"
    )
    info["account_details"]["sender"]["account_number"] = partner.account
    partner.ok("session/confirm", {"session_id": session_id, "confirm_information": info})


# -- 11. a sender account outside /rko -------------------------------------------------------


def test_a_sender_account_on_a_wallet_payout_is_checked(bank: Runtime, onboard: Onboard) -> None:
    partner = onboard(wallet=100_000, account=0)
    assert partner.account is not None
    bad_key = partner.account[:-1] + str((int(partner.account[-1]) + 1) % 10)
    stranger = validation.generate_account("049205131", "40702810", sequence=4242)
    cases = ((bad_key, "control key", 400), (stranger, "no settlement account", 404))
    for account, rule, status in cases:  # as on /rko: a number the bank does not hold is 404
        body = payout_body(1_000, participant_details={"sender": {"account": account}})
        message = partner.error("session/init/payout", body, status, "invalid_request")
        assert message.startswith("participant_details.sender.account: "), message
        assert rule in message, message
    body = payout_body(1_000, participant_details={"sender": {"account": partner.account}})
    echoed = partner.ok("session/init/payout", body)["session"]["payments"][0]
    assert echoed["participant_details"]["sender"]["account"] == partner.account
    assert available(bank, wallet_code("acme")) == 99_000  # paid from the wallet all the same


# -- 13. confirm_information leaves out what is not known ------------------------------------


def test_confirm_information_has_no_nulls(bank: Runtime, onboard: Onboard) -> None:
    partner = onboard(account=100_000)
    session = partner.ok("session/init/payout/rko", partner.rko_body(1_000, INDIVIDUAL))
    bank.worker.drain()
    info = event_bodies(bank, session["session"]["id"])[0]["confirm_information"]

    def nulls(value: Any, path: str = "") -> list[str]:
        if isinstance(value, dict):
            return [p for k, v in value.items() for p in nulls(v, f"{path}.{k}")]
        return [path] if value is None else []

    assert nulls(info) == []
    assert "kpp" not in info["account_details"]["recipient"]  # an individual has none


# -- 14. lenient input: refused or documented ------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "2026-01-01",
        "2026-01-01T10:00:00",
        "2026-13-01T00:00:00Z",
        "2026-01-01T10:00:00+2:00",
        "２０２６-01-01T10:00:00Z",
        "2026-01-01 10:00:00Z\n",
    ],
)
def test_request_datetime_is_a_full_rfc3339_date_time(value: str) -> None:
    with pytest.raises(InvalidRequest, match="request_datetime"):
        validation.check_datetime("request_datetime", value)


@pytest.mark.parametrize(
    "value", ["2026-01-01T10:00:00Z", "2026-01-01T10:00:00.123456+03:00", "2026-01-01t10:00:00z"]
)
def test_a_full_date_time_is_taken(value: str) -> None:
    assert validation.check_datetime("request_datetime", value) == value


def test_content_type_and_duplicate_keys_are_as_documented(onboard: Onboard) -> None:
    """README, "The API": the Content-Type is not checked, and a key given twice takes its
    last value (the signature covers the exact bytes)."""
    partner = onboard(wallet=10_000)
    raw = b'{"metadata": "first", "metadata": "last"}'
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        answer = partner.post("session/create", raw=raw, headers={"Content-Type": content_type})
        assert answer.status_code == 200, answer.text
        assert answer.json()["session"]["metadata"] == "last"


@pytest.mark.parametrize("name", ["Иванов\u2028Иван", "Иванов\u2029Иван", "Иванов\u200eИван"])
def test_names_refuse_separators_and_format_characters(onboard: Onboard, name: str) -> None:
    partner = onboard(wallet=10_000)
    body = payout_body(1_000, {**INDIVIDUAL, "full_name": name})
    message = partner.error("session/init/payout", body, 400, "invalid_request")
    assert "full_name" in message


# -- 16. project ids a partner can send ------------------------------------------------------


@pytest.mark.parametrize("project_id", ["", " acme", "acme corp", "проект", "a\nb", "a" * 65, "-a"])
def test_a_project_id_that_could_never_authenticate_is_refused(project_id: str) -> None:
    with pytest.raises(ValueError, match="X-PARTNER-PROJECT"):
        projects.check_id(project_id)


# -- 19. the SQLite file is private ----------------------------------------------------------


def test_a_new_sqlite_database_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    from payout131.storage import Database

    path = tmp_path / "new.db"
    db = Database(f"sqlite:///{path}")
    with db.write() as conn:
        conn.execute(sa.text("CREATE TABLE t (x INTEGER)"))
    db.dispose()
    assert path.stat().st_mode & 0o777 == 0o600


# -- 3. any failure to send is an attempt, and the schedule ends in dead ---------------------


@pytest.fixture
def bank_settings(bank_settings: Settings) -> Settings:
    """Two attempts, a second apart: an event is dead after them."""
    from dataclasses import replace

    return replace(bank_settings, webhook_schedule=(0.0, 1.0), webhook_jitter=0.0)


def test_a_url_that_cannot_be_sent_to_is_attempted_by_the_schedule_then_dead(
    bank: Runtime, onboard: Onboard, clock: ManualClock
) -> None:
    partner = onboard(wallet=10_000)
    with bank.db.write() as conn:  # kept by a version that did not check URLs
        conn.execute(
            sa.update(t.projects)
            .where(t.projects.c.id == "acme")
            .values(webhook_url="http://example.com:99999/hook")
        )
    session = partner.ok("session/init/payout", payout_body(1_000))["session"]["id"]
    bank.worker.drain()
    assert bank.dispatcher.drain() == 1
    clock.advance(1)
    assert bank.dispatcher.drain() == 1
    clock.advance(3600)
    assert bank.dispatcher.drain() == 0  # dead: no more attempts
    e, a = t.events, t.webhook_attempts
    with bank.db.read() as conn:
        status = conn.execute(sa.select(e.c.status, e.c.attempts)).one()
        errors = conn.execute(sa.select(a.c.error).order_by(a.c.id)).scalars().all()
    assert tuple(status) == ("dead", 2)
    assert len(errors) == 2
    assert all(error and "port" in error.lower() for error in errors), errors
    partner.ok("session/confirm", {"session_id": session})  # the session is not held up
    bank.worker.drain()
    assert bank.dispatcher.drain() == 1  # payment_finished gets its own attempts


# -- 20. the Standard Webhooks secret is sealed at rest -------------------------------------


def test_the_standard_webhooks_secret_is_sealed_and_follows_rotation(
    bank: Runtime, onboard: Onboard
) -> None:
    from click.testing import CliRunner

    from payout131.cli import main
    from payout131.tokens.vault import Sealed, Vault
    from payout131.webhooks import standard

    secret = standard.new_secret()
    onboard(wallet=1, webhook_secret=secret)
    p = t.projects

    def kept() -> Any:
        with bank.db.read() as conn:
            return conn.execute(sa.select(p).where(p.c.id == "acme")).one()

    row = kept()
    assert row.webhook_secret is None
    assert secret.encode() not in bytes(row.webhook_secret_sealed)
    first_key = row.webhook_secret_key_id
    env = {
        "PAYOUT131_HOME": str(bank.settings.home),
        "PAYOUT131_DATABASE_URL": bank.settings.database,
    }
    rotated = CliRunner().invoke(main, ["vault", "rotate"], env=env)
    assert rotated.exit_code == 0, rotated.output
    row = kept()
    assert row.webhook_secret_key_id != first_key  # resealed under the new key
    vault = Vault(bank.settings.vault_key_path, "")  # the file now holds the new key only
    sealed = Sealed(row.webhook_secret_key_id, bytes(row.webhook_secret_sealed))
    assert standard.open_secret(vault, "acme", sealed) == secret


def test_a_secret_kept_in_the_clear_by_an_earlier_version_is_sealed_at_start(
    bank: Runtime, onboard: Onboard, bank_settings: Settings, clock: ManualClock
) -> None:
    from payout131.tokens.vault import Sealed
    from payout131.webhooks import standard

    onboard(wallet=1)
    p = t.projects
    with bank.db.write() as conn:
        conn.execute(sa.update(p).where(p.c.id == "acme").values(webhook_secret="whsec_old"))
    again = Runtime.open(bank_settings, clock=clock)
    try:
        with again.db.read() as conn:
            row = conn.execute(sa.select(p).where(p.c.id == "acme")).one()
        assert row.webhook_secret is None
        sealed = Sealed(row.webhook_secret_key_id, bytes(row.webhook_secret_sealed))
        assert standard.open_secret(again.vault, "acme", sealed) == "whsec_old"
    finally:
        again.close()


# -- 21. purge: what is done goes, past its horizon; nothing waiting ever does --------------

DAY_US = 24 * 3600 * 1_000_000


def test_purge_empties_a_large_store_of_what_is_done_and_keeps_the_rest(
    bank: Runtime, onboard: Onboard
) -> None:
    from click.testing import CliRunner

    from payout131.cli import main
    from payout131.clock import SystemClock

    onboard(wallet=1)
    now = SystemClock().now()
    old, recent = now - 200 * DAY_US, now - DAY_US
    old_events, kept_events = 12_000, 500

    def event(status: str, at: int) -> dict[str, Any]:
        delivered = at if status == "delivered" else None
        return {"project_id": "acme", "session_n": 1, "type": "payment_finished",
                "body": b"{}", "status": status, "attempts": 1, "next_attempt_at": at,
                "created_at": at, "delivered_at": delivered}  # fmt: skip

    with bank.db.write() as conn:
        conn.execute(t.events.insert(), [event("delivered", old)] * old_events)
        conn.execute(t.events.insert(), [event("dead", old)] * 100)
        conn.execute(t.events.insert(), [event("delivered", recent)] * kept_events)
        conn.execute(t.events.insert(), [event("pending", old)] * 50)  # waiting: kept
        conn.execute(t.events.insert(), [event("failed", old)] * 50)  # still retried: kept
        ids = conn.execute(sa.select(t.events.c.id)).scalars().all()
        conn.execute(
            t.webhook_attempts.insert(),
            [
                {"event_id": i, "attempt": 1, "worker": "w", "url": "http://x", "started_at": old}
                for i in ids
            ],
        )
        conn.execute(
            t.idempotency_keys.insert(),
            [
                {
                    "project_id": "acme",
                    "key": f"k{i}",
                    "method": "session/create",
                    "body_sha256": "0" * 64,
                    "response_status": 200,
                    "response_body": b"{}",
                    "created_at": old if i < 8_000 else recent,
                }
                for i in range(8_500)
            ],
        )
        conn.execute(
            t.public_tokens.insert(),
            [
                {
                    "token_sha256": f"{i:064x}",
                    "project_id": "acme",
                    "created_at": old,
                    "expires_at": old if i < 3_000 else now + DAY_US,
                }
                for i in range(3_100)
            ],
        )
        conn.execute(
            t.session_calls.insert(),
            [
                {
                    "session_n": i,
                    "project_id": "acme",
                    "method": "session/confirm",
                    "version": "v1",
                    "status": 200,
                    "at": old if i < 2_000 else recent,
                }
                for i in range(2_500)
            ],
        )
    env = {
        "PAYOUT131_HOME": str(bank.settings.home),
        "PAYOUT131_DATABASE_URL": bank.settings.database,
    }
    done = CliRunner().invoke(main, ["purge", "--batch", "1000"], env=env)
    assert done.exit_code == 0, done.output
    assert done.output.splitlines() == [
        f"webhook events: {old_events + 100} purged",
        "idempotency keys: 8000 purged",
        "recorded calls: 2000 purged",
        "public tokens: 3000 purged",
    ]

    def count(table: sa.Table) -> int:
        with bank.db.read() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()

    assert count(t.events) == kept_events + 100
    assert count(t.webhook_attempts) == kept_events + 100  # each event's attempts went with it
    assert count(t.idempotency_keys) == 500
    assert count(t.public_tokens) == 100
    assert count(t.session_calls) == 500
    again = CliRunner().invoke(main, ["purge"], env=env)
    assert "webhook events: 0 purged" in again.output
