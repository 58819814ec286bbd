"""The widget in a real headless Chromium (Debian's ``chromium`` and ``chromium-driver``).

Each test opens the demo page (``/widget/demo``) of a live server with a public token the
partner got from the API, types like a recipient would, and reads what the page shows.
The first test also takes the screenshot that ``docs/widget.md`` shows; it writes it to
``docs/widget.png`` when that file is missing or ``PAYOUT131_UPDATE_SCREENSHOT=1``, so a
test run leaves the tree clean.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement

import liveserver
from banking import Onboard
from browsers import wait_for
from partner import ORGANISATION, Partner
from payout131.protocol.validation import generate_account
from payout131.runtime import Runtime
from prefix_proxy import prefix_proxy
from test_tokens import event_bodies

pytestmark = pytest.mark.browser

SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "widget.png"
BIK = "044525974"
ACCOUNT = generate_account(BIK, "40702810", sequence=3_141_592)
WRONG_KEY = ACCOUNT[:-1] + str((int(ACCOUNT[-1]) + 1) % 10)


def public_token(partner: Partner) -> str:
    token: str = partner.ok("token", {"tokenize_widget": {"access": True}})["public_token"]
    return token


def open_demo(browser: WebDriver, http: httpx.Client, token: str, lang: str = "en") -> None:
    browser.get(f"{http.base_url}/widget/demo?public_token={token}&lang={lang}")
    wait_for(browser, lambda b: b.find_element(By.NAME, "bik"))


def field_error(browser: WebDriver, name: str) -> str:
    """The message under a field, once the widget shows one."""
    field = browser.find_element(By.NAME, name)
    error_id = field.get_attribute("aria-describedby").split()[-1]  # type: ignore[union-attr]

    def shown(b: WebDriver) -> str | bool:
        text = b.find_element(By.ID, error_id).text
        return text or False

    message: str = wait_for(browser, shown)
    return message


def bank_name(browser: WebDriver) -> str:
    def shown(b: WebDriver) -> str | bool:
        text = b.find_element(By.CLASS_NAME, "p131-bank").text
        return text if text and "…" not in text else False

    name: str = wait_for(browser, shown)
    return name


def callback(browser: WebDriver) -> tuple[str, dict[str, Any]]:
    """What the demo page's onSuccess / onError callback received."""
    result: WebElement = wait_for(
        browser,
        lambda b: b.find_element(By.CSS_SELECTOR, "#result[data-kind]"),
    )
    kind, _, payload = result.text.partition("\n")
    return kind, json.loads(payload)


def test_recipient_tokenizes_an_account_and_the_partner_pays_it(
    bank: Runtime, http: httpx.Client, onboard: Onboard, browser: WebDriver
) -> None:
    partner = onboard(account=1_000_000)
    open_demo(browser, http, public_token(partner))

    # Keyboard only: type the BIK, Tab to the account, type it, Enter submits.
    browser.find_element(By.NAME, "bik").send_keys(BIK)
    entry = bank.directory.get(BIK)
    assert entry is not None
    assert bank_name(browser) == (entry.english_name or entry.name)
    browser.switch_to.active_element.send_keys(Keys.TAB)
    active = browser.switch_to.active_element
    assert active.get_attribute("name") == "account"
    active.send_keys(ACCOUNT[:10])
    hint = browser.find_element(By.CLASS_NAME, "p131-hint").text  # BIK hint, then account's
    assert hint
    active.send_keys(ACCOUNT[10:], Keys.ENTER)
    kind, result = callback(browser)
    assert kind == "onSuccess"
    assert set(result) == {"token", "masked_account", "bik", "bank_name"}
    assert result["masked_account"] == f"40702***{ACCOUNT[-4:]}"
    assert result["bik"] == BIK
    assert result["bank_name"] == entry.name
    done = browser.find_element(By.CLASS_NAME, "p131-status-done").text
    assert result["masked_account"] in done
    assert browser.find_element(By.NAME, "account").get_attribute("disabled") == "true"
    browser.set_window_size(900, 1100)
    screenshot = browser.get_screenshot_as_png()
    assert screenshot.startswith(b"\x89PNG")
    if not SCREENSHOT.exists() or os.environ.get("PAYOUT131_UPDATE_SCREENSHOT") == "1":
        SCREENSHOT.write_bytes(screenshot)  # the picture in docs/widget.md

    # The partner pays by the token: the seed's steps 3 to 7.
    ru = {k: v for k, v in ORGANISATION.items() if k not in ("bik", "account")}
    body = partner.rko_body(250_000, {**ru, "token": result["token"]})
    session_id = partner.ok("session/init/payout/rko", body)["session"]["id"]
    bank.worker.drain()
    [ready] = event_bodies(bank, session_id)
    recipient = ready["confirm_information"]["account_details"]["recipient"]
    assert recipient["account_number"] == ACCOUNT
    partner.ok("session/confirm", {"session_id": session_id})
    bank.worker.drain()
    status = partner.ok("session/status", {"session_id": session_id})["session"]
    assert status["payments"][0]["payment_method"]["bank_account"]["ru"]["token"] == result["token"]


