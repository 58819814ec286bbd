"""A console user over real HTTP: signs in as a browser does (the form's token from the
sign-in page, the cookie it sets), reads pages, posts forms with their token."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx

from payout131.console import operators
from payout131.runtime import Runtime

PASSWORD = "correct horse battery"


def add_operator(bank: Runtime, name: str, role: str, password: str = PASSWORD) -> None:
    with bank.db.write() as conn:
        operators.add(conn, name, role, password, bank.clock.now())


def sign_in(bank: Runtime, name: str, password: str, now: int) -> operators.SignIn:
    """A sign-in as the console makes one: the hash checked, then counted."""
    found, matched = operators.check(bank.db, name, password)
    if found is None:
        return operators.SignIn(None, "wrong name or password")
    with bank.db.write() as conn:
        return operators.settle(conn, name, matched, now)


def alert(page: httpx.Response) -> str:
    """The refusal a page shows (its ``role="alert"`` text), unescaped; "" if none."""
    found = re.search(r'role="alert">([^<]*)<', page.text)
    return html.unescape(found.group(1)) if found else ""


class ConsoleUser:
    def __init__(self, url: str, verify: Any = True) -> None:
        self.http = httpx.Client(base_url=url, follow_redirects=False, timeout=30, verify=verify)

    def close(self) -> None:
        self.http.close()

    def sign_in(self, name: str, password: str = PASSWORD) -> httpx.Response:
        page = self.http.get("/console/login")
        token = re.search(r'name="form_token" value="([^"]+)"', page.text)
        assert token is not None, page.text
        form = {"form_token": token.group(1), "name": name, "password": password, "next": "/"}
        return self.http.post("/console/login", data=form)

    def get(self, path: str, **params: Any) -> httpx.Response:
        if not params:  # a query written in the path stays as written
            return self.http.get(f"/console{path}")
        return self.http.get(f"/console{path}", params=params)

    def csrf(self) -> str:
        page = self.get("/")
        found = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert found is not None, page.text
        return found.group(1)

    def post(self, path: str, form: dict[str, str], *, csrf: bool = True) -> httpx.Response:
        data = dict(form)
        if csrf:
            data["csrf"] = self.csrf()
        return self.http.post(f"/console{path}", data=data)
