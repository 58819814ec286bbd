"""Logs (logs.py): readable lines on a terminal and JSON lines for machines, and a state
change's line written only once its transaction commits, on both engines. What a whole
served run logs, and that it holds no secret, is test_security's
`test_served_logs_hold_no_secrets_and_no_banner`."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from payout131 import logs
from payout131.settings import Settings
from payout131.storage import Database


@pytest.fixture
def restored() -> Iterator[None]:
    """Give the root logger and structlog back as they were (configure changes both)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        root.handlers, root.level = handlers, level
        logs._through_logging()


def test_console_lines_for_people_json_lines_for_machines(
    restored: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert logs.configure("info", "console") == "console"
    logs.get("payout131.api").info("request", method="session/confirm", status=200)
    logging.getLogger("uvicorn.error").warning("Started server process [%d]", 42)
    text = capsys.readouterr().err.splitlines()
    assert "request" in text[0]
    assert "method=session/confirm" in text[0]
    assert "status=200" in text[0]
    assert "Started server process [42]" in text[1]

    assert logs.configure("info", env={"PAYOUT131_LOG_FORMAT": "json"}) == "json"
    logs.get("payout131.api").info("request", method="session/confirm", status=200)
    logs.get("payout131.api").debug("request", status=200)  # below the level: nothing
    logging.getLogger("uvicorn.error").warning("Started server process [%d]", 42)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["event"] for line in lines] == ["request", "Started server process [42]"]
    assert lines[0]["method"] == "session/confirm"
    assert lines[0]["status"] == 200
    assert lines[0]["level"] == "info"
    assert lines[0]["logger"] == "payout131.api"
    assert lines[0]["timestamp"].endswith("Z")
    assert lines[1]["level"] == "warning"


def test_a_bad_log_format_is_named() -> None:
    with pytest.raises(ValueError, match="PAYOUT131_LOG_FORMAT: no log format 'xml'"):
        Settings.from_env({"PAYOUT131_LOG_FORMAT": "xml"})
    with pytest.raises(ValueError, match="PAYOUT131_LOG_FORMAT"):
        logs.check_format("yaml")
    assert Settings.from_env({"PAYOUT131_LOG_FORMAT": "json"}).log_format == "json"


def _rolled_back(db: Database) -> None:
    with db.write() as conn:
        logs.later(conn, "payout131.payouts", "payout.moved", payout="po_5")
        raise RuntimeError("rolled back")


def test_a_change_is_logged_only_once_it_commits(
    database_url: str, restored: None, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure("info", "json")
    db = Database(database_url)
    try:
        with db.write() as conn:
            conn.execute(sa.text("SELECT 1"))
            logs.later(conn, "payout131.payouts", "payout.moved", payout="po_1")
            with conn.begin_nested():
                logs.later(conn, "payout131.payouts", "payout.moved", payout="po_2")
            try:
                with conn.begin_nested():
                    logs.later(conn, "payout131.payouts", "payout.moved", payout="po_3")
                    raise LookupError("undone")
            except LookupError:
                pass
            logs.later(conn, "payout131.payouts", "payout.moved", payout="po_4")
            assert capsys.readouterr().err == ""  # nothing before the commit
        with pytest.raises(RuntimeError):
            _rolled_back(db)
        with db.write() as conn:  # the rolled-back line does not come back with the next
            logs.later(conn, "payout131.payouts", "payout.moved", payout="po_6")
        logging.getLogger("payout131.payouts").setLevel(logging.WARNING)
        with db.write() as conn:  # at --log-level warning nothing is even gathered
            logs.later(conn, "payout131.payouts", "payout.moved", payout="po_7")
            assert not conn.info.get("payout131.after_commit")
        logging.getLogger("payout131.payouts").setLevel(logging.NOTSET)
    finally:
        db.dispose()
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["payout"] for line in lines] == ["po_1", "po_2", "po_4", "po_6"]


def _fails_holding(card_number: str, signature: str) -> None:
    raise ValueError("the request could not be handled")


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_a_traceback_shows_no_local_variable(
    fmt: str, restored: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """A frame's locals may hold a card number or a signature: no format prints them."""
    logs.configure("info", fmt)
    number, signature = "4111" + "1111" * 3, "c2lnbmF0dXJl" * 30  # as a request would bring
    try:
        _fails_holding(number, signature)
    except ValueError:
        logging.getLogger("payout131.server").exception("unhandled error on %s", "/api")
    err = capsys.readouterr().err
    assert "the request could not be handled" in err  # the traceback is there
    assert "_fails_holding" in err
    assert "4111111111111111" not in err
    assert "c2lnbmF0dXJl" not in err