@pytest.mark.parametrize(
    ("lang", "expected"),
    [
        ("en", "The account number does not match the BIK: its check digit is wrong."),
        ("ru", "Номер счёта не сходится с БИК: контрольная цифра неверна."),
    ],
)
def test_a_wrong_control_key_is_explained_as_it_is_typed(
    http: httpx.Client, onboard: Onboard, browser: WebDriver, lang: str, expected: str
) -> None:
    token = public_token(onboard())
    open_demo(browser, http, token, lang)
    browser.find_element(By.NAME, "bik").send_keys(BIK)
    bank_name(browser)
    account = browser.find_element(By.NAME, "account")
    account.send_keys(WRONG_KEY)  # no submit: the check runs as the digits are typed
    assert field_error(browser, "account").startswith(expected)
    assert account.get_attribute("aria-invalid") == "true"
    account.send_keys(Keys.ENTER)
    assert browser.find_elements(By.CSS_SELECTOR, "#result[data-kind]") == []
    # Correcting the last digit clears the message; the public token was not spent.
    account.send_keys(Keys.BACKSPACE, ACCOUNT[-1])
    wait_for(browser, lambda b: account.get_attribute("aria-invalid") == "false")
    account.send_keys(Keys.ENTER)
    assert callback(browser)[0] == "onSuccess"


def test_a_bik_of_the_wrong_length_is_explained(
    http: httpx.Client, onboard: Onboard, browser: WebDriver
) -> None:
    open_demo(browser, http, public_token(onboard()))
    browser.find_element(By.NAME, "bik").send_keys("04452", Keys.TAB)
    assert field_error(browser, "bik") == "A BIK has 9 digits."


def test_a_spent_public_token_is_refused(
    http: httpx.Client, onboard: Onboard, browser: WebDriver
) -> None:
    token = public_token(onboard())
    spent = http.post(
        "/widget/api/tokenize", json={"public_token": token, "bik": BIK, "account": ACCOUNT}
    )
    assert spent.status_code == 200
    open_demo(browser, http, token)
    browser.find_element(By.NAME, "bik").send_keys(BIK)
    browser.find_element(By.NAME, "account").send_keys(ACCOUNT, Keys.ENTER)
    status = wait_for(browser, lambda b: b.find_element(By.CLASS_NAME, "p131-status-error"))
    assert status.text.startswith("This form has already been sent.")
    assert browser.find_element(By.CLASS_NAME, "p131-submit").get_attribute("disabled") == "true"
    kind, error = callback(browser)
    assert kind == "onError"
    assert error["code"] == "authentication_error"
    assert error["reason"] == "spent"


def test_the_widget_fits_a_phone_screen(
    http: httpx.Client, onboard: Onboard, browser: WebDriver
) -> None:
    browser.set_window_size(360, 740)
    open_demo(browser, http, public_token(onboard()), "ru")
    widths = browser.execute_script(
        "const f = document.querySelector('.p131-widget');"
        "return [document.documentElement.scrollWidth, window.innerWidth,"
        " f.getBoundingClientRect().width,"
        " parseFloat(getComputedStyle(document.querySelector('input[name=bik]')).fontSize)];"
    )
    page_width, viewport, widget_width, font_px = widths
    assert page_width <= viewport  # nothing scrolls sideways
    assert widget_width <= viewport
    assert font_px >= 16  # phones do not zoom into the fields
    labels = [e.text for e in browser.find_elements(By.TAG_NAME, "label")]
    assert labels == ["БИК банка", "Номер счёта"]


