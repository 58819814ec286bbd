"""The console in a real headless Chromium, against a live server running its own worker
and webhook dispatcher, on both engines.

An admin signs in, finds a failed payout by its filters, follows its story to its webhook
attempts, points the project's webhooks at a working receiver and resends the dead one
until it is delivered; a viewer is refused the same change; a sandbox clock advanced from
the console finishes a payout. The tests take the screenshots docs/console.md shows,
writing them when missing or with ``PAYOUT131_UPDATE_SCREENSHOT=1`` (a run leaves the
tree clean).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import rsa
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from browsers import wait_for
from console_client import PASSWORD, add_operator
from liveserver import serve
from partner import Partner, payout_body
from payout131 import projects
from payout131.client import signing
from payout131.ledger import book
from payout131.runtime import Runtime
from payout131.sandbox import clocks
from payout131.settings import Settings
from payout131.storage import schema as t
from webhook_receiver import Receiver, receiving

pytestmark = pytest.mark.browser

SHOTS = Path(__file__).resolve().parents[1] / "docs" / "console"


@dataclass
class Live:
    bank: Runtime
    url: str
    http: httpx.Client

    def partner(self, project_id: str, key: rsa.RSAPrivateKey, **fields: object) -> Partner:
        now = self.bank.clock.now()
        with self.bank.db.write() as conn:
            pem = signing.public_key_pem(key).decode()
            projects.add_project(conn, project_id, pem, now, **fields)
            book.topup_wallet(conn, project_id, 10_000_000, now)
        return Partner(self.http, project_id, key)

    def until(self, what: str, check: Callable[[], bool], seconds: float = 20) -> None:
        deadline = time.monotonic() + seconds
        while not check():
            if time.monotonic() > deadline:
                pytest.fail(f"not within {seconds} s: {what}")
            time.sleep(0.05)

    def events(self, status: str) -> list[int]:
        e = t.events
        with self.bank.db.read() as conn:
            return list(conn.execute(sa.select(e.c.id).where(e.c.status == status)).scalars())


@pytest.fixture
def live(bank_settings: Settings) -> Iterator[Live]:
    """A bank on the wall clock with its worker and dispatcher running; one delivery
    attempt per webhook, so a refused one is dead at once."""
    bank = Runtime.open(replace(bank_settings, webhook_schedule=(0.0,), worker_poll_s=0.05))
    try:
        with serve(bank.app()) as url, httpx.Client(base_url=url) as http:
            yield Live(bank, url, http)
    finally:
        bank.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as endpoint:
        yield endpoint


def shot(browser: WebDriver, name: str) -> None:
    path = SHOTS / f"{name}.png"
    if path.exists() and os.environ.get("PAYOUT131_UPDATE_SCREENSHOT") != "1":
        return
    SHOTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(path))


def sign_in(browser: WebDriver, live: Live, name: str) -> None:
    browser.get(f"{live.url}/console/")
    wait_for(browser, lambda b: b.find_element(By.ID, "name")).send_keys(name)
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.ID, "sign-in").click()
    wait_for(browser, lambda b: f"{name} (" in b.find_element(By.CLASS_NAME, "who").text)


def sign_out(browser: WebDriver) -> None:
    browser.find_element(By.CSS_SELECTOR, ".who button").click()
    wait_for(browser, lambda b: b.find_elements(By.ID, "sign-in"))


def text_of(browser: WebDriver, element_id: str) -> str:
    return str(browser.find_element(By.ID, element_id).text)


def test_an_admin_finds_a_failed_payout_and_resends_its_dead_webhook_a_viewer_may_not(
    browser: WebDriver, live: Live, receiver: Receiver, partner_keys: list[rsa.RSAPrivateKey]
) -> None:
    acme = live.partner(
        "acme", partner_keys[0], single_request=True, webhook_url="http://127.0.0.1:9/hook"
    )
    paid = acme.ok("session/init/payout", payout_body(10_000))["session"]["id"]
    failed = acme.ok("session/init/payout", payout_body(10_001))["session"]["id"]
    rejected = acme.ok("session/init/payout", payout_body(10_002))["session"]["id"]
    live.until("three webhooks dead", lambda: len(live.events("dead")) == 3)
    add_operator(live.bank, "alice", "admin")
    add_operator(live.bank, "vera", "viewer")

    sign_in(browser, live, "alice")
    assert "account_not_found" in text_of(browser, "today")
    assert "3 dead" in text_of(browser, "queue")
    shot(browser, "overview")

    browser.find_element(By.LINK_TEXT, "Payouts").click()
    wait_for(browser, lambda b: b.find_elements(By.ID, "filters"))
    Select(browser.find_element(By.NAME, "status")).select_by_visible_text("failed")
    browser.find_element(By.NAME, "error").send_keys("account_not_found")
    browser.find_element(By.ID, "apply").click()
    wait_for(browser, lambda b: "error=account_not_found" in b.current_url)
    listed = text_of(browser, "payouts")
    assert failed in listed
    assert paid not in listed
    assert rejected not in listed
    shot(browser, "payouts")

    browser.find_element(By.PARTIAL_LINK_TEXT, "po_").click()
    wait_for(browser, lambda b: b.find_elements(By.ID, "story"))
    story = text_of(browser, "story")
    assert "payout.finished" in story
    assert "webhook.attempt" in story
    assert "connect" in story.lower()  # the refused delivery, as the attempt recorded it
    assert "account_not_found" in text_of(browser, "status")
    shot(browser, "story")

    browser.get(f"{live.url}/console/projects/acme")
    url = wait_for(browser, lambda b: b.find_element(By.ID, "webhook_url"))
    url.clear()
    url.send_keys(receiver.url)
    browser.find_element(By.ID, "save").click()
    wait_for(browser, lambda b: receiver.url in b.find_element(By.ID, "url").text)

    browser.get(f"{live.url}/console/webhooks?project=acme&status=dead")
    wait_for(browser, lambda b: b.find_elements(By.ID, "events"))
    shot(browser, "webhooks")
    first = live.events("dead")[0]
    browser.find_element(By.LINK_TEXT, f"evt_{first}").click()
    wait_for(browser, lambda b: b.find_elements(By.ID, "resend")).pop().click()
    wait_for(browser, lambda b: "it will be sent again" in b.page_source)

    def delivered(b: WebDriver) -> bool:
        b.refresh()
        return text_of(b, "status") == "delivered"

    wait_for(browser, delivered, timeout=20)
    assert "HTTP 200" in text_of(browser, "attempts")
    assert len(receiver.deliveries) == 1
    sign_out(browser)

    sign_in(browser, live, "vera")  # a viewer: the same change is refused
    browser.get(f"{live.url}/console/projects/acme")
    wait_for(browser, lambda b: b.find_elements(By.ID, "settings"))
    assert not browser.find_element(By.ID, "webhook_url").is_enabled()
    browser.find_element(By.ID, "save").click()
    wait_for(browser, lambda b: "vera is a viewer" in b.page_source)
    with live.bank.db.read() as conn:
        found = projects.get_project(conn, "acme")
    assert found is not None
    assert found.webhook_url == receiver.url

    browser.set_window_size(390, 844)  # a phone: the page fits, wide tables scroll inside
    browser.get(f"{live.url}/console/payouts")
    wait_for(browser, lambda b: b.find_elements(By.ID, "payouts"))
    assert browser.execute_script("return document.body.scrollWidth <= window.innerWidth")
    shot(browser, "phone")


def test_advancing_a_sandbox_clock_from_the_console_finishes_a_payout(
    browser: WebDriver, live: Live, partner_keys: list[rsa.RSAPrivateKey]
) -> None:
    live.partner("clocked", partner_keys[1], single_request=True)
    with live.bank.db.write() as conn:
        clock = clocks.create(conn, "month end", 1_767_225_600_000_000, live.bank.clock.now())
        clocks.bind(conn, "clocked", clock.n)
    add_operator(live.bank, "alice", "admin")
    sign_in(browser, live, "alice")

    browser.get(f"{live.url}/console/sandbox")
    form = wait_for(browser, lambda b: b.find_element(By.ID, "test-payout"))
    Select(form.find_element(By.NAME, "project")).select_by_visible_text("clocked")
    amount = form.find_element(By.NAME, "amount")
    amount.clear()
    amount.send_keys("100.11")  # the simulator: succeeds an hour after it is sent
    form.find_element(By.TAG_NAME, "button").click()
    wait_for(browser, lambda b: "test payout made" in b.page_source)
    session = browser.find_element(By.TAG_NAME, "h1").text.split()[0]
    assert text_of(browser, "status").startswith(("pending", "in_progress"))

    for _ in range(6):  # each press runs the clock to its next step, and waits for it
        browser.get(f"{live.url}/console/sandbox")
        button = wait_for(browser, lambda b: b.find_element(By.CLASS_NAME, "advance-next"))
        if "Nothing is due" in browser.find_element(By.ID, clock.id).text:
            break
        button.click()
        wait_for(browser, lambda b: f"{clock.id}: ready" in b.page_source, timeout=30)
    browser.get(f"{live.url}/console/sandbox")
    wait_for(browser, lambda b: b.find_elements(By.ID, clock.id))
    shot(browser, "sandbox")
    browser.get(f"{live.url}/console/payouts/{session}")
    wait_for(browser, lambda b: b.find_elements(By.ID, "status"))
    assert text_of(browser, "status").startswith("succeeded")
    assert "payout.finished" in text_of(browser, "story")
    actions = [row.text for row in browser.find_elements(By.CSS_SELECTOR, "#story li")]
    assert actions
    browser.get(f"{live.url}/console/audit")
    audit = text_of(browser, "audit")
    assert "sandbox.payout" in audit
    assert "clock.advance" in audit