def test_recipient_tokenizes_a_card_and_the_partner_pays_it(
    bank: Runtime, http: httpx.Client, onboard: Onboard, browser: WebDriver
) -> None:
    partner = onboard(wallet=1_000_000, single_request=True)
    browser.get(f"{http.base_url}/widget/demo?public_token={public_token(partner)}&kind=card")
    card = wait_for(browser, lambda b: b.find_element(By.NAME, "card"))
    card.send_keys("2200 0000 0000 0005")  # a typo: the check digit does not match
    assert field_error(browser, "card").startswith("Номер карты введён с ошибкой")
    card.send_keys(Keys.ENTER)
    assert browser.find_elements(By.CSS_SELECTOR, "#result[data-kind]") == []
    card.send_keys(Keys.BACKSPACE, "4", Keys.ENTER)
    kind, result = callback(browser)
    assert kind == "onSuccess"
    assert result == {
        "token": result["token"],
        "number_hash": result["token"],
        "brand": "mir",
        "bin": "220000",
        "last4": "0004",
    }
    assert card.get_attribute("value") == ""  # the number leaves the page once saved
    assert "···· 0004" in browser.find_element(By.CLASS_NAME, "p131-status-done").text

    # The partner pays by the widget's hash, as it would the bank's card widget's.
    card_destination = {
        "type": "card",
        "card": {"type": "encrypted_card", "encrypted_card": {"number_hash": result["token"]}},
    }
    body = {
        "payment_method": card_destination,
        "amount_details": {"amount": 10_000, "currency": "rub"},
        "participant_details": {"recipient": {"full_name": "Ivanov Ivan"}},
    }
    session_id = partner.ok("session/init/payout", body)["session"]["id"]
    bank.worker.drain()
    [finished] = event_bodies(bank, session_id)
    assert finished["session"]["payments"][0]["status"] == "succeeded"


def test_the_widget_and_the_api_work_behind_a_proxy_under_a_path_prefix(
    bank: Runtime, onboard: Onboard, browser: WebDriver
) -> None:
    """A proxy serves the bank under /bank and strips the prefix (`serve --root-path /bank
    --forwarded-allow-ips ...`, docs/operations.md): the demo page, its assets and its calls,
    and the partner's signed calls, all go through it; the log and metrics name them."""
    partner = onboard(account=1_000_000)
    app = bank.app(run_worker=False)
    with (
        liveserver.serve(app, root_path="/bank", forwarded_allow_ips="127.0.0.1") as inner,
        liveserver.serve(prefix_proxy("/bank", inner)) as outer,
        httpx.Client(base_url=f"{outer}/bank") as proxied,
    ):
        assert httpx.get(f"{outer}/widget/demo").status_code == 404  # only under the prefix
        behind = Partner(proxied, partner.project, partner.key)
        behind.account = partner.account
        token = public_token(behind)
        browser.get(f"{outer}/bank/widget/demo?public_token={token}&lang=en")
        wait_for(browser, lambda b: b.find_element(By.NAME, "bik"))
        browser.find_element(By.NAME, "bik").send_keys(BIK)
        assert bank_name(browser)  # the BIK lookup went through the proxy
        browser.find_element(By.NAME, "account").send_keys(ACCOUNT, Keys.ENTER)
        kind, result = callback(browser)
        assert kind == "onSuccess", result
        ru = {k: v for k, v in ORGANISATION.items() if k not in ("bik", "account")}
        body = behind.rko_body(250_000, {**ru, "token": result["token"]})
        assert behind.ok("session/init/payout/rko", body)["session"]["id"].startswith("ps_")
        metrics = proxied.get("/metrics").text
    for method in ("token", "session/init/payout/rko"):
        assert f'payout131_api_requests_total{{error="",method="{method}",status="200"}}' in metrics
    counted = [line for line in metrics.splitlines() if line.startswith("payout131_api_requests")]
    assert any('method="widget",status="200"' in line for line in counted), counted
